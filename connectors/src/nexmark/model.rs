//! The fields of Nexmark's persons, auctions and bids, drawn as Flink's Nexmark generator
//! draws them (the same lists, lengths, ratios and order of random calls), and appended
//! straight to Arrow column builders.
//!
//! Like Flink's generator, a bid's URL comes from four "hot" URLs and a cache of 10,000
//! channel URLs, and every `extra` field is a slice of one random 1 MiB string; these are
//! made once per table from its seed.

use std::fmt::Write;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};

use super::generator::{Split, FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID};
use super::random::SplittableRandom;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const CHANNELS: usize = 10_000;
const NUM_CATEGORIES: i32 = 5;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const MIN_STRING_LENGTH: i32 = 3;
const EXTRA_STRING_BYTES: usize = 1 << 20;

/// What every generator of a table shares: the long string `extra` fields are cut from,
/// the hot URLs and the channels with their URLs.
pub struct Shared {
    extra: String,
    hot_urls: [String; 4],
    channels: Vec<(String, String)>,
}

impl Shared {
    pub fn new(seed: u64) -> Self {
        let mut random = SplittableRandom::new(seed ^ 0x5851_f42d_4c95_7f2d);
        let extra = exact_string_by_draws(&mut random, EXTRA_STRING_BYTES);
        let mut random = SplittableRandom::new(seed ^ 0x1405_7b7e_f767_814f);
        let hot_urls = std::array::from_fn(|_| base_url(&mut random));
        let channels = (0..CHANNELS)
            .map(|i| {
                let mut url = base_url(&mut random);
                if random.next_int_bounded(10) > 0 {
                    let id = (i as i32).reverse_bits().wrapping_abs();
                    let _ = write!(url, "&channel_id={id}");
                }
                (format!("channel-{i}"), url)
            })
            .collect();
        Shared {
            extra,
            hot_urls,
            channels,
        }
    }

    /// `nextExactString` once the long string exists: a slice of it (one draw).
    fn exact_string(&self, random: &mut SplittableRandom, length: usize) -> &str {
        if length < self.extra.len() / 2 {
            let offset = random.next_int_bounded((self.extra.len() - length) as i32) as usize;
            &self.extra[offset..offset + length]
        } else {
            ""
        }
    }

    /// `nextExtra`: padding that brings an event to about `average` bytes.
    fn extra(&self, random: &mut SplittableRandom, current: i64, average: i64) -> &str {
        if current > average {
            return "";
        }
        let wanted = average - current;
        // Math.round: half up.
        let delta = (wanted as f64 * 0.2 + 0.5).floor() as i64;
        let min = wanted - delta;
        let size = min
            + if delta == 0 {
                0
            } else {
                i64::from(random.next_int_bounded((2 * delta) as i32))
            };
        self.exact_string(random, size.max(0) as usize)
    }
}

/// `nextExactString` before the long string exists: characters from `nextInt()`, six per
/// draw, with Java's signed `%` (so from 'H' to 'z').
fn exact_string_by_draws(random: &mut SplittableRandom, length: usize) -> String {
    let mut out = String::with_capacity(length);
    let (mut rnd, mut left) = (0i32, 0);
    for _ in 0..length {
        if left == 0 {
            rnd = random.next_int();
            left = 6;
        }
        out.push((i32::from(b'a') + rnd % 26) as u8 as char);
        rnd /= 26;
        left -= 1;
    }
    out
}

/// `nextString(random, max, special)` appended to `out`: 3 to max-1 characters, each the
/// special one with chance 1/13, else a lower-case letter; then trimmed of spaces.
fn push_string(random: &mut SplittableRandom, max: i32, special: char, out: &mut String) {
    let start = out.len();
    let len = MIN_STRING_LENGTH + random.next_int_bounded(max - MIN_STRING_LENGTH);
    for _ in 0..len {
        if random.next_int_bounded(13) == 0 {
            out.push(special);
        } else {
            out.push((b'a' + random.next_int_bounded(26) as u8) as char);
        }
    }
    if special == ' ' {
        let trimmed = out[start..].trim_matches(' ');
        if trimmed.len() != out.len() - start {
            let trimmed = trimmed.to_string();
            out.truncate(start);
            out.push_str(&trimmed);
        }
    }
}

fn base_url(random: &mut SplittableRandom) -> String {
    let mut url = String::from("https://www.nexmark.com/");
    for _ in 0..3 {
        push_string(random, 5, '_', &mut url);
        url.push('/');
    }
    url.push_str("item.htm?query=1");
    url
}

/// `PriceGenerator.nextPrice`: log-uniform from 100 to 100,000,000 (cents).
fn price(random: &mut SplittableRandom) -> i64 {
    (10f64.powf(random.next_double() * 6.0) * 100.0 + 0.5).floor() as i64
}

/// The `person` column's fields.
#[derive(Default)]
pub struct PersonColumns {
    pub id: Int64Builder,
    pub name: StringBuilder,
    pub email: StringBuilder,
    pub credit_card: StringBuilder,
    pub city: StringBuilder,
    pub state: StringBuilder,
    pub date_time: TimestampMillisecondBuilder,
    pub extra: StringBuilder,
}

