//! `web_search`: the SearXNG and Brave backends, the unconfigured tool and failing services.

use serde_json::json;
use tools::builtin::WebSearch;
use tools::{Availability, BuiltinSettings, Tool, ToolError};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{failed, invalid_param, no_files, settings};

fn searxng(server: &MockServer) -> WebSearch {
    WebSearch::new(&BuiltinSettings { searxng_url: Some(format!("{}/", server.uri())), ..settings() })
}

fn brave(server: &MockServer) -> WebSearch {
    WebSearch::new(&BuiltinSettings {
        brave_api_key: Some("brave-key".into()),
        brave_base_url: server.uri(),
        ..settings()
    })
}

#[tokio::test]
async fn searxng_results_are_returned() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/search"))
        .and(query_param("q", "rust async"))
        .and(query_param("format", "json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "query": "rust async",
            "results": [
                {"title": "Async Book", "url": "https://rust-lang.github.io/async-book/", "content": "Asynchronous programming in Rust", "engine": "x"},
                {"title": "Tokio", "url": "https://tokio.rs/", "content": "An asynchronous runtime"},
                {"title": "No snippet", "url": "https://example.org/"}
            ]
        })))
        .expect(2)
        .mount(&server)
        .await;
    let tool = searxng(&server);
    assert_eq!(tool.availability(), Availability::Available);

    let result = tool.call(&no_files(), json!({"query": "rust async"})).await.unwrap();
    assert_eq!(result["backend"], "searxng");
    assert_eq!(result["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        result["results"][0],
        json!({"title": "Async Book", "url": "https://rust-lang.github.io/async-book/", "snippet": "Asynchronous programming in Rust"})
    );
    assert_eq!(result["results"][2]["snippet"], "");

    let two = tool.call(&no_files(), json!({"query": "rust async", "count": 2})).await.unwrap();
    assert_eq!(two["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn brave_results_are_returned() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/res/v1/web/search"))
        .and(query_param("q", "sqlite wal"))
        .and(query_param("count", "3"))
        .and(header("X-Subscription-Token", "brave-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "search",
            "web": {"results": [
                {"title": "Write-Ahead Logging", "url": "https://sqlite.org/wal.html", "description": "WAL mode", "age": "x"}
            ]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let result = brave(&server).call(&no_files(), json!({"query": "sqlite wal", "count": 3})).await.unwrap();
    assert_eq!(result["backend"], "brave");
    assert_eq!(
        result["results"],
        json!([{"title": "Write-Ahead Logging", "url": "https://sqlite.org/wal.html", "snippet": "WAL mode"}])
    );
}

#[tokio::test]
async fn unconfigured_search_is_unavailable_not_invented() {
    let tool = WebSearch::new(&settings());
    assert_eq!(
        tool.availability(),
        Availability::Unconfigured { missing: "NEXUS_SEARXNG_URL or BRAVE_SEARCH_API_KEY".into() }
    );
    let result = tool.call(&no_files(), json!({"query": "anything"})).await;
    assert!(matches!(&result, Err(ToolError::Unavailable { tool, .. }) if tool == "web_search"), "{result:?}");
}

#[tokio::test]
async fn service_failures_say_whether_to_retry() {
    let server = MockServer::start().await;
    Mock::given(path("/search")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    Mock::given(path("/res/v1/web/search")).respond_with(ResponseTemplate::new(401)).mount(&server).await;
    let (message, transient) = failed(searxng(&server).call(&no_files(), json!({"query": "x"})).await);
    assert!(transient && message.contains("500"), "{message}");
    let (message, transient) = failed(brave(&server).call(&no_files(), json!({"query": "x"})).await);
    assert!(!transient && message.contains("401"), "{message}");
    assert!(!message.contains("brave-key"));
}

#[tokio::test]
async fn malformed_answers_and_bad_parameters_fail() {
    let server = MockServer::start().await;
    Mock::given(path("/search"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>not json</html>", "text/html"))
        .mount(&server)
        .await;
    let tool = searxng(&server);
    let (_, transient) = failed(tool.call(&no_files(), json!({"query": "x"})).await);
    assert!(!transient);
    for (params, param) in [
        (json!({"query": "x", "count": 0}), "count"),
        (json!({"query": "x", "count": 21}), "count"),
        (json!({"query": " "}), "query"),
        (json!({"q": "x"}), "q"),
    ] {
        assert_eq!(invalid_param(tool.call(&no_files(), params).await), param);
    }
}
