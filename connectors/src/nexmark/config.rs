//! The options of a `nexmark` table (Flink's Nexmark connector's names and defaults), and
//! the columns it produces.

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use super::generator::NexmarkConfig;
use crate::option_values::{parse_memory_size, parse_number};

/// A table's options.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkOptions {
    pub generator: NexmarkConfig,
    /// `max-emit-speed` (true): emit as fast as possible; false: at the event rate.
    pub max_emit_speed: bool,
    /// `keep-alive` (false): stay running, idle, after the last event.
    pub keep_alive: bool,
    /// `seed` (Sluice's addition; random when absent): makes the events repeatable.
    pub seed: Option<u64>,
    /// `base-time` (Sluice's addition, epoch milliseconds; the job's start when absent):
    /// the time of the first event.
    pub base_time_ms: Option<i64>,
}

impl NexmarkOptions {
    pub fn take(options: &mut Options) -> Result<Self> {
        let mut g = NexmarkConfig::default();
        let positive = |v: &str| -> std::result::Result<u64, String> {
            match parse_number::<u64>(v)? {
                0 => Err("expected a number above 0".into()),
                n => Ok(n),
            }
        };
        if let Some(rate) = options.take_parsed("first-event.rate", positive)? {
            g.first_event_rate = rate;
        }
        // Read by Flink's connector but not by its generator.
        options.take(&["next-event.rate"]);
        options.take(&["rate.shape"]);
        options.take(&["rate.period"]);
        options.take(&["rate.limited"]);
        if let Some(n) = options.take_parsed("events.num", parse_number::<u64>)? {
            g.events = n;
        }
        let proportion = |v: &str| -> std::result::Result<i64, String> {
            let n: i64 = parse_number(v)?;
            if (0..=1_000_000).contains(&n) {
                Ok(n)
            } else {
                Err("expected 0 to 1000000".into())
            }
        };
        for (key, slot) in [
            ("person.proportion", &mut g.person_proportion),
            ("auction.proportion", &mut g.auction_proportion),
            ("bid.proportion", &mut g.bid_proportion),
        ] {
            if let Some(n) = options.take_parsed(key, proportion)? {
                *slot = n;
            }
        }
        if g.total_proportion() == 0 {
            return Err(Error::config(format!(
                "table '{}': the proportions of persons, auctions and bids are all 0",
                options.table()
            ))
            .for_option("bid.proportion"));
        }
        if g.auction_proportion == 0 {
            // Flink divides by it when it sets an auction's end.
            return Err(Error::config(format!(
                "table '{}': option 'auction.proportion' must be above 0",
                options.table()
            ))
            .for_option("auction.proportion"));
        }
        let size = |v: &str| -> std::result::Result<i64, String> {
            i64::try_from(parse_memory_size(v)?).map_err(|_| "too large".to_string())
        };
        for (key, slot) in [
            ("person.avg-size", &mut g.avg_person_bytes),
            ("auction.avg-size", &mut g.avg_auction_bytes),
            ("bid.avg-size", &mut g.avg_bid_bytes),
        ] {
            if let Some(n) = options.take_parsed(key, size)? {
                *slot = n;
            }
        }
        let ratio = |v: &str| -> std::result::Result<i32, String> {
            match parse_number::<i32>(v)? {
                n if n >= 1 => Ok(n),
                _ => Err("expected 1 or more".into()),
            }
        };
        for (key, slot) in [
            ("bid.hot-ratio.auctions", &mut g.hot_auction_ratio),
            ("bid.hot-ratio.bidders", &mut g.hot_bidders_ratio),
            ("auction.hot-ratio.sellers", &mut g.hot_sellers_ratio),
        ] {
            if let Some(n) = options.take_parsed(key, ratio)? {
                *slot = n;
            }
        }
        if let Some(stop) = options.take_parsed("stop-at", parse_number::<i64>)? {
            if stop >= 0 {
                g.events = if g.events == 0 {
                    stop as u64
                } else {
                    g.events.min(stop as u64)
                };
            }
        }
        Ok(NexmarkOptions {
            generator: g,
            max_emit_speed: options.take_bool("max-emit-speed")?.unwrap_or(true),
            keep_alive: options.take_bool("keep-alive")?.unwrap_or(false),
            seed: options.take_parsed("seed", parse_number::<u64>)?,
            base_time_ms: options.take_parsed("base-time", parse_number::<i64>)?,
        })
    }
}

/// The physical columns of Flink's Nexmark table: `event_type INT` and the ROWs `person`,
/// `auction` and `bid`.
pub fn nexmark_schema() -> Schema {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let row = |fields: &[(&str, DataType)]| {
        DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    };
    let (i, s) = (DataType::Int64, DataType::Utf8);
    Schema::new(vec![
        Field::new("event_type", DataType::Int32, true),
        Field::new(
            "person",
            row(&[
                ("id", i.clone()),
                ("name", s.clone()),
                ("emailAddress", s.clone()),
                ("creditCard", s.clone()),
                ("city", s.clone()),
                ("state", s.clone()),
                ("dateTime", ts()),
                ("extra", s.clone()),
            ]),
            true,
        ),
        Field::new(
            "auction",
            row(&[
                ("id", i.clone()),
                ("itemName", s.clone()),
                ("description", s.clone()),
                ("initialBid", i.clone()),
                ("reserve", i.clone()),
                ("dateTime", ts()),
                ("expires", ts()),
                ("seller", i.clone()),
                ("category", i.clone()),
                ("extra", s.clone()),
            ]),
            true,
        ),
        Field::new(
            "bid",
            row(&[
                ("auction", i.clone()),
                ("bidder", i.clone()),
                ("price", i),
                ("channel", s.clone()),
                ("url", s.clone()),
                ("dateTime", ts()),
                ("extra", s),
            ]),
            true,
        ),
    ])
}

/// Checks that a table declares the columns of [`nexmark_schema`] (ROW field names may
/// differ; their types may not).
pub fn check_schema(table: &str, schema: &SchemaRef) -> Result<()> {
    let expected = nexmark_schema();
    let types = |t: &DataType| match t {
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type().clone()).collect(),
        other => vec![other.clone()],
    };
    let fits = schema.fields().len() == expected.fields().len()
        && schema
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(got, want)| {
                got.name().eq_ignore_ascii_case(want.name())
                    && matches!(got.data_type(), DataType::Struct(_))
                        == matches!(want.data_type(), DataType::Struct(_))
                    && types(got.data_type()) == types(want.data_type())
            });
    if fits {
        return Ok(());
    }
    Err(Error::config(format!(
        "table '{table}': the nexmark connector produces the columns of Flink's Nexmark \
         table: event_type INT, person ROW<id BIGINT, name, emailAddress, creditCard, city, \
         state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>, auction ROW<id BIGINT, \
         itemName, description VARCHAR, initialBid, reserve BIGINT, dateTime, expires \
         TIMESTAMP(3), seller, category BIGINT, extra VARCHAR>, bid ROW<auction, bidder, \
         price BIGINT, channel, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>; declare \
         exactly these"
    )))
}
