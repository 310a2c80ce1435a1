//! HTTP plumbing shared by the vendor clients: building the client, sending requests, and
//! turning transport failures and vendor error bodies into classified [`ProviderError`]s.

use std::time::{Duration, SystemTime};

use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use crate::ProviderError;

/// How long opening a TCP (and TLS) connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an unparseable body we quote back in an error message.
const BODY_SNIPPET_CHARS: usize = 300;

/// A reqwest client bound to one provider name and request timeout, so every error it returns
/// already says who failed and after how long.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    provider: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpClient {
    /// rustls, no proxy taken from the environment, a 10 s connect timeout. `timeout` bounds a
    /// whole blocking request, the wait for a stream's response headers, and every silent gap
    /// while a stream is being read.
    pub(crate) fn new(provider: &str, timeout: Duration) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(timeout)
            .build()
            .map_err(|err| ProviderError::Connection {
                provider: provider.to_owned(),
                message: format!("could not build the HTTP client: {}", error_chain(&err)),
            })?;
        Ok(Self { provider: provider.to_owned(), client, timeout })
    }

    pub(crate) fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// Sends a request, checks the status and decodes the JSON body, all within the timeout.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = request.timeout(self.timeout).send().await.map_err(|err| self.transport_error(&err))?;
        let response = self.check_status(response).await?;
        let body = response.bytes().await.map_err(|err| self.transport_error(&err))?;
        serde_json::from_slice(&body).map_err(|err| ProviderError::InvalidResponse {
            provider: self.provider.clone(),
            message: format!("{err}; body starts with: {}", snippet(&String::from_utf8_lossy(&body))),
        })
    }

    /// Sends a streaming request and returns the response once its headers arrived with a
    /// success status. Only the wait for the headers is bounded by the timeout; the body may take
    /// as long as the vendor keeps sending.
    pub(crate) async fn send_stream(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Ok(sent) => sent.map_err(|err| self.transport_error(&err))?,
            Err(_elapsed) => {
                return Err(ProviderError::Timeout { provider: self.provider.clone(), after: self.timeout });
            }
        };
        self.check_status(response).await
    }

    /// The body of a streaming response as byte chunks, with transport errors classified.
    pub(crate) fn byte_stream(
        &self,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static {
        let client = self.clone();
        response.bytes_stream().map(move |chunk| chunk.map_err(|err| client.transport_error(&err)))
    }

    /// Passes a success response through; turns anything else into a classified error carrying
    /// the vendor's own message.
    async fn check_status(&self, response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers(), SystemTime::now());
        // A body we cannot read still leaves us the status, which is what classification needs.
        let body = response.text().await.unwrap_or_default();
        Err(status_error(&self.provider, status.as_u16(), &body, retry_after))
    }

    /// Classifies a reqwest failure: timeouts apart, everything is a connection problem.
    pub(crate) fn transport_error(&self, err: &reqwest::Error) -> ProviderError {
        if err.is_timeout() {
            ProviderError::Timeout { provider: self.provider.clone(), after: self.timeout }
        } else {
            ProviderError::Connection { provider: self.provider.clone(), message: error_chain(err) }
        }
    }
}

