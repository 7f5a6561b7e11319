//! Lowering: a DataFusion logical plan onto engine nodes (projections, filters, the
//! window assigner and the two phases of a windowed aggregate), each with a stable id.

use super::*;

/// Drops the generated window tables' qualifiers (`__window_3.price` → `price`) from an
/// expression's text, for `explain`.
pub(super) fn without_window_tables(text: &str) -> String {
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
pub(super) fn duration_text(ms: i64) -> String {
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

/// What a window aggregate's state holds, as checkpoints record it: a restore into a job
/// whose window, keys or aggregates differ is refused, naming what changed.
pub(super) fn window_aggregate_state(
    spec: &WindowAggregateSpec,
    aggregates: &[String],
) -> Result<BTreeMap<String, String>> {
    let w = &spec.window;
    let mut window = w.describe(duration_text);
    if let Some(zone) = w.time_zone {
        window.push_str(&format!(" in {zone}"));
    }
    Ok(aggregate_state(
        window,
        &spec.key_fields,
        aggregates,
        &spec.partial_schema()?,
    ))
}

/// The description of a windowed aggregate's state: its window, keys, aggregates and the
/// types of its state columns.
pub(super) fn aggregate_state(
    window: String,
    key_fields: &[Field],
    aggregates: &[String],
    state: &SchemaRef,
) -> BTreeMap<String, String> {
    let keys: Vec<String> = key_fields
        .iter()
        .map(|f| format!("{} {}", f.name(), flink_name(f.data_type())))
        .collect();
    let columns: Vec<String> = state
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    BTreeMap::from([
        ("window".to_string(), window),
        ("keys".to_string(), format!("({})", keys.join(", "))),
        (
            "aggregates".to_string(),
            format!("({})", aggregates.join(", ")),
        ),
        (
            "state columns".to_string(),
            format!("({})", columns.join(", ")),
        ),
    ])
}

/// `expr` as DataFusion's optimizer leaves it for execution: some functions exist only to be
/// rewritten before they run (`COALESCE` and `NVL` become `CASE`, for example) and fail as
/// internal errors if executed as they are. Sluice plans without DataFusion's optimizer (it
/// lowers the analyzed plan itself), so every expression goes through its simplifier here.
pub(super) fn simplified(expr: &Expr, schema: &DFSchema) -> Result<Expr> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .build();
    Ok(ExprSimplifier::new(context).simplify(expr.clone())?)
}

/// The aggregate functions of one `GROUP BY`, as the engine runs them.
#[derive(Default)]
pub(super) struct Aggregates {
    pub exprs: Vec<Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>>,
    /// Each one's `FILTER (WHERE ...)` predicate, if any.
    pub filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// As `explain` and checkpoints show them.
    pub names: Vec<String>,
}

/// A physical aggregate function and its `FILTER (WHERE ...)` predicate, if any.
pub(super) type PhysicalAggregate = (
    Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>,
    Option<Arc<dyn PhysicalExpr>>,
);

/// A projection of a SESSION window stream also passes on the engine's trailing session
/// columns, which follow the input schema's `width` columns.
fn with_session_columns(
    mut exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: &SchemaRef,
    width: usize,
) -> (Vec<Arc<dyn PhysicalExpr>>, SchemaRef) {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, name) in TRAILING_COLUMNS.iter().enumerate() {
        exprs.push(Arc::new(Column::new(name, width + i)));
        fields.push(Field::new(*name, DataType::Int64, false));
    }
    (exprs, Arc::new(Schema::new(fields)))
}

