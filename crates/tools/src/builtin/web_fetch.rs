//! `web_fetch`: fetches one http(s) page, SSRF-safe. The host is resolved once, every address
//! is checked against the [`AddressPolicy`], and the connection goes to the checked address
//! (the client is pinned to it, so DNS is not consulted again). Redirects are followed by hand,
//! each hop checked the same way; the body is streamed under a size cap and the whole fetch
//! under a time limit. No proxy from the environment is used.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use url::{Host, Url};

use super::address::AddressPolicy;
use super::html_text::html_to_text;
use super::params::{invalid, parse, schema};
use super::{BuiltinSettings, DEFAULT_MAX_FETCH_BYTES, http};
use crate::{Tool, ToolContext, ToolError};

pub const NAME: &str = "web_fetch";
/// The most redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

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
    policy: AddressPolicy,
    timeout: Duration,
    max_bytes: usize,
}

/// Where one hop connects: the domain (none for an IP literal) and the addresses it resolved
/// to, every one of them checked.
struct Target {
    domain: Option<String>,
    addresses: Vec<SocketAddr>,
}

impl WebFetch {
    /// The tool with the strict address policy.
    pub fn new(settings: &BuiltinSettings) -> Self {
        Self::with_policy(settings, AddressPolicy::strict())
    }

    pub fn with_policy(settings: &BuiltinSettings, policy: AddressPolicy) -> Self {
        Self { policy, timeout: settings.http_timeout, max_bytes: settings.max_fetch_bytes }
    }

    async fn fetch(&self, start: Url, limit: usize) -> Result<Value, ToolError> {
        let mut url = start;
        for hop in 0..=MAX_REDIRECTS {
            let target = self.check(&url).await?;
            let response =
                self.client(&target)?.get(url.clone()).send().await.map_err(|e| http::request_failed(NAME, &e))?;
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let next = match location {
                Some(location) if response.status().is_redirection() => {
                    url.join(location.trim()).map_err(|e| ToolError::Failed {
                        message: format!("redirect to an invalid URL {location:?}: {e}"),
                        transient: false,
                    })?
                }
                _ => return read(url, response, limit).await,
            };
            if hop == MAX_REDIRECTS {
                break;
            }
            tracing::debug!(from = %url, to = %next, "web_fetch follows a redirect");
            url = next;
        }
        Err(ToolError::Failed { message: format!("more than {MAX_REDIRECTS} redirects"), transient: false })
    }

    /// Checks the scheme, resolves the host once and checks every address it resolves to.
    async fn check(&self, url: &Url) -> Result<Target, ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Refused(format!(
                "web_fetch: scheme {:?} is not allowed; only http and https",
                url.scheme()
            )));
        }
        let port = url.port_or_known_default().ok_or_else(|| ToolError::Refused(format!("{url}: no port")))?;
        let (domain, addresses) = match url.host() {
            None => return Err(ToolError::Refused(format!("{url}: the URL has no host"))),
            Some(Host::Ipv4(ip)) => (None, vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Ipv6(ip)) => (None, vec![SocketAddr::new(ip.into(), port)]),
            Some(Host::Domain(domain)) => {
                let resolved = tokio::net::lookup_host((domain, port)).await.map_err(|e| ToolError::Failed {
                    message: format!("cannot resolve {domain}: {e}"),
                    transient: true,
                })?;
                (Some(domain.to_owned()), resolved.collect::<Vec<_>>())
            }
        };
        let host = url.host_str().unwrap_or_default();
        for address in &addresses {
            self.policy.check(address.ip()).map_err(|range| {
                ToolError::Refused(format!("web_fetch: {host} is {}, a blocked {range} address", address.ip()))
            })?;
        }
        if addresses.is_empty() {
            return Err(ToolError::Failed { message: format!("{host} resolves to no address"), transient: true });
        }
        Ok(Target { domain, addresses })
    }

    /// A client for one hop: pinned to the checked addresses, no redirects, no proxy.
    fn client(&self, target: &Target) -> Result<reqwest::Client, ToolError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("nexus-tools/", env!("CARGO_PKG_VERSION")));
        if let Some(domain) = &target.domain {
            builder = builder.resolve_to_addrs(domain, &target.addresses);
        }
        builder
            .build()
            .map_err(|e| ToolError::Failed { message: format!("cannot build an HTTP client: {e}"), transient: false })
    }
}

/// The final response as text; HTML becomes readable text.
async fn read(url: Url, response: reqwest::Response, limit: usize) -> Result<Value, ToolError> {
    let status = response.status();
    if status.is_server_error() {
        return Err(http::status_failed(NAME, status));
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let essence = content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !is_textual(&essence) {
        return Err(ToolError::Failed {
            message: format!("{url}: content type {essence:?} is not text"),
            transient: false,
        });
    }
    let (body, truncated) = http::read_capped(NAME, response, limit).await?;
    let raw = String::from_utf8_lossy(&body);
    let text = if essence == "text/html" || essence == "application/xhtml+xml" {
        html_to_text(&raw)
    } else {
        raw.into_owned()
    };
    Ok(json!({
        "url": url.as_str(),
        "status": status.as_u16(),
        "content_type": content_type,
        "text": text,
        "truncated": truncated,
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
            timeout_seconds: u32::try_from(self.timeout.as_secs().saturating_add(5)).unwrap_or(u32::MAX),
            requires_approval: false,
            state_changing: false,
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
        match tokio::time::timeout(self.timeout, self.fetch(url, limit)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::Timeout(self.timeout)),
        }
    }
}
