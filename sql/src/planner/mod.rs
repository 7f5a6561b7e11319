//! From parsed statements to an engine graph.
//!
//! Tables and views are registered in a DataFusion session; each `INSERT INTO ... SELECT`
//! is planned by DataFusion into a logical plan (type coercion included), which is then
//! lowered node by node: table scans become sources (shared between statements), the scan
//! of a generated window table becomes the window assigner, projections and filters become
//! chained stateless operators, and a windowed `Aggregate` becomes a partial aggregate in
//! the source task, a hash exchange by key and a final aggregate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, DFSchemaRef, TableReference};
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::ViewTable;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::expressions::{cast, Column};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
// The one-call helper is deprecated in favour of a builder that needs the physical
// planner's internals; the helper does exactly what a single aggregate needs.
use datafusion::execution::context::ExecutionProps;
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Query, Statement as SqlStatement};
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan};
use sluice_connectors::option_values::parse_duration;
use sluice_engine::checkpoint::CheckpointSettings;
use sluice_engine::connector::{MetadataColumn, Options, SinkContext, TableSpec};
use sluice_engine::error::ErrorKind;
use sluice_engine::graph::{Edge, Graph, Node, NodeId, NodeKind};
use sluice_engine::metrics::JobMetrics;
use sluice_engine::operator::Operator;
use sluice_engine::operators::{
    AggregateOutput, Filter, FinalAggregate, PartialAggregate, Project, SessionAggregate,
    SessionSpec, SessionTag, Sink, WindowAggregateSpec, WindowAssign, TRAILING_COLUMNS,
};
use sluice_engine::source::{SourcePrep, WatermarkSpec};
use sluice_engine::window::WindowSpec;
use sluice_engine::{Error, Result};

mod errors;
mod join;
mod lookup;
mod lower;
mod over;
mod read_columns;
mod session;
mod tables;
mod top_n;

use errors::clean_message;

use crate::location::SourceFile;
use crate::settings::Settings;
use crate::statements::{parse_job, ColumnKind, QueryDef, Statement, TableDef};
use crate::types::{assignable, flink_name};
use crate::windows::{rewrite_legacy, WindowCall, WindowKind};

/// A planned job, ready to run.
pub struct JobPlan {
    pub graph: Graph,
    pub settings: Settings,
    /// Checkpointing, when `execution.checkpointing.interval` is set.
    pub checkpoints: Option<CheckpointSettings>,
    /// Things worth telling the user that are not errors (ignored settings).
    pub warnings: Vec<String>,
}

struct TableEntry {
    def: TableDef,
    /// Physical then metadata columns: what the source connector produces.
    source_schema: SchemaRef,
    /// All columns in declaration order.
    schema: SchemaRef,
    prep: Arc<SourcePrep>,
}

struct WindowEntry {
    call: WindowCall,
    /// `SELECT * FROM input`, analyzed.
    input: LogicalPlan,
    schema: SchemaRef,
}

/// The state of one lowered stream: where it comes from and what it carries.
#[derive(Clone)]
struct Stream {
    node: NodeId,
    parallelism: usize,
    schema: DFSchemaRef,
    /// Index of the event-time attribute, if the stream has one.
    rowtime: Option<usize>,
    /// Set between a window assigner and its aggregate.
    window: Option<WindowSpec>,
    /// Set between a SESSION window table and its aggregate: the batches carry the
    /// engine's trailing session columns after the schema's.
    session: Option<SessionWindow>,
    /// The source table, for drop counts.
    table: String,
}

