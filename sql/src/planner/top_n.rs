//! Lowering a window Top-N (Flink's `ROW_NUMBER() OVER (PARTITION BY window_start,
//! window_end [, k] ORDER BY ...) ... WHERE rownum <= N`) onto the engine's keyed
//! [`WindowTopN`] operator.
//!
//! The filter on the row number is what makes it a Top-N: lowering the filter finds the
//! `ROW_NUMBER` it tests (through the projections between them), records the limit, and the
//! window node below lowers into a Top-N instead of an OVER aggregation. `rownum = 1` is
//! window deduplication.

use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{BinaryExpr, Filter, Operator as Op, Window};
use sluice_engine::operators::{DedupSpec, Deduplicate, SortOptions, TopNSpec, WindowTopN};

use super::*;
use crate::functions::clock::is_proctime;

/// A row-number filter found above a window node: the limit and the window column's name.
#[derive(Debug, Clone)]
pub(super) struct TopNRequest {
    limit: usize,
    row_number: String,
}

/// `e` without the casts type coercion put around it (`CAST(rownum AS DECIMAL)`).
fn uncast(mut e: &Expr) -> &Expr {
    loop {
        match e {
            Expr::Cast(c) => e = c.expr.as_ref(),
            Expr::TryCast(c) => e = c.expr.as_ref(),
            other => return other,
        }
    }
}

/// The whole number of a literal, if it is one.
fn literal_count(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else {
        return None;
    };
    match v.cast_to(&DataType::Int64).ok()? {
        datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
        _ => None,
    }
}

/// The name a projection expression gives, and the column it passes on unchanged (if so).
fn passed_column(e: &Expr) -> (String, Option<String>) {
    let name = e.schema_name().to_string();
    match e.clone().unalias() {
        Expr::Column(c) => (name, Some(c.name)),
        _ => (name, None),
    }
}

/// Whether `e` (in a window node) is `ROW_NUMBER() OVER (...)`.
fn is_row_number(e: &Expr) -> bool {
    matches!(e.clone().unalias(), Expr::WindowFunction(f)
        if f.fun.name().eq_ignore_ascii_case("row_number"))
}

/// The Top-N a filter asks for: `rownum <= N`, `rownum < N` or `rownum = N` (N = 1) on a
/// column that is a window node's `ROW_NUMBER()`, through projections that pass it on.
pub(super) fn top_n_request(f: &Filter) -> Option<TopNRequest> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &f.predicate else {
        return None;
    };
    let (column, op, n) = match (uncast(left), uncast(right)) {
        (Expr::Column(c), other) => (c, *op, literal_count(other)?),
        (other, Expr::Column(c)) => (c, op.swap()?, literal_count(other)?),
        _ => return None,
    };
    let limit = match op {
        Op::LtEq => n,
        Op::Lt => n - 1,
        Op::Eq if n == 1 => 1,
        _ => return None,
    };
    let mut name = column.name.clone();
    let mut plan = f.input.as_ref();
    loop {
        match plan {
            LogicalPlan::Projection(p) => {
                let (_, passed) = p
                    .expr
                    .iter()
                    .map(passed_column)
                    .find(|(out, _)| *out == name)?;
                name = passed?;
                plan = p.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => plan = a.input.as_ref(),
            LogicalPlan::Window(w) => {
                let found = w
                    .window_expr
                    .iter()
                    .any(|e| is_row_number(e) && e.schema_name().to_string() == name);
                return found.then(|| TopNRequest {
                    limit: usize::try_from(limit).unwrap_or(0),
                    row_number: name,
                });
            }
            _ => return None,
        }
    }
}

