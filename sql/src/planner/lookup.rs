//! Lowering a lookup join, `s JOIN t FOR SYSTEM_TIME AS OF s.proc_time AS d ON s.k = d.k`,
//! INNER or LEFT, onto the engine's [`LookupJoin`]: chained after the stream, with the
//! table read whole by its connector and kept fresh by the join.

use datafusion::logical_expr::{Join, JoinType, Operator as Op};
use sluice_engine::operators::{
    JoinKind, LookupJoin, LookupJoinSpec, LookupTable, LookupTableSpec,
};

use super::join::split_and;
use super::tables::{metadata_columns, option_error, take_connector};
use super::*;
use crate::functions::clock::is_proctime;
use crate::lookups::LookupCall;

type Col = datafusion::common::Column;

/// The generated lookup table a join side scans, if it is one.
pub(super) fn lookup_table(plan: &LogicalPlan) -> Option<&str> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => lookup_table(&a.input),
        LogicalPlan::TableScan(scan) => {
            let name = scan.table_name.table();
            name.starts_with(crate::lookups::PREFIX).then_some(name)
        }
        _ => None,
    }
}

impl Planner<'_> {
    /// Registers the generated table of each `FOR SYSTEM_TIME AS OF` of a query.
    pub(super) fn register_lookups(&mut self, calls: &[LookupCall]) -> Result<()> {
        for call in calls {
            let Some(entry) = self.tables.get(&call.table) else {
                let why = if self.known_relation(&call.table) {
                    "is a view; a lookup join reads a table (a bounded 'filesystem' table)"
                } else {
                    "is not defined: create it with CREATE TABLE ... WITH ('connector' = 'filesystem', ...)"
                };
                return Err(self.file.error_at(
                    call.location,
                    format!("'{}' looked up FOR SYSTEM_TIME AS OF {why}", call.table),
                ));
            };
            let schema = Arc::clone(&entry.schema);
            self.register(&call.generated, Arc::new(EmptyTable::new(schema)))?;
            self.lookups.insert(call.generated.clone(), call.clone());
        }
        Ok(())
    }

    pub(super) fn lower_lookup_join(&mut self, j: &Join, generated: &str) -> Result<Stream> {
        let file = self.file;
        let call = self.lookups[generated].clone();
        let at = |message: String| file.error_at(call.location, message);
        let table = &call.table;
        let kind = match j.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            other => {
                return Err(at(format!(
                    "a lookup join of '{table}' is INNER or LEFT, not {other}: the stream goes \
                     on the left, the table FOR SYSTEM_TIME AS OF on the right"
                )))
            }
        };
        let (ls, rs) = (j.left.schema(), j.right.schema());
        // Keys: `stream column = table column`; anything else is a condition on the
        // joined row.
        let mut pairs: Vec<(Col, Col)> = Vec::new();
        let mut rest: Vec<Expr> = Vec::new();
        for (l, r) in &j.on {
            rest.push(l.clone().eq(r.clone()));
        }
        let mut conjuncts = Vec::new();
        if let Some(filter) = &j.filter {
            split_and(filter, &mut conjuncts);
        }
        rest.extend(conjuncts.into_iter().cloned());
        let mut residual = Vec::new();
        for e in rest {
            if let Expr::BinaryExpr(b) = &e {
                if let (Op::Eq, Expr::Column(x), Expr::Column(y)) =
                    (b.op, b.left.as_ref(), b.right.as_ref())
                {
                    if ls.has_column(x) && rs.has_column(y) {
                        pairs.push((x.clone(), y.clone()));
                        continue;
                    }
                    if ls.has_column(y) && rs.has_column(x) {
                        pairs.push((y.clone(), x.clone()));
                        continue;
                    }
                }
            }
            residual.push(e);
        }
        if pairs.is_empty() {
            return Err(at(format!(
                "a lookup join of '{table}' needs at least one condition `stream column = \
                 {table} column` to look rows up by"
            )));
        }
        if kind == JoinKind::Left && !residual.is_empty() {
            return Err(at(format!(
                "a LEFT lookup join of '{table}' takes only equal columns in its ON condition; \
                 filter the table's rows in a WHERE after the join or use an INNER join"
            )));
        }
        self.check_lookup_time(&call, ls)?;
        let mut stream_keys = Vec::new();
        let mut table_keys = Vec::new();
        let mut key_types = Vec::new();
        for (l, r) in &pairs {
            let (li, ri) = (ls.index_of_column(l)?, rs.index_of_column(r)?);
            let (lt, rt) = (ls.field(li).data_type(), rs.field(ri).data_type());
            if !arrow::compute::can_cast_types(rt, lt) {
                return Err(at(format!(
                    "{l} and {r} cannot be compared ({} and {})",
                    flink_name(lt),
                    flink_name(rt)
                )));
            }
            stream_keys.push(li);
            table_keys.push(ri);
            key_types.push(lt.clone());
        }
        let entry = &self.tables[table];
        let def = &entry.def;
        let mut options = Options::new(table.as_str(), def.options_map());
        let connector_name = take_connector(file, def, &mut options)?;
        let spec = TableSpec {
            name: table.clone(),
            schema: Arc::clone(&entry.source_schema),
            metadata: metadata_columns(def),
            partition_by: def.partition_by.clone(),
            projection: None,
        };
        let (connector, fresh) =
            sluice_connectors::create_lookup(&connector_name, spec, &mut options)
                .map_err(|e| option_error(file, def, e))?;
        options.finish().map_err(|e| option_error(file, def, e))?;
        let description = connector.describe();
        let lookup_table = LookupTable::new(LookupTableSpec {
            name: table.clone(),
            connector,
            prep: Arc::clone(&entry.prep),
            keys: table_keys,
            key_types,
            reload_interval: fresh.reload_interval,
            max_retries: fresh.max_retries,
        })?;
        let residual = match residual.into_iter().reduce(Expr::and) {
            Some(e) => Some(self.physical(&e, &j.schema)?),
            None => None,
        };
        let left = self.lower(&j.left)?;
        let spec = Arc::new(LookupJoinSpec {
            kind,
            stream_keys,
            table: lookup_table,
            output_schema: Arc::new(j.schema.as_arrow().clone()),
            residual,
        });
        let key_text = pairs
            .iter()
            .map(|(l, r)| format!("{l} = {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let node = self.add_node(
            "lookup join",
            format!(
                "lookup join {} {table} ({description}) on {key_text}",
                j.join_type
            ),
            &left,
            Edge::Forward,
            left.parallelism,
            move |_, _| Ok(Box::new(LookupJoin::new(Arc::clone(&spec))?)),
        );
        Ok(Stream {
            node,
            schema: Arc::clone(&j.schema),
            // The stream's columns come first and its rows keep their times.
            ..left
        })
    }

    /// `FOR SYSTEM_TIME AS OF` must name the stream's processing-time attribute.
    fn check_lookup_time(&self, call: &LookupCall, stream: &DFSchemaRef) -> Result<()> {
        let (qualifier, name) = &call.time;
        let written = match qualifier {
            Some(q) => format!("{q}.{name}"),
            None => name.clone(),
        };
        let field = stream
            .qualified_field_with_name(
                qualifier.as_deref().map(TableReference::bare).as_ref(),
                name,
            )
            .map(|(_, f)| f);
        let at = |why: &str| {
            Err(self.file.error_at(
                call.location,
                format!("FOR SYSTEM_TIME AS OF {written}: {why}"),
            ))
        };
        match field {
            Err(_) => at("the stream on the left of the join has no such column"),
            Ok(f) if is_proctime(f) => Ok(()),
            Ok(f) if matches!(f.data_type(), DataType::Timestamp(..)) => at(
                "the column is not a processing-time attribute; a lookup join reads the table \
                 as it is when each row is processed, at a column declared `AS PROCTIME()` \
                 (joins at event time against a versioned table are not supported)",
            ),
            Ok(_) => {
                at("the column is not a processing-time attribute (declare one `AS PROCTIME()`)")
            }
        }
    }
}
