//! Lowering a window join: two window tables (or window aggregates) joined on
//! `window_start`, `window_end` and keys, INNER / LEFT / RIGHT / FULL, onto the engine's
//! two-input [`WindowJoin`] operator. Other joins are refused with a sentence.

use datafusion::logical_expr::{Join, JoinType, Operator as Op};
use sluice_engine::operators::{JoinKind, WindowJoin, WindowJoinSpec};

use super::*;

/// The equality conditions of a join as (left column, right column) pairs, or None if the
/// condition is anything else.
fn equalities(j: &Join) -> Option<Vec<(datafusion::common::Column, datafusion::common::Column)>> {
    let mut pairs = Vec::new();
    for (l, r) in &j.on {
        match (l, r) {
            (Expr::Column(a), Expr::Column(b)) => pairs.push((a.clone(), b.clone())),
            _ => return None,
        }
    }
    let mut conjuncts = Vec::new();
    if let Some(filter) = &j.filter {
        split_and(filter, &mut conjuncts);
    }
    let (left, right) = (j.left.schema(), j.right.schema());
    for c in conjuncts {
        let Expr::BinaryExpr(b) = c else {
            return None;
        };
        let (Expr::Column(a), Op::Eq, Expr::Column(z)) = (b.left.as_ref(), b.op, b.right.as_ref())
        else {
            return None;
        };
        if left.has_column(a) && right.has_column(z) {
            pairs.push((a.clone(), z.clone()));
        } else if left.has_column(z) && right.has_column(a) {
            pairs.push((z.clone(), a.clone()));
        } else {
            return None;
        }
    }
    Some(pairs)
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(b) if b.op == Op::And => {
            split_and(&b.left, out);
            split_and(&b.right, out);
        }
        other => out.push(other),
    }
}

impl Planner<'_> {
    pub(super) fn lower_join(&mut self, j: &Join) -> Result<Stream> {
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
        let Some(pairs) = equalities(j) else {
            return refuse("the join condition must be equalities of columns, joined with AND");
        };
        let (ls, rs) = (j.left.schema(), j.right.schema());
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        for (l, r) in &pairs {
            let (li, ri) = (ls.index_of_column(l)?, rs.index_of_column(r)?);
            let (lt, rt) = (ls.field(li).data_type(), rs.field(ri).data_type());
            if lt != rt {
                return refuse(&format!(
                    "{l} and {r} have different types ({} and {}): cast one of them",
                    flink_name(lt),
                    flink_name(rt)
                ));
            }
            left_keys.push(li);
            right_keys.push(ri);
        }
        let window_pair = |name: &str| {
            pairs
                .iter()
                .zip(left_keys.iter().zip(&right_keys))
                .find(|((l, r), _)| l.name == name && r.name == name)
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
            rowtime: None,
            window: None,
            session: None,
            table: left.table,
        })
    }
}
