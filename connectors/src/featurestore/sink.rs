//! The `sagemaker-featurestore` sink: one PutRecord per row.
//!
//! Before the first row, the sink reads the feature group's definition (DescribeFeatureGroup)
//! and checks the table's columns against it: the record identifier and event time columns
//! must be there, every other column must be a feature, and every column's type must convert
//! to its feature's type. Values become strings as Feature Store wants them: integral as
//! integers, fractional with full precision, timestamps as ISO-8601 UTC with milliseconds
//! (String features) or fractional epoch seconds (Fractional features). NULLs are left out.
//!
//! Against a service, up to `sink.requests.max-inflight` PutRecord calls are under way at
//! once; throttling, 5xx and dropped connections are retried with exponential backoff and
//! jitter. A record the service rejects as invalid (ValidationError) is counted, said on
//! stderr with its record identifier and the reason, and dropped, unless
//! `sink.fail-on-error` is true. With `'aws.endpoint' = 'local:DIR'` records go straight into
//! the local store in DIR (created with the group if missing), with no server.
//!
//! Delivery is at-least-once; the online store keeps the record with the newest event time,
//! so a replay never makes it older.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{
    DataType, Float64Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use aws_sdk_sagemakerfeaturestoreruntime as runtime_sdk;
use sluice_engine::connector::{Options, SinkConnector, SinkContext, SinkWriter, TableSpec};
use sluice_engine::metrics::{DropReason, SinkMetrics};
use sluice_engine::{Error, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::config::{Destination, FeatureStoreSinkConfig};
use super::model::{
    iso_millis, FeatureDefinition, FeatureGroup, FeatureType, FeatureValue, OfflineStoreConfig,
    OnlineStoreConfig, S3StorageConfig, TtlUnit,
};
use super::store::{Change, LocalStore, StoreError, StoreSettings, TargetStore};
use crate::aws::{backoff, retry, retry_with, runtime, sdk_config, Failure};
use crate::bad_records::BadRecords;
use crate::sink_bridge::{Bridge, ToTask};

/// A Feature Store table used as a sink.
pub struct FeatureStoreSink {
    table: Arc<SinkTable>,
}

struct SinkTable {
    name: String,
    config: FeatureStoreSinkConfig,
    schema: SchemaRef,
}

impl FeatureStoreSink {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        let config = FeatureStoreSinkConfig::take(options)?;
        for (option, column) in [
            ("record-identifier", &config.record_identifier),
            ("event-time", &config.event_time),
        ] {
            if let Some(c) = column {
                if spec.schema.index_of(c).is_err() {
                    return Err(Error::config(format!(
                        "table '{}': option '{option}' = '{c}' is not a column of the table",
                        spec.name
                    )));
                }
            }
        }
        Ok(Self {
            table: Arc::new(SinkTable {
                name: spec.name,
                config,
                schema: spec.schema,
            }),
        })
    }
}

