//! HTTP to addresses nobody vetted (a model's URL, a watched feed, a webhook), SSRF-safe. The
//! host is resolved once, every address is checked against the [`AddressPolicy`], and the
//! connection goes to the checked address (the client is pinned to it, so DNS is not consulted
//! again). Redirects of a GET are followed by hand, each hop checked the same way; a POST follows
//! none. Bodies are streamed under a size cap, every request under a time limit, and no proxy
//! from the environment is used.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use url::{Host, Url};

use super::address::AddressPolicy;
use super::http;
use crate::ToolError;

/// The most redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// A client for untrusted URLs. `name` prefixes its errors (`web_fetch`, `watcher`).
#[derive(Debug, Clone)]
pub struct SafeHttp {
    name: &'static str,
    policy: AddressPolicy,
    timeout: Duration,
}

/// A GET's final answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the body came from, after redirects.
    pub url: Url,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// More was sent than the cap allowed; the body is cut.
    pub truncated: bool,
}

impl Fetched {
    /// A response header as text, when it is present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The content type's essence, lower-cased (`text/html`), or empty.
    pub fn essence(&self) -> String {
        self.header(CONTENT_TYPE.as_str())
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// Where one hop connects: the domain (none for an IP literal) and the addresses it resolved
/// to, every one of them checked.
struct Target {
    domain: Option<String>,
    addresses: Vec<SocketAddr>,
}

impl SafeHttp {
    pub fn new(name: &'static str, policy: AddressPolicy, timeout: Duration) -> Self {
        Self { name, policy, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// GETs `url` with `headers`, following up to [`MAX_REDIRECTS`] redirects, and reads at
    /// most `limit` bytes of the final body. Any status comes back as it is (a 304 or a 404 is
    /// an answer, not an error); only failures to get one are errors.
    pub async fn get(
        &self,
        start: Url,
        headers: &[(&'static str, String)],
        limit: usize,
    ) -> Result<Fetched, ToolError> {
        let mut header_map = HeaderMap::new();
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|_| ToolError::Failed {
                message: format!("{}: the {name} header holds characters HTTP does not allow", self.name),
                transient: false,
            })?;
            header_map.insert(*name, value);
        }
        let headers = header_map;
        let work = async {
            let mut url = start;
            for hop in 0..=MAX_REDIRECTS {
                let target = self.check(&url).await?;
                let response = self
                    .client(&target)?
                    .get(url.clone())
                    .headers(headers.clone())
                    .send()
                    .await
                    .map_err(|e| http::request_failed(self.name, &e))?;
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
                let next = match location {
                    Some(location) if response.status().is_redirection() => {
                        url.join(location.trim()).map_err(|e| ToolError::Failed {
                            message: format!("{}: redirect to an invalid URL {location:?}: {e}", self.name),
                            transient: false,
                        })?
                    }
                    _ => {
                        let status = response.status().as_u16();
                        let headers = response.headers().clone();
                        let (body, truncated) = http::read_capped(self.name, response, limit).await?;
                        return Ok(Fetched { url, status, headers, body, truncated });
                    }
                };
                if hop == MAX_REDIRECTS {
                    break;
                }
                tracing::debug!(from = %url, to = %next, service = self.name, "following a redirect");
                url = next;
            }
            Err(ToolError::Failed {
                message: format!("{}: more than {MAX_REDIRECTS} redirects", self.name),
                transient: false,
            })
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(ToolError::Timeout(self.timeout)))
    }

    /// POSTs `body` as JSON to `url` (no redirects followed) and returns the status; a status
    /// outside 2xx is an error, transient for server errors and rate limits.
    pub async fn post_json(&self, url: &Url, body: &serde_json::Value) -> Result<u16, ToolError> {
        let work = async {
            let target = self.check(url).await?;
            let response = self
                .client(&target)?
                .post(url.clone())
                .json(body)
                .send()
                .await
                .map_err(|e| http::request_failed(self.name, &e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(http::status_failed(self.name, status));
            }
            Ok(status.as_u16())
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or(Err(ToolError::Timeout(self.timeout)))
    }

    /// Checks the scheme, resolves the host once and checks every address it resolves to.
    async fn check(&self, url: &Url) -> Result<Target, ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Refused(format!(
                "{}: scheme {:?} is not allowed; only http and https",
                self.name,
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
                ToolError::Refused(format!("{}: {host} is {}, a blocked {range} address", self.name, address.ip()))
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