/// Checks a configured base URL and returns it without a trailing slash, so endpoints can be
/// appended as `{base}/path`.
pub(crate) fn normalize_base_url(provider: &str, raw: &str) -> Result<String, ProviderError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|err| {
        ProviderError::NotConfigured(format!("{provider}: base URL {trimmed:?} is not a valid URL: {err}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ProviderError::NotConfigured(format!(
            "{provider}: base URL {trimmed:?} must start with http:// or https://"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Builds the error for a non-2xx answer: context overflow when the vendor says the prompt was
/// too long, otherwise a status error with the vendor's message.
pub(crate) fn status_error(provider: &str, status: u16, body: &str, retry_after: Option<Duration>) -> ProviderError {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(vendor_message).unwrap_or_else(|| {
        if body.trim().is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("no error message")
                .to_owned()
        } else {
            snippet(body)
        }
    });
    let code = parsed.as_ref().and_then(vendor_code);
    if is_context_overflow(status, code.as_deref(), &message) {
        return ProviderError::ContextOverflow { provider: provider.to_owned(), message };
    }
    ProviderError::Status { provider: provider.to_owned(), status, message, retry_after }
}

/// The human-readable message in a vendor error body:
/// OpenAI and Mistral `{"error":{"message":..}}`, Anthropic `{"type":"error","error":{..}}`,
/// Ollama `{"error":".."}`, and the `{"message":..}` / `{"detail":..}` shapes some
/// OpenAI-compatible servers and Mistral's validation errors use.
fn vendor_message(body: &serde_json::Value) -> Option<String> {
    let candidates = [body.pointer("/error/message"), body.get("error"), body.get("message"), body.get("detail")];
    candidates.into_iter().flatten().find_map(|value| match value {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Null | serde_json::Value::String(_) => None,
        // An error object without a message, or a structured validation report: quote it whole.
        other if other.get("message").is_none() => Some(other.to_string()),
        _ => None,
    })
}

/// The machine-readable error code or type, where the vendor gives one.
fn vendor_code(body: &serde_json::Value) -> Option<String> {
    [body.pointer("/error/code"), body.pointer("/error/type"), body.get("code"), body.get("type")]
        .into_iter()
        .flatten()
        .find_map(|value| value.as_str().map(str::to_owned))
}

/// Whether a client error says the prompt does not fit the model's context window. Vendors say
/// so differently: OpenAI with the code `context_length_exceeded`, Anthropic with "prompt is
/// too long", Mistral and OpenAI-compatible servers with "maximum context length" wording.
fn is_context_overflow(status: u16, code: Option<&str>, message: &str) -> bool {
    if !matches!(status, 400 | 413 | 422) {
        return false;
    }
    if code == Some("context_length_exceeded") {
        return true;
    }
    let message = message.to_lowercase();
    [
        "prompt is too long",
        "context_length_exceeded",
        "maximum context length",
        "context length exceeded",
        "exceeds the context window",
        "exceed context window",
        "input is too long",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// The server's requested wait: `Retry-After` as delta-seconds or an HTTP date, or the
/// millisecond `retry-after-ms` some OpenAI-style servers send.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(millis) = headers.get("retry-after-ms").and_then(|value| value.to_str().ok())
        && let Ok(millis) = millis.trim().parse::<f64>()
        && millis.is_finite()
        && millis >= 0.0
    {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(value, now)
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // A date in the past means "now".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error with its causes, e.g. "error sending request: tcp connect error: Connection refused".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The start of a long text, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(BODY_SNIPPET_CHARS).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> ProviderError {
        status_error("vendor", status, body, None)
    }

    #[test]
    fn vendor_messages_are_extracted_from_each_error_shape() {
        let cases = [
            (
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
                "Incorrect API key provided",
            ),
            (r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, "Overloaded"),
            (
                r#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
                "model \"llama9\" not found, try pulling it first",
            ),
            (
                r#"{"object":"error","message":"Unauthorized","type":"invalid_request_error","code":null}"#,
                "Unauthorized",
            ),
            (r#"{"detail":"Not Found"}"#, "Not Found"),
            ("upstream connect error", "upstream connect error"),
            ("", "Service Unavailable"),
        ];
        for (body, expected) in cases {
            match status(503, body) {
                ProviderError::Status { message, .. } => assert_eq!(message, expected, "body {body}"),
                other => panic!("body {body}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn context_overflow_is_recognised_per_vendor() {
        let overflowing = [
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            ),
            (
                400,
                r#"{"object":"error","message":"Prompt contains 40000 tokens, too large for model with 32768 maximum context length","type":"invalid_request_error"}"#,
            ),
        ];
        for (code, body) in overflowing {
            assert!(matches!(status(code, body), ProviderError::ContextOverflow { .. }), "{body}");
        }
        // The same words on a server error are not the client's overflow.
        assert!(matches!(status(500, overflowing[1].1), ProviderError::Status { status: 500, .. }));
        assert!(matches!(status(400, r#"{"error":{"message":"bad tool schema"}}"#), ProviderError::Status { .. }));
    }

    #[test]
    fn retry_after_accepts_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);

        let mut headers = HeaderMap::new();
        headers.insert("retry-after-ms", "250".parse().unwrap());
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(normalize_base_url("x", "https://api.example.com/v1/").unwrap(), "https://api.example.com/v1");
        assert!(matches!(normalize_base_url("x", "api.example.com"), Err(ProviderError::NotConfigured(_))));
        assert!(matches!(normalize_base_url("x", "ftp://example.com"), Err(ProviderError::NotConfigured(_))));
    }
}
