//! Kinesis's read API over HTTP (the AWS JSON 1.1 protocol: `POST /` with the operation in
//! `X-Amz-Target`), answering ListShards, GetShardIterator, GetRecords and
//! DescribeStreamSummary from the in-memory stream with the service's JSON shapes, errors
//! and read limits; and `GET /stats`, what the benchmark reads back after a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use crate::pacing::{Pacing, Refusal, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL};
use crate::stream::{position_of, Stream};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
/// Kinesis's shard iterators expire after five minutes.
const ITERATOR_LIFETIME_MS: i64 = 300_000;

/// What the server has done, for `GET /stats`.
#[derive(Default)]
struct Stats {
    get_records: AtomicU64,
    records_served: AtomicU64,
    data_bytes_served: AtomicU64,
    refused_calls: AtomicU64,
    refused_bytes: AtomicU64,
}

pub struct Server {
    stream: Stream,
    /// CPU time used to build the stream, before serving began.
    cpu_at_start: f64,
    pacing: Vec<Mutex<Pacing>>,
    stats: Stats,
}

/// An error as Kinesis sends it: HTTP 400 with the error's type and message.
struct ApiError(&'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.0, "message": self.1}).to_string();
        let mut response = (StatusCode::BAD_REQUEST, body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(kind) = HeaderValue::from_str(self.0) {
            headers.insert("x-amzn-errortype", kind);
        }
        response
    }
}

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ok(body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError("InvalidArgumentException", message.into())
}

impl Server {
    pub fn new(stream: Stream) -> Arc<Self> {
        let pacing = stream.shards.iter().map(|_| Mutex::default()).collect();
        Arc::new(Server {
            stream,
            cpu_at_start: cpu_seconds(),
            pacing,
            stats: Stats::default(),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", post(handle))
            .route("/stats", get(stats))
            .with_state(self.clone())
    }

    fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{}",
            self.stream.name
        )
    }

    /// Checks that a request names this server's stream (by name or ARN).
    fn check_stream(&self, request: &Value) -> Result<(), ApiError> {
        let named = request["StreamName"].as_str().map(str::to_string);
        let by_arn = request["StreamARN"]
            .as_str()
            .and_then(|a| a.rsplit_once("stream/").map(|(_, n)| n.to_string()));
        match named.or(by_arn) {
            Some(n) if n == self.stream.name => Ok(()),
            Some(n) => Err(ApiError(
                "ResourceNotFoundException",
                format!("Stream {n} under account {ACCOUNT} not found."),
            )),
            None => Err(invalid(
                "Either StreamName or StreamARN should be provided.",
            )),
        }
    }

