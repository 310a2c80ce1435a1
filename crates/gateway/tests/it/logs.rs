//! `/v1/logs` and `/v1/logs/stream`: admins read this server's recent lines filtered by level,
//! target, text, time and cursor, never another tenant's; the stream resumes after
//! `Last-Event-ID`; members get 403 and bad filters a field error. `/v1/health/components`
//! shows each component's state to any key.

use domain::tenant::Role;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use runtime::logs::LogLevel;
use serde_json::Value;

use crate::support::{Options, spawn_app};

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn admins_read_and_follow_the_server_s_log_lines() {
    let app = spawn_app(Options::default()).await;
    let admin = app.key("demo", Role::Admin).await;
    let member = app.key("demo", Role::Member).await;
    let tail = app.runtime.logs().cloned().expect("the server keeps lines");
    tail.push(LogLevel::Info, "runtime::jobs", Some("demo"), "claimed a job job=job_1");
    tail.push(LogLevel::Warn, "channels::telegram", None, "the Telegram session ended; building a new one");
    tail.push(LogLevel::Error, "runtime::jobs", Some("acme"), "acme's secret trouble");
    tail.push(LogLevel::Debug, "store", None, "a debug line token=nxs_abcdef123456");

    let (status, lines) = send(app.get("/v1/logs", &admin)).await;
    assert_eq!(status, StatusCode::OK, "{lines}");
    let texts: Vec<&str> = lines.as_array().into_iter().flatten().filter_map(|l| l["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("claimed a job")), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("acme")), "another tenant's line is never shown: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("debug line")), "info and above by default");

    let (_, warned) = send(app.get("/v1/logs?level=warn", &admin)).await;
    assert_eq!(warned.as_array().map(Vec::len), Some(1), "{warned}");
    assert_eq!(warned[0]["level"], "warn");
    let (_, jobs) = send(app.get("/v1/logs?target=runtime::jobs&q=CLAIMED", &admin)).await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    let (_, debug) = send(app.get("/v1/logs?level=debug&q=debug%20line", &admin)).await;
    assert!(debug[0]["text"].as_str().is_some_and(|t| !t.contains("nxs_abcdef")), "secrets masked: {debug}");
    let first = lines[0]["seq"].as_u64().expect("seq");
    let (_, after) = send(app.get(&format!("/v1/logs?after={first}"), &admin)).await;
    assert!(after.as_array().into_iter().flatten().all(|l| l["seq"].as_u64() > Some(first)), "{after}");
    let (_, future) = send(app.get("/v1/logs?since=2999-01-01T00:00:00Z", &admin)).await;
    assert_eq!(future.as_array().map(Vec::len), Some(0));
    let (_, last) = send(app.get("/v1/logs?limit=1", &admin)).await;
    assert_eq!(last.as_array().map(Vec::len), Some(1));

    for (query, field) in [("level=loud", "level"), ("since=yesterday", "since"), ("limit=0", "limit")] {
        let (status, error) = send(app.get(&format!("/v1/logs?{query}"), &admin)).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
    let (status, _) = send(app.get("/v1/logs", &member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The stream: from the cursor the client sends, then live lines as they are logged.
    let cursor = tail.attach(None).0.last().map(|l| l.seq).expect("lines");
    let response = app
        .get("/v1/logs/stream?level=info", &admin)
        .header("last-event-id", cursor.to_string())
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    tail.push(LogLevel::Info, "runtime::equipment", None, "a live line after the cursor");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains("a live line after the cursor") {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("a live line").expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("bytes")));
    }
    assert!(text.contains("event: line") && text.contains(&format!("id: {}", cursor + 1)), "{text}");
    assert!(!text.contains("claimed a job"), "nothing before the cursor: {text}");
}

#[tokio::test]
async fn every_component_s_state_is_shown_to_keys() {
    let app = spawn_app(Options::default()).await;
    let member = app.key("demo", Role::Member).await;
    let (status, health) = send(app.get("/v1/health/components", &member)).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let components = &health["components"];
    assert_eq!(
        (components["database"]["ok"].as_bool(), components["database"]["backend"].as_str()),
        (Some(true), Some("sqlite"))
    );
    assert_eq!(components["rate_limits"]["backend"], "memory");
    assert!(components["providers"].as_array().is_some_and(|p| !p.is_empty()), "{health}");
    assert!(components["providers"][0]["circuit"].is_string(), "{health}");
    let response = app.client.get(app.url("/v1/health/components")).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
