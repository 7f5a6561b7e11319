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
use datafusion::logical_expr::{Expr, LogicalPlan};
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
use sluice_engine::graph::{Edge, Graph, Node, NodeId, NodeKind};
use sluice_engine::metrics::JobMetrics;
use sluice_engine::operator::Operator;
use sluice_engine::operators::{
    AggregateOutput, Filter, FinalAggregate, PartialAggregate, Project, Sink, WindowAggregateSpec,
    WindowAssign,
};
use sluice_engine::source::{SourcePrep, WatermarkSpec};
use sluice_engine::window::TumbleWindow;
use sluice_engine::{Error, Result};

use crate::location::SourceFile;
use crate::settings::Settings;
use crate::statements::{parse_job, ColumnKind, QueryDef, Statement, TableDef};
use crate::types::{assignable, flink_name};
use crate::windows::{rewrite_legacy, WindowCall};

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
    window: Option<TumbleWindow>,
    /// The source table, for drop counts.
    table: String,
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
    let statements = parse_job(file)?;
    let mut values = BTreeMap::new();
    let mut set_locations = HashMap::new();
    for s in &statements {
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
    let settings =
        Settings::from_map(&values).map_err(|(key, reason)| match set_locations.get(&key) {
            Some(l) if !overrides.iter().any(|(k, _)| *k == key) => {
                file.error_at(*l, format!("SET '{key}': {reason}"))
            }
            _ => Error::plan(format!("--set {key}: {reason}")),
        })?;
    let checkpoints = settings.checkpoints().map_err(Error::plan)?;
    let warnings = settings
        .ignored
        .iter()
        .map(|k| format!("setting '{k}' is not used by Sluice and has no effect"))
        .collect();

    let config = SessionConfig::new()
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
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
    };
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
            } => planner.insert(table, table_location, query)?,
        }
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
}

/// The delay of a watermark written `rowtime - INTERVAL 'n' UNIT` (or just `rowtime`), in
/// milliseconds; `None` for any other expression.
fn fixed_delay(expr: &datafusion::sql::sqlparser::ast::Expr, rowtime: &str) -> Option<i64> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as Ast};
    let is_rowtime = |e: &Ast| matches!(e, Ast::Identifier(i) if i.value == rowtime);
    match expr {
        e if is_rowtime(e) => Some(0),
        Ast::Nested(e) => fixed_delay(e, rowtime),
        Ast::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_rowtime(left) => crate::windows::interval_ms(right).ok(),
        _ => None,
    }
}

/// Gives a repeated column of the top-level SELECT list a new name, as Flink does
/// (`SELECT a, a` yields `a` and `a0`); DataFusion would reject the duplicate name.
fn rename_repeated_columns(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
    let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for item in select.projection.iter_mut() {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(e) => (e.clone(), e.to_string()),
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

/// Drops the generated window tables' qualifiers (`__window_3.price` → `price`) from an
/// expression's text, for `explain`.
fn without_window_tables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("__window_") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "__window_".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        rest = after[digits..]
            .strip_prefix('.')
            .unwrap_or(&after[digits..]);
    }
    out.push_str(rest);
    out
}

/// Milliseconds as the largest whole unit: `10 min`, `5 s`, `250 ms`.
fn duration_text(ms: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| ms != 0 && ms % unit == 0)
        .map_or_else(
            || format!("{ms} ms"),
            |(unit, name)| format!("{} {name}", ms / unit),
        )
}

/// Points a connector's complaint about a table at the option it is about: `'connector'`
/// for an unknown connector, the option the message names, or else the table.
fn option_error(file: &SourceFile, def: &TableDef, e: Error) -> Error {
    let key = if e.message().contains("unknown connector") {
        Some("connector".to_string())
    } else {
        mentioned_names(e.message())
            .into_iter()
            .find(|n| def.options.iter().any(|(k, _, _)| k == n))
    };
    file.error_at(
        key.map_or(def.location, |k| def.option_location(&k)),
        e.message(),
    )
}

