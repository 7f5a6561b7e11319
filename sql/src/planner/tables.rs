//! Tables: `CREATE TABLE` definitions, their sources (shared by every INSERT that reads
//! them) and their sinks, with the connectors built from their options.

use super::*;

/// The delay of a watermark written `rowtime - INTERVAL 'n' UNIT` (or just `rowtime`), in
/// milliseconds; `None` for any other expression.
pub(super) fn fixed_delay(
    expr: &datafusion::sql::sqlparser::ast::Expr,
    rowtime: &str,
) -> Option<i64> {
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

/// Points a connector's complaint about a table at the option it is about: `'connector'`
/// for an unknown connector, the option the message names, or else the table.
pub(super) fn option_error(file: &SourceFile, def: &TableDef, e: Error) -> Error {
    let location = e
        .option()
        .filter(|k| def.options.iter().any(|(key, _, _)| key == k))
        .map_or(def.location, |k| def.option_location(k));
    file.locate(location, &e, e.message())
}

/// The `METADATA FROM 'key'` columns of a table, for its connector.
pub(super) fn metadata_columns(def: &TableDef) -> Vec<MetadataColumn> {
    def.columns
        .iter()
        .filter_map(|c| match &c.kind {
            ColumnKind::Metadata { key, .. } => Some(MetadataColumn {
                name: c.name.clone(),
                key: key.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// For `explain`: the columns a source produces when the job reads only some.
fn read_text(schema: &SchemaRef, read: Option<&Vec<usize>>) -> String {
    match read {
        Some(read) if read.len() < schema.fields().len() => {
            let names: Vec<&str> = read
                .iter()
                .map(|i| schema.field(*i).name().as_str())
                .collect();
            format!(" reads ({})", names.join(", "))
        }
        _ => String::new(),
    }
}

/// Takes the `'connector'` option of a table, which every table needs.
pub(super) fn take_connector(
    file: &SourceFile,
    def: &TableDef,
    options: &mut Options,
) -> Result<String> {
    options.take(&["connector"]).ok_or_else(|| {
        file.error_at(
            def.location,
            format!("table '{}' has no 'connector' option", def.name),
        )
    })
}

impl Planner<'_> {
    pub(super) fn create_table(&mut self, def: TableDef) -> Result<()> {
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
            // The field keeps the expression's metadata: `PROCTIME()` marks a
            // processing-time attribute.
            let field = expr.return_field(&source_schema)?;
            fields.push(
                Field::new(&c.name, field.data_type().clone(), true)
                    .with_metadata(field.metadata().clone()),
            );
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
                    emit_interval_ms: self.settings.watermark_interval.as_millis() as i64,
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

    /// The source node of a table, created on first use and shared afterwards.
    pub(super) fn source(&mut self, name: &str) -> Result<Stream> {
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
        let metadata = metadata_columns(def);
        let spec = TableSpec {
            name: name.to_string(),
            schema: Arc::clone(&entry.source_schema),
            metadata,
            partition_by: def.partition_by.clone(),
            projection: self.reads.get(name).cloned(),
        };
        let connector = sluice_connectors::create_source(&connector_name, spec, &mut options)
            .map_err(option_error)?;
        options.finish().map_err(option_error)?;
        let rowtime = entry.prep.watermark.as_ref().map(|w| w.rowtime);
        let node = self.graph.add(Node {
            name: format!(
                "source {name}: {}{}",
                connector.describe(),
                read_text(&entry.source_schema, self.reads.get(name))
            ),
            // A table's source is shared by every INSERT that reads it.
            uid: format!("source {name}"),
            state: BTreeMap::from([("connector".to_string(), connector_name.clone())]),
            parallelism: self.settings.parallelism,
            kind: NodeKind::Source {
                table: name.to_string(),
                connector,
                prep: Arc::clone(&entry.prep),
                idle_timeout,
            },
            input: None,
            second_input: None,
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
            session: None,
            table: name.to_string(),
        };
        self.sources.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    pub(super) fn add_sink(
        &mut self,
        name: &str,
        location: Location,
        stream: Stream,
    ) -> Result<()> {
        let file = self.file;
        if let Some(session) = &stream.session {
            return Err(file.error_at(
                session.location,
                "the rows of a SESSION window table can only be aggregated (GROUP BY \
                 window_start, window_end [, keys]): a row's session is known only when it closes",
            ));
        }
        if let Some(window) = stream.window.filter(|w| !w.slices_are_windows()) {
            return Err(file.error_at(
                location,
                format!(
                    "the rows of a {} window table can only be aggregated for now (GROUP BY \
                     window_start, window_end); selecting them one by one is not supported yet",
                    window.describe(lower::duration_text)
                ),
            ));
        }
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
            projection: None,
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
            "sink",
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
        self.graph.nodes[node].state =
            BTreeMap::from([("connector".to_string(), connector_name.clone())]);
        self.graph.sinks.push((node, committer));
        Ok(())
    }
}
