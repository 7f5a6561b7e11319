//! Lowering a window join: two window tables (or window aggregates) joined on
//! `window_start`, `window_end` and keys, INNER / LEFT / RIGHT / FULL, onto the engine's
//! two-input [`WindowJoin`] operator. Other joins are refused with a sentence.

use datafusion::logical_expr::{Join, JoinType, Operator as Op};
use sluice_engine::operators::{
    IntervalJoin, IntervalJoinSpec, JoinKind, WindowJoin, WindowJoinSpec,
};

use super::*;

type Col = datafusion::common::Column;

/// A join condition, taken apart: equal columns (left, right), and the range of
/// `left.ts - right.ts` in milliseconds set by comparisons of the two sides' columns (with
/// the columns compared, left then right).
#[derive(Default)]
struct Condition {
    equal: Vec<(Col, Col)>,
    range: Option<(Col, Col, i64, i64)>,
    /// The conjuncts of the filter taken as time bounds or equal keys above.
    taken: Vec<Expr>,
    /// The other conjuncts (say `a.n >= b.m`): a filter on the joined rows.
    residual: Vec<Expr>,
}

/// `column [+|- interval]`: the column and the signed offset in milliseconds.
fn shifted(e: &Expr) -> Option<(Col, i64)> {
    match e {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::Cast(c) => shifted(&c.expr),
        Expr::BinaryExpr(b) if matches!(b.op, Op::Plus | Op::Minus) => {
            let (c, base) = shifted(&b.left)?;
            let Expr::Literal(v, _) = b.right.as_ref() else {
                return None;
            };
            let ms = super::over::bound_ms(v)?;
            Some((
                c,
                if b.op == Op::Plus {
                    base + ms
                } else {
                    base - ms
                },
            ))
        }
        _ => None,
    }
}

impl Condition {
    /// Adds `left.ts - right.ts` in `[lo, hi]` for columns `l`, `r`.
    fn bound(&mut self, l: Col, r: Col, lo: i64, hi: i64) -> Option<()> {
        let (lo0, hi0) = match &self.range {
            Some((l0, r0, a, b)) if *l0 == l && *r0 == r => (*a, *b),
            Some(_) => return None,
            None => (i64::MIN, i64::MAX),
        };
        self.range = Some((l, r, lo.max(lo0), hi.min(hi0)));
        Some(())
    }

    /// `x op y` where x and y are shifted columns of different sides.
    fn compare(
        &mut self,
        x: &Expr,
        op: Op,
        y: &Expr,
        sides: (&DFSchemaRef, &DFSchemaRef),
    ) -> Option<()> {
        let ((xc, xo), (yc, yo)) = (shifted(x)?, shifted(y)?);
        let (left, right) = sides;
        // Orient as left.ts op' right.ts + k.
        let (l, r, op, k) = if left.has_column(&xc) && right.has_column(&yc) {
            (xc, yc, op, yo - xo)
        } else if left.has_column(&yc) && right.has_column(&xc) {
            let flipped = match op {
                Op::Lt => Op::Gt,
                Op::LtEq => Op::GtEq,
                Op::Gt => Op::Lt,
                Op::GtEq => Op::LtEq,
                other => other,
            };
            (yc, xc, flipped, xo - yo)
        } else {
            return None;
        };
        match op {
            Op::Eq if k == 0 => {
                self.equal.push((l, r));
                Some(())
            }
            Op::LtEq => self.bound(l, r, i64::MIN, k),
            Op::Lt => self.bound(l, r, i64::MIN, k - 1),
            Op::GtEq => self.bound(l, r, k, i64::MAX),
            Op::Gt => self.bound(l, r, k + 1, i64::MAX),
            _ => None,
        }
    }
}

