//! `web_fetch`: fetches one http(s) page through [`SafeHttp`] (SSRF-safe: every address and
//! every redirect checked against the [`AddressPolicy`], size and time capped, no proxy) and
//! returns its readable text.

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use reqwest::header::CONTENT_TYPE;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::address::AddressPolicy;
use super::html_text::html_to_text;
use super::params::{invalid, parse, schema};
use super::safe_http::{Fetched, SafeHttp};
use super::{BuiltinSettings, DEFAULT_MAX_FETCH_BYTES, http};
use crate::{Tool, ToolContext, ToolError};

pub const NAME: &str = "web_fetch";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The http or https URL to fetch.
    url: String,
    /// Read at most this many bytes of the body (default 1 MiB, never more than the configured cap).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_bytes: Option<usize>,
}

/// Fetches a web page as readable text.
pub struct WebFetch {
    http: SafeHttp,
    max_bytes: usize,
}

impl WebFetch {
    /// The tool with the strict address policy.
    pub fn new(settings: &BuiltinSettings) -> Self {
        Self::with_policy(settings, AddressPolicy::strict())
    }

    pub fn with_policy(settings: &BuiltinSettings, policy: AddressPolicy) -> Self {
        Self { http: SafeHttp::new(NAME, policy, settings.http_timeout), max_bytes: settings.max_fetch_bytes }
    }
}

/// The final response as text; HTML becomes readable text.
fn read(fetched: Fetched) -> Result<Value, ToolError> {
    let status = fetched.status;
    if status >= 500 {
        return Err(http::status_failed(NAME, reqwest::StatusCode::from_u16(status).unwrap_or_default()));
    }
    let content_type = fetched.header(CONTENT_TYPE.as_str()).map(str::to_owned);
    let essence = fetched.essence();
    if !is_textual(&essence) {
        return Err(ToolError::Failed {
            message: format!("{}: content type {essence:?} is not text", fetched.url),
            transient: false,
        });
    }
    let raw = String::from_utf8_lossy(&fetched.body);
    let text = if essence == "text/html" || essence == "application/xhtml+xml" {
        html_to_text(&raw)
    } else {
        raw.into_owned()
    };
    Ok(json!({
        "url": fetched.url.as_str(),
        "status": status,
        "content_type": content_type,
        "text": text,
        "truncated": fetched.truncated,
    }))
}

fn is_textual(essence: &str) -> bool {
    essence.is_empty()
        || essence.starts_with("text/")
        || ["json", "xml", "javascript", "yaml", "csv", "x-www-form-urlencoded"].iter().any(|t| essence.contains(t))
}

#[async_trait]
impl Tool for WebFetch {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Fetch a public web page (http or https) and return its readable text.".to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "web:*".to_owned(),
            resource_args: vec![ResourceArg {
                param: "url".to_owned(),
                kind: ResourceKind::Url,
                default: None,
                optional: false,
            }],
            timeout_seconds: u32::try_from(self.http.timeout().as_secs().saturating_add(5)).unwrap_or(u32::MAX),
            requires_approval: false,
            state_changing: false,
            untrusted_output: true,
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: Params = parse(params)?;
        let limit = match params.max_bytes {
            Some(0) => return Err(invalid("max_bytes", "must be at least 1")),
            Some(requested) => requested.min(self.max_bytes),
            None => DEFAULT_MAX_FETCH_BYTES.min(self.max_bytes),
        };
        let url = Url::parse(params.url.trim()).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
        read(self.http.get(url, &[], limit).await?)
    }
}