#[derive(Default)]
pub struct AuctionColumns {
    pub id: Int64Builder,
    pub item_name: StringBuilder,
    pub description: StringBuilder,
    pub initial_bid: Int64Builder,
    pub reserve: Int64Builder,
    pub date_time: TimestampMillisecondBuilder,
    pub expires: TimestampMillisecondBuilder,
    pub seller: Int64Builder,
    pub category: Int64Builder,
    pub extra: StringBuilder,
}

#[derive(Default)]
pub struct BidColumns {
    pub auction: Int64Builder,
    pub bidder: Int64Builder,
    pub price: Int64Builder,
    pub channel: StringBuilder,
    pub url: StringBuilder,
    pub date_time: TimestampMillisecondBuilder,
    pub extra: StringBuilder,
}

fn finish(builders: &mut [&mut dyn ArrayBuilder]) -> Vec<ArrayRef> {
    builders.iter_mut().map(|b| b.finish()).collect()
}

/// Which event is drawn: this generator's `k`-th, its id and its timestamp.
#[derive(Debug, Clone, Copy)]
pub struct EventAt {
    pub k: i64,
    pub id: i64,
    pub timestamp: i64,
}

/// Scratch strings reused from event to event.
#[derive(Default)]
pub struct Scratch {
    a: String,
    b: String,
}

impl PersonColumns {
    /// The fields' arrays, in the ROW's order.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        finish(&mut [
            &mut self.id,
            &mut self.name,
            &mut self.email,
            &mut self.credit_card,
            &mut self.city,
            &mut self.state,
            &mut self.date_time,
            &mut self.extra,
        ])
    }

    /// Draws the person of event `event_id` at `timestamp`, and appends it if `append`
    /// (the draws are made either way, so the events after it stay the same).
    pub fn push(
        &mut self,
        split: &Split,
        shared: &Shared,
        random: &mut SplittableRandom,
        at: EventAt,
        scratch: &mut Scratch,
        append: bool,
    ) {
        let (event_id, timestamp) = (at.id, at.timestamp);
        let id = split.last_base0_person_id(event_id) + FIRST_PERSON_ID;
        let first = FIRST_NAMES[random.next_int_bounded(11) as usize];
        let last = LAST_NAMES[random.next_int_bounded(9) as usize];
        let email = &mut scratch.a;
        email.clear();
        push_string(random, 7, ' ', email);
        email.push('@');
        push_string(random, 5, ' ', email);
        email.push_str(".com");
        let card = &mut scratch.b;
        card.clear();
        for i in 0..4 {
            if i > 0 {
                card.push(' ');
            }
            let _ = write!(card, "{:04}", random.next_int_bounded(10_000));
        }
        let city = US_CITIES[random.next_int_bounded(10) as usize];
        let state = US_STATES[random.next_int_bounded(6) as usize];
        let name_len = first.len() + 1 + last.len();
        let size = 8 + name_len + email.len() + card.len() + city.len() + state.len();
        let extra = shared.extra(random, size as i64, split.config.avg_person_bytes);
        if !append {
            return;
        }
        self.id.append_value(id);
        // Written into the builder's current value, which append_value("") ends.
        let _ = write!(self.name, "{first} {last}");
        self.name.append_value("");
        self.email.append_value(email.as_str());
        self.credit_card.append_value(card.as_str());
        self.city.append_value(city);
        self.state.append_value(state);
        self.date_time.append_value(timestamp);
        self.extra.append_value(extra);
    }

    /// A row of an event of another kind (its values are never read).
    pub fn push_empty(&mut self) {
        self.id.append_value(0);
        for b in [
            &mut self.name,
            &mut self.email,
            &mut self.credit_card,
            &mut self.city,
            &mut self.state,
            &mut self.extra,
        ] {
            b.append_value("");
        }
        self.date_time.append_value(0);
    }
}

