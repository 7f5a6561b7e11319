//! What every AWS connector shares: the `aws.*` options, the SDK configuration, one async
//! runtime for all network calls, and how a failed call is classified and retried.
//!
//! Credentials come only from the SDK's standard chain (environment, profile, web identity,
//! instance role); nothing here reads, stores or prints them. The SDK's own retries are
//! turned off: every call goes through [`retry`], which retries what can succeed later
//! (throttling, 5xx, a dropped connection, a timeout) forever with exponential backoff and
//! jitter, counts each retry, and returns at once what cannot (a missing stream, denied
//! access).
//!
//! The clients more than one connector uses live here too: [`s3`] (objects and multipart
//! uploads: the filesystem sink, the checkpoint store, the feature store's offline store)
//! and [`glue`] (tables and partitions in the Data Catalog).

pub mod glue;
pub mod s3;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use backon::{ExponentialBuilder, Retryable};
use sluice_engine::connector::Options;
use sluice_engine::metrics::{PartitionMetrics, SinkMetrics};
use sluice_engine::{Error, Result};

/// The `aws.*` options of a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsOptions {
    /// `aws.region`; when absent, the SDK's chain (`AWS_REGION`, profile) decides.
    pub region: Option<String>,
    /// `aws.endpoint`: a service endpoint override (a local emulator); `AWS_ENDPOINT_URL`
    /// is honoured by the SDK when this is absent.
    pub endpoint: Option<String>,
}

impl AwsOptions {
    pub fn take(options: &mut Options) -> Result<Self> {
        let provider = options
            .take(&["aws.credentials.provider"])
            .unwrap_or_else(|| "AUTO".into());
        if !provider.eq_ignore_ascii_case("AUTO") {
            return Err(Error::config(format!(
                "table '{}': option 'aws.credentials.provider' = '{}' is not supported: Sluice \
                 takes credentials only from the standard AWS chain (AUTO)",
                options.table(),
                provider
            )));
        }
        Ok(Self {
            region: options.take(&["aws.region"]),
            endpoint: options.take(&["aws.endpoint"]),
        })
    }
}

/// The runtime every AWS call runs on, shared by all connectors of the process. Readers
/// and writers run on the engine's own threads and reach it through its handle.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-aws")
            .enable_all()
            .build()
            .expect("the AWS runtime can start")
    })
}

/// How long one attempt of a call may take before it counts as failed (and is retried).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTPS client every AWS client shares: rustls with ring, trusting the system's CA
/// store (rustls-native-certs), so a site CA installed on the machine is honoured.
fn https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// The SDK configuration for a table: region and endpoint from its options, everything else
/// (credentials above all) from the standard chain.
pub async fn sdk_config(subject: &str, options: &AwsOptions) -> Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(Error::config(format!(
            "{subject}: no AWS region: set the option 'aws.region' or AWS_REGION"
        )));
    }
    Ok(config)
}

/// Whether an AWS error code says a rate limit refused the call (or a record of it).
pub fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "ThrottlingException"
            | "KMSThrottlingException"
            | "RequestLimitExceeded"
            | "SlowDown"
    )
}

/// What went wrong in a call, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service asked us to slow down.
    Throttled(String),
    /// Worth trying again: a 5xx, a dropped connection, a timeout.
    Transient(String),
    /// The shard iterator is older than 5 minutes.
    ExpiredIterator,
    /// The named resource does not exist.
    NotFound(String),
    /// The service refused the request's content for good (`ValidationError`): this
    /// record is wrong, not the connection.
    Invalid(String),
    /// Trying again cannot help (denied access, an invalid request): the service's error
    /// code (`AccessDenied`, `NoSuchUpload`, ...; empty when it gave none) and the whole
    /// message.
    Fatal { code: String, message: String },
}

impl Failure {
    /// True when the service refused for good with this error code.
    pub fn is_fatal(&self, code: &str) -> bool {
        matches!(self, Failure::Fatal { code: c, .. } if c == code)
    }

    pub fn retryable(&self) -> bool {
        matches!(self, Failure::Throttled(_) | Failure::Transient(_))
    }