impl SinkConnector for FeatureStoreSink {
    fn describe(&self) -> String {
        let c = &self.table.config;
        match &c.destination {
            Destination::Local(dir) => {
                format!(
                    "sagemaker-featurestore {} (local {})",
                    c.group,
                    dir.display()
                )
            }
            Destination::Service(_) => format!("sagemaker-featurestore {}", c.group),
        }
    }

    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter>> {
        let table = Arc::clone(&self.table);
        let metrics = ctx.metrics.sink(&table.name);
        let mut bad = BadRecords::new(
            table.name.clone(),
            DropReason::Rejected,
            table.config.fail_on_error,
            Arc::clone(&ctx.metrics),
        );
        if table.config.fail_on_error {
            bad = bad.failing_because("'sink.fail-on-error' is true");
        }
        let counters = Arc::new(Rejections {
            bad,
            sink: Arc::clone(&metrics),
        });
        match &table.config.destination {
            Destination::Local(dir) => {
                let store = LocalStore::open(
                    dir,
                    StoreSettings {
                        offline_flush: None,
                        ..StoreSettings::default()
                    },
                )
                .map_err(|e| store_error(&table.name, &e))?;
                let group = match store.describe_group(&table.config.group) {
                    Ok(g) => g,
                    Err(StoreError::NotFound(_)) => {
                        let group = group_for_table(&table)?;
                        let group = store
                            .create_group(group)
                            .map_err(|e| store_error(&table.name, &e))?;
                        if ctx.instance == 0 {
                            tracing::info!(
                                "table '{}': created feature group '{}' in the local store {}",
                                table.name,
                                group.feature_group_name,
                                dir.display()
                            );
                        }
                        group
                    }
                    Err(e) => return Err(store_error(&table.name, &e)),
                };
                let plan = Plan::new(&table, &group)?;
                Ok(Box::new(FeatureWriter {
                    table,
                    plan,
                    out: Output::Local(store),
                    counters,
                }))
            }
            Destination::Service(aws) => {
                let (client, group) = runtime().block_on(async {
                    let sdk = sdk_config(&format!("table '{}'", table.name), aws).await?;
                    let group = describe_group(&table, &sdk).await?;
                    Ok::<_, Error>((runtime_sdk::Client::new(&sdk), group))
                })?;
                let plan = Plan::new(&table, &group)?;
                let putter = Putter {
                    table: Arc::clone(&table),
                    client,
                    metrics,
                    counters: Arc::clone(&counters),
                };
                let bridge = Bridge::spawn(
                    format!("table '{}': the Feature Store writer", table.name),
                    |rx| putter.run(rx),
                );
                Ok(Box::new(FeatureWriter {
                    table,
                    plan,
                    out: Output::Service(bridge),
                    counters,
                }))
            }
        }
    }
}

fn store_error(table: &str, e: &StoreError) -> Error {
    Error::connector(format!("table '{table}': local feature store: {e}"))
}

/// The group's definition from the service, in the local store's model.
async fn describe_group(table: &SinkTable, sdk: &aws_config::SdkConfig) -> Result<FeatureGroup> {
    let client = aws_sdk_sagemaker::Client::new(sdk);
    let name = &table.config.group;
    let what = format!("table '{}': DescribeFeatureGroup {name}", table.name);
    let out = retry(&what, None, || {
        let call = client.describe_feature_group().feature_group_name(name);
        async move { call.send().await.map_err(|e| Failure::of(&e)) }
    })
    .await
    .map_err(|f| match f {
        Failure::NotFound(_) => Error::connector(format!(
            "table '{}': feature group '{name}' does not exist (DescribeFeatureGroup)",
            table.name
        )),
        other => Error::connector(format!(
            "table '{}': DescribeFeatureGroup {name} failed: {}",
            table.name,
            other.describe()
        )),
    })?;
    let definitions = out
        .feature_definitions()
        .iter()
        .map(|d| {
            let feature_type = match d.feature_type() {
                Some(aws_sdk_sagemaker::types::FeatureType::Integral) => FeatureType::Integral,
                Some(aws_sdk_sagemaker::types::FeatureType::Fractional) => FeatureType::Fractional,
                _ => FeatureType::String,
            };
            FeatureDefinition {
                feature_name: d.feature_name().unwrap_or_default().to_string(),
                feature_type,
                collection_type: d.collection_type().map(|c| c.as_str().to_string()),
            }
        })
        .collect();
    Ok(FeatureGroup {
        feature_group_name: out
            .feature_group_name()
            .unwrap_or(name.as_str())
            .to_string(),
        record_identifier_feature_name: out
            .record_identifier_feature_name()
            .unwrap_or_default()
            .to_string(),
        event_time_feature_name: out
            .event_time_feature_name()
            .unwrap_or_default()
            .to_string(),
        feature_definitions: definitions,
        online_store_config: out.online_store_config().map(|c| OnlineStoreConfig {
            enable_online_store: c.enable_online_store().unwrap_or(false),
            ..Default::default()
        }),
        offline_store_config: out
            .offline_store_config()
            .map(|_| OfflineStoreConfig::default()),
        role_arn: None,
        description: None,
        creation_time: 0.0,
    })
}

