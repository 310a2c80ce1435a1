//! HTTP plumbing shared by the tools that call a fixed service (search, weather): one client
//! shape, capped bodies, and errors sorted into transient and permanent.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::ToolError;

/// The most a service's JSON answer may weigh.
pub(crate) const MAX_SERVICE_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A client for a configured service: bounded in time, no proxy from the environment.
pub(crate) fn service_client(timeout: Duration) -> Result<reqwest::Client, ToolError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .user_agent(concat!("nexus-tools/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ToolError::Failed { message: format!("cannot build an HTTP client: {e}"), transient: false })
}

/// A request that did not complete: timeouts and connection failures may pass on retry.
pub(crate) fn request_failed(service: &str, error: &reqwest::Error) -> ToolError {
    let transient = error.is_timeout() || error.is_connect() || error.is_request() || error.is_body();
    ToolError::Failed { message: format!("{service}: request failed: {}", without_url(error)), transient }
}

/// A non-success status: server errors, rate limits and request timeouts are transient.
pub(crate) fn status_failed(service: &str, status: StatusCode) -> ToolError {
    let transient =
        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT;
    ToolError::Failed { message: format!("{service}: the service answered {status}"), transient }
}

/// Reads at most `limit` bytes of a body; the flag says whether more was left unread.
pub(crate) async fn read_capped(
    service: &str,
    response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), ToolError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| request_failed(service, &e))?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Reads and parses a service's JSON answer, refusing one larger than the cap.
pub(crate) async fn read_json<T: DeserializeOwned>(service: &str, response: reqwest::Response) -> Result<T, ToolError> {
    let (body, truncated) = read_capped(service, response, MAX_SERVICE_RESPONSE_BYTES).await?;
    if truncated {
        return Err(ToolError::Failed {
            message: format!("{service}: the answer exceeds {MAX_SERVICE_RESPONSE_BYTES} bytes"),
            transient: false,
        });
    }
    serde_json::from_slice(&body).map_err(|e| ToolError::Failed {
        message: format!("{service}: the answer is not the expected JSON: {e}"),
        transient: false,
    })
}

/// The error's text without the request URL, which may carry a query or a key.
fn without_url(error: &reqwest::Error) -> String {
    let mut parts = vec![];
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = current.source();
    }
    let text = parts.join(": ");
    match error.url() {
        Some(url) => text.replace(&format!(" ({url})"), "").replace(url.as_str(), "<url>"),
        None => text,
    }
}
