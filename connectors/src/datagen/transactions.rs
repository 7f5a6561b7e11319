//! Blockchain-style transactions, the input of the example jobs, tests and benchmarks.
//!
//! Each transaction has a `tx_hash` (64 hex digits), a `block` number, a `fee` and an
//! `amount` (rounded to 8 decimals, as on-chain amounts are), a `currency` and an
//! `event_time` in epoch milliseconds. Event time advances at `rate` transactions per
//! second of event time from `start_ms`; each transaction is shifted back by a random
//! delay of up to `disorder_ms`, so the stream is out of order the way Kinesis data with
//! random partition keys is. The same seed always gives the same transactions.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The first four currencies; more keys are named `C000000`, `C000001`, ...
const CURRENCIES: [&str; 4] = ["BTC", "ETH", "SOL", "ADA"];

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Transactions per block.
const BLOCK_SIZE: u64 = 3000;

/// How a stream of transactions is made.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionSpec {
    /// Transactions per second of event time.
    pub rate: f64,
    /// The largest random delay subtracted from a transaction's event time.
    pub disorder_ms: u64,
    /// How many currencies (group keys) appear.
    pub keys: usize,
    pub seed: u64,
    /// Event time of the first transaction, before its delay.
    pub start_ms: i64,
}

impl Default for TransactionSpec {
    fn default() -> Self {
        Self {
            rate: 100.0,
            disorder_ms: 2000,
            keys: 4,
            seed: 42,
            start_ms: 1_700_000_000_000,
        }
    }
}

/// An endless, repeatable sequence of transactions, handed out in batches.
pub struct Transactions {
    spec: TransactionSpec,
    currencies: Vec<String>,
    rng: SmallRng,
    /// Index of the next transaction.
    next: u64,
}

impl Transactions {
    pub fn new(spec: TransactionSpec) -> Self {
        let currencies = (0..spec.keys.max(1))
            .map(|i| match CURRENCIES.get(i) {
                Some(name) => name.to_string(),
                None => format!("C{:06}", i - CURRENCIES.len()),
            })
            .collect();
        Self {
            rng: SmallRng::seed_from_u64(spec.seed),
            spec,
            currencies,
            next: 0,
        }
    }

    /// The columns of every batch.
    pub fn schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        Arc::clone(SCHEMA.get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("tx_hash", DataType::Utf8, false),
                Field::new("block", DataType::Int64, false),
                Field::new("fee", DataType::Float64, false),
                Field::new("amount", DataType::Float64, false),
                Field::new("currency", DataType::Utf8, false),
                Field::new("event_time", DataType::Int64, false),
            ]))
        }))
    }

    /// How many transactions were handed out so far.
    pub fn emitted(&self) -> u64 {
        self.next
    }

    /// The next `rows` transactions.
    pub fn next_batch(&mut self, rows: usize) -> RecordBatch {
        let mut hashes = StringBuilder::with_capacity(rows, rows * 64);
        let mut blocks = Vec::with_capacity(rows);
        let mut fees = Vec::with_capacity(rows);
        let mut amounts = Vec::with_capacity(rows);
        let mut currencies = StringBuilder::with_capacity(rows, rows * 4);
        let mut times = Vec::with_capacity(rows);
        let step_ms = 1000.0 / self.spec.rate;
        let mut hash = [0u8; 64];
        for _ in 0..rows {
            let i = self.next;
            self.next += 1;
            for chunk in hash.chunks_mut(16) {
                let mut bits: u64 = self.rng.random();
                for digit in chunk.iter_mut().rev() {
                    *digit = HEX[(bits & 0xf) as usize];
                    bits >>= 4;
                }
            }
            // Hex digits are ASCII: the bytes are valid UTF-8.
            hashes.append_value(std::str::from_utf8(&hash).unwrap_or_default());
            blocks.push(800_000 + (i / BLOCK_SIZE) as i64);
            fees.push(round8(self.rng.random::<f64>() * 0.001));
            amounts.push(round8(self.rng.random::<f64>() * 5.0));
            let currency = self.rng.random_range(0..self.currencies.len());
            currencies.append_value(&self.currencies[currency]);
            let delay = self.rng.random_range(0..=self.spec.disorder_ms) as i64;
            times.push(self.spec.start_ms + (i as f64 * step_ms) as i64 - delay);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(hashes.finish()),
            Arc::new(Int64Array::from(blocks)),
            Arc::new(Float64Array::from(fees)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(currencies.finish()),
            Arc::new(Int64Array::from(times)),
        ];
        // The columns match the schema by construction.
        RecordBatch::try_new(Self::schema(), columns).expect("transaction columns match")
    }
}

fn round8(x: f64) -> f64 {
    (x * 1e8).round() / 1e8
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_transactions_in_any_batching() {
        let spec = TransactionSpec::default();
        let whole = Transactions::new(spec.clone()).next_batch(1000);
        let mut split = Transactions::new(spec);
        let parts = [split.next_batch(300), split.next_batch(700)];
        let joined = arrow::compute::concat_batches(&Transactions::schema(), &parts).unwrap();
        assert_eq!(whole, joined);
        assert_eq!(split.emitted(), 1000);
    }

    #[test]
    fn event_time_follows_the_rate_within_the_disorder() {
        let spec = TransactionSpec {
            rate: 50.0,
            disorder_ms: 300,
            keys: 6,
            ..TransactionSpec::default()
        };
        let batch = Transactions::new(spec.clone()).next_batch(5000);
        let times = batch.column(5).as_primitive::<Int64Type>();
        let mut late_somewhere = false;
        for (i, t) in times.values().iter().enumerate() {
            let on_time = spec.start_ms + i as i64 * 20;
            assert!((on_time - 300..=on_time).contains(t), "row {i}: {t}");
            late_somewhere |= i > 0 && *t < times.value(i - 1);
        }
        assert!(late_somewhere, "the stream is out of order");
        let currencies = batch.column(4).as_string::<i32>();
        let distinct: std::collections::BTreeSet<&str> = currencies.iter().flatten().collect();
        let expected = ["ADA", "BTC", "C000000", "C000001", "ETH", "SOL"];
        assert_eq!(distinct.into_iter().collect::<Vec<_>>(), expected);
        let hash = batch.column(0).as_string::<i32>().value(0);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let blocks = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!((blocks.value(0), blocks.value(4999)), (800_000, 800_001));
    }
}