/// Takes the `'connector'` option of a table, which every table needs.
fn take_connector(file: &SourceFile, def: &TableDef, options: &mut Options) -> Result<String> {
    options.take(&["connector"]).ok_or_else(|| {
        file.error_at(
            def.location,
            format!("table '{}' has no 'connector' option", def.name),
        )
    })
}

/// The location of the first token in `tokens` that is the word `name`.
fn find_word(tokens: &[TokenWithSpan], name: &str) -> Option<Location> {
    let exact = tokens
        .iter()
        .find(|t| matches!(&t.token, Token::Word(w) if w.value == name));
    let any_case = || {
        tokens
            .iter()
            .find(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(name)))
    };
    exact.or_else(any_case).map(|t| t.span.start)
}

/// Words quoted in a DataFusion message (`'x'`, `"x"`) or named after "named".
fn mentioned_names(message: &str) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(rest) = message.split("No field named ").nth(1) {
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ',')
            .collect();
        let name = name.trim_end_matches('.').trim_matches('"');
        names.push(
            name.rsplit('.')
                .next()
                .unwrap_or(name)
                .trim_matches('"')
                .to_string(),
        );
    }
    for quote in ['\'', '"'] {
        let parts: Vec<&str> = message.split(quote).collect();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 1 && !part.is_empty() && part.len() < 64 {
                // Both the whole quoted text (an option key like 'json.foo') and its last
                // segment (a qualified column like 't.col').
                names.push(part.to_string());
                names.push(part.rsplit('.').next().unwrap_or(part).to_string());
            }
        }
    }
    names
}

/// The text of the first call of `function` in `tokens`, from its name to the closing
/// parenthesis.
fn call_text(tokens: &[TokenWithSpan], function: &str) -> Option<String> {
    let start = tokens.iter().position(
        |t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(function)),
    )?;
    let open = start
        + tokens[start..]
            .iter()
            .position(|t| t.token == Token::LParen)?;
    let close = crate::windows::matching_paren(tokens, open)?;
    Some(
        tokens[start..=close]
            .iter()
            .map(|t| t.token.to_string())
            .collect(),
    )
}

/// DataFusion lists every signature a function does not match; say it the short way.
fn signature_mismatch(message: &str) -> Option<String> {
    let function = message.split("Function '").nth(1)?.split('\'').next()?;
    if !message.contains("failed to match any signature") && !message.contains("coercion") {
        return None;
    }
    let received = message.split("but received ").nth(1)?;
    let received = received.split(" (DataType: ").nth(1)?.split(')').next()?;
    let received = received
        .parse::<DataType>()
        .map_or(received.to_string(), |t| flink_name(&t));
    Some(format!(
        "{} does not accept an argument of type {received}",
        function.to_uppercase()
    ))
}

fn clean_message(message: &str, windows: &HashMap<String, WindowEntry>) -> String {
    if let Some(short) = signature_mismatch(message) {
        return short;
    }
    let mut m = message.to_string();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "Optimizer rule 'type_coercion' failed\ncaused by\n",
    ] {
        m = m.replace(prefix, "");
    }
    for (name, w) in windows {
        m = m.replace(name, &format!("TUMBLE({})", w.call.input));
    }
    m = m.replace("datafusion.public.", "");
    // DataFusion lists every valid field; the first sentence says what is wrong.
    if let Some(i) = m.find(". Valid fields are") {
        m.truncate(i);
    }
    m.lines().next().unwrap_or_default().to_string()
}