/// The join's condition taken apart, or None if its equal keys are not plain columns.
fn condition(j: &Join) -> Option<Condition> {
    let mut c = Condition::default();
    for (l, r) in &j.on {
        match (l, r) {
            (Expr::Column(a), Expr::Column(b)) => c.equal.push((a.clone(), b.clone())),
            _ => return None,
        }
    }
    let mut conjuncts = Vec::new();
    if let Some(filter) = &j.filter {
        split_and(filter, &mut conjuncts);
    }
    let sides = (j.left.schema(), j.right.schema());
    // A comparison of two sides' times bounds the join; one of other values filters it.
    let is_time = |e: &Expr| {
        shifted(e).is_some_and(|(col, _)| {
            [sides.0, sides.1].iter().any(|s| {
                datafusion::common::ExprSchema::field_from_column(s.as_ref(), &col)
                    .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(..)))
            })
        })
    };
    for e in conjuncts {
        let taken = match e {
            Expr::BinaryExpr(b) if b.op == Op::Eq || (is_time(&b.left) && is_time(&b.right)) => {
                c.compare(&b.left, b.op, &b.right, sides).is_some()
            }
            Expr::Between(b) if !b.negated && is_time(&b.expr) => {
                c.compare(&b.expr, Op::GtEq, &b.low, sides).is_some()
                    && c.compare(&b.expr, Op::LtEq, &b.high, sides).is_some()
            }
            _ => false,
        };
        if taken {
            c.taken.push(e.clone());
        } else {
            c.residual.push(e.clone());
        }
    }
    Some(c)
}

/// Key column indexes, left side then right side.
type KeyIndexes = (Vec<usize>, Vec<usize>);

/// The column indexes of the equal key pairs on each side, or the sentence saying why two
/// of them cannot be compared.
fn key_indexes(
    (ls, rs): (&DFSchemaRef, &DFSchemaRef),
    pairs: &[(Col, Col)],
) -> Result<std::result::Result<KeyIndexes, String>> {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (l, r) in pairs {
        let (li, ri) = (ls.index_of_column(l)?, rs.index_of_column(r)?);
        let (a, b) = (ls.field(li).data_type(), rs.field(ri).data_type());
        if a != b {
            return Ok(Err(format!(
                "{l} and {r} have different types ({} and {}): cast one of them",
                flink_name(a),
                flink_name(b)
            )));
        }
        left.push(li);
        right.push(ri);
    }
    Ok(Ok((left, right)))
}

/// The conjuncts of `a AND b AND ...`.
pub(super) fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(b) if b.op == Op::And => {
            split_and(&b.left, out);
            split_and(&b.right, out);
        }
        other => out.push(other),
    }
}

/// The name column `col` of `plan` has where it was made: followed down through
/// projections (past their aliases), subquery aliases, filters and the group keys of
/// aggregates. So `window_start AS starttime` in a subquery is still a window's start.
pub(super) fn origin_name(plan: &LogicalPlan, col: &Col) -> String {
    let Ok(index) = plan.schema().index_of_column(col) else {
        return col.name.clone();
    };
    let input_column = |input: &LogicalPlan, index: usize| {
        let (qualifier, field) = input.schema().qualified_field(index);
        Col::new(qualifier.cloned(), field.name())
    };
    match plan {
        LogicalPlan::Projection(p) => match p.expr[index].clone().unalias_nested().data {
            Expr::Column(c) => origin_name(&p.input, &c),
            _ => col.name.clone(),
        },
        LogicalPlan::SubqueryAlias(s) => origin_name(&s.input, &input_column(&s.input, index)),
        LogicalPlan::Filter(f) => origin_name(&f.input, &input_column(&f.input, index)),
        LogicalPlan::Aggregate(a) if index < a.group_expr.len() => {
            match a.group_expr[index].clone().unalias_nested().data {
                Expr::Column(c) => origin_name(&a.input, &c),
                _ => col.name.clone(),
            }
        }
        _ => col.name.clone(),
    }
}

