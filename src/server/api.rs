//! The server's HTTP interface: the JSON REST API (described by `openapi.json`, served at
//! `/v1/openapi.json`), Prometheus metrics at `/metrics` and the web page at `/`.
//!
//! Every answer that is not a success is JSON `{"error": "<one sentence>"}` with a 4xx
//! status for the caller's mistakes; a bad request never touches a running job. With an
//! auth token, every request but the static page needs `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::details;
use super::supervisor::StopMode;
use super::{JobError, Server, Submission};
use crate::prometheus;

/// The largest request body accepted: job files are small.
pub const BODY_LIMIT: usize = 1024 * 1024;

const PAGE: &str = include_str!("page.html");
const OPENAPI: &str = include_str!("openapi.json");

type Shared = Arc<Server>;

pub fn router(server: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(show).delete(delete))
        .route("/v1/jobs/{id}/stop", post(stop))
        .route("/v1/jobs/{id}/resume", post(resume))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&server), auth))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(server)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn job_error(e: JobError) -> Response {
    match e {
        JobError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        JobError::Conflict(m) => error(StatusCode::CONFLICT, m),
        JobError::Invalid(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
        JobError::Internal(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn auth(State(server): State<Shared>, request: Request, next: Next) -> Response {
    let Some(token) = &server.token else {
        return next.run(request).await;
    };
    // The page is static and holds no data; it asks for the token and sends it itself.
    if request.uri().path() == "/" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if sluice_connectors::http::bearer_matches(given, token) {
        next.run(request).await
    } else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "this server needs 'Authorization: Bearer <token>' with its --auth-token",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        r
    }
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such path: the API is under /v1 (see /v1/openapi.json)",
    )
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(server): State<Shared>) -> Response {
    let samples = server.jobs().iter().map(|j| details::sample(j)).collect();
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(samples),
    )
        .into_response()
}

/// The body as JSON of type `T`, or the 4xx answer saying what is wrong with it.
fn parse_body<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
    empty_is: Option<T>,
) -> Result<T, Problem> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("the request body is larger than the limit of {BODY_LIMIT} bytes")
        } else {
            "the request body could not be read".to_string()
        };
        Problem(status, message)
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(value) = empty_is {
            return Ok(value);
        }
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("application/json"));
    if !json_type {
        return Err(Problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Problem(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON for this call: {e}"),
        )
    })
}

/// A request the server refuses: its status and the sentence saying why.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    sql: String,
    name: Option<String>,
    file: Option<String>,
    #[serde(default)]
    set: std::collections::BTreeMap<String, String>,
}

async fn submit(
    State(server): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body: SubmitBody = match parse_body(body, &headers, None) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    if body.sql.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "'sql' is empty: send the job file's text",
        );
    }
    let submission = Submission {
        sql: body.sql,
        name: body.name.filter(|n| !n.trim().is_empty()),
        file: body.file.filter(|f| !f.trim().is_empty()),
        set: body.set.into_iter().collect(),
    };
    let result = tokio::task::spawn_blocking(move || {
        let record = server.submit(submission)?;
        server.find(&record.id).map(|job| details::summary(&job))
    })
    .await;
    match result {
        Ok(Ok(summary)) => (StatusCode::CREATED, axum::Json(summary)).into_response(),
        Ok(Err(e)) => job_error(e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "submitting the job failed inside the server",
        ),
    }
}

async fn list(State(server): State<Shared>) -> Response {
    let jobs: Vec<Value> = server.jobs().iter().map(|j| details::summary(j)).collect();
    axum::Json(json!({ "jobs": jobs })).into_response()
}

async fn show(State(server): State<Shared>, Path(id): Path<String>) -> Response {
    match server.find(&id) {
        Ok(job) => axum::Json(details::details(&job)).into_response(),
        Err(e) => job_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default = "yes")]
    savepoint: bool,
}

fn yes() -> bool {
    true
}

async fn stop(
    State(server): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body: StopBody = match parse_body(body, &headers, Some(StopBody { savepoint: true })) {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let mode = if body.savepoint {
        StopMode::Savepoint
    } else {
        StopMode::Cancel
    };
    match server.stop(&id, mode) {
        Ok(_) => match server.find(&id) {
            Ok(job) => (StatusCode::ACCEPTED, axum::Json(details::summary(&job))).into_response(),
            Err(e) => job_error(e),
        },
        Err(e) => job_error(e),
    }
}

async fn resume(State(server): State<Shared>, Path(id): Path<String>) -> Response {
    let result = tokio::task::spawn_blocking(move || {
        server.resume(&id)?;
        server.find(&id).map(|job| details::summary(&job))
    })
    .await;
    match result {
        Ok(Ok(summary)) => (StatusCode::ACCEPTED, axum::Json(summary)).into_response(),
        Ok(Err(e)) => job_error(e),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "resuming the job failed inside the server",
        ),
    }
}

async fn delete(State(server): State<Shared>, Path(id): Path<String>) -> Response {
    match server.delete(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => job_error(e),
    }
}
