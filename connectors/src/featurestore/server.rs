//! `sluice featurestore serve`: the local feature store over HTTP, speaking AWS's wire API so
//! that any SDK (boto3, the Rust SDK, the AWS CLI) works against it with an endpoint
//! override.
//!
//! - The runtime API (`sagemaker-featurestore-runtime`, REST-JSON): PutRecord
//!   (`PUT /FeatureGroup/{name}`), GetRecord (`GET`), DeleteRecord (`DELETE`) and
//!   BatchGetRecord (`POST /BatchGetRecord`).
//! - The control plane (`sagemaker`, JSON 1.1 at `POST /` with `X-Amz-Target:
//!   SageMaker.<Operation>`): CreateFeatureGroup, DescribeFeatureGroup, ListFeatureGroups,
//!   DeleteFeatureGroup.
//!
//! Errors carry AWS's codes (`ResourceNotFound`, `ValidationError`, `ResourceInUse`) in the
//! `x-amzn-ErrorType` header and the body's `__type`, so SDKs raise their modelled
//! exceptions. With a token (`--auth-token`), a request must carry it, as the access key id
//! of its SigV4 signature or as a bearer token; the signature itself is not checked.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_engine::Result;

use super::model::{iso_millis, FeatureGroup, FeatureValue, TtlDuration};
use super::store::{Change, DeletionMode, LocalStore, StoreError, TargetStore};

/// Which API an error belongs to: their codes for an invalid request differ.
#[derive(Clone, Copy)]
enum Api {
    Runtime,
    Control,
}

fn error(api: Api, e: &StoreError) -> Response {
    let (status, code) = match (e, api) {
        (StoreError::NotFound(_), _) => (StatusCode::NOT_FOUND, "ResourceNotFound"),
        (StoreError::Validation(_), Api::Runtime) => (StatusCode::BAD_REQUEST, "ValidationError"),
        (StoreError::Validation(_), Api::Control) => {
            (StatusCode::BAD_REQUEST, "ValidationException")
        }
        (StoreError::InUse(_), _) => (StatusCode::BAD_REQUEST, "ResourceInUse"),
        (StoreError::Internal(_), _) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure"),
    };
    // JSON 1.1 errors are all 400 but for server faults.
    let status = match api {
        Api::Control if status == StatusCode::NOT_FOUND => StatusCode::BAD_REQUEST,
        _ => status,
    };
    let content_type = match api {
        Api::Runtime => "application/json",
        Api::Control => "application/x-amz-json-1.1",
    };
    (
        status,
        [("x-amzn-ErrorType", code), ("content-type", content_type)],
        json!({"__type": code, "message": e.message(), "Message": e.message()}).to_string(),
    )
        .into_response()
}

fn ok_json(api: Api, body: Value) -> Response {
    let content_type = match api {
        Api::Runtime => "application/json",
        Api::Control => "application/x-amz-json-1.1",
    };
    (
        StatusCode::OK,
        [("content-type", content_type)],
        body.to_string(),
    )
        .into_response()
}

fn invalid(message: impl Into<String>) -> StoreError {
    StoreError::Validation(message.into())
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> std::result::Result<T, StoreError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| invalid(format!("the request body is invalid: {e}")))
}

