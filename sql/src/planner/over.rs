//! Lowering an OVER aggregation (DataFusion's `Window` node) onto the engine: late rows
//! dropped in the source task, rows by `PARTITION BY` key to the keyed OVER operator.
//!
//! As in Flink, every aggregate of one SELECT shares one window: the same partitioning, an
//! `ORDER BY` on the rowtime ascending, and a frame ending at the current row that starts
//! an interval before it (RANGE), a number of rows before it (ROWS) or unbounded.

use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{
    Window, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use sluice_engine::operators::{DropLateRows, Frame, OverAggregate, OverSpec};

use super::*;

/// The milliseconds of a RANGE bound (an interval, or a number of milliseconds).
pub(super) fn bound_ms(value: &datafusion::common::ScalarValue) -> Option<i64> {
    use datafusion::common::ScalarValue as S;
    match value {
        S::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        S::IntervalDayTime(Some(v)) => Some(v.days as i64 * 86_400_000 + v.milliseconds as i64),
        S::IntervalYearMonth(Some(0)) => Some(0),
        other => other.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            S::Int64(Some(n)) => Some(n),
            _ => None,
        }),
    }
}

/// The engine's frame of a SQL window frame, or why it is not one Sluice runs.
fn frame_of(frame: &WindowFrame) -> std::result::Result<Frame, String> {
    if frame.end_bound != WindowFrameBound::CurrentRow {
        return Err("an OVER window must end at CURRENT ROW".into());
    }
    let start = match &frame.start_bound {
        WindowFrameBound::Preceding(v) => v,
        WindowFrameBound::CurrentRow => {
            return Ok(match frame.units {
                WindowFrameUnits::Rows => Frame::Rows(0),
                _ => Frame::Range(0),
            })
        }
        WindowFrameBound::Following(_) => {
            return Err("an OVER window cannot start after the current row".into())
        }
    };
    match frame.units {
        WindowFrameUnits::Rows if start.is_null() => Ok(Frame::UnboundedRows),
        WindowFrameUnits::Range if start.is_null() => Ok(Frame::UnboundedRange),
        WindowFrameUnits::Rows => start
            .cast_to(&DataType::UInt64)
            .ok()
            .and_then(|v| match v {
                datafusion::common::ScalarValue::UInt64(Some(n)) => Some(Frame::Rows(n as usize)),
                _ => None,
            })
            .ok_or_else(|| format!("ROWS BETWEEN {start} PRECEDING needs a whole number")),
        WindowFrameUnits::Range => bound_ms(start)
            .filter(|ms| *ms >= 0)
            .map(Frame::Range)
            .ok_or_else(|| {
                format!("RANGE BETWEEN {start} PRECEDING needs an interval of days or less")
            }),
        WindowFrameUnits::Groups => Err("GROUPS frames are not supported".into()),
    }
}

/// A frame as a job writes it: `RANGE 10 min PRECEDING`, `ROWS 5 PRECEDING`.
fn frame_text(frame: Frame) -> String {
    match frame {
        Frame::Range(ms) => format!("RANGE {} PRECEDING", super::lower::duration_text(ms)),
        Frame::Rows(n) => format!("ROWS {n} PRECEDING"),
        Frame::UnboundedRange => "RANGE UNBOUNDED PRECEDING".into(),
        Frame::UnboundedRows => "ROWS UNBOUNDED PRECEDING".into(),
    }
}

/// `agg(x) FILTER (WHERE c)` as `agg(CASE WHEN c THEN x END)`: the same for the aggregates
/// that skip NULLs, which are the ones an OVER window takes a FILTER on (the OVER operator
/// feeds every row of the frame to its aggregates).
fn filtered_args(function: &str, args: &[Expr], filter: &Expr) -> Result<Vec<Expr>> {
    const SKIP_NULLS: &[&str] = &[
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "stddev",
        "stddev_pop",
        "var",
        "var_pop",
        "bool_and",
        "bool_or",
    ];
    let [arg] = args else {
        return Err(Error::plan(format!(
            "FILTER (WHERE ...) on {}(...) OVER needs a one-argument aggregate",
            function.to_uppercase()
        )));
    };
    if !SKIP_NULLS.contains(&function.to_ascii_lowercase().as_str()) {
        return Err(Error::plan(format!(
            "FILTER (WHERE ...) on {}(...) OVER is not supported: only on COUNT, SUM, AVG, MIN, \
             MAX and the other aggregates that skip NULLs",
            function.to_uppercase()
        )));
    }
    Ok(vec![Expr::Case(datafusion::logical_expr::expr::Case::new(
        None,
        vec![(Box::new(filter.clone()), Box::new(arg.clone()))],
        None,
    ))])
}

