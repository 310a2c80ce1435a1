//! The server log tail: admins only, filtered by level and text, lines about another tenant
//! hidden, new lines followed live (resumable by id), and a text download.

use domain::tenant::Role;
use runtime::logs::LogLevel;

use crate::support::spawn;

#[tokio::test]
async fn admins_see_their_servers_lines_filtered_live_and_as_a_download() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    app.user("acme", "bob@acme.test", Role::Member, 3).await;
    let tail = app.runtime.logs().expect("the test server keeps its lines").clone();
    tail.push(LogLevel::Info, "nexus::serve", None, "nexus listening on http://127.0.0.1:1");
    tail.push(LogLevel::Warn, "runtime::runs", Some("acme"), "run slow for acme");
    tail.push(LogLevel::Warn, "runtime::runs", Some("other"), "run slow for other");
    tail.push(LogLevel::Debug, "runtime::auth", None, "checked key nxs_AbCdEf0123456789xyz");
    tail.push(LogLevel::Error, "store", None, "database unavailable <script>alert(1)</script>");

    let bob = app.signed_in("bob@acme.test").await;
    assert_eq!(bob.get("/logs").await.status(), 403);
    assert_eq!(bob.get("/logs.txt").await.status(), 403);
    assert_eq!(bob.get("/logs/events").await.status(), 403);

    let ada = app.signed_in("ada@acme.test").await;
    let page = ada.page("/logs").await;
    assert!(page.contains("nexus listening") && page.contains("run slow for acme"), "{page}");
    assert!(!page.contains("run slow for other"), "another tenant's line is hidden");
    assert!(!page.contains("checked key"), "debug lines only when asked for");
    assert!(page.contains("&#60;script&#62;") && !page.contains("<script>alert"), "escaped");
    let debug = ada.page("/logs?level=debug").await;
    assert!(debug.contains("checked key [redacted]") && !debug.contains("nxs_AbC"), "{debug}");
    let errors = ada.page("/logs?level=error").await;
    assert!(errors.contains("database unavailable") && !errors.contains("run slow"), "{errors}");
    let text = ada.page("/logs?q=SLOW").await;
    assert!(text.contains("run slow for acme") && !text.contains("nexus listening"));
    assert_eq!(ada.get("/logs?level=loud").await.status(), 422);

    let download = ada.get("/logs.txt?level=warn").await;
    assert_eq!(download.headers()["content-disposition"], "attachment; filename=\"nexus-logs.txt\"");
    let body = download.text().await.expect("text");
    assert_eq!(body.lines().count(), 2, "{body}");
    assert!(body.contains(" WARN  runtime::runs run slow for acme") && body.contains("ERROR store database"));

    // Live: a line logged after the page was read arrives, and a reconnect resumes after an id.
    let live = page.split("sse-connect=\"").nth(1).and_then(|s| s.split('"').next()).expect("live address");
    let live = live.replace("&#38;", "&");
    let mut stream = ada.get(&live).await;
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    tail.push(LogLevel::Info, "runtime", Some("acme"), "a new line");
    let mut body = String::new();
    while !body.contains("a new line") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk())
            .await
            .expect("within 5 s")
            .expect("chunk")
            .expect("open");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.contains("event: line") && body.contains("id: 6"), "{body}");
    let resumed =
        ada.client.get(ada.url("/logs/events?level=warn")).header("last-event-id", "2").send().await.expect("resume");
    let mut resumed = resumed;
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), resumed.chunk())
        .await
        .expect("in time")
        .expect("chunk")
        .expect("open");
    let first = String::from_utf8_lossy(&chunk).into_owned();
    assert!(
        first.contains("id: 5") && first.contains("database unavailable"),
        "after line 2, the warn+ lines of acme: {first}"
    );
}
