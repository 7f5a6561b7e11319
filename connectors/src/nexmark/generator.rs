//! The Nexmark event sequence as Flink's Nexmark generator makes it: which event number is
//! a person, an auction or a bid, its id, its timestamp, and the ids of the people and
//! auctions it refers to.
//!
//! With parallelism `p` there are `p` generators. Generator `i` numbers its events 1, 2, 3,
//! ... like every other (so all of them walk the same event-time line) and takes the event
//! ids from `1 + i * (max_events / p)` on. An event id modulo the total proportion (1 + 3 +
//! 46 by default) says the kind: below the person proportion a person, then auctions, then
//! bids. Event `n` happens at `base_time + n * delay / 1000` milliseconds, where `delay` is
//! `1e6 / first_event_rate * p` microseconds.

/// Ids of people and auctions start here; categories at 10.
pub const FIRST_PERSON_ID: i64 = 1000;
pub const FIRST_AUCTION_ID: i64 = 1000;
pub const FIRST_CATEGORY_ID: i64 = 10;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;

/// The generator settings of a Nexmark table (Flink's option names in brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkConfig {
    /// `first-event.rate`: events per second of event time, over all generators.
    pub first_event_rate: u64,
    /// `events.num`: events over all generators; 0 = unbounded.
    pub events: u64,
    /// `person.proportion`, `auction.proportion`, `bid.proportion`.
    pub person_proportion: i64,
    pub auction_proportion: i64,
    pub bid_proportion: i64,
    /// `person.avg-size`, `auction.avg-size`, `bid.avg-size` in bytes.
    pub avg_person_bytes: i64,
    pub avg_auction_bytes: i64,
    pub avg_bid_bytes: i64,
    /// `bid.hot-ratio.auctions`, `bid.hot-ratio.bidders`, `auction.hot-ratio.sellers`.
    pub hot_auction_ratio: i32,
    pub hot_bidders_ratio: i32,
    pub hot_sellers_ratio: i32,
    pub num_in_flight_auctions: i64,
    pub num_active_people: i64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        Self {
            first_event_rate: 10_000,
            events: 0,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_auction_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            num_in_flight_auctions: 100,
            num_active_people: 1000,
        }
    }
}

impl NexmarkConfig {
    pub fn total_proportion(&self) -> i64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The events of all generators: `events.num`, or (when 0) as many as Flink allows.
    pub fn max_events(&self) -> i64 {
        if self.events > 0 {
            return i64::try_from(self.events).unwrap_or(i64::MAX);
        }
        let largest = self
            .avg_person_bytes
            .max(self.avg_auction_bytes)
            .max(self.avg_bid_bytes)
            .max(1);
        i64::MAX / (self.total_proportion() * largest)
    }
}

/// The kind of an event, as the `event_type` column has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Person = 0,
    Auction = 1,
    Bid = 2,
}

/// One generator's share of the events and its timeline.
#[derive(Debug, Clone)]
pub struct Split {
    pub config: NexmarkConfig,
    /// The id of this generator's event number 0.
    pub first_event_id: i64,
    /// How many events this generator makes.
    pub max_events: i64,
    pub base_time_ms: i64,
    /// Microseconds of event time between two events of this generator.
    pub delay_us: f64,
}

impl Split {
    /// Generator `index` of `count`, as Flink's `GeneratorConfig.split` makes it.
    pub fn new(config: &NexmarkConfig, index: usize, count: usize, base_time_ms: i64) -> Self {
        let count = count.max(1) as i64;
        let index = index as i64;
        let total = config.max_events();
        let share = total / count;
        let max_events = if index == count - 1 {
            total - share * (count - 1)
        } else {
            share
        };
        Split {
            config: config.clone(),
            first_event_id: 1 + index * share,
            max_events,
            base_time_ms,
            delay_us: 1_000_000.0 / config.first_event_rate.max(1) as f64 * count as f64,
        }
    }

    /// The timestamp of event number `n` (1 for the first).
    pub fn timestamp(&self, n: i64) -> i64 {
        self.base_time_ms + ((n as f64 * self.delay_us) as i64) / 1000
    }

    /// The id of this generator's `k`-th event (0 for the first).
    pub fn event_id(&self, k: i64) -> i64 {
        self.first_event_id + 1 + k
    }

    pub fn kind(&self, event_id: i64) -> Kind {
        let rem = event_id % self.config.total_proportion();
        if rem < self.config.person_proportion {
            Kind::Person
        } else if rem < self.config.person_proportion + self.config.auction_proportion {
            Kind::Auction
        } else {
            Kind::Bid
        }
    }