impl Planner<'_> {
    pub(super) fn lower_join(&mut self, j: &Join) -> Result<Stream> {
        if let Some(generated) = super::lookup::lookup_table(&j.right) {
            return self.lower_lookup_join(j, generated);
        }
        if let Some(generated) = super::lookup::lookup_table(&j.left) {
            let call = &self.lookups[generated];
            return Err(self.file.error_at(
                call.location,
                format!(
                    "the table looked up FOR SYSTEM_TIME AS OF ('{}') goes on the right of the \
                     JOIN, the stream on the left",
                    call.table
                ),
            ));
        }
        let refuse = |why: &str| {
            Err(Error::plan(format!(
                "{why}: Sluice runs a JOIN of two streams as a window join: two window tables \
                 (or window aggregates) joined ON their window_start, window_end and equal \
                 keys, INNER, LEFT, RIGHT or FULL"
            )))
        };
        let kind = match j.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            other => return refuse(&format!("a {other} join is not supported")),
        };
        let Some(condition) = condition(j) else {
            return refuse(
                "the join condition must be equal columns and time bounds, joined with AND",
            );
        };
        if let Some(residual) = condition.residual.iter().cloned().reduce(Expr::and) {
            if kind != JoinKind::Inner {
                return refuse(&format!(
                    "a {} join's condition may hold only equal keys and time bounds, not {residual}",
                    j.join_type
                ));
            }
            // The join on its keys and time bounds, then the rest as a filter of its rows.
            let mut inner = j.clone();
            inner.filter = condition.taken.into_iter().reduce(Expr::and);
            let joined = self.lower_join(&inner)?;
            return self.add_filter(joined, &residual, &j.schema);
        }
        let pairs = condition.equal.clone();
        if let Some(range) = condition.range {
            return self.lower_interval_join(j, kind, pairs, range);
        }
        let (ls, rs) = (j.left.schema(), j.right.schema());
        let (left_keys, right_keys) = match key_indexes((ls, rs), &pairs)? {
            Ok(keys) => keys,
            Err(why) => return refuse(&why),
        };
        let window_pair = |name: &str| {
            pairs
                .iter()
                .zip(left_keys.iter().zip(&right_keys))
                .find(|((l, r), _)| {
                    origin_name(&j.left, l) == name && origin_name(&j.right, r) == name
                })
                .map(|(_, (li, ri))| (*li, *ri))
        };
        let (Some(_), Some((left_end, right_end))) =
            (window_pair("window_start"), window_pair("window_end"))
        else {
            return refuse("the join condition lacks L.window_start = R.window_start AND L.window_end = R.window_end");
        };
        let left = self.lower(&j.left)?;
        let right = self.lower(&j.right)?;
        let is_ltz = |s: &Stream| {
            s.rowtime.is_some_and(|r| {
                matches!(
                    s.schema.field(r).data_type(),
                    DataType::Timestamp(_, Some(_))
                )
            })
        };
        let spec = Arc::new(WindowJoinSpec {
            kind,
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            left_end,
            right_end,
            time_zone: if is_ltz(&left) {
                self.settings.window_zone()
            } else {
                None
            },
            left_schema: Arc::new(ls.as_arrow().clone()),
            right_schema: Arc::new(rs.as_arrow().clone()),
            output_schema: Arc::new(j.schema.as_arrow().clone()),
            table: format!("{} join {}", left.table, right.table),
        });
        let key_text = pairs
            .iter()
            .map(|(l, r)| format!("{} = {}", l.name, r.name))
            .collect::<Vec<_>>()
            .join(", ");
        let columns = |s: &DFSchemaRef| {
            s.fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let holds = BTreeMap::from([
            (
                "join".to_string(),
                format!("{:?} on ({key_text})", j.join_type),
            ),
            ("left columns".to_string(), format!("({})", columns(ls))),
            ("right columns".to_string(), format!("({})", columns(rs))),
        ]);
        let metrics = Arc::clone(&self.metrics);
        let join_spec = Arc::clone(&spec);
        let parallelism = self.settings.parallelism;
        let node = self.add_node(
            "window join",
            format!("window join {} on {key_text}", j.join_type),
            &left,
            Edge::Hash(left_keys),
            parallelism,
            move |_, _| {
                Ok(Box::new(WindowJoin::new(
                    Arc::clone(&join_spec),
                    Arc::clone(&metrics),
                )))
            },
        );
        self.graph.nodes[node].second_input = Some((right.node, Edge::Hash(right_keys)));
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism,
            schema: Arc::clone(&j.schema),
            // The left side's window_time stays a time attribute: a window's rows are emitted
            // before the watermark that closed it goes on, and window_time is the window's
            // last instant. (A row's own time may be far behind that watermark.)
            rowtime: left
                .rowtime
                .filter(|r| ls.field(*r).name() == "window_time"),
            window: None,
            session: None,
            table: left.table,
        })
    }
}

