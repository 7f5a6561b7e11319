//! Card transactions, the input of the fraud feature job (`jobs/fraud_features.sql`).
//!
//! Each transaction has a `card_id` (`card-000042`), an `amount` in cents precision, a
//! `merchant` and an `event_time` in epoch milliseconds. Event time advances at `rate`
//! transactions per second of event time from `start_ms`, each shifted back by a random
//! delay of up to `disorder_ms`. Most transactions are ordinary purchases of a few to a few
//! hundred units on a card drawn from `cards`; one in fifty belongs to one of a few cards
//! being tested by a fraudster: a burst of larger amounts at many merchants within minutes,
//! which is what the per-card features over the last 10 minutes show. The same seed always
//! gives the same transactions.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MERCHANTS: [&str; 12] = [
    "grocer",
    "fuel",
    "pharmacy",
    "bakery",
    "books",
    "cinema",
    "electronics",
    "travel",
    "restaurant",
    "clothing",
    "hardware",
    "online-games",
];

/// How many of the cards are being tested by a fraudster at any time.
const BURST_CARDS: u64 = 8;

/// How a stream of card transactions is made.
#[derive(Debug, Clone, PartialEq)]
pub struct CardSpec {
    /// Transactions per second of event time.
    pub rate: f64,
    /// The largest random delay subtracted from a transaction's event time.
    pub disorder_ms: u64,
    /// How many cards (keys) appear.
    pub cards: u64,
    pub seed: u64,
    /// Event time of the first transaction, before its delay.
    pub start_ms: i64,
}

/// An endless, repeatable sequence of card transactions, handed out in batches.
pub struct CardTransactions {
    spec: CardSpec,
    rng: SmallRng,
    next: u64,
}

impl CardTransactions {
    pub fn new(spec: CardSpec) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(spec.seed),
            spec: CardSpec {
                cards: spec.cards.max(1),
                ..spec
            },
            next: 0,
        }
    }

    /// The columns of every batch.
    pub fn schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        Arc::clone(SCHEMA.get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("card_id", DataType::Utf8, false),
                Field::new("amount", DataType::Float64, false),
                Field::new("merchant", DataType::Utf8, false),
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
        let mut cards = StringBuilder::with_capacity(rows, rows * 11);
        let mut amounts = Vec::with_capacity(rows);
        let mut merchants = StringBuilder::with_capacity(rows, rows * 8);
        let mut times = Vec::with_capacity(rows);
        let step_ms = 1000.0 / self.spec.rate;
        for _ in 0..rows {
            let i = self.next;
            self.next += 1;
            let time = self.spec.start_ms + (i as f64 * step_ms) as i64;
            let (card, amount) = if self.rng.random_range(0..50) == 0 {
                // The cards under attack change every 20 minutes of event time.
                let epoch = (time - self.spec.start_ms).max(0) as u64 / 1_200_000;
                let card = (epoch * 7919 + self.rng.random_range(0..BURST_CARDS)) % self.spec.cards;
                (card, 200.0 + self.rng.random::<f64>() * 1800.0)
            } else {
                let card = self.rng.random_range(0..self.spec.cards);
                // Mostly small purchases, now and then a larger one.
                let base: f64 = self.rng.random::<f64>();
                (card, 2.0 + base * base * 250.0)
            };
            cards.append_value(format!("card-{card:06}"));
            amounts.push((amount * 100.0).round() / 100.0);
            merchants.append_value(MERCHANTS[self.rng.random_range(0..MERCHANTS.len())]);
            let delay = self.rng.random_range(0..=self.spec.disorder_ms) as i64;
            times.push(time - delay);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(cards.finish()),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(merchants.finish()),
            Arc::new(Int64Array::from(times)),
        ];
        RecordBatch::try_new(Self::schema(), columns).expect("card columns match")
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    use super::*;

    fn spec() -> CardSpec {
        CardSpec {
            rate: 50.0,
            disorder_ms: 2000,
            cards: 1000,
            seed: 7,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_transactions_in_any_batching() {
        let whole = CardTransactions::new(spec()).next_batch(1000);
        let mut parts = CardTransactions::new(spec());
        let (a, b) = (parts.next_batch(300), parts.next_batch(700));
        let joined =
            arrow::compute::concat_batches(&CardTransactions::schema(), &[a, b]).expect("concat");
        assert_eq!(whole, joined);
    }

    #[test]
    fn times_follow_the_rate_within_the_disorder_and_some_cards_burst() {
        let batch = CardTransactions::new(spec()).next_batch(100_000);
        let times = batch.column(3).as_primitive::<Int64Type>();
        for i in 0..times.len() {
            let due = 1_700_000_000_000 + i as i64 * 20;
            assert!((due - 2000..=due).contains(&times.value(i)), "row {i}");
        }
        let amounts = batch.column(1).as_primitive::<Float64Type>();
        assert!(amounts.values().iter().all(|a| *a >= 2.0 && *a <= 2000.0));
        // A burst card has far more transactions than the 98 an ordinary card averages.
        let cards = batch.column(0).as_string::<i32>();
        let mut counts = std::collections::HashMap::new();
        for i in 0..cards.len() {
            *counts.entry(cards.value(i)).or_insert(0u32) += 1;
        }
        assert!(counts.values().any(|&n| n > 180), "no card bursts");
    }
}