    fn shard_index(&self, id: &str) -> Result<usize, ApiError> {
        self.stream
            .shards
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| {
                ApiError(
                    "ResourceNotFoundException",
                    format!(
                        "Shard {id} in stream {} under account {ACCOUNT} does not exist",
                        self.stream.name
                    ),
                )
            })
    }

    fn list_shards(&self, request: &Value) -> Result<Response, ApiError> {
        let start: usize = match request["NextToken"].as_str() {
            Some(token) => decode_token(token)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| invalid("NextToken is invalid"))?,
            None => {
                self.check_stream(request)?;
                0
            }
        };
        let max = request["MaxResults"]
            .as_u64()
            .unwrap_or(1000)
            .clamp(1, 10_000) as usize;
        let end = (start + max).min(self.stream.shards.len());
        let shards: Vec<Value> = self.stream.shards[start.min(end)..end]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "ShardId": s.id,
                    "HashKeyRange": {
                        "StartingHashKey": s.starting_hash_key.to_string(),
                        "EndingHashKey": s.ending_hash_key.to_string(),
                    },
                    "SequenceNumberRange": {
                        "StartingSequenceNumber": crate::stream::sequence_number(start + i, 0),
                    },
                })
            })
            .collect();
        let mut body = json!({ "Shards": shards });
        if end < self.stream.shards.len() {
            body["NextToken"] = json!(encode_token(&end.to_string()));
        }
        Ok(ok(body.to_string().into_bytes()))
    }

    fn get_shard_iterator(&self, request: &Value) -> Result<Response, ApiError> {
        self.check_stream(request)?;
        let shard_id = request["ShardId"]
            .as_str()
            .ok_or_else(|| invalid("ShardId is required"))?;
        let shard = self.shard_index(shard_id)?;
        let records = &self.stream.shards[shard].records;
        let sequence = || {
            request["StartingSequenceNumber"]
                .as_str()
                .and_then(position_of)
                .filter(|&(s, _)| s == shard)
                .map(|(_, p)| p)
                .ok_or_else(|| invalid("StartingSequenceNumber is missing or not of this shard"))
        };
        let position = match request["ShardIteratorType"].as_str() {
            Some("TRIM_HORIZON") => 0,
            Some("LATEST") => records.len(),
            Some("AT_SEQUENCE_NUMBER") => sequence()?,
            Some("AFTER_SEQUENCE_NUMBER") => sequence()? + 1,
            Some("AT_TIMESTAMP") => {
                let at = request["Timestamp"]
                    .as_f64()
                    .ok_or_else(|| invalid("Timestamp is required for AT_TIMESTAMP"))?;
                let at_ms = (at * 1000.0).round() as i64;
                records.partition_point(|r| r.arrival_ms < at_ms)
            }
            _ => return Err(invalid("ShardIteratorType is missing or unknown")),
        };
        let iterator = iterator(shard, position.min(records.len()));
        Ok(ok(json!({ "ShardIterator": iterator })
            .to_string()
            .into_bytes()))
    }

    fn get_records(&self, request: &Value) -> Result<Response, ApiError> {
        let (shard, position, issued_ms) = request["ShardIterator"]
            .as_str()
            .and_then(parse_iterator)
            .filter(|&(s, _, _)| s < self.stream.shards.len())
            .ok_or_else(|| invalid("ShardIterator is invalid"))?;
        let limit = match request.get("Limit") {
            None | Some(Value::Null) => MAX_RECORDS_PER_CALL,
            Some(v) => match v.as_u64() {
                Some(n @ 1..=10_000) => n as usize,
                _ => return Err(invalid("Limit must be between 1 and 10000")),
            },
        };
        let now = now_ms();
        if now - issued_ms > ITERATOR_LIFETIME_MS {
            return Err(ApiError(
                "ExpiredIteratorException",
                format!("Iterator expired. The iterator was created at time {issued_ms} while right now it is {now} which is further in the future than the tolerated delay of {ITERATOR_LIFETIME_MS} milliseconds."),
            ));
        }
        let shard_data = &self.stream.shards[shard];
        let mut pacing = self.pacing[shard].lock().unwrap_or_else(|e| e.into_inner());
        let instant = Instant::now();
        if let Err(refusal) = pacing.admit(instant) {
            let counter = match refusal {
                Refusal::Calls => &self.stats.refused_calls,
                Refusal::Bytes => &self.stats.refused_bytes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError(
                "ProvisionedThroughputExceededException",
                format!(
                    "Rate exceeded for shard {} in stream {} under account {ACCOUNT}.",
                    shard_data.id, self.stream.name
                ),
            ));
        }
        let available = &shard_data.records[position.min(shard_data.records.len())..];
        let (mut count, mut data_bytes, mut json_bytes) = (0, 0, 0);
        for entry in available.iter().take(limit) {
            if count > 0 && data_bytes + entry.data_bytes > MAX_BYTES_PER_CALL {
                break;
            }
            count += 1;
            data_bytes += entry.data_bytes;
            json_bytes += entry.json.len() + 1;
        }
        pacing.charge(instant, data_bytes);
        drop(pacing);
        let next = position + count;
        let behind = if next >= shard_data.records.len() {
            0
        } else {
            (now - available[count].arrival_ms).max(0)
        };
        let mut body = Vec::with_capacity(json_bytes + 200);
        body.extend_from_slice(b"{\"Records\":[");
        for (i, entry) in available[..count].iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&entry.json);
        }
        body.extend_from_slice(
            format!(
                "],\"NextShardIterator\":\"{}\",\"MillisBehindLatest\":{behind}}}",
                iterator(shard, next)
            )
            .as_bytes(),
        );
        self.stats.get_records.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records_served
            .fetch_add(count as u64, Ordering::Relaxed);
        self.stats
            .data_bytes_served
            .fetch_add(data_bytes as u64, Ordering::Relaxed);
        Ok(ok(body))
    }

    fn describe_stream_summary(&self, request: &Value) -> Result<Response, ApiError> {
        self.check_stream(request)?;
        let body = json!({
            "StreamDescriptionSummary": {
                "StreamName": self.stream.name,
                "StreamARN": self.arn(),
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": self.stream.created_ms as f64 / 1000.0,
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
                "OpenShardCount": self.stream.shards.len(),
            }
        });
        Ok(ok(body.to_string().into_bytes()))
    }

    /// `GET /stats`: calls, records and bytes served, refusals by limit, the shortest gap
    /// between two calls on one shard, and the server's own CPU time since it began serving.
    pub fn stats_json(&self) -> Value {
        let min_gap = self
            .pacing
            .iter()
            .filter_map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).min_gap)
            .min()
            .unwrap_or(Duration::ZERO);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "shards": self.stream.shards.len(),
            "stream_user_records": self.stream.user_records,
            "stream_user_bytes": self.stream.user_bytes,
            "stream_records": self.stream.shards.iter().map(|s| s.records.len()).sum::<usize>(),
            "get_records_calls": load(&self.stats.get_records),
            "records_served": load(&self.stats.records_served),
            "data_bytes_served": load(&self.stats.data_bytes_served),
            "refused_calls_limit": load(&self.stats.refused_calls),
            "refused_bytes_limit": load(&self.stats.refused_bytes),
            "min_gap_ms": min_gap.as_secs_f64() * 1000.0,
            "cpu_seconds": cpu_seconds() - self.cpu_at_start,
        })
    }
}