impl Planner<'_> {
    /// `a JOIN b ON a.k = b.k AND a.ts BETWEEN b.ts - x AND b.ts + y`: an interval join on
    /// the two sides' time attributes.
    fn lower_interval_join(
        &mut self,
        j: &Join,
        kind: JoinKind,
        pairs: Vec<(Col, Col)>,
        (lt, rt, lower, upper): (Col, Col, i64, i64),
    ) -> Result<Stream> {
        let refuse = |why: String| {
            Err(Error::plan(format!(
                "{why}: an interval join is `a JOIN b ON a.k = b.k AND a.ts BETWEEN b.ts - \
                 INTERVAL ... AND b.ts + INTERVAL ...` on the two tables' time attributes"
            )))
        };
        if lower == i64::MIN || upper == i64::MAX || lower > upper {
            return refuse("the time condition must bound the difference on both sides".into());
        }
        if pairs.is_empty() {
            return refuse("an interval join needs at least one pair of equal keys".into());
        }
        let (ls, rs) = (j.left.schema(), j.right.schema());
        let (left_keys, right_keys) = match key_indexes((ls, rs), &pairs)? {
            Ok(keys) => keys,
            Err(why) => return refuse(why),
        };
        let left = self.lower(&j.left)?;
        let right = self.lower(&j.right)?;
        let (left_time, right_time) = (ls.index_of_column(&lt)?, rs.index_of_column(&rt)?);
        // A window's end also times its rows: each comes at or before the watermark that
        // passes it, never behind it (as Flink's `window_end AS ts` joins in Nexmark q7).
        let is_time = |stream: &Stream, plan: &LogicalPlan, col: &Col, index: usize| {
            stream.rowtime == Some(index)
                || (origin_name(plan, col) == "window_end"
                    && stream.window.is_some_and(|w| w.slices_are_windows()))
        };
        if !is_time(&left, &j.left, &lt, left_time) || !is_time(&right, &j.right, &rt, right_time) {
            return refuse(format!(
                "{lt} and {rt} must be the time attributes (WATERMARK FOR ...) of their tables"
            ));
        }
        let spec = Arc::new(IntervalJoinSpec {
            kind,
            left_keys: left_keys.clone(),
            right_keys: right_keys.clone(),
            left_time,
            right_time,
            lower,
            upper,
            left_schema: Arc::new(ls.as_arrow().clone()),
            right_schema: Arc::new(rs.as_arrow().clone()),
            output_schema: Arc::new(j.schema.as_arrow().clone()),
            table: format!("{} join {}", left.table, right.table),
        });
        let key_text = pairs
            .iter()
            .map(|(l, r)| format!("{} = {}", l.name, r.name))
            .collect::<Vec<_>>()
            .join(", ");
        let range_text = format!("{} - {} in [{lower} ms, {upper} ms]", lt.name, rt.name);
        let columns = |s: &DFSchemaRef| {
            s.fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let holds = BTreeMap::from([
            (
                "join".to_string(),
                format!("{:?} on ({key_text}), {range_text}", j.join_type),
            ),
            ("left columns".to_string(), format!("({})", columns(ls))),
            ("right columns".to_string(), format!("({})", columns(rs))),
        ]);
        let metrics = Arc::clone(&self.metrics);
        let join_spec = Arc::clone(&spec);
        let parallelism = self.settings.parallelism;
        let node = self.add_node(
            "interval join",
            format!("interval join {} on {key_text}, {range_text}", j.join_type),
            &left,
            Edge::Hash(left_keys),
            parallelism,
            move |_, _| {
                Ok(Box::new(IntervalJoin::new(
                    Arc::clone(&join_spec),
                    Arc::clone(&metrics),
                )?))
            },
        );
        self.graph.nodes[node].second_input = Some((right.node, Edge::Hash(right_keys)));
        self.graph.nodes[node].state = holds;
        Ok(Stream {
            node,
            parallelism,
            schema: Arc::clone(&j.schema),
            // The left side's time stays a time attribute: the join holds its watermark back
            // by the interval, so its rows are not late downstream.
            rowtime: Some(left_time),
            window: None,
            session: None,
            table: left.table,
        })
    }
}
