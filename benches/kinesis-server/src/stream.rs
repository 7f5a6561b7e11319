//! The benchmark's stream: payloads spread over shards as Kinesis spreads them, each record
//! serialised once, up front, into the JSON object a GetRecords response carries.
//!
//! Kinesis puts a record in the shard whose hash key range holds the MD5 of its partition
//! key (read as a 128-bit big-endian number); shards split the range evenly when a stream is
//! created. Sequence numbers are decimal strings of 56 digits that grow within a shard.
//! Arrival times are as if each shard had been written at a steady rate that ended when the
//! stream was built.

use base64::Engine;
use md5::{Digest, Md5};
use sluice_connectors::kinesis::kpl::{aggregate, UserRecord};

/// One record as GetRecords returns it.
pub struct Entry {
    /// `{"SequenceNumber":..,"ApproximateArrivalTimestamp":..,"Data":..,"PartitionKey":..}`
    pub json: Vec<u8>,
    /// Bytes of the record's data (before base64): what Kinesis counts against limits.
    pub data_bytes: usize,
    pub arrival_ms: i64,
}

pub struct Shard {
    pub id: String,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
    pub records: Vec<Entry>,
}

pub struct Stream {
    pub name: String,
    pub created_ms: i64,
    pub shards: Vec<Shard>,
    /// User records (payloads) in the stream, counting each one inside an aggregate.
    pub user_records: u64,
    /// Bytes of user payload in the stream.
    pub user_bytes: u64,
}

/// How the stream is built.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub name: String,
    pub shards: usize,
    /// JSON payloads shorter than this get a `"memo"` field that pads them to it.
    pub record_bytes: usize,
    /// Pack this many user records of a shard into each record, as the KPL does.
    pub kpl: Option<usize>,
    /// The rate at which each shard was written, for arrival times (bytes per second).
    pub write_rate: u64,
}

/// `payload` padded with a `"memo"` field to about `bytes` bytes, if it is a JSON object
/// shorter than that.
pub fn pad(payload: &[u8], bytes: usize) -> Vec<u8> {
    let trimmed = payload.trim_ascii_end();
    const FIELD: &[u8] = b",\"memo\":\"";
    let room = bytes.saturating_sub(trimmed.len() + FIELD.len() + 1);
    if room == 0 || trimmed.last() != Some(&b'}') {
        return trimmed.to_vec();
    }
    let mut out = Vec::with_capacity(bytes);
    out.extend_from_slice(&trimmed[..trimmed.len() - 1]);
    out.extend_from_slice(FIELD);
    out.extend((0..room).map(|i| b'a' + (i % 26) as u8));
    out.extend_from_slice(b"\"}");
    out
}

/// Where each of `shards` evenly split shards' hash key range starts: shard `i` starts at
/// floor(i * 2^128 / shards), as Kinesis splits a new stream.
pub fn hash_range_starts(shards: usize) -> Vec<u128> {
    let n = shards.max(1) as u128;
    if n == 1 {
        return vec![0];
    }
    // 2^128 = quotient * n + remainder, computed without overflowing.
    let (mut quotient, mut remainder) = (u128::MAX / n, u128::MAX % n + 1);
    if remainder == n {
        quotient += 1;
        remainder = 0;
    }
    (0..n).map(|i| i * quotient + i * remainder / n).collect()
}

/// The shard whose hash key range holds the MD5 of `partition_key`.
pub fn shard_of(partition_key: &str, starts: &[u128]) -> usize {
    let hash = u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into());
    starts.partition_point(|&s| s <= hash) - 1
}

/// The sequence number of record `position` of shard `shard`.
pub fn sequence_number(shard: usize, position: usize) -> String {
    format!("49{shard:06}{position:048}")
}

/// The position a sequence number of this server names, if it is one.
pub fn position_of(sequence_number: &str) -> Option<(usize, usize)> {
    if sequence_number.len() != 56 || !sequence_number.starts_with("49") {
        return None;
    }
    let shard = sequence_number[2..8].parse().ok()?;
    let position = sequence_number[8..].parse().ok()?;
    Some((shard, position))
}