async fn handle(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return ApiError("SerializationException", "the body is not JSON".into())
                .into_response()
        }
    };
    let result = match target.strip_prefix("Kinesis_20131202.") {
        Some("ListShards") => server.list_shards(&request),
        Some("GetShardIterator") => server.get_shard_iterator(&request),
        Some("GetRecords") => server.get_records(&request),
        Some("DescribeStreamSummary") => server.describe_stream_summary(&request),
        _ => Err(ApiError(
            "UnknownOperationException",
            format!("this benchmark server does not serve '{target}'"),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn stats(State(server): State<Arc<Server>>) -> Response {
    let mut response = server.stats_json().to_string().into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn encode_token(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// An opaque iterator naming a shard, a position in it and when it was issued.
fn iterator(shard: usize, position: usize) -> String {
    encode_token(&format!("AAAAAAAAAAE/{shard}/{position}/{}", now_ms()))
}

fn parse_iterator(text: &str) -> Option<(usize, usize, i64)> {
    let decoded = decode_token(text)?;
    let mut parts = decoded.strip_prefix("AAAAAAAAAAE/")?.split('/');
    let shard = parts.next()?.parse().ok()?;
    let position = parts.next()?.parse().ok()?;
    let issued = parts.next()?.parse().ok()?;
    Some((shard, position, issued))
}

/// This process's CPU time (user and system), from /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip() {
        let it = iterator(7, 12345);
        let (shard, position, issued) = parse_iterator(&it).unwrap();
        assert_eq!((shard, position), (7, 12345));
        assert!((now_ms() - issued).abs() < 10_000);
        assert_eq!(parse_iterator("garbage"), None);
    }
}