/// The query's parameters in order (names repeat for lists).
fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_one(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn query_all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn target_stores(names: &[String]) -> std::result::Result<Option<Vec<TargetStore>>, StoreError> {
    if names.is_empty() {
        return Ok(None);
    }
    names
        .iter()
        .map(|n| match n.as_str() {
            "OnlineStore" => Ok(TargetStore::OnlineStore),
            "OfflineStore" => Ok(TargetStore::OfflineStore),
            other => Err(invalid(format!(
                "TargetStores value '{other}' is not OnlineStore or OfflineStore"
            ))),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordRequest {
    record: Vec<FeatureValue>,
    #[serde(default)]
    target_stores: Vec<String>,
    #[serde(default)]
    ttl_duration: Option<TtlDuration>,
}

async fn put_record(
    State(store): State<Arc<LocalStore>>,
    Path(group): Path<String>,
    body: Bytes,
) -> Response {
    let change = parse_body::<PutRecordRequest>(&body).and_then(|request| {
        Ok(Change::Put {
            group,
            record: request.record,
            target_stores: target_stores(&request.target_stores)?,
            ttl: request.ttl_duration,
        })
    });
    submit(&store, change).await
}

/// Applies a change (once it is durable) and answers the runtime call.
async fn submit(store: &LocalStore, change: Result<Change, StoreError>) -> Response {
    let result = match change {
        Ok(change) => store
            .submit(change)
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("the store stopped".into()))),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => ok_json(Api::Runtime, json!({})),
        Err(e) => error(Api::Runtime, &e),
    }
}

fn record_json(values: &[FeatureValue]) -> Value {
    serde_json::to_value(values).unwrap_or(Value::Null)
}

async fn get_record(
    State(store): State<Arc<LocalStore>>,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(&query);
    let Some(id) = query_one(&pairs, "RecordIdentifierValueAsString") else {
        return error(
            Api::Runtime,
            &invalid("RecordIdentifierValueAsString is required"),
        );
    };
    let names = query_all(&pairs, "FeatureName");
    let names = (!names.is_empty()).then_some(names);
    let expiration = query_one(&pairs, "ExpirationTimeResponse").as_deref() == Some("Enabled");
    match store.get_record(&group, &id, names.as_deref()) {
        Ok(None) => ok_json(Api::Runtime, json!({})),
        Ok(Some(record)) => {
            let mut body = json!({"Record": record_json(&record.values)});
            if let (true, Some(t)) = (expiration, record.expires_at) {
                body["ExpiresAt"] = json!(iso_millis(t));
            }
            ok_json(Api::Runtime, body)
        }
        Err(e) => error(Api::Runtime, &e),
    }
}

async fn delete_record(
    State(store): State<Arc<LocalStore>>,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(&query);
    let change = (|| {
        let identifier = query_one(&pairs, "RecordIdentifierValueAsString")
            .ok_or_else(|| invalid("RecordIdentifierValueAsString is required"))?;
        let event_time =
            query_one(&pairs, "EventTime").ok_or_else(|| invalid("EventTime is required"))?;
        let mode = match query_one(&pairs, "DeletionMode").as_deref() {
            None | Some("SoftDelete") => DeletionMode::SoftDelete,
            Some("HardDelete") => DeletionMode::HardDelete,
            Some(other) => {
                return Err(invalid(format!(
                    "DeletionMode '{other}' is not SoftDelete or HardDelete"
                )))
            }
        };
        Ok(Change::Delete {
            group,
            identifier,
            event_time,
            target_stores: target_stores(&query_all(&pairs, "TargetStores"))?,
            mode,
        })
    })();
    submit(&store, change).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetRequest {
    identifiers: Vec<BatchIdentifier>,
    #[serde(default)]
    expiration_time_response: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchIdentifier {
    feature_group_name: String,
    record_identifiers_value_as_string: Vec<String>,
    #[serde(default)]
    feature_names: Option<Vec<String>>,
}

async fn batch_get_record(State(store): State<Arc<LocalStore>>, body: Bytes) -> Response {
    let request: BatchGetRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error(Api::Runtime, &e),
    };
    let expiration = request.expiration_time_response.as_deref() == Some("Enabled");
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for ident in request.identifiers {
        for id in ident.record_identifiers_value_as_string {
            match store.get_record(
                &ident.feature_group_name,
                &id,
                ident.feature_names.as_deref(),
            ) {
                Ok(None) => {}
                Ok(Some(record)) => {
                    let mut entry = json!({
                        "FeatureGroupName": ident.feature_group_name,
                        "RecordIdentifierValueAsString": id,
                        "Record": record_json(&record.values),
                    });
                    if let (true, Some(t)) = (expiration, record.expires_at) {
                        entry["ExpiresAt"] = json!(iso_millis(t));
                    }
                    records.push(entry);
                }
                Err(e) => {
                    let code = match e {
                        StoreError::NotFound(_) => "ResourceNotFound",
                        StoreError::Validation(_) => "ValidationError",
                        _ => "InternalFailure",
                    };
                    errors.push(json!({
                        "FeatureGroupName": ident.feature_group_name,
                        "RecordIdentifierValueAsString": id,
                        "ErrorCode": code,
                        "ErrorMessage": e.message(),
                    }));
                }
            }
        }
    }
    ok_json(
        Api::Runtime,
        json!({"Records": records, "Errors": errors, "UnprocessedIdentifiers": []}),
    )
}

fn group_arn(store: &LocalStore, name: &str) -> String {
    format!(
        "arn:aws:sagemaker:{}:{}:feature-group/{}",
        store.region(),
        store.account(),
        name.to_lowercase()
    )
}

fn describe_json(store: &LocalStore, group: &FeatureGroup) -> Value {
    let mut body = serde_json::to_value(group).unwrap_or_else(|_| json!({}));
    body["FeatureGroupArn"] = json!(group_arn(store, &group.feature_group_name));
    body["FeatureGroupStatus"] = json!("Created");
    if group.offline_enabled() {
        body["OfflineStoreStatus"] = json!({"Status": "Active"});
    }
    body
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupName {
    feature_group_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    #[serde(default)]
    name_contains: Option<String>,
}

async fn control(
    State(store): State<Arc<LocalStore>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Creating a group may call Glue through the blocking AWS helpers.
    let result = tokio::task::spawn_blocking(move || control_call(&store, &target, &body))
        .await
        .unwrap_or_else(|e| Err(StoreError::Internal(format!("the request failed: {e}"))));
    match result {
        Ok(body) => ok_json(Api::Control, body),
        Err(e) => error(Api::Control, &e),
    }
}

/// One control-plane call.
fn control_call(store: &LocalStore, target: &str, body: &Bytes) -> Result<Value, StoreError> {
    let operation = target.strip_prefix("SageMaker.").unwrap_or(target);
    match operation {
        "CreateFeatureGroup" => parse_body::<FeatureGroup>(body)
            .and_then(|g| store.create_group(g))
            .map(|g| json!({"FeatureGroupArn": group_arn(store, &g.feature_group_name)})),
        "DescribeFeatureGroup" => parse_body::<GroupName>(body)
            .and_then(|r| store.describe_group(&r.feature_group_name))
            .map(|g| describe_json(store, &g)),
        "DeleteFeatureGroup" => parse_body::<GroupName>(body)
            .and_then(|r| store.delete_group(&r.feature_group_name))
            .map(|()| json!({})),
        "ListFeatureGroups" => parse_body::<ListRequest>(body).and_then(|r| {
            let groups = store.list_groups()?;
            let summaries: Vec<Value> = groups
                .iter()
                .filter(|g| {
                    r.name_contains
                        .as_deref()
                        .is_none_or(|n| g.feature_group_name.contains(n))
                })
                .map(|g| {
                    let full = describe_json(store, g);
                    let mut summary = json!({});
                    for key in [
                        "FeatureGroupName",
                        "FeatureGroupArn",
                        "CreationTime",
                        "FeatureGroupStatus",
                        "OfflineStoreStatus",
                    ] {
                        if let Some(v) = full.get(key) {
                            summary[key] = v.clone();
                        }
                    }
                    summary
                })
                .collect();
            Ok(json!({"FeatureGroupSummaries": summaries}))
        }),
        other => Err(invalid(format!(
            "operation '{other}' is not served by the local feature store (it serves \
             CreateFeatureGroup, DescribeFeatureGroup, ListFeatureGroups, DeleteFeatureGroup)"
        ))),
    }
}

/// The HTTP routes of the store.
pub fn router(store: Arc<LocalStore>, token: Option<String>) -> Router {
    let router = Router::new()
        .route(
            "/FeatureGroup/{name}",
            put(put_record).get(get_record).delete(delete_record),
        )
        .route("/BatchGetRecord", post(batch_get_record))
        .route("/", post(control))
        .with_state(store);
    match token {
        None => router,
        Some(token) => router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let allowed = crate::http::sdk_request_carries(
                    request
                        .headers()
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok()),
                    &token,
                );
                async move {
                    if allowed {
                        next.run(request).await
                    } else {
                        unauthorized()
                    }
                }
            },
        )),
    }
}

/// The answer to a request without the server's token, as AWS words a bad signature.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            ("x-amzn-ErrorType", "UnrecognizedClientException"),
            ("Content-Type", "application/json"),
        ],
        json!({
            "__type": "UnrecognizedClientException",
            "message": "this feature store needs its --auth-token, as the access key id of \
                        the request's signature (AWS_ACCESS_KEY_ID) or a bearer token"
        })
        .to_string(),
    )
        .into_response()
}

/// Serves `store` on `listen` until Ctrl-C or SIGTERM. `on_ready` is told the bound address
/// (with port 0, the port the system chose).
pub fn serve(
    store: Arc<LocalStore>,
    listen: SocketAddr,
    token: Option<String>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    crate::http::serve(
        router(store, token),
        listen,
        "the feature store server",
        on_ready,
        crate::http::shutdown_signal(),
    )
}