/// The group a local store creates for a table that has none: one feature per column.
fn group_for_table(table: &SinkTable) -> Result<FeatureGroup> {
    let c = &table.config;
    let (id, time) = (
        identifier_column(table, None)?,
        event_time_column(table, None)?,
    );
    let definitions = table
        .schema
        .fields()
        .iter()
        .map(|f| {
            let t = f.data_type();
            let feature_type = if f.name() == &time {
                FeatureType::String
            } else if t.is_integer() {
                FeatureType::Integral
            } else if t.is_floating()
                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
            {
                FeatureType::Fractional
            } else {
                FeatureType::String
            };
            FeatureDefinition {
                feature_name: f.name().clone(),
                feature_type,
                collection_type: None,
            }
        })
        .collect();
    let ttl = c.ttl;
    Ok(FeatureGroup {
        feature_group_name: c.group.clone(),
        record_identifier_feature_name: id,
        event_time_feature_name: time,
        feature_definitions: definitions,
        online_store_config: Some(OnlineStoreConfig {
            enable_online_store: true,
            ttl_duration: ttl,
            ..Default::default()
        }),
        offline_store_config: Some(OfflineStoreConfig {
            s3_storage_config: S3StorageConfig {
                s3_uri: "offline".into(),
                ..Default::default()
            },
            ..Default::default()
        }),
        role_arn: None,
        description: Some(format!("created by Sluice for table '{}'", table.name)),
        creation_time: 0.0,
    })
}

/// The column that holds the record identifier: the option, else the column named like the
/// group's identifier feature.
fn identifier_column(table: &SinkTable, group: Option<&FeatureGroup>) -> Result<String> {
    if let Some(c) = &table.config.record_identifier {
        return Ok(c.clone());
    }
    if let Some(g) = group {
        if table
            .schema
            .index_of(&g.record_identifier_feature_name)
            .is_ok()
        {
            return Ok(g.record_identifier_feature_name.clone());
        }
        return Err(Error::config(format!(
            "table '{}': no column gives the record identifier feature '{}' of feature group \
             '{}': add a column of that name or set the option 'record-identifier'",
            table.name, g.record_identifier_feature_name, g.feature_group_name
        )));
    }
    Err(Error::config(format!(
        "table '{}': set the option 'record-identifier' to the column that identifies a record",
        table.name
    )))
}

/// The column that holds the event time: the option, else the column named like the group's
/// event time feature, else `window_end`.
fn event_time_column(table: &SinkTable, group: Option<&FeatureGroup>) -> Result<String> {
    if let Some(c) = &table.config.event_time {
        return Ok(c.clone());
    }
    if let Some(g) = group {
        if table.schema.index_of(&g.event_time_feature_name).is_ok() {
            return Ok(g.event_time_feature_name.clone());
        }
    }
    if table.schema.index_of("window_end").is_ok() {
        return Ok("window_end".into());
    }
    let feature = group.map_or(String::new(), |g| {
        format!(" (the feature '{}')", g.event_time_feature_name)
    });
    Err(Error::config(format!(
        "table '{}': no column gives the event time{feature}: set the option 'event-time'",
        table.name
    )))
}

/// How a column's values become a feature's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    Integer,
    Fraction,
    Text,
    /// A timestamp as ISO-8601 UTC with milliseconds.
    IsoTime,
    /// A timestamp as fractional epoch seconds.
    EpochSeconds,
}

#[derive(Debug, Clone)]
struct ColumnPlan {
    column: usize,
    feature: String,
    conversion: Conversion,
}

/// The table's columns mapped onto the group's features.
#[derive(Debug, Clone)]
struct Plan {
    columns: Vec<ColumnPlan>,
    /// Index into `columns` of the record identifier and the event time.
    identifier: usize,
    event_time: usize,
    group: FeatureGroup,
}

