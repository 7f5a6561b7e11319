//! The datagen source: generated rows at a steady rate.
//!
//! Each parallel instance owns one partition (its index) and produces its share of the rows
//! and of the rate. A sequence column is split into contiguous ranges, one per instance, so
//! over all instances every value appears exactly once. The reader sleeps to stay on its
//! rate and emits batches of up to 8192 rows, smaller at low rates so rows flow steadily.
//!
//! A checkpoint keeps how many rows each instance has emitted. A restore (at the same
//! parallelism) goes on from there: sequences continue after their last value and
//! `number-of-rows` counts what was emitted before; random values are new ones, as in
//! Flink's datagen.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{
    make_array, Array, ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringBuilder, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Fields, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use sluice_engine::connector::{
    Options, SourceConnector, SourceContext, SourceEvent, SourceReader, TableSpec,
};
use sluice_engine::{Error, Result};

use crate::instance_position::{restored, InstancePosition};

use super::config::{DatagenConfig, FieldConfig, FieldKind, RandomOptions};

/// Largest batch, in rows.
const MAX_BATCH: usize = 8192;
/// Longest a `next` call sleeps before answering `Pending`.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// A datagen table.
pub struct DatagenSource {
    table: String,
    schema: SchemaRef,
    config: Arc<DatagenConfig>,
}

impl DatagenSource {
    pub fn new(spec: TableSpec, options: &mut Options) -> Result<Self> {
        if let Some(meta) = spec.metadata.first() {
            return Err(Error::config(format!(
                "table '{}': the datagen connector offers no metadata, but column '{}' asks for '{}'",
                spec.name, meta.name, meta.key
            )));
        }
        let config = DatagenConfig::take(&spec.name, &spec.schema, options)?;
        // Build every generator once so an unsupported type or a bad bound is a plan error.
        for (field, field_config) in spec.schema.fields().iter().zip(&config.fields) {
            Generator::new(field.data_type(), field_config, (0, 1)).map_err(|e| {
                e.context(format!("table '{}': column '{}'", spec.name, field.name()))
            })?;
        }
        Ok(Self {
            table: spec.name,
            schema: spec.schema,
            config: Arc::new(config),
        })
    }
}

impl SourceConnector for DatagenSource {
    fn describe(&self) -> String {
        let rows = match self.config.number_of_rows {
            Some(n) => format!(" number-of-rows={n}"),
            None => String::new(),
        };
        format!(
            "datagen rows-per-second={}{rows}",
            self.config.rows_per_second
        )
    }