/// A SESSION window table, as its aggregate needs it.
#[derive(Clone)]
struct SessionWindow {
    gap_ms: i64,
    time_zone: Option<chrono_tz::Tz>,
    /// `PARTITION BY` columns, which must be grouping keys.
    partition_by: Vec<(String, Location)>,
    /// Where the SESSION call is, for errors.
    location: Location,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// Plans a job file. `overrides` are `--set key=value` pairs; they win over `SET`.
pub fn plan_job(
    file: &SourceFile,
    overrides: &[(String, String)],
    metrics: Arc<JobMetrics>,
) -> Result<JobPlan> {
    plan_job_with_defaults(file, &[], overrides, metrics)
}

/// The settings of a job: `defaults`, then the file's SET statements, then `overrides`,
/// without planning it (the server reads a job's restart strategy this way when the job
/// cannot be planned).
pub fn job_settings(
    file: &SourceFile,
    defaults: &[(String, String)],
    overrides: &[(String, String)],
) -> Result<Settings> {
    settings_of(file, &parse_job(file)?, defaults, overrides)
}

/// [`job_settings`] of the statements already parsed from `file`.
fn settings_of(
    file: &SourceFile,
    statements: &[Statement],
    defaults: &[(String, String)],
    overrides: &[(String, String)],
) -> Result<Settings> {
    let mut values: BTreeMap<String, String> = defaults.iter().cloned().collect();
    let mut set_locations = HashMap::new();
    for s in statements {
        if let Statement::Set {
            key,
            value,
            location,
        } = s
        {
            values.insert(key.clone(), value.clone());
            set_locations.insert(key.clone(), *location);
        }
    }
    for (k, v) in overrides {
        values.insert(k.clone(), v.clone());
    }
    Settings::from_map(&values).map_err(|(key, reason)| match set_locations.get(&key) {
        Some(l) if !overrides.iter().any(|(k, _)| *k == key) => file
            .error_at(*l, format!("SET '{key}': {reason}"))
            .into_kind(ErrorKind::Config),
        _ => Error::config(format!("--set {key}: {reason}")),
    })
}

/// [`plan_job`] with `defaults`: settings that apply unless the file or `overrides` set
/// them (the server's checkpoint folder for its jobs, for one).
pub fn plan_job_with_defaults(
    file: &SourceFile,
    defaults: &[(String, String)],
    overrides: &[(String, String)],
    metrics: Arc<JobMetrics>,
) -> Result<JobPlan> {
    let statements = parse_job(file)?;
    let settings = settings_of(file, &statements, defaults, overrides)?;
    let checkpoints = settings.checkpoints().map_err(Error::config)?;
    let warnings = settings
        .ignored
        .iter()
        .map(|k| format!("setting '{k}' is not used by Sluice and has no effect"))
        .collect();

    let config = SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        // Spans on the plan's expressions, so DataFusion's errors say where they are.
        .set_bool("datafusion.sql_parser.collect_spans", true)
        .set_str("datafusion.execution.time_zone", settings.time_zone.name());
    let ctx = SessionContext::new_with_config(config);
    for f in crate::functions::all(settings.time_zone) {
        ctx.register_udf(f);
    }
    let mut planner = Planner {
        file,
        ctx,
        settings: settings.clone(),
        metrics,
        tables: HashMap::new(),
        windows: HashMap::new(),
        sources: HashMap::new(),
        graph: Graph::new(),
        props: ExecutionProps::new(),
        window_ids: 1000,
        inserts: 0,
        scope: String::new(),
        kinds: HashMap::new(),
        inserts_into: HashMap::new(),
        top_n: None,
        lookups: HashMap::new(),
        lowered: HashMap::new(),
        reads: HashMap::new(),
    };
    let mut inserts = Vec::new();
    for statement in statements {
        match statement {
            Statement::Set { .. } => {}
            Statement::CreateTable(def) => planner.create_table(*def)?,
            Statement::CreateView {
                name,
                location,
                query,
            } => planner.create_view(name, location, query)?,
            Statement::Insert {
                table,
                table_location,
                query,
            } => inserts.push(planner.plan_insert(table, table_location, query)?),
        }
    }
    // Every INSERT is planned before any is lowered: the sources they share learn which of
    // their columns the whole job reads.
    let plans: Vec<&LogicalPlan> = inserts.iter().map(|i| &i.plan).collect();
    planner.reads = planner.read_columns(&plans);
    for insert in inserts {
        planner.lower_insert(insert)?;
    }
    if planner.inserts == 0 {
        return Err(Error::plan(format!(
            "{}: the job has no INSERT INTO statement, so nothing would run",
            file.path
        )));
    }
    Ok(JobPlan {
        graph: planner.graph,
        settings,
        checkpoints,
        warnings,
    })
}

struct Planner<'a> {
    file: &'a SourceFile,
    ctx: SessionContext,
    settings: Settings,
    metrics: Arc<JobMetrics>,
    tables: HashMap<String, TableEntry>,
    windows: HashMap<String, WindowEntry>,
    sources: HashMap<String, Stream>,
    graph: Graph,
    props: ExecutionProps,
    /// Ids for legacy windows (TVF windows are numbered while parsing).
    window_ids: usize,
    inserts: usize,
    /// The INSERT being lowered (`INSERT INTO t`, `INSERT INTO t #2` for a second one into
    /// the same table), and how many nodes of each kind it has so far: a node's stable id
    /// is `<scope>/<kind> <n>`.
    scope: String,
    kinds: HashMap<&'static str, usize>,
    inserts_into: HashMap<String, usize>,
    /// A row-number filter being lowered, for the window node below it (a Top-N).
    top_n: Option<top_n::TopNRequest>,
    /// The `FOR SYSTEM_TIME AS OF` tables, by generated name.
    lookups: HashMap<String, crate::lookups::LookupCall>,
    /// The streams of the plans lowered so far, for INSERTs that share a part of a plan.
    lowered: HashMap<LogicalPlan, Stream>,
    /// The source-schema columns each table's source must produce (absent: all).
    reads: HashMap<String, Vec<usize>>,
}

