//! `knowledge_search`: searches the tenant's knowledge base through the [`KnowledgeIndex`]
//! port, one namespace at a time.

use std::sync::Arc;

use async_trait::async_trait;
use domain::TenantId;
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::params::{invalid, parse, schema};
use crate::{Tool, ToolContext, ToolError};

pub const NAME: &str = "knowledge_search";
const DEFAULT_NAMESPACE: &str = "default";
const DEFAULT_LIMIT: usize = 5;
const MAX_LIMIT: usize = 20;

/// One passage found in the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeHit {
    pub document_id: String,
    /// Where the document came from (a file name, a URL, …).
    pub source: String,
    /// The matching passage.
    pub text: String,
    /// Relevance; higher is better.
    pub score: f64,
}

/// The knowledge base as the tool sees it; implemented by the knowledge crate.
#[async_trait]
pub trait KnowledgeIndex: Send + Sync {
    /// The best `limit` passages for `query` in one namespace of one tenant's knowledge base.
    async fn search(
        &self,
        tenant: &TenantId,
        namespace: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KnowledgeHit>, String>;
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// What to look for, in natural language.
    query: String,
    /// The knowledge namespace to search; "default" when absent.
    #[serde(default)]
    namespace: Option<String>,
    /// How many passages to return (1 to 20, default 5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 20))]
    limit: Option<usize>,
}

/// Searches the knowledge base.
pub struct KnowledgeSearch {
    index: Arc<dyn KnowledgeIndex>,
}

impl KnowledgeSearch {
    pub fn new(index: Arc<dyn KnowledgeIndex>) -> Self {
        Self { index }
    }
}

#[async_trait]
impl Tool for KnowledgeSearch {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Search the knowledge base for passages relevant to a query.".to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "kb:*".to_owned(),
            resource_args: vec![ResourceArg {
                param: "namespace".to_owned(),
                kind: ResourceKind::KnowledgeNamespace,
                default: Some(DEFAULT_NAMESPACE.to_owned()),
                optional: false,
            }],
            timeout_seconds: 15,
            requires_approval: false,
            state_changing: false,
            untrusted_output: false,
        }
    }

    async fn call(&self, context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: Params = parse(params)?;
        let query = params.query.trim();
        if query.is_empty() {
            return Err(invalid("query", "must not be empty"));
        }
        let namespace = params.namespace.as_deref().map(str::trim).unwrap_or(DEFAULT_NAMESPACE);
        if namespace.is_empty() {
            return Err(invalid("namespace", "must not be empty"));
        }
        let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid("limit", format!("must be between 1 and {MAX_LIMIT}, got {limit}")));
        }
        let mut hits = self.index.search(&context.tenant, namespace, query, limit).await.map_err(|message| {
            ToolError::Failed { message: format!("knowledge search failed: {message}"), transient: false }
        })?;
        hits.truncate(limit);
        Ok(json!({ "query": query, "namespace": namespace, "hits": hits }))
    }
}