impl Plan {
    fn new(table: &SinkTable, group: &FeatureGroup) -> Result<Self> {
        let id_column = identifier_column(table, Some(group))?;
        let time_column = event_time_column(table, Some(group))?;
        let mut columns = Vec::new();
        let mut identifier = 0;
        let mut event_time = 0;
        for (index, field) in table.schema.fields().iter().enumerate() {
            let name = field.name();
            let feature = if name == &id_column {
                identifier = columns.len();
                group.record_identifier_feature_name.clone()
            } else if name == &time_column {
                event_time = columns.len();
                group.event_time_feature_name.clone()
            } else {
                name.clone()
            };
            let Some(def) = group.feature(&feature) else {
                let known: Vec<&str> = group
                    .feature_definitions
                    .iter()
                    .map(|d| d.feature_name.as_str())
                    .collect();
                return Err(Error::config(format!(
                    "table '{}': column '{name}' is not a feature of feature group '{}' \
                     (its features: {})",
                    table.name,
                    group.feature_group_name,
                    known.join(", ")
                )));
            };
            if columns.iter().any(|c: &ColumnPlan| c.feature == feature) {
                return Err(Error::config(format!(
                    "table '{}': column '{name}' gives feature '{feature}', which another \
                     column already gives",
                    table.name
                )));
            }
            let conversion = conversion(field.data_type(), def.feature_type).ok_or_else(|| {
                Error::config(format!(
                    "table '{}': column '{name}' of type {} cannot become feature '{feature}' \
                     of type {}",
                    table.name,
                    field.data_type(),
                    def.feature_type.name()
                ))
            })?;
            columns.push(ColumnPlan {
                column: index,
                feature,
                conversion,
            });
        }
        Ok(Self {
            columns,
            identifier,
            event_time,
            group: group.clone(),
        })
    }

    /// The records of a batch; a row without identifier or event time comes back as the
    /// reason it cannot be sent.
    fn records(&self, batch: &RecordBatch) -> Result<Vec<std::result::Result<Record, String>>> {
        let texts = self
            .columns
            .iter()
            .map(|c| strings(batch.column(c.column), c.conversion))
            .collect::<Result<Vec<_>>>()?;
        Ok((0..batch.num_rows())
            .map(|row| {
                let id = texts[self.identifier][row].clone().ok_or_else(|| {
                    format!(
                        "a row has a NULL record identifier ('{}')",
                        self.group.record_identifier_feature_name
                    )
                })?;
                if texts[self.event_time][row].is_none() {
                    return Err(format!("record '{id}' has a NULL event time"));
                }
                let values = self
                    .columns
                    .iter()
                    .zip(&texts)
                    .filter_map(|(c, t)| Some(FeatureValue::new(&c.feature, t[row].clone()?)))
                    .collect();
                Ok(Record { id, values })
            })
            .collect())
    }
}

fn conversion(data_type: &DataType, feature: FeatureType) -> Option<Conversion> {
    let timestamp = matches!(data_type, DataType::Timestamp(..));
    let decimal = matches!(
        data_type,
        DataType::Decimal128(..) | DataType::Decimal256(..)
    );
    match feature {
        FeatureType::Integral => match data_type {
            t if t.is_integer() => Some(Conversion::Integer),
            DataType::Decimal128(_, 0) | DataType::Decimal256(_, 0) => Some(Conversion::Text),
            _ => None,
        },
        FeatureType::Fractional if timestamp => Some(Conversion::EpochSeconds),
        FeatureType::Fractional if decimal => Some(Conversion::Text),
        FeatureType::Fractional if data_type.is_integer() => Some(Conversion::Integer),
        FeatureType::Fractional if data_type.is_floating() => Some(Conversion::Fraction),
        FeatureType::Fractional => None,
        FeatureType::String if timestamp => Some(Conversion::IsoTime),
        FeatureType::String => {
            can_cast_types(data_type, &DataType::Utf8).then_some(Conversion::Text)
        }
    }
}

fn cast_error(e: arrow::error::ArrowError) -> Error {
    Error::internal(format!("converting a value for Feature Store: {e}"))
}

/// A column's values as Feature Store strings (None for NULL).
fn strings(array: &ArrayRef, conversion: Conversion) -> Result<Vec<Option<String>>> {
    Ok(match conversion {
        Conversion::Integer => cast(array, &DataType::Int64)
            .map_err(cast_error)?
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        // Rust prints the shortest text that reads back as the same f64: full precision.
        Conversion::Fraction => cast(array, &DataType::Float64)
            .map_err(cast_error)?
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        Conversion::Text => cast(array, &DataType::Utf8)
            .map_err(cast_error)?
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect(),
        Conversion::IsoTime | Conversion::EpochSeconds => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(cast_error)?;
            micros
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| {
                    v.map(|t| match conversion {
                        Conversion::IsoTime => iso_millis(t),
                        _ => epoch_seconds(t),
                    })
                })
                .collect()
        }
    })
}