    /// The last person made at or before `event_id`, counted from 0.
    pub fn last_base0_person_id(&self, event_id: i64) -> i64 {
        let c = &self.config;
        let epoch = event_id / c.total_proportion();
        let mut offset = event_id % c.total_proportion();
        if offset >= c.person_proportion {
            offset = c.person_proportion - 1;
        }
        epoch * c.person_proportion + offset
    }

    /// The last auction made at or before `event_id`, counted from 0 (-1 before the first).
    pub fn last_base0_auction_id(&self, event_id: i64) -> i64 {
        let c = &self.config;
        let mut epoch = event_id / c.total_proportion();
        let mut offset = event_id % c.total_proportion();
        if offset < c.person_proportion {
            epoch -= 1;
            offset = c.auction_proportion - 1;
        } else if offset >= c.person_proportion + c.auction_proportion {
            offset = c.auction_proportion - 1;
        } else {
            offset -= c.person_proportion;
        }
        epoch * c.auction_proportion + offset
    }

    /// A recent person, counted from 0 (one draw).
    pub fn next_base0_person_id(
        &self,
        event_id: i64,
        random: &mut super::random::SplittableRandom,
    ) -> i64 {
        let people = self.last_base0_person_id(event_id) + 1;
        let active = people.min(self.config.num_active_people);
        let n = next_long(random, active + PERSON_ID_LEAD);
        people - active + n
    }

    /// An auction still open, counted from 0 (one draw).
    pub fn next_base0_auction_id(
        &self,
        event_id: i64,
        random: &mut super::random::SplittableRandom,
    ) -> i64 {
        let max = self.last_base0_auction_id(event_id);
        let min = (max - self.config.num_in_flight_auctions).max(0);
        min + next_long(random, max - min + 1 + AUCTION_ID_LEAD)
    }

    /// How long the auction of this generator's `k`-th event, at `timestamp`, lasts: on
    /// average until the auction `num_in_flight_auctions` later is made (one draw).
    pub fn auction_length_ms(
        &self,
        k: i64,
        timestamp: i64,
        random: &mut super::random::SplittableRandom,
    ) -> i64 {
        let c = &self.config;
        let current = 1 + k;
        let events_for_auctions =
            (c.num_in_flight_auctions * c.total_proportion()) / c.auction_proportion;
        let horizon = self.timestamp(current + events_for_auctions) - timestamp;
        1 + next_long(random, (horizon * 2).max(1))
    }
}

/// Java's `LongGenerator.nextLong`: uniform in `[0, n)`.
pub fn next_long(random: &mut super::random::SplittableRandom, n: i64) -> i64 {
    if n < i64::from(i32::MAX) {
        i64::from(random.next_int_bounded(n as i32))
    } else {
        (random.next_long() % n).abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_events_of_one_generator() {
        let split = Split::new(&NexmarkConfig::default(), 0, 1, 0);
        // Event ids 2, 3: auctions; 4..49: bids; 50: a person; 51..53: auctions.
        let kinds: Vec<Kind> = (0..52).map(|k| split.kind(split.event_id(k))).collect();
        assert_eq!(&kinds[..2], [Kind::Auction, Kind::Auction]);
        assert!(kinds[2..48].iter().all(|&k| k == Kind::Bid));
        assert_eq!(kinds[48], Kind::Person);
        assert_eq!(&kinds[49..52], [Kind::Auction; 3]);
        assert_eq!(split.last_base0_auction_id(2) + FIRST_AUCTION_ID, 1001);
        assert_eq!(split.last_base0_auction_id(51) + FIRST_AUCTION_ID, 1003);
        assert_eq!(split.last_base0_person_id(50) + FIRST_PERSON_ID, 1001);
        // 10,000 events a second: one every 100 µs.
        assert_eq!(split.timestamp(1), 0);
        assert_eq!(split.timestamp(10), 1);
        assert_eq!(split.timestamp(10_000), 1000);
    }

    #[test]
    fn generators_share_the_timeline_and_split_the_ids() {
        let config = NexmarkConfig {
            events: 1003,
            first_event_rate: 1000,
            ..NexmarkConfig::default()
        };
        let splits: Vec<Split> = (0..4).map(|i| Split::new(&config, i, 4, 5000)).collect();
        assert_eq!(
            splits.iter().map(|s| s.max_events).collect::<Vec<_>>(),
            [250, 250, 250, 253]
        );
        assert_eq!(
            splits.iter().map(|s| s.first_event_id).collect::<Vec<_>>(),
            [1, 251, 501, 751]
        );
        // 1000 events a second over 4 generators: each makes one every 4 ms.
        assert!(splits.iter().all(|s| s.timestamp(250) == 5000 + 1000));
    }
}
