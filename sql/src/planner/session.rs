//! Lowering of SESSION windows: the scan of a SESSION window table becomes the session tag
//! (the row's own window and the trailing session columns, in the source task), and its
//! `GROUP BY window_start, window_end [, keys]` becomes a hash exchange by key and the
//! session window aggregate.

use super::lower::{aggregate_state, duration_text};
use super::*;

impl Planner<'_> {
    pub(super) fn lower_session_window(
        &mut self,
        name: &str,
        call: &WindowCall,
        gap_ms: i64,
        time_zone: Option<chrono_tz::Tz>,
        rowtime: usize,
        input: Stream,
    ) -> Result<Stream> {
        let schema = Arc::clone(&self.windows[name].schema);
        let metrics = Arc::clone(&self.metrics);
        let table = input.table.clone();
        let tag_schema = Arc::clone(&schema);
        let node = self.add_node(
            "session",
            format!(
                "session window gap {} on {}",
                duration_text(gap_ms),
                call.descriptor
            ),
            &input,
            Edge::Forward,
            input.parallelism,
            move |_, _| {
                Ok(Box::new(SessionTag::new(
                    gap_ms,
                    rowtime,
                    time_zone,
                    &tag_schema,
                    table.clone(),
                    Arc::clone(&metrics),
                )))
            },
        );
        let df = DFSchema::try_from_qualified_schema(TableReference::bare(name), &schema)?;
        Ok(Stream {
            node,
            parallelism: input.parallelism,
            schema: Arc::new(df),
            rowtime: None,
            window: None,
            session: Some(SessionWindow {
                gap_ms,
                time_zone,
                partition_by: call.partition_by.clone(),
                location: call.location,
            }),
            table: input.table,
        })
    }

    /// `GROUP BY window_start, window_end [, keys]` over a SESSION window table; `roles` says
    /// which grouping expressions are window columns.
    pub(super) fn lower_session_aggregate(
        &mut self,
        a: &datafusion::logical_expr::Aggregate,
        input: Stream,
        session: SessionWindow,
        roles: Vec<Option<AggregateOutput>>,
    ) -> Result<Stream> {
        let file = self.file;
        let input_schema = a.input.schema();
        let mut keys = Vec::new();
        let mut key_columns = Vec::new();
        let mut key_fields = Vec::new();
        let mut key_names = Vec::new();
        let mut output = Vec::new();
        for (g, role) in a.group_expr.iter().zip(&roles) {
            if let Some(r) = role {
                output.push(*r);
                continue;
            }
            let Expr::Column(c) = g.clone().unalias() else {
                return Err(file.error_at(
                    session.location,
                    format!(
                        "GROUP BY {g} over a SESSION window: sessions are kept per key column, \
                         so group by columns (compute the key in a view first)"
                    ),
                ));
            };
            let index = input_schema.index_of_column(&c)?;
            output.push(AggregateOutput::Key(keys.len()));
            keys.push(self.physical(g, input_schema)?);
            key_columns.push(index);
            let f = input_schema.field(index);
            key_fields.push(Field::new(f.name(), f.data_type().clone(), true));
            key_names.push(f.name().clone());
        }
        for (column, at) in &session.partition_by {
            if !key_names.iter().any(|k| k == column) {
                return Err(file.error_at(
                    *at,
                    format!(
                        "SESSION is partitioned by '{column}', which the GROUP BY does not \
                         list: group by window_start, window_end and the partition columns"
                    ),
                ));
            }
        }
        let super::lower::Aggregates {
            exprs: aggregates,
            filters,
            names: agg_names,
        } = self.aggregate_exprs(a, &mut output)?;
        let spec = Arc::new(SessionSpec {
            gap_ms: session.gap_ms,
            time_zone: session.time_zone,
            keys,
            key_fields,
            aggregates,
            filters,
            output: output.clone(),
            output_schema: Arc::new(a.schema.as_arrow().clone()),
            table: input.table.clone(),
        });
        let (edge, parallelism) = if key_columns.is_empty() {
            (Edge::Single, 1)
        } else {
            (Edge::Hash(key_columns), self.settings.parallelism)
        };
        let mut window = format!("SESSION(gap {})", duration_text(session.gap_ms));
        if let Some(zone) = session.time_zone {
            window.push_str(&format!(" in {zone}"));
        }
        let holds = aggregate_state(window, &spec.key_fields, &agg_names, &spec.state_schema()?);
        let metrics = Arc::clone(&self.metrics);
        let node_spec = Arc::clone(&spec);
        let node = self.add_node(
            "aggregate",
            format!(
                "aggregate by session{}{}",
                if key_names.is_empty() { "" } else { ", " },
                key_names.join(", ")
            ),
            &input,
            edge,
            parallelism,
            move |_, _| {
                Ok(Box::new(SessionAggregate::new(
                    Arc::clone(&node_spec),
                    Arc::clone(&metrics),
                )?))
            },
        );
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism,
            schema: Arc::clone(&a.schema),
            rowtime: output
                .iter()
                .position(|o| *o == AggregateOutput::WindowTime),
            window: None,
            session: None,
            table: input.table,
        })
    }
}