/// Microseconds as epoch seconds with as many fraction digits as needed: `1714564800.123`.
fn epoch_seconds(micros: i64) -> String {
    let (seconds, fraction) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    if fraction == 0 {
        seconds.to_string()
    } else {
        let text = format!("{seconds}.{fraction:06}");
        text.trim_end_matches('0').to_string()
    }
}

/// One row on its way to the store.
#[derive(Debug, Clone)]
struct Record {
    id: String,
    values: Vec<FeatureValue>,
}

/// Counts and reports records the service refused.
struct Rejections {
    bad: BadRecords,
    sink: Arc<SinkMetrics>,
}

impl Rejections {
    /// A record refused for good: an error when the table says so, else counted and said.
    fn reject(&self, id: &str, reason: &str) -> Result<()> {
        self.bad.reject(
            &format!("Feature Store rejected record '{id}'"),
            reason,
            None,
        )?;
        self.sink.failures.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

enum Output {
    Local(Arc<LocalStore>),
    Service(Bridge<Record>),
}

/// One parallel instance of a Feature Store sink.
struct FeatureWriter {
    table: Arc<SinkTable>,
    plan: Plan,
    out: Output,
    counters: Arc<Rejections>,
}

impl FeatureWriter {
    fn write_local(&self, store: &LocalStore, records: Vec<Record>) -> Result<()> {
        let config = &self.table.config;
        let started = Instant::now();
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let changes = records
            .into_iter()
            .map(|r| Change::Put {
                group: self.plan.group.feature_group_name.clone(),
                record: r.values,
                target_stores: config.target_stores.clone(),
                ttl: config.ttl,
            })
            .collect();
        let outcomes = store.apply_blocking(changes);
        self.counters.sink.add_latency(started.elapsed());
        for (id, outcome) in ids.iter().zip(outcomes) {
            match outcome {
                Ok(_) => {
                    self.counters.sink.records.fetch_add(1, Ordering::Relaxed);
                }
                Err(StoreError::Validation(reason)) => self.counters.reject(id, &reason)?,
                Err(e) => return Err(store_error(&self.table.name, &e)),
            }
        }
        Ok(())
    }
}

impl SinkWriter for FeatureWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut records = Vec::with_capacity(batch.num_rows());
        for record in self.plan.records(batch)? {
            match record {
                Ok(r) => records.push(r),
                Err(reason) => self.counters.reject("?", &reason)?,
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        match &mut self.out {
            Output::Local(store) => {
                let store = Arc::clone(store);
                self.write_local(&store, records)
            }
            Output::Service(bridge) => bridge.send(records),
        }
    }

    /// A checkpoint: every record written so far is put before it completes
    /// (at-least-once; the local store applies writes at once).
    fn prepare_commit(&mut self) -> Result<Vec<u8>> {
        if let Output::Service(bridge) = &mut self.out {
            bridge.flush()?;
        }
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<()> {
        match &mut self.out {
            Output::Local(store) => store
                .flush_offline()
                .map(|_| ())
                .map_err(|e| store_error(&self.table.name, &e)),
            Output::Service(bridge) => bridge.finish(),
        }
    }
}

/// Sends records to the service, many calls at once.
struct Putter {
    table: Arc<SinkTable>,
    client: runtime_sdk::Client,
    metrics: Arc<SinkMetrics>,
    counters: Arc<Rejections>,
}

/// What became of one PutRecord.
enum PutResult {
    Done,
    Rejected(String, String),
}

impl Putter {
    async fn run(self, mut rx: mpsc::Receiver<ToTask<Record>>) -> Result<()> {
        let max = self.table.config.max_inflight;
        let mut inflight: JoinSet<Result<PutResult>> = JoinSet::new();
        while let Some(message) = rx.recv().await {
            let records = match message {
                ToTask::Items(records) => records,
                ToTask::Flush(done) => {
                    while !inflight.is_empty() {
                        self.settle(inflight.join_next().await)?;
                    }
                    let _ = done.send(());
                    continue;
                }
            };
            for record in records {
                while inflight.len() >= max {
                    self.settle(inflight.join_next().await)?;
                }
                inflight.spawn(put_record(
                    Arc::clone(&self.table),
                    self.client.clone(),
                    Arc::clone(&self.metrics),
                    record,
                ));
            }
        }
        while !inflight.is_empty() {
            self.settle(inflight.join_next().await)?;
        }
        Ok(())
    }

    fn settle(
        &self,
        done: Option<std::result::Result<Result<PutResult>, tokio::task::JoinError>>,
    ) -> Result<()> {
        match done {
            None => Ok(()),
            Some(Err(e)) => Err(Error::internal(format!(
                "a PutRecord call failed to run: {e}"
            ))),
            Some(Ok(Err(e))) => Err(e),
            Some(Ok(Ok(PutResult::Done))) => Ok(()),
            Some(Ok(Ok(PutResult::Rejected(id, reason)))) => self.counters.reject(&id, &reason),
        }
    }
}

async fn put_record(
    table: Arc<SinkTable>,
    client: runtime_sdk::Client,
    metrics: Arc<SinkMetrics>,
    record: Record,
) -> Result<PutResult> {
    let config = &table.config;
    let values = record
        .values
        .iter()
        .map(|v| {
            runtime_sdk::types::FeatureValue::builder()
                .feature_name(&v.feature_name)
                .set_value_as_string(v.value_as_string.clone())
                .build()
        })
        .collect::<Vec<_>>();
    let stores = config.target_stores.as_ref().map(|list| {
        list.iter()
            .map(|s| match s {
                TargetStore::OnlineStore => runtime_sdk::types::TargetStore::OnlineStore,
                TargetStore::OfflineStore => runtime_sdk::types::TargetStore::OfflineStore,
            })
            .collect::<Vec<_>>()
    });
    let ttl = config.ttl.map(|t| {
        runtime_sdk::types::TtlDuration::builder()
            .unit(match t.unit {
                TtlUnit::Seconds => runtime_sdk::types::TtlDurationUnit::Seconds,
                TtlUnit::Minutes => runtime_sdk::types::TtlDurationUnit::Minutes,
                TtlUnit::Hours => runtime_sdk::types::TtlDurationUnit::Hours,
                TtlUnit::Days => runtime_sdk::types::TtlDurationUnit::Days,
                TtlUnit::Weeks => runtime_sdk::types::TtlDurationUnit::Weeks,
            })
            .value(t.value as i32)
            .build()
    });
    let what = format!("table '{}': PutRecord", table.name);
    let policy = {
        let r = config.retry;
        let b = backoff().with_min_delay(r.initial).with_max_delay(r.max);
        match r.max_attempts {
            None => b,
            Some(n) => b.with_max_times(n),
        }
    };
    let started = Instant::now();
    let result = retry_with(&what, Some(&*metrics), policy, || {
        let call = client
            .put_record()
            .feature_group_name(&config.group)
            .set_record(Some(values.clone()))
            .set_target_stores(stores.clone())
            .set_ttl_duration(ttl.clone());
        async move { call.send().await.map_err(|e| Failure::of(&e)) }
    })
    .await;
    match result {
        Ok(_) => {
            metrics.add_latency(started.elapsed());
            metrics.records.fetch_add(1, Ordering::Relaxed);
            Ok(PutResult::Done)
        }
        Err(Failure::Invalid(reason)) => Ok(PutResult::Rejected(record.id, reason)),
        Err(Failure::NotFound(_)) => Err(Error::connector(format!(
            "table '{}': feature group '{}' does not exist (PutRecord)",
            table.name, config.group
        ))),
        Err(other) => Err(Error::connector(format!(
            "table '{}': PutRecord to feature group '{}' failed: {}",
            table.name,
            config.group,
            other.describe()
        ))),
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
