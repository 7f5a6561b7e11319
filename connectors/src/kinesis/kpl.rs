//! KPL aggregated records: many user records packed into one Kinesis record.
//!
//! The Kinesis Producer Library writes a record as the magic bytes `F3 89 9A C2`, then a
//! protobuf `AggregatedRecord`, then the MD5 digest of that protobuf. A record that does not
//! start with the magic bytes is an ordinary record. One that does, but whose digest or
//! protobuf is wrong, is corrupt: the caller counts it as malformed.

use md5::{Digest, Md5};
use prost::Message;

/// The first bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

const DIGEST_LEN: usize = 16;

/// `message AggregatedRecord` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

/// `message Record`.
#[derive(Clone, PartialEq, Message)]
struct Record {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

/// `message Tag`.
#[derive(Clone, PartialEq, Message)]
struct Tag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// One user record taken out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Whether `data` is in the aggregated format.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() > MAGIC.len() + DIGEST_LEN && data.starts_with(&MAGIC)
}

/// The user records of an aggregated record, or why it is corrupt.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord>, String> {
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return Err("KPL aggregated record: the MD5 digest does not match".into());
    }
    let aggregate = AggregatedRecord::decode(body)
        .map_err(|e| format!("KPL aggregated record: bad protobuf: {e}"))?;
    aggregate
        .records
        .into_iter()
        .map(|r| {
            let key = usize::try_from(r.partition_key_index)
                .ok()
                .and_then(|i| aggregate.partition_key_table.get(i))
                .ok_or_else(|| {
                    format!(
                        "KPL aggregated record: partition key index {} is out of range",
                        r.partition_key_index
                    )
                })?;
            Ok(UserRecord {
                partition_key: key.clone(),
                data: r.data,
            })
        })
        .collect()
}

/// Packs user records the way the KPL does (for tests and the producer tool).
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let mut packed = Vec::with_capacity(records.len());
    for r in records {
        let index = match keys.iter().position(|k| *k == r.partition_key) {
            Some(i) => i,
            None => {
                keys.push(r.partition_key.clone());
                keys.len() - 1
            }
        };
        packed.push(Record {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: r.data.clone(),
            tags: vec![],
        });
    }
    let body = AggregatedRecord {
        partition_key_table: keys,
        explicit_hash_key_table: vec![],
        records: packed,
    }
    .encode_to_vec();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(Md5::digest(&body).as_slice());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str, data: &str) -> UserRecord {
        UserRecord {
            partition_key: key.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let records = vec![
            user("a", "{\"x\":1}"),
            user("b", "{\"x\":2}"),
            user("a", "3"),
        ];
        let packed = aggregate(&records);
        assert!(is_aggregated(&packed));
        assert_eq!(deaggregate(&packed).unwrap(), records);
        assert!(!is_aggregated(b"{\"x\":1}"));
    }

    #[test]
    fn corrupt_aggregates_are_reported() {
        let mut packed = aggregate(&[user("a", "hello")]);
        let middle = packed.len() / 2;
        packed[middle] ^= 0xFF;
        assert!(deaggregate(&packed).unwrap_err().contains("MD5"));
        // A valid digest over a body that is not a protobuf.
        let body = b"\xFF\xFF\xFF\xFF\xFF".to_vec();
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(Md5::digest(&body).as_slice());
        assert!(deaggregate(&bad).unwrap_err().contains("protobuf"));
    }
}