impl Planner<'_> {
    /// Whether window node `w` holds the row number a pending Top-N filter tests.
    pub(super) fn takes_top_n(&self, w: &Window, request: &TopNRequest) -> bool {
        w.window_expr
            .iter()
            .any(|e| e.schema_name().to_string() == request.row_number)
    }

    pub(super) fn lower_top_n(&mut self, w: &Window, request: TopNRequest) -> Result<Stream> {
        if request.limit == 0 {
            return Err(Error::plan(
                "a Top-N filter must keep at least one row (rownum <= N with N >= 1)",
            ));
        }
        let [e] = w.window_expr.as_slice() else {
            return Err(Error::plan(
                "ROW_NUMBER() for a Top-N cannot share its SELECT with other OVER functions",
            ));
        };
        let Expr::WindowFunction(f) = e.clone().unalias() else {
            return Err(Error::internal("a Top-N window without ROW_NUMBER"));
        };
        let WindowFunction { params, .. } = f.as_ref();
        let input = self.lower(&w.input)?;
        if let Some(session) = &input.session {
            return Err(self.file.error_at(
                session.location,
                "a Top-N over a SESSION window table is not supported: aggregate the sessions \
                 with GROUP BY window_start, window_end first",
            ));
        }
        let input_schema = w.input.schema();
        let column_of = |e: &Expr, what: &str| -> Result<usize> {
            match e {
                Expr::Column(c) => Ok(input_schema.index_of_column(c)?),
                other => Err(Error::plan(format!(
                    "{what} {other}: a Top-N is partitioned and ordered by columns"
                ))),
            }
        };
        let partition = params
            .partition_by
            .iter()
            .map(|e| column_of(e, "PARTITION BY"))
            .collect::<Result<Vec<_>>>()?;
        let named = |name: &str| {
            partition
                .iter()
                .copied()
                .find(|i| input_schema.field(*i).name() == name)
        };
        let (Some(_), Some(window_end)) = (named("window_start"), named("window_end")) else {
            return self.lower_dedup(w, &params.order_by, partition, request, input);
        };
        let order = params
            .order_by
            .iter()
            .map(|s| {
                let options = SortOptions {
                    descending: !s.asc,
                    nulls_first: s.nulls_first,
                };
                Ok((column_of(&s.expr, "ORDER BY")?, options))
            })
            .collect::<Result<Vec<_>>>()?;
        if order.is_empty() {
            return Err(Error::plan(
                "ROW_NUMBER() for a Top-N needs an ORDER BY inside OVER (...)",
            ));
        }
        let arrow_input = Arc::new(input_schema.as_arrow().clone());
        let is_ltz = input.rowtime.is_some_and(|r| {
            matches!(
                arrow_input.field(r).data_type(),
                DataType::Timestamp(_, Some(_))
            )
        });
        let column_names = |columns: &[usize]| {
            columns
                .iter()
                .map(|i| arrow_input.field(*i).name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let order_text = order
            .iter()
            .map(|(i, o)| {
                let dir = if o.descending { "DESC" } else { "ASC" };
                format!("{} {dir}", arrow_input.field(*i).name())
            })
            .collect::<Vec<_>>()
            .join(", ");
        let spec = Arc::new(TopNSpec {
            partition: partition.clone(),
            order,
            limit: request.limit,
            window_end,
            time_zone: if is_ltz {
                self.settings.window_zone()
            } else {
                None
            },
            input_schema: Arc::clone(&arrow_input),
            output_schema: Arc::new(w.schema.as_arrow().clone()),
            table: input.table.clone(),
        });
        let holds = BTreeMap::from([
            (
                "top-n".to_string(),
                format!(
                    "ROW_NUMBER <= {} by ({}) order by ({order_text})",
                    request.limit,
                    column_names(&partition)
                ),
            ),
            (
                "columns".to_string(),
                format!(
                    "({})",
                    arrow_input
                        .fields()
                        .iter()
                        .map(|f| f.data_type().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ]);
        let metrics = Arc::clone(&self.metrics);
        let top_spec = Arc::clone(&spec);
        let node = self.add_node(
            "top-n",
            format!(
                "top {} by {} order by {order_text}",
                request.limit,
                column_names(&partition)
            ),
            &input,
            Edge::Hash(partition),
            self.settings.parallelism,
            move |_, _| {
                Ok(Box::new(WindowTopN::new(
                    Arc::clone(&top_spec),
                    Arc::clone(&metrics),
                )))
            },
        );
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism: self.settings.parallelism,
            schema: Arc::clone(&w.schema),
            rowtime: input.rowtime,
            window: None,
            session: None,
            table: input.table,
        })
    }
}

impl Planner<'_> {
    /// `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) ... WHERE rownum = 1`: the
    /// first row of each key, kept for `table.exec.state.ttl`.
    fn lower_dedup(
        &mut self,
        w: &Window,
        order_by: &[datafusion::logical_expr::SortExpr],
        keys: Vec<usize>,
        request: TopNRequest,
        input: Stream,
    ) -> Result<Stream> {
        let refuse = |why: &str| {
            Err(Error::plan(format!(
                "{why}: without window_start, window_end in PARTITION BY, Sluice runs \
                 ROW_NUMBER() as a deduplication only: PARTITION BY keys ORDER BY the time \
                 attribute ASC, WHERE rownum = 1 (a window Top-N partitions by window_start, \
                 window_end)"
            )))
        };
        if request.limit != 1 {
            return refuse("a Top-N without a window is not supported yet");
        }
        let input_schema = w.input.schema();
        // The ORDER BY: the rowtime, or a processing-time attribute (None).
        let order = match order_by {
            [s] => match &s.expr {
                Expr::Column(c) => {
                    let index = input_schema.index_of_column(c).ok();
                    if index.is_some() && index == input.rowtime {
                        Some((index, s.asc))
                    } else if index.is_some_and(|i| is_proctime(input_schema.field(i))) {
                        Some((None, s.asc))
                    } else {
                        None
                    }
                }
                _ => None,
            },
            _ => None,
        };
        let rowtime = match order {
            Some((_, false)) => {
                return refuse(
                    "ORDER BY the time attribute DESC keeps each key's last row, which \
                     changes as rows arrive (updates a sink would have to take)",
                )
            }
            Some((rowtime, true)) => rowtime,
            None => {
                return refuse(
                    "the ORDER BY must be a time attribute alone: the rowtime, or a \
                     processing-time attribute (declared AS PROCTIME())",
                )
            }
        };
        if keys.is_empty() {
            return refuse("a deduplication needs PARTITION BY keys");
        }
        let arrow_input = Arc::new(input_schema.as_arrow().clone());
        let key_names = keys
            .iter()
            .map(|i| arrow_input.field(*i).name().as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let spec = Arc::new(DedupSpec {
            keys: keys.clone(),
            rowtime,
            ttl: self.settings.state_ttl,
            input_schema: Arc::clone(&arrow_input),
            output_schema: Arc::new(w.schema.as_arrow().clone()),
            table: input.table.clone(),
        });
        let holds = BTreeMap::from([
            (
                "deduplicate".to_string(),
                format!(
                    "first row by ({key_names}){}",
                    if rowtime.is_none() {
                        " in processing time"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "columns".to_string(),
                format!(
                    "({})",
                    arrow_input
                        .fields()
                        .iter()
                        .map(|f| f.data_type().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ]);
        // Lateness is decided per row, from its source partition's watermark (as for OVER);
        // by processing time no row is late.
        let input = match rowtime {
            Some(rowtime) => self.drop_late_rows(&input, rowtime),
            None => input,
        };
        let metrics = Arc::clone(&self.metrics);
        let dedup_spec = Arc::clone(&spec);
        let node = self.add_node(
            "deduplicate",
            format!(
                "deduplicate: first row by {key_names}{}{}",
                if rowtime.is_none() { " to arrive" } else { "" },
                spec.ttl
                    .map(|t| format!(
                        ", state kept {}",
                        super::lower::duration_text(t.as_millis() as i64)
                    ))
                    .unwrap_or_default()
            ),
            &input,
            Edge::Hash(keys),
            self.settings.parallelism,
            move |_, _| {
                Ok(Box::new(Deduplicate::new(
                    Arc::clone(&dedup_spec),
                    Arc::clone(&metrics),
                )?))
            },
        );
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism: self.settings.parallelism,
            schema: Arc::clone(&w.schema),
            rowtime: input.rowtime,
            window: None,
            session: None,
            table: input.table,
        })
    }
}
