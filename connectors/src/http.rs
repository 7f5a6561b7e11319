//! Serving HTTP: the local feature store, the Sluice server and the metrics endpoint of
//! `sluice run` all bind, report their address and stop the same way.

use std::future::Future;
use std::net::SocketAddr;

use sluice_engine::{Error, Result};

use crate::aws::runtime;

/// Serves `router` on `listen` until `until` completes, then finishes the requests in
/// flight. `on_ready` gets the bound address (port 0 picks a free one). `what` names the
/// service in errors.
pub fn serve(
    router: axum::Router,
    listen: SocketAddr,
    what: &str,
    on_ready: impl FnOnce(SocketAddr),
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::config(format!("{what}: cannot listen on {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::config(format!("{what}: cannot listen on {listen}: {e}")))?;
        on_ready(bound);
        axum::serve(listener, router)
            .with_graceful_shutdown(until)
            .await
            .map_err(|e| Error::connector(format!("{what} failed: {e}")))
    })
}

/// Completes at Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Whether `given` (an `Authorization` header's value) carries the bearer `token`; the
/// comparison takes the same time wherever the two differ.
pub fn bearer_matches(given: Option<&str>, token: &str) -> bool {
    let Some(given) = given.and_then(|g| g.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an AWS SDK request carries `token`: as a bearer token, or as the access key id
/// of its SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=<key id>/...`), which
/// is how SDK clients (boto3, the AWS CLI, Sluice's sink) can present it.
pub fn sdk_request_carries(given: Option<&str>, token: &str) -> bool {
    if bearer_matches(given, token) {
        return true;
    }
    let key = given
        .and_then(|g| g.strip_prefix("AWS4-HMAC-SHA256"))
        .and_then(|g| g.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next());
    key.is_some_and(|k| bearer_matches(Some(&format!("Bearer {k}")), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cres"), "s3cret"));
        assert!(!bearer_matches(Some("s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cret2"), "s3cret"));
        let sigv4 =
            "AWS4-HMAC-SHA256 Credential=s3cret/20261201/us-east-1/sagemaker/aws4_request, \
                     SignedHeaders=host, Signature=abc";
        assert!(sdk_request_carries(Some(sigv4), "s3cret"));
        assert!(!sdk_request_carries(Some(sigv4), "other"));
        assert!(sdk_request_carries(Some("Bearer s3cret"), "s3cret"));
        assert!(!sdk_request_carries(None, "s3cret"));
    }
}
