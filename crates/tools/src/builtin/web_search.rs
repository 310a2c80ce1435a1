//! `web_search`: searches the web through a configured backend — a SearXNG instance (JSON
//! API) or the Brave Search API. With neither configured the tool is unavailable; it never
//! makes results up.

use std::time::Duration;

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::params::{invalid, parse, schema};
use super::{BuiltinSettings, http};
use crate::{Availability, Tool, ToolContext, ToolError};

pub const NAME: &str = "web_search";
const MISSING: &str = "NEXUS_SEARXNG_URL or BRAVE_SEARCH_API_KEY";
const DEFAULT_COUNT: usize = 5;
const MAX_COUNT: usize = 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// What to search the web for.
    query: String,
    /// How many results to return (1 to 20, default 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 20))]
    count: Option<usize>,
}

/// Where searches go.
#[derive(Clone)]
enum Backend {
    Searxng { base_url: String },
    Brave { base_url: String, api_key: String },
}

/// One result, the same whichever backend answered.
#[derive(Debug, Serialize)]
struct SearchResult {
    title: String,
    url: String,
    snippet: String,
}

#[derive(Deserialize)]
struct SearxngAnswer {
    #[serde(default)]
    results: Vec<SearxngResult>,
}

#[derive(Deserialize)]
struct SearxngResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct BraveAnswer {
    #[serde(default)]
    web: Option<BraveWeb>,
}

#[derive(Deserialize)]
struct BraveWeb {
    #[serde(default)]
    results: Vec<BraveResult>,
}

#[derive(Deserialize)]
struct BraveResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    description: Option<String>,
}

/// Searches the web.
pub struct WebSearch {
    backend: Option<Backend>,
    timeout: Duration,
}

impl WebSearch {
    /// SearXNG when its URL is set, otherwise Brave when its key is set, otherwise unavailable.
    pub fn new(settings: &BuiltinSettings) -> Self {
        let backend = match (&settings.searxng_url, &settings.brave_api_key) {
            (Some(url), _) => Some(Backend::Searxng { base_url: url.trim_end_matches('/').to_owned() }),
            (None, Some(key)) => Some(Backend::Brave {
                base_url: settings.brave_base_url.trim_end_matches('/').to_owned(),
                api_key: key.clone(),
            }),
            (None, None) => None,
        };
        Self { backend, timeout: settings.http_timeout }
    }

    async fn search(
        &self,
        backend: &Backend,
        query: &str,
        count: usize,
    ) -> Result<(&'static str, Vec<SearchResult>), ToolError> {
        let client = http::service_client(self.timeout)?;
        let (name, request) = match backend {
            Backend::Searxng { base_url } => {
                ("searxng", client.get(format!("{base_url}/search")).query(&[("q", query), ("format", "json")]))
            }
            Backend::Brave { base_url, api_key } => (
                "brave",
                client
                    .get(format!("{base_url}/res/v1/web/search"))
                    .query(&[("q", query), ("count", &count.to_string())])
                    .header("X-Subscription-Token", api_key)
                    .header(reqwest::header::ACCEPT, "application/json"),
            ),
        };
        let service = format!("web_search ({name})");
        let response = request.send().await.map_err(|e| http::request_failed(&service, &e))?;
        if !response.status().is_success() {
            return Err(http::status_failed(&service, response.status()));
        }
        let results = match backend {
            Backend::Searxng { .. } => {
                let answer: SearxngAnswer = http::read_json(&service, response).await?;
                answer
                    .results
                    .into_iter()
                    .map(|r| SearchResult { title: r.title, url: r.url, snippet: r.content.unwrap_or_default() })
                    .collect()
            }
            Backend::Brave { .. } => {
                let answer: BraveAnswer = http::read_json(&service, response).await?;
                answer
                    .web
                    .map(|web| web.results)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| SearchResult { title: r.title, url: r.url, snippet: r.description.unwrap_or_default() })
                    .collect()
            }
        };
        Ok((name, results))
    }
}

#[async_trait]
impl Tool for WebSearch {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Search the web; returns titles, URLs and snippets of the top results.".to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "web:search".to_owned(),
            resource_args: vec![ResourceArg {
                param: "query".to_owned(),
                kind: ResourceKind::WebSearch,
                default: None,
                optional: false,
            }],
            timeout_seconds: u32::try_from(self.timeout.as_secs().saturating_add(5)).unwrap_or(u32::MAX),
            requires_approval: false,
            state_changing: false,
            untrusted_output: true,
        }
    }

    fn availability(&self) -> Availability {
        match self.backend {
            Some(_) => Availability::Available,
            None => Availability::Unconfigured { missing: MISSING.to_owned() },
        }
    }

    async fn call(&self, _context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let Some(backend) = &self.backend else {
            return Err(ToolError::Unavailable { tool: NAME.to_owned(), reason: format!("set {MISSING}") });
        };
        let params: Params = parse(params)?;
        let query = params.query.trim();
        if query.is_empty() {
            return Err(invalid("query", "must not be empty"));
        }
        let count = params.count.unwrap_or(DEFAULT_COUNT);
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(invalid("count", format!("must be between 1 and {MAX_COUNT}, got {count}")));
        }
        let (name, mut results) = self.search(backend, query, count).await?;
        results.truncate(count);
        Ok(json!({ "query": query, "backend": name, "results": results }))
    }
}