impl AuctionColumns {
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        finish(&mut [
            &mut self.id,
            &mut self.item_name,
            &mut self.description,
            &mut self.initial_bid,
            &mut self.reserve,
            &mut self.date_time,
            &mut self.expires,
            &mut self.seller,
            &mut self.category,
            &mut self.extra,
        ])
    }

    /// Draws the auction of event `event_id` (this generator's `k`-th) at `timestamp`, and
    /// appends it if `append`.
    pub fn push(
        &mut self,
        split: &Split,
        shared: &Shared,
        random: &mut SplittableRandom,
        at: EventAt,
        scratch: &mut Scratch,
        append: bool,
    ) {
        let (k, event_id, timestamp) = (at.k, at.id, at.timestamp);
        let config = &split.config;
        let id = split.last_base0_auction_id(event_id) + FIRST_AUCTION_ID;
        let seller = if random.next_int_bounded(config.hot_sellers_ratio) > 0 {
            (split.last_base0_person_id(event_id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            split.next_base0_person_id(event_id, random)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + i64::from(random.next_int_bounded(NUM_CATEGORIES));
        let initial_bid = price(random);
        let expires = timestamp + split.auction_length_ms(k, timestamp, random);
        let name = &mut scratch.a;
        name.clear();
        push_string(random, 20, ' ', name);
        let description = &mut scratch.b;
        description.clear();
        push_string(random, 100, ' ', description);
        let reserve = initial_bid + price(random);
        let size = 8 + name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = shared.extra(random, size as i64, config.avg_auction_bytes);
        if !append {
            return;
        }
        self.id.append_value(id);
        self.item_name.append_value(name.as_str());
        self.description.append_value(description.as_str());
        self.initial_bid.append_value(initial_bid);
        self.reserve.append_value(reserve);
        self.date_time.append_value(timestamp);
        self.expires.append_value(expires);
        self.seller.append_value(seller);
        self.category.append_value(category);
        self.extra.append_value(extra);
    }

    pub fn push_empty(&mut self) {
        for b in [
            &mut self.id,
            &mut self.initial_bid,
            &mut self.reserve,
            &mut self.seller,
            &mut self.category,
        ] {
            b.append_value(0);
        }
        for b in [&mut self.item_name, &mut self.description, &mut self.extra] {
            b.append_value("");
        }
        self.date_time.append_value(0);
        self.expires.append_value(0);
    }
}

impl BidColumns {
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        finish(&mut [
            &mut self.auction,
            &mut self.bidder,
            &mut self.price,
            &mut self.channel,
            &mut self.url,
            &mut self.date_time,
            &mut self.extra,
        ])
    }

    /// Draws the bid of event `event_id` at `timestamp`, and appends it if `append`.
    pub fn push(
        &mut self,
        split: &Split,
        shared: &Shared,
        random: &mut SplittableRandom,
        at: EventAt,
        append: bool,
    ) {
        let (event_id, timestamp) = (at.id, at.timestamp);
        let config = &split.config;
        let auction = if random.next_int_bounded(config.hot_auction_ratio) > 0 {
            (split.last_base0_auction_id(event_id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            split.next_base0_auction_id(event_id, random)
        } + FIRST_AUCTION_ID;
        let bidder = if random.next_int_bounded(config.hot_bidders_ratio) > 0 {
            (split.last_base0_person_id(event_id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            split.next_base0_person_id(event_id, random)
        } + FIRST_PERSON_ID;
        let price = price(random);
        let (channel, url) = if random.next_int_bounded(2) > 0 {
            let i = random.next_int_bounded(4) as usize;
            (HOT_CHANNELS[i], shared.hot_urls[i].as_str())
        } else {
            let (c, u) = &shared.channels[random.next_int_bounded(CHANNELS as i32) as usize];
            (c.as_str(), u.as_str())
        };
        // Flink's generator adds the first person id to the bidder twice.
        let bidder = bidder + FIRST_PERSON_ID;
        let extra = shared.extra(random, 32, config.avg_bid_bytes);
        if !append {
            return;
        }
        self.auction.append_value(auction);
        self.bidder.append_value(bidder);
        self.price.append_value(price);
        self.channel.append_value(channel);
        self.url.append_value(url);
        self.date_time.append_value(timestamp);
        self.extra.append_value(extra);
    }

    pub fn push_empty(&mut self) {
        for b in [&mut self.auction, &mut self.bidder, &mut self.price] {
            b.append_value(0);
        }
        for b in [&mut self.channel, &mut self.url, &mut self.extra] {
            b.append_value("");
        }
        self.date_time.append_value(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_follow_javas_rules() {
        let mut random = SplittableRandom::new(7);
        for _ in 0..1000 {
            let mut s = String::new();
            push_string(&mut random, 7, ' ', &mut s);
            assert!(
                s.len() <= 6 && !s.starts_with(' ') && !s.ends_with(' '),
                "{s:?}"
            );
            assert!(s.chars().all(|c| c == ' ' || c.is_ascii_lowercase()));
        }
        let extra = exact_string_by_draws(&mut random, 10_000);
        assert!(extra.bytes().all(|b| (b'H'..=b'z').contains(&b)));
        assert!(extra.bytes().any(|b| b.is_ascii_uppercase()));
        let url = base_url(&mut random);
        assert!(
            url.starts_with("https://www.nexmark.com/") && url.ends_with("/item.htm?query=1"),
            "{url}"
        );
    }

    #[test]
    fn prices_and_extras_have_flinks_ranges() {
        let shared = Shared::new(1);
        let mut random = SplittableRandom::new(2);
        for _ in 0..10_000 {
            let p = price(&mut random);
            assert!((100..=100_000_000).contains(&p), "{p}");
            // A bid's extra: 100 - 32 = 68 bytes, +/- 20 %: 54 to 81.
            let e = shared.extra(&mut random, 32, 100).len();
            assert!((54..=81).contains(&e), "{e}");
        }
        assert_eq!(shared.channels[1].0, "channel-1");
        assert!(
            shared
                .channels
                .iter()
                .any(|(_, u)| u.ends_with("&channel_id=-2147483648"))
                || !shared.channels[1].1.contains("channel_id")
        );
    }
}