    fn bounded(&self) -> bool {
        self.config.bounded()
    }

    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader>> {
        let parallelism = ctx.parallelism.max(1);
        let share = (ctx.instance, parallelism);
        let mut columns = Vec::with_capacity(self.config.fields.len());
        // The rows this instance had emitted at the restored checkpoint (0 on a fresh start).
        let emitted = restored::<Position>(ctx, "datagen", &self.table)?.map_or(0, |p| p.emitted);
        let mut remaining = self
            .config
            .number_of_rows
            .map(|n| split(n, share).1.saturating_sub(emitted));
        for (field, config) in self.schema.fields().iter().zip(&self.config.fields) {
            let mut generator = Generator::new(field.data_type(), config, share).map_err(|e| {
                e.context(format!("table '{}': column '{}'", self.table, field.name()))
            })?;
            if let Generator::Sequence { next, end, .. } = &mut generator {
                *next = (*next).saturating_add_unsigned(emitted).min(*end);
                let len = u64::try_from(i128::from(*end) - i128::from(*next)).unwrap_or(0);
                remaining = Some(remaining.map_or(len, |r| r.min(len)));
            }
            columns.push(Column {
                generator,
                null_rate: config.null_rate,
            });
        }
        let rng = match self.config.seed {
            // Instances must not repeat each other's values: mix the instance into the seed.
            Some(seed) => SmallRng::seed_from_u64(
                seed ^ (ctx.instance as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            None => SmallRng::from_os_rng(),
        };
        Ok(Box::new(DatagenReader {
            schema: self.schema.clone(),
            partition: ctx.instance,
            rate: self.config.rows_per_second / parallelism as f64,
            remaining,
            produced: 0,
            emitted,
            parallelism,
            started: None,
            partition_finished: false,
            columns,
            rng,
        }))
    }
}

/// What a checkpoint keeps of a datagen reader.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    instance: usize,
    parallelism: usize,
    emitted: u64,
}

impl InstancePosition for Position {
    fn instance(&self) -> usize {
        self.instance
    }
    fn parallelism(&self) -> usize {
        self.parallelism
    }
}

/// `(offset, count)` of instance `share.0`'s part when `total` items are split over
/// `share.1` instances into contiguous runs (the first `total % n` runs one longer).
fn split(total: u64, (instance, parallelism): (usize, usize)) -> (u64, u64) {
    let (i, n) = (instance as u64, parallelism as u64);
    let (base, extra) = (total / n, total % n);
    (i * base + i.min(extra), base + u64::from(i < extra))
}

fn now_millis() -> i64 {
    // A clock before 1970 is a broken machine; counting from 0 then is harmless.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One parallel instance.
struct DatagenReader {
    schema: SchemaRef,
    partition: usize,
    /// Rows per second of this instance.
    rate: f64,
    /// Rows still to produce; `None` when unbounded.
    remaining: Option<u64>,
    produced: u64,
    /// Rows emitted since the job first started (restores included).
    emitted: u64,
    parallelism: usize,
    started: Option<Instant>,
    partition_finished: bool,
    columns: Vec<Column>,
    rng: SmallRng,
}

struct Column {
    generator: Generator,
    null_rate: f64,
}

impl SourceReader for DatagenReader {
    fn partitions(&self) -> Vec<usize> {
        vec![self.partition]
    }

    fn next(&mut self, ctx: &SourceContext) -> Result<SourceEvent> {
        if ctx.stopping() {
            return Ok(SourceEvent::Finished);
        }
        if self.remaining == Some(0) {
            if self.partition_finished {
                return Ok(SourceEvent::Finished);
            }
            self.partition_finished = true;
            return Ok(SourceEvent::PartitionFinished(self.partition));
        }
        // The first row of the next batch is due once `produced / rate` seconds have passed.
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = started + Duration::from_secs_f64(self.produced as f64 / self.rate);
        let now = Instant::now();
        if due > now {
            let wait = due - now;
            if wait > MAX_WAIT {
                std::thread::sleep(MAX_WAIT);
                return Ok(SourceEvent::Pending);
            }
            std::thread::sleep(wait);
        }
        // About ten batches a second at low rates, full batches at high ones.
        let mut rows = ((self.rate / 10.0) as usize).clamp(1, MAX_BATCH);
        if let Some(remaining) = self.remaining {
            rows = rows.min(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        let batch = self
            .generate(rows)
            .map_err(|e| Error::internal(format!("datagen: {e}")))?;
        self.produced += rows as u64;
        self.emitted += rows as u64;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= rows as u64;
        }
        Ok(SourceEvent::Batch {
            partition: self.partition,
            batch,
        })
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let position = Position {
            instance: self.partition,
            parallelism: self.parallelism,
            emitted: self.emitted,
        };
        serde_json::to_vec(&position)
            .map(Some)
            .map_err(|e| Error::internal(format!("datagen position: {e}")))
    }
}

impl DatagenReader {
    fn generate(&mut self, rows: usize) -> Result<RecordBatch, ArrowError> {
        let now_ms = now_millis();
        let columns = self
            .columns
            .iter_mut()
            .map(|c| {
                let values = c.generator.generate(&mut self.rng, rows, now_ms)?;
                with_nulls(values, c.null_rate, &mut self.rng)
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// Makes about `rate` of the values NULL.
fn with_nulls(array: ArrayRef, rate: f64, rng: &mut SmallRng) -> Result<ArrayRef, ArrowError> {
    if rate <= 0.0 {
        return Ok(array);
    }
    let valid = NullBuffer::from(
        (0..array.len())
            .map(|_| rng.random::<f64>() >= rate)
            .collect::<Vec<_>>(),
    );
    let nulls = NullBuffer::union(array.nulls(), Some(&valid));
    Ok(make_array(
        array.into_data().into_builder().nulls(nulls).build()?,
    ))
}

/// Makes the values of one column.
enum Generator {
    /// The next value and the end (exclusive) of this instance's range, cast to `data_type`.
    Sequence {
        next: i64,
        end: i64,
        data_type: DataType,
    },
    Integer {
        min: i64,
        max: i64,
        data_type: DataType,
    },
    Float {
        min: f64,
        max: f64,
        data_type: DataType,
    },
    Decimal {
        min: i128,
        max: i128,
        precision: u8,
        scale: i8,
    },
    Boolean,
    String {
        length: usize,
        var_len: bool,
    },
    /// Now minus up to `max_past` milliseconds, in the column's unit and zone.
    Timestamp {
        max_past_ms: i64,
        data_type: DataType,
    },
    Date {
        max_past_days: i64,
    },
    Struct {
        fields: Fields,
        children: Vec<Generator>,
    },
}

impl Generator {
    /// The generator of a column of `data_type`, for instance `share.0` of `share.1`.
    fn new(data_type: &DataType, config: &FieldConfig, share: (usize, usize)) -> Result<Self> {
        let random = match &config.kind {
            FieldKind::Sequence { start, end } => {
                // The span can exceed i64 (start near MIN, end near MAX); count it in i128.
                let total =
                    u64::try_from(i128::from(*end) - i128::from(*start) + 1).unwrap_or(u64::MAX);
                let (offset, count) = split(total, share);
                let next = start.saturating_add_unsigned(offset);
                return Ok(Generator::Sequence {
                    next,
                    end: next.saturating_add_unsigned(count),
                    data_type: data_type.clone(),
                });
            }
            FieldKind::Random(options) => options,
        };
        Ok(match data_type {
            DataType::Boolean => Generator::Boolean,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Generator::String {
                length: random.length,
                var_len: random.var_len,
            },
            t if t.is_integer() => {
                let (type_min, type_max) = integer_range(t);
                let min = bound(random.min.as_deref(), type_min, "min")?;
                let max = bound(random.max.as_deref(), type_max, "max")?;
                check_order(min, max)?;
                Generator::Integer {
                    min,
                    max,
                    data_type: t.clone(),
                }
            }
            t if t.is_floating() => {
                let type_max = if *t == DataType::Float32 {
                    f64::from(f32::MAX)
                } else {
                    f64::MAX
                };
                // Flink's default lower bound is the smallest positive value, i.e. about 0.
                let min = bound(random.min.as_deref(), 0.0, "min")?;
                let max = bound(random.max.as_deref(), type_max, "max")?;
                check_order(min, max)?;
                Generator::Float {
                    min,
                    max,
                    data_type: t.clone(),
                }
            }
            DataType::Decimal128(precision, scale) => {
                let limit = 10_i128.pow(u32::from(*precision)) - 1;
                let min = decimal_bound(random.min.as_deref(), -limit, *scale, "min")?;
                let max = decimal_bound(random.max.as_deref(), limit, *scale, "max")?;
                check_order(min, max)?;
                Generator::Decimal {
                    min,
                    max,
                    precision: *precision,
                    scale: *scale,
                }
            }
            DataType::Timestamp(..) => Generator::Timestamp {
                max_past_ms: random.max_past.as_millis().try_into().unwrap_or(i64::MAX),
                data_type: data_type.clone(),
            },
            DataType::Date32 => Generator::Date {
                max_past_days: (random.max_past.as_secs() / 86_400) as i64,
            },
            DataType::Struct(fields) => {
                let child_config = FieldConfig {
                    kind: FieldKind::Random(RandomOptions::default()),
                    null_rate: 0.0,
                };
                let children = fields
                    .iter()
                    .map(|f| Generator::new(f.data_type(), &child_config, share))
                    .collect::<Result<Vec<_>>>()?;
                Generator::Struct {
                    fields: fields.clone(),
                    children,
                }
            }
            other => {
                return Err(Error::config(format!(
                    "datagen cannot generate values of type {other}"
                )))
            }
        })
    }

    fn generate(
        &mut self,
        rng: &mut SmallRng,
        rows: usize,
        now_ms: i64,
    ) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Generator::Sequence {
                next,
                end,
                data_type,
            } => {
                let first = *next;
                let left = i128::from(*end) - i128::from(first);
                let count = rows.min(usize::try_from(left).unwrap_or(usize::MAX));
                *next += count as i64;
                let values = Int64Array::from_iter_values(first..first + count as i64);
                cast(&values, data_type)?
            }
            Generator::Integer {
                min,
                max,
                data_type,
            } => {
                let values =
                    Int64Array::from_iter_values((0..rows).map(|_| rng.random_range(*min..=*max)));
                cast(&values, data_type)?
            }
            Generator::Float {
                min,
                max,
                data_type,
            } => {
                let values = Float64Array::from_iter_values(
                    (0..rows).map(|_| rng.random_range(*min..=*max)),
                );
                cast(&values, data_type)?
            }
            Generator::Decimal {
                min,
                max,
                precision,
                scale,
            } => Arc::new(
                Decimal128Array::from_iter_values((0..rows).map(|_| rng.random_range(*min..=*max)))
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            Generator::Boolean => Arc::new(BooleanArray::from_iter(
                (0..rows).map(|_| Some(rng.random::<bool>())),
            )),
            Generator::String { length, var_len } => {
                let mut builder = StringBuilder::with_capacity(rows, rows * *length);
                let mut text = String::with_capacity(*length);
                for _ in 0..rows {
                    let len = if *var_len && *length > 0 {
                        rng.random_range(1..=*length)
                    } else {
                        *length
                    };
                    random_hex(rng, len, &mut text);
                    builder.append_value(&text);
                }
                Arc::new(builder.finish())
            }
            Generator::Timestamp {
                max_past_ms,
                data_type,
            } => {
                let (multiply, divide) = match data_type {
                    DataType::Timestamp(TimeUnit::Second, _) => (1, 1_000),
                    DataType::Timestamp(TimeUnit::Microsecond, _) => (1_000, 1),
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => (1_000_000, 1),
                    _ => (1, 1),
                };
                let values = Int64Array::from_iter_values((0..rows).map(|_| {
                    let ms = now_ms - rng.random_range(0..=*max_past_ms);
                    ms.saturating_mul(multiply).div_euclid(divide)
                }));
                cast(&values, data_type)?
            }
            Generator::Date { max_past_days } => {
                let today = now_ms.div_euclid(86_400_000) as i32;
                let days = Int32Array::from_iter_values(
                    (0..rows).map(|_| today - rng.random_range(0..=*max_past_days) as i32),
                );
                cast(&days, &DataType::Date32)?
            }
            Generator::Struct { fields, children } => {
                let columns = children
                    .iter_mut()
                    .map(|c| c.generate(rng, rows, now_ms))
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new(fields.clone(), columns, None)?)
            }
        })
    }
}

/// Fills `out` with `len` random hexadecimal digits (Flink's random strings are hex too).
fn random_hex(rng: &mut SmallRng, len: usize, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    while out.len() < len {
        let mut bits = rng.next_u64();
        for _ in 0..16.min(len - out.len()) {
            out.push(DIGITS[(bits & 15) as usize] as char);
            bits >>= 4;
        }
    }
}

fn integer_range(data_type: &DataType) -> (i64, i64) {
    match data_type {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    }
}

fn bound<T: std::str::FromStr>(text: Option<&str>, default: T, key: &str) -> Result<T> {
    match text {
        None => Ok(default),
        Some(t) => t.trim().parse().map_err(|_| {
            Error::config(format!(
                "option '{key}' = '{t}' is not a number of the column's type"
            ))
        }),
    }
}

/// A decimal bound as an unscaled integer: `1.5` at scale 2 is 150.
fn decimal_bound(text: Option<&str>, default: i128, scale: i8, key: &str) -> Result<i128> {
    let Some(text) = text else {
        return Ok(default);
    };
    let invalid = || Error::config(format!("option '{key}' = '{text}' is not a decimal number"));
    let value = arrow::compute::cast(
        &(Arc::new(arrow::array::StringArray::from(vec![text.trim()])) as ArrayRef),
        &DataType::Decimal128(38, scale),
    )
    .map_err(|_| invalid())?;
    let decimals = value
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .ok_or_else(invalid)?;
    if decimals.is_null(0) {
        return Err(invalid());
    }
    Ok(decimals.value(0))
}

fn check_order<T: PartialOrd + std::fmt::Display>(min: T, max: T) -> Result<()> {
    if min > max {
        return Err(Error::config(format!(
            "min ({min}) is more than max ({max})"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