impl Stream {
    /// Spreads `payloads` (each padded to the configured size) over the shards by a
    /// partition key of its own (its number in the input), packing them into KPL
    /// aggregates if asked.
    pub fn build(
        config: &StreamConfig,
        payloads: impl Iterator<Item = Vec<u8>>,
        now_ms: i64,
    ) -> Self {
        let n = config.shards.max(1);
        let starts = hash_range_starts(n);
        let mut per_shard: Vec<Vec<UserRecord>> = (0..n).map(|_| Vec::new()).collect();
        let (mut user_records, mut user_bytes) = (0u64, 0u64);
        for (i, payload) in payloads.enumerate() {
            let partition_key = i.to_string();
            let data = pad(&payload, config.record_bytes);
            user_records += 1;
            user_bytes += data.len() as u64;
            per_shard[shard_of(&partition_key, &starts)].push(UserRecord {
                partition_key,
                data,
            });
        }
        let shards = per_shard
            .into_iter()
            .enumerate()
            .map(|(s, users)| {
                let records: Vec<UserRecord> = match config.kpl {
                    Some(k) if k > 1 => users
                        .chunks(k)
                        .map(|group| UserRecord {
                            partition_key: group[0].partition_key.clone(),
                            data: aggregate(group),
                        })
                        .collect(),
                    _ => users,
                };
                Shard {
                    id: format!("shardId-{s:012}"),
                    starting_hash_key: starts[s],
                    ending_hash_key: starts.get(s + 1).map_or(u128::MAX, |next| next - 1),
                    records: entries(s, &records, now_ms, config.write_rate),
                }
            })
            .collect();
        Stream {
            name: config.name.clone(),
            created_ms: now_ms,
            shards,
            user_records,
            user_bytes,
        }
    }
}

/// The GetRecords objects of a shard's records, the last arriving at `end_ms`.
fn entries(shard: usize, records: &[UserRecord], end_ms: i64, write_rate: u64) -> Vec<Entry> {
    let total: u64 = records.iter().map(|r| r.data.len() as u64).sum();
    let mut written = 0u64;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            written += r.data.len() as u64;
            let arrival_ms = end_ms - ((total - written) * 1000 / write_rate.max(1)) as i64;
            let data = base64::engine::general_purpose::STANDARD.encode(&r.data);
            let json = format!(
                r#"{{"SequenceNumber":"{}","ApproximateArrivalTimestamp":{}.{:03},"Data":"{}","PartitionKey":"{}"}}"#,
                sequence_number(shard, i),
                arrival_ms.div_euclid(1000),
                arrival_ms.rem_euclid(1000),
                data,
                r.partition_key
            );
            Entry {
                json: json.into_bytes(),
                data_bytes: r.data.len(),
                arrival_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connectors::kinesis::kpl::deaggregate;

    fn config(shards: usize, kpl: Option<usize>) -> StreamConfig {
        StreamConfig {
            name: "s".into(),
            shards,
            record_bytes: 100,
            kpl,
            write_rate: 1000,
        }
    }

    #[test]
    fn payloads_are_padded_to_size_as_json() {
        let padded = pad(br#"{"a":1}"#, 40);
        assert_eq!(padded.len(), 40);
        let value: serde_json::Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(value["a"], 1);
        assert_eq!(pad(br#"{"a":1}"#, 5), br#"{"a":1}"#);
        assert_eq!(pad(b"not json\n", 40), b"not json");
    }

    #[test]
    fn records_spread_by_key_hash_in_order_with_growing_sequence_numbers() {
        let payloads = (0..1000).map(|i| format!(r#"{{"i":{i}}}"#).into_bytes());
        let stream = Stream::build(&config(4, None), payloads, 1_000_000);
        assert_eq!(stream.user_records, 1000);
        let counts: Vec<usize> = stream.shards.iter().map(|s| s.records.len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 1000);
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
        for (s, shard) in stream.shards.iter().enumerate() {
            assert_eq!(shard.records.last().unwrap().arrival_ms, 1_000_000);
            let seqs: Vec<String> = (0..shard.records.len())
                .map(|p| sequence_number(s, p))
                .collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(position_of(&seqs[3]), Some((s, 3)));
        }
        assert_eq!(stream.shards[0].starting_hash_key, 0);
        assert_eq!(stream.shards[3].ending_hash_key, u128::MAX);
        assert_eq!(
            stream.shards[1].starting_hash_key,
            stream.shards[0].ending_hash_key + 1
        );
        // Kinesis's ranges for two and four shards.
        assert_eq!(hash_range_starts(2), [0, 1 << 127]);
        assert_eq!(hash_range_starts(4), [0, 1 << 126, 2 << 126, 3 << 126]);
        assert_eq!(shard_of("0", &hash_range_starts(2)), 1); // MD5 cfcd2084...
    }

    #[test]
    fn kpl_streams_pack_user_records() {
        let payloads = (0..100).map(|i| format!(r#"{{"i":{i}}}"#).into_bytes());
        let stream = Stream::build(&config(1, Some(10)), payloads, 0);
        assert_eq!(stream.shards[0].records.len(), 10);
        let json: serde_json::Value =
            serde_json::from_slice(&stream.shards[0].records[0].json).unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(json["Data"].as_str().unwrap())
            .unwrap();
        let users = deaggregate(&data).unwrap();
        assert_eq!(users.len(), 10);
        assert!(users[0].data.starts_with(br#"{"i":0,"memo":""#));
    }
}
