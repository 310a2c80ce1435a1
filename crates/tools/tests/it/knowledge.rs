//! `knowledge_search` against a small in-test index.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::TenantId;
use serde_json::json;
use tools::Tool;
use tools::builtin::{KnowledgeHit, KnowledgeIndex, KnowledgeSearch};

use crate::support::{failed, invalid_param, no_files};

/// Records each search and answers from a fixed list of documents by substring match.
#[derive(Default)]
struct MemoryIndex {
    calls: Mutex<Vec<(String, String, String, usize)>>,
}

#[async_trait]
impl KnowledgeIndex for MemoryIndex {
    async fn search(
        &self,
        tenant: &TenantId,
        namespace: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KnowledgeHit>, String> {
        self.calls.lock().expect("not poisoned").push((tenant.to_string(), namespace.into(), query.into(), limit));
        if namespace == "broken" {
            return Err("index offline".into());
        }
        let documents = [
            ("d1", "handbook.md", "Refunds are processed within 5 days."),
            ("d2", "faq.md", "Refunds need a receipt."),
        ];
        Ok(documents
            .iter()
            .filter(|(_, _, text)| text.to_lowercase().contains(&query.to_lowercase()))
            .enumerate()
            .map(|(rank, (id, source, text))| KnowledgeHit {
                document_id: (*id).into(),
                source: (*source).into(),
                text: (*text).into(),
                score: 1.0 / (rank as f64 + 1.0),
            })
            .collect())
    }
}

fn tool() -> (Arc<MemoryIndex>, KnowledgeSearch) {
    let index = Arc::new(MemoryIndex::default());
    (index.clone(), KnowledgeSearch::new(index))
}

#[tokio::test]
async fn searches_the_default_namespace_with_the_default_limit() {
    let (index, tool) = tool();
    let result = tool.call(&no_files(), json!({"query": "refunds"})).await.unwrap();
    assert_eq!(result["query"], "refunds");
    assert_eq!(result["namespace"], "default");
    assert_eq!(result["hits"].as_array().unwrap().len(), 2);
    assert_eq!(
        result["hits"][0],
        json!({"document_id": "d1", "source": "handbook.md", "text": "Refunds are processed within 5 days.", "score": 1.0})
    );
    assert_eq!(index.calls.lock().unwrap()[0], ("tenant-a".into(), "default".into(), "refunds".into(), 5));
}

#[tokio::test]
async fn namespace_and_limit_are_passed_on() {
    let (index, tool) = tool();
    let result =
        tool.call(&no_files(), json!({"query": "receipt", "namespace": "policies", "limit": 1})).await.unwrap();
    assert_eq!(result["namespace"], "policies");
    assert_eq!(result["hits"].as_array().unwrap().len(), 1);
    assert_eq!(index.calls.lock().unwrap()[0].1, "policies");
    assert_eq!(index.calls.lock().unwrap()[0].3, 1);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let (index, tool) = tool();
    let cases = [
        (json!({}), "query"),
        (json!({"query": "  "}), "query"),
        (json!({"query": 3}), "query"),
        (json!({"query": "x", "limit": 0}), "limit"),
        (json!({"query": "x", "limit": 21}), "limit"),
        (json!({"query": "x", "namespace": ""}), "namespace"),
        (json!({"query": "x", "top_k": 3}), "top_k"),
    ];
    for (params, param) in cases {
        assert_eq!(invalid_param(tool.call(&no_files(), params.clone()).await), param, "{params}");
    }
    assert!(index.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_index_failure_is_reported() {
    let (_, tool) = tool();
    let (message, transient) = failed(tool.call(&no_files(), json!({"query": "x", "namespace": "broken"})).await);
    assert!(message.contains("index offline"), "{message}");
    assert!(!transient);
}
