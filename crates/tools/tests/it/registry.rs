//! The registry of built-in tools: definitions that fit the engine, and what each persona sees.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use domain::TenantId;
use domain::persona::{PersonaContract, RiskLevel, default_personas};
use serde_json::Value;
use tools::builtin::{KnowledgeHit, KnowledgeIndex};
use tools::{Availability, BuiltinSettings, Registry, builtins};

use crate::support::{settings, tenant};

struct EmptyIndex;

#[async_trait]
impl KnowledgeIndex for EmptyIndex {
    async fn search(&self, _: &TenantId, _: &str, _: &str, _: usize) -> Result<Vec<KnowledgeHit>, String> {
        Ok(vec![])
    }
}

fn build(settings: &BuiltinSettings) -> Registry {
    builtins(settings, Arc::new(EmptyIndex))
}

fn persona(name: &str) -> PersonaContract {
    default_personas(&tenant()).into_iter().find(|p| p.name == name).expect("a default persona")
}

fn seen(registry: &Registry, persona_name: &str) -> BTreeSet<String> {
    registry.for_persona(&persona(persona_name)).into_iter().map(|d| d.name).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn configured() -> BuiltinSettings {
    BuiltinSettings {
        searxng_url: Some("http://127.0.0.1:9".into()),
        smtp_host: Some("127.0.0.1".into()),
        smtp_from: Some("nexus@example.org".into()),
        ..settings()
    }
}

#[test]
fn every_builtin_is_registered_and_unconfigured_ones_say_what_is_missing() {
    let registry = build(&settings());
    let all: Vec<(String, Availability)> = registry.all().into_iter().map(|(d, a)| (d.name, a)).collect();
    let expected = [
        ("compute_stats", Availability::Available),
        ("file_read", Availability::Available),
        ("file_write", Availability::Available),
        ("knowledge_search", Availability::Available),
        ("remember", Availability::Available),
        ("send_email", Availability::Unconfigured { missing: "NEXUS_SMTP_HOST and NEXUS_SMTP_FROM".into() }),
        ("weather", Availability::Available),
        ("web_fetch", Availability::Available),
        ("web_search", Availability::Unconfigured { missing: "NEXUS_SEARXNG_URL or BRAVE_SEARCH_API_KEY".into() }),
    ];
    assert_eq!(all, expected.map(|(n, a)| (n.to_owned(), a)).to_vec());
    let offered: BTreeSet<String> = registry.definitions().into_iter().map(|d| d.name).collect();
    assert!(!offered.contains("web_search") && !offered.contains("send_email"));
    assert_eq!(build(&configured()).definitions().len(), 9);
}

#[test]
fn a_persona_sees_only_its_allowed_and_available_tools() {
    let unconfigured = build(&settings());
    assert_eq!(seen(&unconfigured, "researcher"), names(&["file_read", "knowledge_search", "web_fetch"]));
    assert_eq!(seen(&unconfigured, "communicator"), names(&["file_read", "knowledge_search"]));
    assert_eq!(seen(&unconfigured, "creator"), names(&["file_write", "knowledge_search"]));
    assert_eq!(
        seen(&unconfigured, "analyst"),
        names(&["compute_stats", "file_read", "file_write", "knowledge_search"])
    );

    let configured = build(&configured());
    assert_eq!(seen(&configured, "researcher"), names(&["file_read", "knowledge_search", "web_fetch", "web_search"]));
    assert_eq!(seen(&configured, "communicator"), names(&["file_read", "knowledge_search", "send_email"]));
    for persona_name in ["researcher", "analyst", "creator", "communicator", "operator"] {
        assert!(!seen(&configured, persona_name).contains("weather"), "{persona_name}");
    }
}

#[test]
fn definitions_fit_the_engine() {
    for (definition, _) in build(&configured()).all() {
        let name = &definition.name;
        let schema = &definition.parameters;
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], Value::Bool(false), "{name}");
        assert!(schema.get("$defs").is_none(), "{name}: the schema should be self-contained");
        let properties = schema["properties"].as_object().unwrap();
        for arg in &definition.resource_args {
            assert!(properties.contains_key(&arg.param), "{name}: resource arg {} is not a parameter", arg.param);
        }
        assert!(definition.timeout_seconds > 0, "{name}");
        assert!(!definition.description.is_empty(), "{name}");
    }
    let by_name =
        |wanted: &str| build(&configured()).all().into_iter().map(|(d, _)| d).find(|d| d.name == wanted).unwrap();
    let required = |wanted: &str| by_name(wanted).parameters["required"].clone();
    assert_eq!(required("knowledge_search"), serde_json::json!(["query"]));
    assert_eq!(required("web_fetch"), serde_json::json!(["url"]));
    assert_eq!(required("web_search"), serde_json::json!(["query"]));
    assert_eq!(required("file_read"), serde_json::json!(["path"]));
    assert_eq!(required("file_write"), serde_json::json!(["path", "content"]));
    assert_eq!(required("compute_stats"), serde_json::json!(["values"]));
    assert_eq!(required("send_email"), serde_json::json!(["to", "subject", "body"]));
    assert_eq!(required("weather"), serde_json::json!(["location"]));

    let email = by_name("send_email");
    assert_eq!(email.risk_level, RiskLevel::High);
    assert!(email.requires_approval && email.state_changing);
    assert_eq!(by_name("file_write").risk_level, RiskLevel::Medium);
    let namespace = &by_name("knowledge_search").resource_args[0];
    assert_eq!((namespace.param.as_str(), namespace.default.as_deref()), ("namespace", Some("default")));
}

#[tokio::test]
async fn remember_only_proposes_and_needs_someone_to_remember_for() {
    let registry = build(&settings());
    let tool = registry.get("remember").expect("registered");
    let definition = tool.definition();
    assert!(!definition.state_changing && !definition.untrusted_output);
    let refused = tool.call(&crate::support::no_files(), serde_json::json!({"content": "Likes tea"})).await;
    assert!(matches!(refused, Err(tools::ToolError::Refused(_))), "{refused:?}");
    let notes = std::sync::Arc::new(tools::MemoryNotes::default());
    let context = tools::ToolContext { memory: Some(notes.clone()), ..crate::support::no_files() };
    let proposed = tool.call(&context, serde_json::json!({"content": "  Likes   tea "})).await.expect("proposed");
    assert_eq!(proposed["proposed"], "Likes tea");
    assert_eq!(notes.take(), ["Likes tea"]);
    assert!(notes.take().is_empty());
    let empty = tool.call(&context, serde_json::json!({"content": "   "})).await;
    assert!(matches!(empty, Err(tools::ToolError::InvalidParams { .. })), "{empty:?}");
}