/// An INSERT planned by DataFusion, waiting to be lowered.
struct PlannedInsert {
    table: String,
    table_location: Location,
    query: QueryDef,
    plan: LogicalPlan,
}

/// The name DataFusion gives an unnamed SELECT item: a cast is named after what it casts.
fn unnamed_item_name(expr: &datafusion::sql::sqlparser::ast::Expr) -> String {
    use datafusion::sql::sqlparser::ast::Expr;
    match expr {
        Expr::Cast { expr, .. } | Expr::Nested(expr) => unnamed_item_name(expr),
        other => other.to_string(),
    }
}

/// Gives a repeated column of the top-level SELECT list a new name, as Flink does
/// (`SELECT a, a` yields `a` and `a0`; `SELECT a, CAST(a AS DOUBLE)` too, since DataFusion
/// names a cast after its argument); DataFusion would reject the duplicate name.
fn rename_repeated_columns(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
    let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for item in select.projection.iter_mut() {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(e) => (e.clone(), unnamed_item_name(e)),
            SelectItem::ExprWithAlias { alias, .. } => {
                seen.insert(alias.value.clone());
                continue;
            }
            _ => continue,
        };
        if seen.insert(name.clone()) {
            continue;
        }
        let base = name.rsplit('.').next().unwrap_or(&name).to_string();
        let alias = (0..)
            .map(|i| format!("{base}{i}"))
            .find(|a| !seen.contains(a))
            .unwrap_or(base);
        seen.insert(alias.clone());
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::new(alias),
        };
    }
}

impl Planner<'_> {
    fn register(&self, name: &str, provider: Arc<dyn TableProvider>) -> Result<()> {
        self.ctx
            .register_table(TableReference::bare(name), provider)?;
        Ok(())
    }

    fn known_relation(&self, name: &str) -> bool {
        self.ctx
            .table_exist(TableReference::bare(name))
            .unwrap_or(false)
    }

    /// Registers the generated tables of a statement's windows, then plans its query.
    fn plan_query(&mut self, query: &mut QueryDef) -> Result<LogicalPlan> {
        let legacy = rewrite_legacy(self.file, &mut query.query, &mut self.window_ids)?;
        query.windows.extend(legacy);
        rename_repeated_columns(&mut query.query);
        crate::rewrite_functions::rewrite_flink_functions(&mut query.query);
        for call in query.windows.clone() {
            self.register_window(call)?;
        }
        self.register_lookups(&query.lookups)?;
        let state = self.ctx.state();
        let statement = DFStatement::Statement(Box::new(SqlStatement::Query(query.query.clone())));
        let plan = block_on(state.statement_to_plan(statement))
            .map_err(|e| self.query_error(query, None, &e.into()))?;
        // Type coercion; when it fails, a call whose argument types fit none of its
        // function's signatures is the usual cause, and says best what is wrong.
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .map_err(|e| self.query_error(query, Some(&plan), &e.into()))
    }

    fn create_view(&mut self, name: String, location: Location, mut query: QueryDef) -> Result<()> {
        if self.known_relation(&name) {
            return Err(self.file.error_at(
                location,
                format!("table or view '{name}' is already defined"),
            ));
        }
        let plan = name_struct_fields(self.plan_query(&mut query)?);
        self.register(&name, Arc::new(ViewTable::new(plan, None)))?;
        Ok(())
    }

    fn plan_insert(
        &mut self,
        table: String,
        table_location: Location,
        mut query: QueryDef,
    ) -> Result<PlannedInsert> {
        if !self.tables.contains_key(&table) {
            return Err(self.file.error_at(
                table_location,
                format!(
                    "unknown table '{table}': INSERT INTO needs a table created with CREATE TABLE"
                ),
            ));
        }
        let plan = self.plan_query(&mut query)?;
        Ok(PlannedInsert {
            table,
            table_location,
            query,
            plan,
        })
    }

    fn lower_insert(&mut self, insert: PlannedInsert) -> Result<()> {
        let PlannedInsert {
            table,
            table_location,
            query,
            plan,
        } = insert;
        let nth = self.inserts_into.entry(table.clone()).or_default();
        *nth += 1;
        self.scope = match *nth {
            1 => format!("INSERT INTO {table}"),
            n => format!("INSERT INTO {table} #{n}"),
        };
        self.kinds.clear();
        let stream = self.lower(&plan).map_err(|e| {
            if e.is_located() {
                e
            } else {
                self.query_error(&query, Some(&plan), &e)
            }
        })?;
        self.add_sink(&table, table_location, stream)?;
        self.inserts += 1;
        Ok(())
    }
}