impl Planner<'_> {
    pub(super) fn register_window(&mut self, call: WindowCall) -> Result<()> {
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

    /// The stable id of the next node of `kind` in the current INSERT.
    pub(super) fn next_uid(&mut self, kind: &'static str) -> String {
        let n = self.kinds.entry(kind).or_default();
        *n += 1;
        format!("{}/{kind} {n}", self.scope)
    }

    pub(super) fn add_node(
        &mut self,
        kind: &'static str,
        name: String,
        input: &Stream,
        edge: Edge,
        parallelism: usize,
        factory: impl Fn(usize, usize) -> Result<Box<dyn Operator>> + Send + Sync + 'static,
    ) -> NodeId {
        let uid = self.next_uid(kind);
        self.graph.add(Node {
            name,
            uid,
            state: BTreeMap::new(),
            parallelism,
            kind: NodeKind::Operator {
                factory: Arc::new(factory),
            },
            input: Some((input.node, edge)),
            second_input: None,
        })
    }

    /// A chained projection node computing `exprs` into `schema`.
    pub(super) fn add_project(
        &mut self,
        name: String,
        input: &Stream,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> NodeId {
        let (exprs, schema) = match input.session {
            Some(_) => with_session_columns(exprs, &schema, input.schema.fields().len()),
            None => (exprs, schema),
        };
        self.add_node(
            "project",
            name,
            input,
            Edge::Forward,
            input.parallelism,
            move |_, _| Ok(Box::new(Project::new(exprs.clone(), Arc::clone(&schema)))),
        )
    }

    pub(super) fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            &simplified(expr, schema)?,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    /// An aggregate function expression over `schema` as the engine runs it: its
    /// arguments simplified (see [`simplified`]), and the physical aggregate with its
    /// `FILTER`, if any.
    pub(super) fn physical_aggregate(
        &self,
        expr: &Expr,
        schema: &DFSchema,
    ) -> Result<PhysicalAggregate> {
        #[allow(deprecated)]
        let (agg, filter, _) = create_aggregate_expr_and_maybe_filter(
            &simplified(expr, schema)?,
            schema,
            schema.as_arrow(),
            &self.props,
        )?;
        Ok((agg, filter))
    }

    /// The stream of `plan`: a part of a plan lowered before (by an earlier INSERT reading
    /// the same view) is reused, so it runs once and its output goes to every reader, as
    /// Flink's `table.optimizer.reuse-sub-plan-enabled` does.
    pub(super) fn lower(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        // A Top-N request travels down to its window node: nothing below it is shared.
        let reuse = self.settings.reuse_sub_plans && self.top_n.is_none();
        if reuse {
            if let Some(stream) = self.lowered.get(plan) {
                return Ok(stream.clone());
            }
        }
        let stream = self.lower_node(plan)?;
        if reuse {
            self.lowered.insert(plan.clone(), stream.clone());
        }
        Ok(stream)
    }

    fn lower_node(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let name = scan.table_name.table().to_string();
                let mut stream = if let Some(call) = self.lookups.get(&name) {
                    return Err(self.file.error_at(
                        call.location,
                        format!(
                            "'{}' FOR SYSTEM_TIME AS OF can only be the right side of a JOIN \
                             with a stream (a lookup join)",
                            call.table
                        ),
                    ));
                } else if self.windows.contains_key(&name) {
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
                // WHERE over an inner JOIN: part of the join's condition (time bounds
                // included), as a planner pushing filters down makes it.
                if let LogicalPlan::Join(j) = f.input.as_ref() {
                    let lookup = super::lookup::lookup_table(&j.left)
                        .or(super::lookup::lookup_table(&j.right));
                    if j.join_type == datafusion::logical_expr::JoinType::Inner && lookup.is_none()
                    {
                        let mut join = j.clone();
                        join.filter = Some(match join.filter.take() {
                            Some(on) => on.and(f.predicate.clone()),
                            None => f.predicate.clone(),
                        });
                        return self.lower(&LogicalPlan::Join(join));
                    }
                }
                if let Some(request) = super::top_n::top_n_request(f) {
                    self.top_n = Some(request);
                    let stream = self.lower(&f.input);
                    if self.top_n.take().is_some() {
                        return Err(Error::internal("a Top-N filter without its window node"));
                    }
                    return stream;
                }
                let stream = self.lower(&f.input)?;
                self.add_filter(stream, &f.predicate, f.input.schema())
            }
            LogicalPlan::Aggregate(a) => self.lower_aggregate(a),
            LogicalPlan::Window(w) => self.lower_over(w),
            LogicalPlan::Join(j) => self.lower_join(j),
            other => Err(Error::plan(format!(
                "{} is not supported in a streaming job yet",
                match other {
                    LogicalPlan::Join(_) => "a JOIN",
                    LogicalPlan::Sort(_) => "ORDER BY",
                    LogicalPlan::Limit(_) => "LIMIT",
                    LogicalPlan::Union(_) => "UNION",
                    LogicalPlan::Distinct(_) => "SELECT DISTINCT",
                    _ => "this query shape",
                }
            ))),
        }
    }

    /// A filter node keeping the rows of `stream` (of `schema`) where `predicate` holds.
    pub(super) fn add_filter(
        &mut self,
        mut stream: Stream,
        predicate: &Expr,
        schema: &DFSchemaRef,
    ) -> Result<Stream> {
        let physical = self.physical(predicate, schema)?;
        let text = without_window_tables(&predicate.to_string());
        stream.node = self.add_node(
            "filter",
            format!("filter {text}"),
            &stream,
            Edge::Forward,
            stream.parallelism,
            move |_, _| Ok(Box::new(Filter::new(Arc::clone(&physical)))),
        );
        Ok(stream)
    }

    pub(super) fn lower_window(&mut self, name: &str) -> Result<Stream> {
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
                    "column '{}' of '{}' is not a time attribute: {} needs a rowtime column, declared with WATERMARK FOR {} AS ... in its table",
                    call.descriptor, call.input, call.function(), call.descriptor
                ),
            ));
        }
        let rowtime = descriptor.unwrap_or_default();
        let has_zone = matches!(
            schema.field(rowtime).data_type(),
            DataType::Timestamp(_, Some(_))
        );
        let time_zone = if has_zone {
            self.settings.window_zone()
        } else {
            None
        };
        let shape = match call.kind {
            WindowKind::Sliced(shape) => shape,
            WindowKind::Session { gap_ms } => {
                return self.lower_session_window(name, &call, gap_ms, time_zone, rowtime, input)
            }
        };
        let window = WindowSpec {
            size_ms: call.size_ms,
            offset_ms: call.offset_ms,
            time_zone,
            shape,
        };
        let metrics = Arc::clone(&self.metrics);
        let table = input.table.clone();
        let out_schema = Arc::clone(&schema);
        let node = self.add_node(
            "window",
            format!(
                "window {} on {}",
                window.describe(duration_text),
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
            session: None,
            table: input.table,
        })
    }

    pub(super) fn lower_aggregate(
        &mut self,
        a: &datafusion::logical_expr::Aggregate,
    ) -> Result<Stream> {
        let input = self.lower(&a.input)?;
        let input_schema = a.input.schema();
        let roles: Vec<Option<AggregateOutput>> = a
            .group_expr
            .iter()
            .map(|g| match g.clone().unalias() {
                Expr::Column(c) if input.window.is_some() || input.session.is_some() => {
                    // Also through aliases: `window_start AS starttime` in a subquery.
                    match super::join::origin_name(&a.input, &c).as_str() {
                        "window_start" => Some(AggregateOutput::WindowStart),
                        "window_end" => Some(AggregateOutput::WindowEnd),
                        "window_time" => Some(AggregateOutput::WindowTime),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        let windowed = roles.iter().any(|r| {
            matches!(
                r,
                Some(AggregateOutput::WindowStart | AggregateOutput::WindowEnd)
            )
        });
        if let Some(session) = input.session.clone().filter(|_| windowed) {
            return self.lower_session_aggregate(a, input, session, roles);
        }
        let Some(window) = input.window.filter(|_| windowed) else {
            return Err(Error::plan(
                "an aggregate over a stream needs a window: use FROM TABLE(TUMBLE(...)) (or HOP, CUMULATE, SESSION) and GROUP BY window_start, window_end (results that update forever are not supported yet)",
            ));
        };
        let pick = |role: AggregateOutput| roles.iter().position(|r| *r == Some(role));
        let (window_index, minus) = match (
            pick(AggregateOutput::WindowStart),
            pick(AggregateOutput::WindowEnd),
        ) {
            (Some(i), _) => (i, 0),
            (None, Some(i)) => (i, window.slice_ms()),
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
        let Aggregates {
            exprs: aggregates,
            filters,
            names: agg_names,
        } = self.aggregate_exprs(a, &mut output)?;
        let output_schema: SchemaRef = Arc::new(a.schema.as_arrow().clone());
        let key_names: Vec<String> = key_fields.iter().map(|f| f.name().clone()).collect();
        let spec = Arc::new(WindowAggregateSpec {
            window,
            window_column,
            window_column_minus_start: minus,
            keys,
            key_fields,
            aggregates,
            filters,
            output: output.clone(),
            output_schema,
            table: input.table.clone(),
        });
        let partial_spec = Arc::clone(&spec);
        let state_spec = Arc::clone(&spec);
        let partial = self.add_node(
            "partial aggregate",
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
            "aggregate",
            format!(
                "aggregate final by window{}{}",
                if key_names.is_empty() { "" } else { ", " },
                key_names.join(", ")
            ),
            &partial_stream,
            edge,
            parallelism,
            move |_, _| {
                Ok(Box::new(FinalAggregate::new(
                    Arc::clone(&spec),
                    Arc::clone(&metrics),
                )?))
            },
        );
        self.graph.nodes[final_node].state = window_aggregate_state(&state_spec, &agg_names)?;
        Ok(Stream {
            node: final_node,
            parallelism,
            schema: Arc::clone(&a.schema),
            rowtime: output
                .iter()
                .position(|o| *o == AggregateOutput::WindowTime),
            window: per_window_rows(&window),
            session: None,
            table: input.table,
        })
    }

    /// The physical aggregate functions of `a` with their `FILTER` predicates, each pushed
    /// onto `output` as its column, and their names as `explain` and checkpoints show them.
    pub(super) fn aggregate_exprs(
        &self,
        a: &datafusion::logical_expr::Aggregate,
        output: &mut Vec<AggregateOutput>,
    ) -> Result<Aggregates> {
        let input_schema = a.input.schema();
        let mut found = Aggregates::default();
        for e in &a.aggr_expr {
            let (agg, filter) = self.physical_aggregate(e, input_schema)?;
            output.push(AggregateOutput::Aggregate(found.exprs.len()));
            found.exprs.push(agg);
            found.filters.push(filter);
            found
                .names
                .push(without_window_tables(&e.schema_name().to_string()));
        }
        Ok(found)
    }
}

/// What a window aggregate's rows are to a second aggregate that groups them by
/// `window_start, window_end` again (a cascade, as Flink allows): each row is in exactly
/// its own window, so for windows of one size (TUMBLE, HOP) that is a TUMBLE of that size
/// keyed by the rows' window_start, whatever their alignment. CUMULATE's windows differ in
/// size: none.
fn per_window_rows(window: &WindowSpec) -> Option<WindowSpec> {
    match window.shape {
        sluice_engine::window::WindowShape::Cumulate { .. } => None,
        _ => Some(WindowSpec {
            shape: sluice_engine::window::WindowShape::Tumble,
            offset_ms: 0,
            ..*window
        }),
    }
}