    /// Classifies an SDK error by its error code and HTTP status.
    pub fn of<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let text = DisplayErrorContext(error).to_string();
        match error {
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => Failure::Transient(text),
            SdkError::ServiceError(service) => {
                let message = service.err().message().unwrap_or_default().to_string();
                match service.err().code().unwrap_or_default() {
                    code if is_throttle(code) => Failure::Throttled(message),
                    "ExpiredIteratorException" => Failure::ExpiredIterator,
                    "ResourceNotFoundException"
                    | "ResourceNotFound"
                    | "NoSuchBucket"
                    | "NotFound" => Failure::NotFound(message),
                    "InternalFailure" | "ServiceUnavailable" | "InternalError" => {
                        Failure::Transient(message)
                    }
                    code @ ("ValidationError" | "ValidationException") => {
                        Failure::Invalid(format!("{code}: {message}"))
                    }
                    // No error code (a HEAD response has no body): the status says it.
                    "" => match service.raw().status().as_u16() {
                        403 => Failure::Fatal {
                            code: "AccessDenied".into(),
                            message: "AccessDenied (HTTP 403)".into(),
                        },
                        404 => Failure::NotFound("HTTP 404".into()),
                        429 => Failure::Throttled("HTTP 429".into()),
                        status if status >= 500 => Failure::Transient(format!("HTTP {status}")),
                        status => Failure::Fatal {
                            code: String::new(),
                            message: format!("HTTP {status}"),
                        },
                    },
                    code => Failure::Fatal {
                        code: code.to_string(),
                        message: format!("{code}: {message}"),
                    },
                }
            }
            _ => Failure::Fatal {
                code: String::new(),
                message: text,
            },
        }
    }

    /// The failure as one line, for messages.
    pub fn describe(&self) -> String {
        match self {
            Failure::Throttled(m) => format!("throttled: {m}"),
            Failure::Transient(m)
            | Failure::NotFound(m)
            | Failure::Invalid(m)
            | Failure::Fatal { message: m, .. } => m.clone(),
            Failure::ExpiredIterator => "the shard iterator expired".into(),
        }
    }
}

/// The backoff between retries: 100 ms doubling to 5 s, with full jitter, without end.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// Counters that [`retry`] adds its retries to.
pub trait CountsRetries: Send + Sync {
    fn count_retry(&self, throttled: bool);
}

impl CountsRetries for PartitionMetrics {
    fn count_retry(&self, throttled: bool) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if throttled {
            self.throttles.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl CountsRetries for SinkMetrics {
    fn count_retry(&self, throttled: bool) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if throttled {
            self.throttles.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `call` until it succeeds or fails in a way retrying cannot mend, counting retries
/// (and throttles) in `metrics`. A call still failing after 10, 100, 1000... attempts is
/// said on stderr under `what` ("table 'tx': shard s-1: GetRecords"), so a job that waits on
/// a throttled or unreachable service says so.
pub async fn retry<T, F, Fut>(
    what: &str,
    metrics: Option<&dyn CountsRetries>,
    call: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    retry_with(what, metrics, backoff(), call).await
}

/// [`retry`] with a backoff of the caller's choosing (a table's retry options).
pub async fn retry_with<T, F, Fut>(
    what: &str,
    metrics: Option<&dyn CountsRetries>,
    backoff: ExponentialBuilder,
    call: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut retries = 0u64;
    call.retry(backoff)
        .when(Failure::retryable)
        .notify(|failure, _| {
            retries += 1;
            if let Some(m) = metrics {
                m.count_retry(matches!(failure, Failure::Throttled(_)));
            }
            if retries >= 10 && is_power_of_ten(retries) {
                tracing::warn!(
                    "{what}: still retrying after {retries} failed attempts (last: {})",
                    failure.describe()
                );
            }
        })
        .await
}

fn is_power_of_ten(n: u64) -> bool {
    let digits = n.to_string();
    digits.starts_with('1') && digits[1..].bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn retries_until_success_and_stops_at_fatal_failures() {
        let metrics = Arc::new(PartitionMetrics::default());
        let mut calls = 0;
        let result = runtime().block_on(retry("test", Some(&*metrics), || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 => Err(Failure::Throttled("slow down".into())),
                    2 => Err(Failure::Transient("500".into())),
                    _ => Ok(n),
                }
            }
        }));
        assert_eq!(result, Ok(3));
        assert_eq!(metrics.retries.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.throttles.load(Ordering::Relaxed), 1);
        let result: Result<(), Failure> = runtime().block_on(retry("test", None, || async {
            Err(Failure::NotFound("no stream".into()))
        }));
        assert_eq!(result, Err(Failure::NotFound("no stream".into())));
        assert!(is_power_of_ten(1000) && !is_power_of_ten(20) && !is_power_of_ten(0));
    }
}