/// Names each unnamed `row_column.field` of a view's SELECT list after the field, as Flink
/// does (`SELECT person.id FROM t` has a column `id`), where DataFusion would name it
/// `t.person[id]`. Left as it is when that would give two columns one name.
fn name_struct_fields(plan: LogicalPlan) -> LogicalPlan {
    let LogicalPlan::Projection(projection) = &plan else {
        return plan;
    };
    let field_name = |e: &Expr| match e {
        Expr::ScalarFunction(f) if f.name() == "get_field" && f.args.len() == 2 => {
            match &f.args[1] {
                Expr::Literal(datafusion::scalar::ScalarValue::Utf8(Some(name)), _) => {
                    Some(name.clone())
                }
                _ => None,
            }
        }
        _ => None,
    };
    let fields: Vec<Option<String>> = projection.expr.iter().map(field_name).collect();
    if fields.iter().all(Option::is_none) {
        return plan;
    }
    let names: Vec<String> = projection
        .expr
        .iter()
        .zip(&fields)
        .map(|(e, field)| field.clone().unwrap_or_else(|| e.schema_name().to_string()))
        .collect();
    if names.iter().collect::<std::collections::HashSet<_>>().len() != names.len() {
        return plan;
    }
    let exprs = projection
        .expr
        .iter()
        .zip(fields)
        .map(|(e, field)| match field {
            Some(name) => e.clone().alias(name),
            None => e.clone(),
        })
        .collect();
    match datafusion::logical_expr::Projection::try_new(exprs, projection.input.clone()) {
        Ok(p) => LogicalPlan::Projection(p),
        Err(_) => plan,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::tables::fixed_delay;

    fn delay(sql: &str) -> Option<i64> {
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap();
        fixed_delay(&expr, "ts")
    }

    #[test]
    fn explain_texts() {
        assert_eq!(
            super::lower::without_window_tables("sum(__window_12.price) > 2"),
            "sum(price) > 2"
        );
        assert_eq!(super::lower::duration_text(600_000), "10 min");
        assert_eq!(super::lower::duration_text(-60_000), "-1 min");
        assert_eq!(super::lower::duration_text(1_500), "1500 ms");
        assert_eq!(super::lower::duration_text(0), "0 ms");
    }

    #[test]
    fn fixed_watermark_delays_are_recognised() {
        assert_eq!(delay("ts - INTERVAL '5' SECOND"), Some(5_000));
        assert_eq!(delay("ts - INTERVAL '1' MINUTE"), Some(60_000));
        assert_eq!(delay("(ts - INTERVAL '0.5' SECOND)"), Some(500));
        assert_eq!(delay("ts"), Some(0));
        // Anything else is evaluated as written.
        assert_eq!(delay("other - INTERVAL '5' SECOND"), None);
        assert_eq!(delay("ts - INTERVAL '1' MONTH"), None);
        assert_eq!(delay("ts + INTERVAL '5' SECOND"), None);
    }
}
