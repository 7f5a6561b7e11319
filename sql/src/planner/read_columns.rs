//! The columns of each source table that a job reads: what its INSERTs select, filter, group
//! and join on, through views and window tables, with the physical columns behind the
//! computed ones and the watermark's. A source may leave the others NULL instead of
//! decoding them (JSON skips them: most of the cost of a field is turning it into a column).
//!
//! DataFusion's projection pushdown (its `optimize_projections` rule) finds the columns
//! each table scan needs; the plans themselves are lowered as they are.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{OptimizerContext, OptimizerRule};
use datafusion::physical_expr::utils::collect_columns;

use super::*;

/// Column names read, by table; a table mapped to None is read whole.
type Reads = BTreeMap<String, Option<BTreeSet<String>>>;

impl Planner<'_> {
    /// The source-schema indices each table's source must produce, from the plans of all
    /// INSERTs. A table missing from the answer is read whole.
    pub(super) fn read_columns(&self, plans: &[&LogicalPlan]) -> HashMap<String, Vec<usize>> {
        let mut reads = Reads::new();
        for plan in plans {
            self.plan_reads(plan, &mut reads, 0);
        }
        reads
            .into_iter()
            .filter_map(|(table, names)| {
                Some((table.clone(), self.source_indices(&table, &names?)?))
            })
            .collect()
    }

    /// Adds what `plan` reads to `reads`; anything it cannot follow is read whole.
    fn plan_reads(&self, plan: &LogicalPlan, reads: &mut Reads, depth: usize) {
        let optimized = OptimizeProjections::new()
            .rewrite(plan.clone(), &OptimizerContext::new())
            .map(|t| t.data)
            .ok();
        let _ = optimized.as_ref().unwrap_or(plan).apply(|node| {
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let name = scan.table_name.table().to_string();
            let schema = scan.source.schema();
            let names: Option<BTreeSet<String>> = match (&optimized, &scan.projection) {
                (Some(_), Some(p)) => {
                    Some(p.iter().map(|i| schema.field(*i).name().clone()).collect())
                }
                _ => None,
            };
            if self.tables.contains_key(&name) {
                read(reads, &name, names);
            } else if let Some(window) = self.windows.get(&name) {
                self.window_reads(window, names, reads, depth);
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }

    /// What a window table's input reads when the query reads `names` of the window table.
    fn window_reads(
        &self,
        window: &WindowEntry,
        names: Option<BTreeSet<String>>,
        reads: &mut Reads,
        depth: usize,
    ) {
        let input_schema = window.input.schema();
        let narrowed = names.and_then(|names| {
            let mut columns: Vec<Expr> = Vec::new();
            for (q, f) in input_schema.iter() {
                if names.contains(f.name()) || *f.name() == window.call.descriptor {
                    columns.push(Expr::Column(datafusion::common::Column::new(
                        q.cloned(),
                        f.name(),
                    )));
                }
            }
            LogicalPlanBuilder::from(window.input.clone())
                .project(columns)
                .and_then(|b| b.build())
                .ok()
        });
        // Window tables over window tables nest; a bound keeps a mistake from looping.
        if depth > 16 {
            return;
        }
        match narrowed {
            Some(plan) => self.plan_reads(&plan, reads, depth + 1),
            None => {
                let _ = window.input.apply(|node| {
                    if let LogicalPlan::TableScan(scan) = node {
                        read(reads, scan.table_name.table(), None);
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
        }
    }

    /// The source-schema indices behind table columns `names`: physical and metadata
    /// columns themselves, computed ones through their expressions, and the watermark's.
    fn source_indices(&self, table: &str, names: &BTreeSet<String>) -> Option<Vec<usize>> {
        let entry = self.tables.get(table)?;
        let mut wanted: BTreeSet<usize> = names
            .iter()
            .filter_map(|n| entry.schema.index_of(n).ok())
            .collect();
        if let Some(w) = &entry.prep.watermark {
            wanted.insert(w.rowtime);
            wanted.extend(collect_columns(&w.expr).iter().map(|c| c.index()));
        }
        let mut indices = BTreeSet::new();
        for column in wanted {
            let expr = entry.prep.columns.get(column)?;
            indices.extend(collect_columns(expr).iter().map(|c| c.index()));
        }
        // Metadata columns come from the connector, which supplies them anyway.
        let physical =
            entry.source_schema.fields().len() - super::tables::metadata_columns(&entry.def).len();
        indices.extend(physical..entry.source_schema.fields().len());
        Some(indices.into_iter().collect())
    }
}

fn read(reads: &mut Reads, table: &str, names: Option<BTreeSet<String>>) {
    let entry = reads
        .entry(table.to_string())
        .or_insert_with(|| Some(BTreeSet::new()));
    match (entry.as_mut(), names) {
        (Some(all), Some(names)) => all.extend(names),
        _ => *entry = None,
    }
}
