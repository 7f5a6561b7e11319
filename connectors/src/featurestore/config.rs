//! Options of a `sagemaker-featurestore` sink table.

use std::path::PathBuf;
use std::time::Duration;

use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use super::model::TtlDuration;
use super::store::TargetStore;
use crate::aws::AwsOptions;
use crate::option_values::{parse_duration, parse_number};

/// Where the records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// SageMaker Feature Store (or anything speaking its API, such as
    /// `sluice featurestore serve`), through the official SDK.
    Service(AwsOptions),
    /// `'aws.endpoint' = 'local:DIR'`: straight into a local store folder, no server.
    Local(PathBuf),
}

/// Backoff of retried calls: `sink.retry.initial-backoff`, `sink.retry.max-backoff`,
/// `sink.retry.max-attempts` (unset: retry without end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub initial: Duration,
    pub max: Duration,
    pub max_attempts: Option<usize>,
}

/// The typed options of a Feature Store sink.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStoreSinkConfig {
    /// `feature-group.name`.
    pub group: String,
    pub destination: Destination,
    /// `record-identifier`: the column holding the record identifier.
    pub record_identifier: Option<String>,
    /// `event-time`: the column holding the event time.
    pub event_time: Option<String>,
    /// `target-stores`: `OnlineStore`, `OfflineStore` or both (default: the group's).
    pub target_stores: Option<Vec<TargetStore>>,
    /// `ttl`: the records' time to live in the online store.
    pub ttl: Option<TtlDuration>,
    /// `sink.requests.max-inflight` (32): PutRecord calls under way at once.
    pub max_inflight: usize,
    /// `sink.fail-on-error` (false): stop on the first record the service rejects.
    pub fail_on_error: bool,
    pub retry: RetrySettings,
}

impl FeatureStoreSinkConfig {
    pub fn take(options: &mut Options) -> Result<Self> {
        let table = options.table().to_string();
        let group = options.take_required("feature-group.name")?;
        let destination = match options.peek("aws.endpoint") {
            Some(endpoint) if endpoint.starts_with("local:") => {
                let dir = endpoint["local:".len()..].to_string();
                options.take(&["aws.endpoint"]);
                options.take(&["aws.region"]);
                if dir.is_empty() {
                    return Err(Error::config(format!(
                        "table '{table}': option 'aws.endpoint' = 'local:' needs a folder, \
                         such as 'local:featurestore'"
                    )));
                }
                Destination::Local(PathBuf::from(dir))
            }
            _ => Destination::Service(AwsOptions::take(options)?),
        };
        let target_stores = options.take_parsed("target-stores", |v| {
            v.split([',', ';'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s.to_ascii_lowercase().as_str() {
                    "onlinestore" | "online" => Ok(TargetStore::OnlineStore),
                    "offlinestore" | "offline" => Ok(TargetStore::OfflineStore),
                    _ => Err(format!("'{s}' is not OnlineStore or OfflineStore")),
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })?;
        let ttl = options.take_parsed("ttl", |v| {
            parse_duration(v).and_then(TtlDuration::from_duration)
        })?;
        let max_inflight = options
            .take_parsed("sink.requests.max-inflight", parse_number::<usize>)?
            .unwrap_or(32)
            .max(1);
        let retry = RetrySettings {
            initial: options
                .take_parsed("sink.retry.initial-backoff", parse_duration)?
                .unwrap_or(Duration::from_millis(100)),
            max: options
                .take_parsed("sink.retry.max-backoff", parse_duration)?
                .unwrap_or(Duration::from_secs(5)),
            max_attempts: options.take_parsed("sink.retry.max-attempts", parse_number::<usize>)?,
        };
        Ok(Self {
            group,
            destination,
            record_identifier: options.take(&["record-identifier"]),
            event_time: options.take(&["event-time"]),
            target_stores,
            ttl,
            max_inflight,
            fail_on_error: options.take_bool("sink.fail-on-error")?.unwrap_or(false),
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::featurestore::model::TtlUnit;

    #[test]
    fn options_of_a_local_and_a_service_sink() {
        let mut options = Options::from_pairs(
            "features",
            &[
                ("feature-group.name", "tx-metrics"),
                ("aws.endpoint", "local:target/fs"),
                ("record-identifier", "currency"),
                ("target-stores", "OnlineStore"),
                ("ttl", "7 d"),
            ],
        );
        let config = FeatureStoreSinkConfig::take(&mut options).unwrap();
        options.finish().unwrap();
        assert_eq!(config.destination, Destination::Local("target/fs".into()));
        assert_eq!(config.target_stores, Some(vec![TargetStore::OnlineStore]));
        assert_eq!(config.ttl.unwrap().unit, TtlUnit::Weeks);
        assert_eq!(config.max_inflight, 32);
        assert_eq!(config.retry.max_attempts, None);

        let mut options = Options::from_pairs(
            "features",
            &[
                ("feature-group.name", "g"),
                ("aws.region", "eu-west-1"),
                ("sink.requests.max-inflight", "8"),
                ("sink.retry.max-attempts", "5"),
            ],
        );
        let config = FeatureStoreSinkConfig::take(&mut options).unwrap();
        assert!(matches!(config.destination, Destination::Service(ref a)
            if a.region.as_deref() == Some("eu-west-1")));
        assert_eq!(
            (config.max_inflight, config.retry.max_attempts),
            (8, Some(5))
        );

        let mut options =
            Options::from_pairs("features", &[("feature-group.name", "g"), ("ttl", "soon")]);
        let err = FeatureStoreSinkConfig::take(&mut options).unwrap_err();
        assert!(err
            .message()
            .starts_with("table 'features': option 'ttl' = 'soon' is invalid"));
    }
}