impl Planner<'_> {
    fn error_in(&self, tokens: &[TokenWithSpan], fallback: Location, error: &Error) -> Error {
        let mut message = clean_message(error.message(), &self.windows);
        if signature_mismatch(error.message()).is_some() {
            // Name the call itself, arguments included: `SUM(item): SUM does not accept ...`.
            let function = message.split(' ').next().unwrap_or_default().to_string();
            if let Some(call) = call_text(tokens, &function) {
                message = format!("{call}: {message}");
            }
        }
        let location = mentioned_names(error.message())
            .iter()
            .filter(|n| !n.starts_with("__window_"))
            .find_map(|n| find_word(tokens, n))
            .unwrap_or(fallback);
        self.file.error_at(location, message)
    }

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

    fn create_table(&mut self, def: TableDef) -> Result<()> {
        let file = self.file;
        if self.known_relation(&def.name) {
            return Err(file.error_at(
                def.location,
                format!("table or view '{}' is already defined", def.name),
            ));
        }
        let mut physical = Vec::new();
        let mut metadata = Vec::new();
        for c in &def.columns {
            match &c.kind {
                ColumnKind::Physical(t) => physical.push(Field::new(&c.name, t.clone(), true)),
                ColumnKind::Metadata { data_type, .. } => {
                    metadata.push(Field::new(&c.name, data_type.clone(), true))
                }
                ColumnKind::Computed(_) => {}
            }
        }
        let source_schema = Arc::new(Schema::new([physical, metadata].concat()));
        let source_df = DFSchema::try_from(source_schema.as_ref().clone())?;
        let mut fields = Vec::new();
        let mut columns: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        for c in &def.columns {
            let expr: Arc<dyn PhysicalExpr> = match &c.kind {
                ColumnKind::Computed(e) => {
                    let planned = self
                        .ctx
                        .parse_sql_expr(&e.to_string(), &source_df)
                        .and_then(|logical| self.ctx.create_physical_expr(logical, &source_df))
                        .map_err(|err| {
                            let err = Error::from(err);
                            file.error_at(
                                c.location,
                                format!(
                                    "computed column '{}' of table '{}': {}",
                                    c.name,
                                    def.name,
                                    clean_message(err.message(), &self.windows)
                                ),
                            )
                        })?;
                    planned
                }
                _ => {
                    let index = source_schema.index_of(&c.name)?;
                    Arc::new(Column::new(&c.name, index))
                }
            };
            let data_type = expr.data_type(&source_schema)?;
            fields.push(Field::new(&c.name, data_type, true));
            columns.push(expr);
        }
        let schema = Arc::new(Schema::new(fields));
        let watermark = match &def.watermark {
            None => None,
            Some(w) => {
                let rowtime = schema.index_of(&w.column)?;
                match schema.field(rowtime).data_type() {
                    DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Second, _) => {}
                    DataType::Timestamp(..) => {
                        return Err(file.error_at(w.column_location, format!("rowtime column '{}' has a precision above 3; declare it TIMESTAMP(3) or TIMESTAMP_LTZ(3)", w.column)));
                    }
                    other => {
                        return Err(file.error_at(w.column_location, format!("WATERMARK FOR '{}': the column is {}, a rowtime must be TIMESTAMP(3) or TIMESTAMP_LTZ(3)", w.column, flink_name(other))));
                    }
                }
                let df = DFSchema::try_from(schema.as_ref().clone())?;
                let expr = self
                    .ctx
                    .parse_sql_expr(&w.expr.to_string(), &df)
                    .and_then(|logical| self.ctx.create_physical_expr(logical, &df))
                    .map_err(|err| {
                        file.error_at(
                            w.column_location,
                            format!(
                                "watermark of table '{}': {}",
                                def.name,
                                clean_message(Error::from(err).message(), &self.windows)
                            ),
                        )
                    })?;
                match expr.data_type(&schema)? {
                    DataType::Timestamp(..) => {}
                    other => {
                        return Err(file.error_at(w.column_location, format!("the watermark expression of table '{}' must give a timestamp, not {}", def.name, flink_name(&other))));
                    }
                }
                let millis = DataType::Timestamp(TimeUnit::Millisecond, None);
                let expr = cast(expr, &schema, millis)?;
                let millis = matches!(
                    schema.field(rowtime).data_type(),
                    DataType::Timestamp(TimeUnit::Millisecond, _)
                );
                let fixed_delay_ms = fixed_delay(&w.expr, &w.column).filter(|_| millis);
                Some(WatermarkSpec {
                    rowtime,
                    expr,
                    fixed_delay_ms,
                })
            }
        };
        let prep = Arc::new(SourcePrep {
            columns,
            schema: Arc::clone(&schema),
            watermark,
        });
        self.register(&def.name, Arc::new(EmptyTable::new(Arc::clone(&schema))))?;
        self.tables.insert(
            def.name.clone(),
            TableEntry {
                def,
                source_schema,
                schema,
                prep,
            },
        );
        Ok(())
    }

    /// Registers the generated tables of a statement's windows, then plans its query.
    fn plan_query(&mut self, query: &mut QueryDef) -> Result<LogicalPlan> {
        let legacy = rewrite_legacy(self.file, &mut query.query, &mut self.window_ids)?;
        query.windows.extend(legacy);
        rename_repeated_columns(&mut query.query);
        for call in query.windows.clone() {
            self.register_window(call)?;
        }
        let plan = self
            .plan_sql(&query.query)
            .map_err(|e| self.error_in(&query.tokens, query.location, &e))?;
        Ok(plan)
    }

    fn plan_sql(&self, query: &Query) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let statement =
            DFStatement::Statement(Box::new(SqlStatement::Query(Box::new(query.clone()))));
        let plan = block_on(state.statement_to_plan(statement))?;
        let plan = state
            .analyzer()
            .execute_and_check(plan, state.config_options(), |_, _| {})?;
        Ok(plan)
    }

    fn register_window(&mut self, call: WindowCall) -> Result<()> {
        let file = self.file;
        if !self.known_relation(&call.input) {
            return Err(file.error_at(
                call.input_location,
                format!("unknown table or view '{}'", call.input),
            ));
        }
        let input_query = format!("SELECT * FROM \"{}\"", call.input.replace('"', "\"\""));
        let input = block_on(self.ctx.sql(&input_query))?.into_unoptimized_plan();
        let state = self.ctx.state();
        let input = state
            .analyzer()
            .execute_and_check(input, state.config_options(), |_, _| {})?;
        let input_schema = input.schema();
        let Some(descriptor) = input_schema
            .fields()
            .iter()
            .position(|f| f.name() == &call.descriptor)
        else {
            return Err(file.error_at(
                call.descriptor_location,
                format!("table '{}' has no column '{}'", call.input, call.descriptor),
            ));
        };
        let time_zone = match input_schema.field(descriptor).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(file.error_at(
                    call.descriptor_location,
                    format!(
                        "DESCRIPTOR({}) must name a time attribute, but the column is {}",
                        call.descriptor,
                        flink_name(other)
                    ),
                ));
            }
        };
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let wall_clock = DataType::Timestamp(TimeUnit::Millisecond, None);
        fields.push(Field::new("window_start", wall_clock.clone(), false));
        fields.push(Field::new("window_end", wall_clock, false));
        fields.push(Field::new(
            "window_time",
            DataType::Timestamp(TimeUnit::Millisecond, time_zone),
            false,
        ));
        let schema = Arc::new(Schema::new(fields));
        self.register(
            &call.table_name,
            Arc::new(EmptyTable::new(Arc::clone(&schema))),
        )?;
        self.windows.insert(
            call.table_name.clone(),
            WindowEntry {
                call,
                input,
                schema,
            },
        );
        Ok(())
    }

    fn create_view(&mut self, name: String, location: Location, mut query: QueryDef) -> Result<()> {
        if self.known_relation(&name) {
            return Err(self.file.error_at(
                location,
                format!("table or view '{name}' is already defined"),
            ));
        }
        let plan = self.plan_query(&mut query)?;
        self.register(&name, Arc::new(ViewTable::new(plan, None)))?;
        Ok(())
    }

    fn insert(
        &mut self,
        table: String,
        table_location: Location,
        mut query: QueryDef,
    ) -> Result<()> {
        let file = self.file;
        if !self.tables.contains_key(&table) {
            return Err(file.error_at(
                table_location,
                format!(
                    "unknown table '{table}': INSERT INTO needs a table created with CREATE TABLE"
                ),
            ));
        }
        let plan = self.plan_query(&mut query)?;
        let stream = self.lower(&plan).map_err(|e| {
            if e.message().starts_with(&format!("{}:", file.path)) {
                e
            } else {
                self.error_in(&query.tokens, query.location, &e)
            }
        })?;
        self.add_sink(&table, table_location, stream)?;
        self.inserts += 1;
        Ok(())
    }

    fn add_node(
        &mut self,
        name: String,
        input: &Stream,
        edge: Edge,
        parallelism: usize,
        factory: impl Fn(usize, usize) -> Result<Box<dyn Operator>> + Send + Sync + 'static,
    ) -> NodeId {
        self.graph.add(Node {
            name,
            parallelism,
            kind: NodeKind::Operator {
                factory: Arc::new(factory),
            },
            input: Some((input.node, edge)),
        })
    }

    /// A chained projection node computing `exprs` into `schema`.
    fn add_project(
        &mut self,
        name: String,
        input: &Stream,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> NodeId {
        self.add_node(
            name,
            input,
            Edge::Forward,
            input.parallelism,
            move |_, _| Ok(Box::new(Project::new(exprs.clone(), Arc::clone(&schema)))),
        )
    }

    fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            expr,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    fn lower(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                let mut stream = if self.windows.contains_key(&name) {
                    self.lower_window(&name)?
                } else if self.tables.contains_key(&name) {
                    self.source(&name)?
                } else {
                    return Err(Error::internal(format!("scan of unknown table '{name}'")));
                };
                if let Some(projection) = &scan.projection {
                    let input_schema = stream.schema.as_arrow().clone();
                    let exprs: Vec<Arc<dyn PhysicalExpr>> = projection
                        .iter()
                        .map(|i| {
                            Arc::new(Column::new(input_schema.field(*i).name(), *i))
                                as Arc<dyn PhysicalExpr>
                        })
                        .collect();
                    stream.rowtime = stream
                        .rowtime
                        .and_then(|r| projection.iter().position(|i| *i == r));
                    let schema = Arc::new(scan.projected_schema.as_arrow().clone());
                    stream.node = self.add_project("project".into(), &stream, exprs, schema);
                }
                stream.schema = Arc::clone(&scan.projected_schema);
                Ok(stream)
            }
            LogicalPlan::SubqueryAlias(alias) => {
                let mut stream = self.lower(&alias.input)?;
                stream.schema = Arc::clone(&alias.schema);
                Ok(stream)
            }
            LogicalPlan::Projection(p) => {
                let mut stream = self.lower(&p.input)?;
                let input_schema = p.input.schema();
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.physical(e, input_schema))
                    .collect::<Result<Vec<_>>>()?;
                let rowtime_name = stream.rowtime.map(|r| input_schema.qualified_field(r));
                stream.rowtime = p.expr.iter().position(|e| match e.clone().unalias() {
                    Expr::Column(c) => rowtime_name.is_some_and(|(q, f)| {
                        c.name == *f.name() && (c.relation.is_none() || c.relation.as_ref() == q)
                    }),
                    _ => false,
                });
                let schema = Arc::new(p.schema.as_arrow().clone());
                let names: Vec<String> =
                    p.schema.fields().iter().map(|f| f.name().clone()).collect();
                let name = format!("project [{}]", names.join(", "));
                stream.node = self.add_project(name, &stream, exprs, schema);
                stream.schema = Arc::clone(&p.schema);
                Ok(stream)
            }
            LogicalPlan::Filter(f) => {
                let mut stream = self.lower(&f.input)?;
                let predicate = self.physical(&f.predicate, f.input.schema())?;
                let text = without_window_tables(&f.predicate.to_string());
                stream.node = self.add_node(
                    format!("filter {text}"),
                    &stream,
                    Edge::Forward,
                    stream.parallelism,
                    move |_, _| Ok(Box::new(Filter::new(Arc::clone(&predicate)))),
                );
                Ok(stream)
            }
            LogicalPlan::Aggregate(a) => self.lower_aggregate(a),
            other => Err(Error::plan(format!(
                "{} is not supported in a streaming job yet",
                match other {
                    LogicalPlan::Join(_) => "a JOIN",
                    LogicalPlan::Sort(_) => "ORDER BY",
                    LogicalPlan::Limit(_) => "LIMIT",
                    LogicalPlan::Union(_) => "UNION",
                    LogicalPlan::Window(_) => "an OVER window",
                    LogicalPlan::Distinct(_) => "SELECT DISTINCT",
                    _ => "this query shape",
                }
            ))),
        }
    }

    /// The source node of a table, created on first use and shared afterwards.
    fn source(&mut self, name: &str) -> Result<Stream> {
        if let Some(s) = self.sources.get(name) {
            return Ok(s.clone());
        }
        let file = self.file;
        let entry = &self.tables[name];
        let def = &entry.def;
        let mut options = Options::new(name, def.options_map());
        let connector_name = take_connector(file, def, &mut options)?;
        let option_error = |e: Error| option_error(file, def, e);
        let idle_timeout = match options
            .take_parsed("scan.watermark.idle-timeout", parse_duration)
            .map_err(option_error)?
        {
            Some(d) => (!d.is_zero()).then_some(d),
            None => self.settings.idle_timeout,
        };
        let metadata = def
            .columns
            .iter()
            .filter_map(|c| match &c.kind {
                ColumnKind::Metadata { key, .. } => Some(MetadataColumn {
                    name: c.name.clone(),
                    key: key.clone(),
                }),
                _ => None,
            })
            .collect();
        let spec = TableSpec {
            name: name.to_string(),
            schema: Arc::clone(&entry.source_schema),
            metadata,
            partition_by: def.partition_by.clone(),
        };
        let connector = sluice_connectors::create_source(&connector_name, spec, &mut options)
            .map_err(option_error)?;
        options.finish().map_err(option_error)?;
        let rowtime = entry.prep.watermark.as_ref().map(|w| w.rowtime);
        let node = self.graph.add(Node {
            name: format!("source {name}: {}", connector.describe()),
            parallelism: self.settings.parallelism,
            kind: NodeKind::Source {
                table: name.to_string(),
                connector,
                prep: Arc::clone(&entry.prep),
                idle_timeout,
            },
            input: None,
        });
        let schema = Arc::new(DFSchema::try_from_qualified_schema(
            TableReference::bare(name),
            &entry.schema,
        )?);
        let stream = Stream {
            node,
            parallelism: self.settings.parallelism,
            schema,
            rowtime,
            window: None,
            table: name.to_string(),
        };
        self.sources.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    fn lower_window(&mut self, name: &str) -> Result<Stream> {
        let file = self.file;
        let (call, input_plan, schema) = {
            let w = &self.windows[name];
            (w.call.clone(), w.input.clone(), Arc::clone(&w.schema))
        };
        let input = self.lower(&input_plan)?;
        let descriptor = input
            .schema
            .fields()
            .iter()
            .position(|f| f.name() == &call.descriptor);
        if descriptor.is_none() || input.rowtime != descriptor {
            return Err(file.error_at(
                call.descriptor_location,
                format!(
                    "column '{}' of '{}' is not a time attribute: TUMBLE needs a rowtime column, declared with WATERMARK FOR {} AS ... in its table",
                    call.descriptor, call.input, call.descriptor
                ),
            ));
        }
        let rowtime = descriptor.unwrap_or_default();
        let has_zone = matches!(
            schema.field(rowtime).data_type(),
            DataType::Timestamp(_, Some(_))
        );
        let window = TumbleWindow {
            size_ms: call.size_ms,
            offset_ms: call.offset_ms,
            time_zone: if has_zone {
                self.settings.window_zone()
            } else {
                None
            },
        };
        let metrics = Arc::clone(&self.metrics);
        let table = input.table.clone();
        let out_schema = Arc::clone(&schema);
        let node = self.add_node(
            format!(
                "window TUMBLE(size {}, offset {}) on {}",
                duration_text(call.size_ms),
                duration_text(call.offset_ms),
                call.descriptor
            ),
            &input,
            Edge::Forward,
            input.parallelism,
            move |_, _| {
                Ok(Box::new(WindowAssign::new(
                    window,
                    rowtime,
                    Arc::clone(&out_schema),
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
            rowtime: Some(schema.fields().len() - 1),
            window: Some(window),
            table: input.table,
        })
    }

    fn lower_aggregate(&mut self, a: &datafusion::logical_expr::Aggregate) -> Result<Stream> {
        let input = self.lower(&a.input)?;
        let input_schema = a.input.schema();
        let roles: Vec<Option<AggregateOutput>> = a
            .group_expr
            .iter()
            .map(|g| match g.clone().unalias() {
                Expr::Column(c) if input.window.is_some() => match c.name.as_str() {
                    "window_start" => Some(AggregateOutput::WindowStart),
                    "window_end" => Some(AggregateOutput::WindowEnd),
                    "window_time" => Some(AggregateOutput::WindowTime),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let Some(window) = input.window.filter(|_| {
            roles.iter().any(|r| {
                matches!(
                    r,
                    Some(AggregateOutput::WindowStart | AggregateOutput::WindowEnd)
                )
            })
        }) else {
            return Err(Error::plan(
                "an aggregate over a stream needs a window: use FROM TABLE(TUMBLE(...)) and GROUP BY window_start, window_end (results that update forever are not supported yet)",
            ));
        };
        let pick = |role: AggregateOutput| roles.iter().position(|r| *r == Some(role));
        let (window_index, minus) = match (
            pick(AggregateOutput::WindowStart),
            pick(AggregateOutput::WindowEnd),
        ) {
            (Some(i), _) => (i, 0),
            (None, Some(i)) => (i, window.size_ms),
            _ => return Err(Error::internal("window role vanished")),
        };
        let window_column = self.physical(&a.group_expr[window_index], input_schema)?;
        let mut keys = Vec::new();
        let mut key_fields = Vec::new();
        let mut output = Vec::new();
        for (i, (g, role)) in a.group_expr.iter().zip(&roles).enumerate() {
            match role {
                Some(r) => output.push(*r),
                None => {
                    output.push(AggregateOutput::Key(keys.len()));
                    keys.push(self.physical(g, input_schema)?);
                    let f = a.schema.field(i);
                    key_fields.push(Field::new(f.name(), f.data_type().clone(), true));
                }
            }
        }
        let arrow_input = input_schema.as_arrow();
        let mut aggregates = Vec::new();
        for e in &a.aggr_expr {
            #[allow(deprecated)]
            let (agg, filter, _) =
                create_aggregate_expr_and_maybe_filter(e, input_schema, arrow_input, &self.props)?;
            if filter.is_some() {
                return Err(Error::plan(format!(
                    "FILTER (WHERE ...) on an aggregate is not supported yet: {e}"
                )));
            }
            output.push(AggregateOutput::Aggregate(aggregates.len()));
            aggregates.push(agg);
        }
        let output_schema: SchemaRef = Arc::new(a.schema.as_arrow().clone());
        let key_names: Vec<String> = key_fields.iter().map(|f| f.name().clone()).collect();
        let agg_names: Vec<String> = a
            .aggr_expr
            .iter()
            .map(|e| without_window_tables(&e.schema_name().to_string()))
            .collect();
        let spec = Arc::new(WindowAggregateSpec {
            window,
            window_column,
            window_column_minus_start: minus,
            keys,
            key_fields,
            aggregates,
            output: output.clone(),
            output_schema,
            table: input.table.clone(),
        });
        let partial_spec = Arc::clone(&spec);
        let partial = self.add_node(
            format!("aggregate partial [{}]", agg_names.join(", ")),
            &input,
            Edge::Forward,
            input.parallelism,
            move |_, _| Ok(Box::new(PartialAggregate::new(Arc::clone(&partial_spec))?)),
        );
        let partial_stream = Stream {
            node: partial,
            ..input.clone()
        };
        let (edge, parallelism) = if spec.keys.is_empty() {
            (Edge::Single, 1)
        } else {
            (
                Edge::Hash(spec.partial_key_columns()),
                self.settings.parallelism,
            )
        };
        let metrics = Arc::clone(&self.metrics);
        let final_node = self.add_node(
            format!(
                "aggregate final by window{}{}",
                if key_names.is_empty() { "" } else { ", " },
                key_names.join(", ")
            ),
            &partial_stream,
            edge,
            parallelism,
            move |instance, parallelism| {
                Ok(Box::new(FinalAggregate::new(
                    Arc::clone(&spec),
                    Arc::clone(&metrics),
                    instance,
                    parallelism,
                )))
            },
        );
        Ok(Stream {
            node: final_node,
            parallelism,
            schema: Arc::clone(&a.schema),
            rowtime: output
                .iter()
                .position(|o| *o == AggregateOutput::WindowTime),
            window: None,
            table: input.table,
        })
    }

    fn add_sink(&mut self, name: &str, location: Location, stream: Stream) -> Result<()> {
        let file = self.file;
        let entry = &self.tables[name];
        let def = &entry.def;
        let sink_fields: Vec<Field> = def
            .columns
            .iter()
            .filter_map(|c| match &c.kind {
                ColumnKind::Physical(t) => Some(Field::new(&c.name, t.clone(), true)),
                _ => None,
            })
            .collect();
        let query_fields = stream.schema.fields();
        if query_fields.len() != sink_fields.len() {
            let names: Vec<&str> = sink_fields.iter().map(|f| f.name().as_str()).collect();
            return Err(file.error_at(
                location,
                format!(
                    "the query gives {} columns but table '{name}' has {} ({})",
                    query_fields.len(),
                    sink_fields.len(),
                    names.join(", ")
                ),
            ));
        }
        let input_schema = stream.schema.as_arrow().clone();
        let mut exprs = Vec::new();
        for (i, (q, s)) in query_fields.iter().zip(&sink_fields).enumerate() {
            if !assignable(q.data_type(), s.data_type()) {
                return Err(file.error_at(
                    location,
                    format!(
                        "type mismatch: column {} ('{}') of the query is {} but column '{}' of table '{name}' is {}",
                        i + 1,
                        clean_message(q.name(), &self.windows),
                        flink_name(q.data_type()),
                        s.name(),
                        flink_name(s.data_type())
                    ),
                ));
            }
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(q.name(), i));
            exprs.push(if q.data_type() == s.data_type() {
                column
            } else {
                cast(column, &input_schema, s.data_type().clone())?
            });
        }
        let sink_schema = Arc::new(Schema::new(sink_fields));
        let mut options = Options::new(name, def.options_map());
        let option_error = |e: Error| option_error(file, def, e);
        let connector_name = take_connector(file, def, &mut options)?;
        let spec = TableSpec {
            name: name.to_string(),
            schema: Arc::clone(&sink_schema),
            metadata: vec![],
            partition_by: def.partition_by.clone(),
        };
        let connector = sluice_connectors::create_sink(&connector_name, spec, &mut options)
            .map_err(option_error)?;
        options.finish().map_err(option_error)?;
        let projected = self.add_project(
            format!("cast to {name}"),
            &stream,
            exprs,
            Arc::clone(&sink_schema),
        );
        let projected = Stream {
            node: projected,
            ..stream
        };
        let metrics = Arc::clone(&self.metrics);
        let description = connector.describe();
        let committer = Arc::clone(&connector);
        let exactly_once = self.settings.checkpoint_interval.is_some();
        let node = self.add_node(
            format!("sink {name}: {description}"),
            &projected,
            Edge::Forward,
            projected.parallelism,
            move |instance, parallelism| {
                let mut ctx = SinkContext::new(Arc::clone(&metrics), instance, parallelism);
                ctx.exactly_once = exactly_once;
                let writer = connector.create_writer(&ctx)?;
                Ok(Box::new(Sink::new(writer, Arc::clone(&metrics))))
            },
        );
        self.graph.sinks.push((node, committer));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::fixed_delay;

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
            super::without_window_tables("sum(__window_12.price) > 2"),
            "sum(price) > 2"
        );
        assert_eq!(super::duration_text(600_000), "10 min");
        assert_eq!(super::duration_text(-60_000), "-1 min");
        assert_eq!(super::duration_text(1_500), "1500 ms");
        assert_eq!(super::duration_text(0), "0 ms");
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