impl Planner<'_> {
    /// `input` behind a node that drops and counts rows late for their source partition's
    /// watermark (what OVER aggregations and deduplication decide lateness with).
    pub(super) fn drop_late_rows(&mut self, input: &Stream, rowtime: usize) -> Stream {
        let metrics = Arc::clone(&self.metrics);
        let table = input.table.clone();
        let node = self.add_node(
            "drop late rows",
            "drop late rows".into(),
            input,
            Edge::Forward,
            input.parallelism,
            move |_, _| {
                Ok(Box::new(DropLateRows::new(
                    rowtime,
                    table.clone(),
                    Arc::clone(&metrics),
                )))
            },
        );
        Stream {
            node,
            ..input.clone()
        }
    }

    pub(super) fn lower_over(&mut self, w: &Window) -> Result<Stream> {
        if let Some(request) = self.top_n.take() {
            if self.takes_top_n(w, &request) {
                return self.lower_top_n(w, request);
            }
            self.top_n = Some(request);
        }
        let input = self.lower(&w.input)?;
        if let Some(session) = &input.session {
            return Err(self.file.error_at(
                session.location,
                "an OVER aggregation over a SESSION window table is not supported: aggregate \
                 the sessions with GROUP BY window_start, window_end first",
            ));
        }
        let input_schema = w.input.schema();
        let arrow_input = input_schema.as_arrow();
        let rowtime = input.rowtime.ok_or_else(|| {
            Error::plan(
                "an OVER aggregation needs a time attribute to order by: its input has none \
                 (declare WATERMARK FOR ... in the table)",
            )
        })?;
        let mut shared: Option<(&[Expr], &WindowFrame)> = None;
        let mut aggregates = Vec::new();
        let mut functions = Vec::new();
        let mut names = Vec::new();
        for e in &w.window_expr {
            let (e, name) = match e {
                Expr::Alias(a) => (a.expr.as_ref(), a.name.clone()),
                other => (other, other.schema_name().to_string()),
            };
            let Expr::WindowFunction(f) = e else {
                return Err(Error::plan(format!(
                    "{e} is not supported in an OVER window"
                )));
            };
            let WindowFunction { fun, params } = f.as_ref();
            if fun.name().eq_ignore_ascii_case("row_number") {
                return Err(Error::plan(
                    "ROW_NUMBER() OVER (...) runs as a window Top-N: PARTITION BY \
                     window_start, window_end of a window table, and filter it with WHERE \
                     rownum <= N in the query around it",
                ));
            }
            let WindowFunctionDefinition::AggregateUDF(udf) = fun else {
                return Err(Error::plan(format!(
                    "{} OVER (...) is not supported yet: only aggregates (COUNT, SUM, AVG, MIN, \
                     MAX, ...) over a window",
                    fun.name().to_uppercase()
                )));
            };
            match params.order_by.as_slice() {
                [order]
                    if order.asc
                        && matches!(&order.expr, Expr::Column(c)
                            if input_schema.index_of_column(c).ok() == Some(rowtime)) => {}
                _ => {
                    return Err(Error::plan(format!(
                        "an OVER window must be ORDER BY {} (the time attribute) ascending",
                        input_schema.field(rowtime).name()
                    )))
                }
            }
            match shared {
                None => shared = Some((&params.partition_by, &params.window_frame)),
                Some((partition, frame)) => {
                    if partition != params.partition_by.as_slice() || frame != &params.window_frame
                    {
                        return Err(Error::plan(
                            "every OVER aggregate of a SELECT must use the same window \
                             (partitioning, order and frame), as in Flink",
                        ));
                    }
                }
            }
            let args = match &params.filter {
                None => params.args.clone(),
                Some(filter) => filtered_args(udf.name(), &params.args, filter)?,
            };
            let aggregate = Expr::AggregateFunction(AggregateFunction::new_udf(
                Arc::clone(udf),
                args,
                params.distinct,
                None,
                vec![],
                params.null_treatment,
            ))
            .alias(name);
            let (agg, _) = self.physical_aggregate(&aggregate, input_schema)?;
            aggregates.push(agg);
            functions.push(udf.name().to_uppercase());
            if let Expr::Alias(a) = &aggregate {
                // What the aggregate computes, without the window (which has its own entry).
                names.push(a.expr.schema_name().to_string());
            }
        }
        let (partition_by, frame) =
            shared.ok_or_else(|| Error::internal("an OVER window without aggregates"))?;
        let frame = frame_of(frame).map_err(Error::plan)?;
        let mut key_columns = Vec::new();
        let mut keys = Vec::new();
        let mut key_fields = Vec::new();
        for p in partition_by {
            let Expr::Column(c) = p else {
                return Err(Error::plan(format!(
                    "PARTITION BY {p}: an OVER window is partitioned by columns"
                )));
            };
            let index = input_schema.index_of_column(c)?;
            key_columns.push(index);
            keys.push(self.physical(p, input_schema)?);
            let f = input_schema.field(index);
            key_fields.push(Field::new(f.name(), f.data_type().clone(), true));
        }
        let spec = Arc::new(OverSpec {
            keys,
            key_fields,
            rowtime,
            frame,
            aggregates,
            output_schema: Arc::new(w.schema.as_arrow().clone()),
            input_schema: Arc::new(arrow_input.clone()),
        });
        let late_stream = self.drop_late_rows(&input, rowtime);
        let (edge, parallelism) = if key_columns.is_empty() {
            (Edge::Single, 1)
        } else {
            (Edge::Hash(key_columns), self.settings.parallelism)
        };
        let holds = BTreeMap::from([
            ("window".to_string(), frame_text(frame)),
            (
                "keys".to_string(),
                format!(
                    "({})",
                    spec.key_fields
                        .iter()
                        .map(|f| format!("{} {}", f.name(), flink_name(f.data_type())))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ("aggregates".to_string(), format!("({})", names.join(", "))),
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
        let over_spec = Arc::clone(&spec);
        let node = self.add_node(
            "over",
            format!(
                "over [{}] {}{}",
                functions.join(", "),
                frame_text(frame),
                if spec.key_fields.is_empty() {
                    String::new()
                } else {
                    format!(
                        " by {}",
                        spec.key_fields
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
            &late_stream,
            edge,
            parallelism,
            move |_, _| Ok(Box::new(OverAggregate::new(Arc::clone(&over_spec))?)),
        );
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism,
            schema: Arc::clone(&w.schema),
            rowtime: Some(rowtime),
            window: None,
            session: None,
            table: input.table,
        })
    }
}
