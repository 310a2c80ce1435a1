//! A task run from the Execute page, really run by the agent (a fake OpenAI upstream), followed
//! live over SSE as HTML fragments, resumable by `Last-Event-ID`.

use crate::support::{search_model, spawn_with_agent};
use domain::tenant::Role;

/// The `data:` lines of each SSE event named `event`, joined.
fn fragments(body: &str) -> Vec<(u64, String)> {
    body.split("\n\n")
        .filter(|block| block.lines().any(|l| l == "event: event"))
        .map(|block| {
            let id = block.lines().find_map(|l| l.strip_prefix("id: ")).and_then(|i| i.parse().ok()).expect("id");
            let data: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            (id, data.join("\n"))
        })
        .collect()
}

#[tokio::test]
async fn a_task_run_from_the_console_streams_its_gates_and_seals_and_resumes() {
    let openai = search_model().await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    let browser = app.signed_in("ada@demo.test").await;
    let form = browser.page("/execute").await;
    assert!(form.contains("<option value=\"researcher\">"), "personas to pick from: {form}");
    let csrf = browser.csrf().await;

    let started = browser.post("/execute", &[("csrf", &csrf), ("task", "What is the ledger?"), ("persona", "")]).await;
    assert_eq!(started.status(), 303);
    let location = started.headers()["location"].to_str().expect("ascii").to_owned();
    let chain = location.strip_prefix("/chains/").expect("a chain page").to_owned();

    let stream = browser.get(&format!("/chains/{chain}/events")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let body = stream.text().await.expect("the stream ends with the run");
    assert!(body.contains("event: done"), "a finished run closes the stream: {body}");
    let events = fragments(&body);
    let gates: Vec<&str> = ["scope", "intent", "ttl", "drift"]
        .into_iter()
        .filter(|g| events.iter().any(|(_, html)| html.contains(&format!("data-gate=\"{g}\""))))
        .collect();
    assert_eq!(gates, ["scope", "intent", "ttl", "drift"], "all four gates: {body}");
    let seals = events.iter().filter(|(_, html)| html.contains("class=\"seal\"")).count();
    assert_eq!(seals, 2, "an intent seal and a result seal: {body}");
    assert!(events.last().is_some_and(|(_, html)| html.contains("chain_completed") && html.contains("completed")));
    let numbers: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "numbered without gaps: {numbers:?}");

    // A browser that reconnects after event 2 gets exactly what followed.
    let resumed = browser
        .client
        .get(browser.url(&format!("/chains/{chain}/events")))
        .header("last-event-id", "2")
        .send()
        .await
        .expect("resume")
        .text()
        .await
        .expect("body");
    let again: Vec<u64> = fragments(&resumed).iter().map(|(id, _)| *id).collect();
    assert_eq!(again, numbers.iter().copied().filter(|n| *n > 2).collect::<Vec<_>>());

    // The run's last event can reach the stream just before its stored state does.
    let answered = |page: &str| {
        page.contains("The ledger is &#60;b&#62;tamper-evident&#60;/b&#62;.") || page.contains("&lt;b&gt;")
    };
    let mut page = browser.page(&location).await;
    for _ in 0..50 {
        if answered(&page) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        page = browser.page(&location).await;
    }
    assert!(answered(&page), "the answer is text: {page}");
    assert!(page.contains("sse-connect=\"/chains/"), "a finished run's events are replayed: {page}");
}

#[tokio::test]
async fn a_held_call_is_refused_to_its_requester_and_approved_by_another_admin() {
    let openai = crate::support::email_model().await;
    let smtp = crate::support::FakeSmtp::start().await;
    let app = crate::support::spawn_with_mail(&openai, &smtp).await;
    app.user("demo", "ada@demo.test", Role::Admin, 3).await;
    app.user("demo", "bob@demo.test", Role::Admin, 3).await;
    let ada = app.signed_in("ada@demo.test").await;
    let csrf = ada.csrf().await;
    let started =
        ada.post("/execute", &[("csrf", &csrf), ("task", "Email the board the report"), ("persona", "")]).await;
    assert_eq!(started.status(), 303);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    // The run goes on detached from the request: wait for it to park on the approval.
    let mut id = None;
    for _ in 0..100 {
        let pending = app.runtime.approvals(&tenant, Some(domain::agent::ApprovalStatus::Pending)).await.expect("list");
        if let Some(approval) = pending.first() {
            id = Some(approval.id.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = id.expect("the email is held for an approval within 5 s");

    let own = ada.post(&format!("/approvals/{id}/decide"), &[("csrf", &csrf), ("decision", "approve")]).await;
    assert_eq!(own.status(), 403);
    assert!(own.text().await.expect("body").contains("may not approve"));
    let bob = app.signed_in("bob@demo.test").await;
    let bob_csrf = bob.csrf().await;
    let odd = bob.post(&format!("/approvals/{id}/decide"), &[("csrf", &bob_csrf), ("decision", "maybe")]).await;
    assert_eq!(odd.status(), 422, "decision must be approve or deny");
    let approved = bob
        .post(&format!("/approvals/{id}/decide"), &[("csrf", &bob_csrf), ("decision", "approve"), ("note", "ok")])
        .await;
    assert_eq!(approved.status(), 303);
    assert_eq!(approved.headers()["location"], "/approvals?done=approved");
    assert_eq!(smtp.messages.lock().expect("lock").len(), 1, "sent once, after the approval");
    let again = bob.post(&format!("/approvals/{id}/decide"), &[("csrf", &bob_csrf), ("decision", "deny")]).await;
    assert_eq!(again.status(), 409, "decided once");
    let runs = app.runtime.run_reports(&tenant, None, 1).await.expect("runs");
    assert_eq!(runs[0].status.as_str(), "completed");
}

/// Reads an endless SSE response for `within`, or until `enough` holds of what was read.
async fn read_for(
    mut response: reqwest::Response,
    within: std::time::Duration,
    enough: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    let mut body = String::new();
    while !enough(&body) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    body
}

#[tokio::test]
async fn the_overview_feed_shows_the_tenants_runs_live_and_resumes_after_an_id() {
    let openai = search_model().await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    app.user("other", "eve@other.test", Role::Admin, 5).await;
    let ada = app.signed_in("ada@demo.test").await;
    let eve = app.signed_in("eve@other.test").await;
    let overview = ada.page("/").await;
    assert!(overview.contains("sse-connect=\"/live/events\""), "the overview opens the feed: {overview}");

    let feed = ada.get("/live/events").await;
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let other = eve.get("/live/events").await;
    let csrf = ada.csrf().await;
    let started = ada.post("/execute", &[("csrf", &csrf), ("task", "What is the ledger?"), ("persona", "")]).await;
    let chain = started.headers()["location"].to_str().expect("ascii").trim_start_matches("/chains/").to_owned();
    let finished = format!("data-chain=\"{chain}\"");
    let body = read_for(feed, std::time::Duration::from_secs(30), |b| {
        fragments(b).iter().any(|(_, html)| html.contains(&finished) && html.contains("chain_completed"))
    })
    .await;
    let events = fragments(&body);
    assert!(events.iter().any(|(_, html)| html.contains(&finished) && html.contains("chain_completed")), "{body}");
    for gate in ["scope", "intent", "ttl", "drift"] {
        assert!(events.iter().any(|(_, html)| html.contains(&format!("data-gate=\"{gate}\""))), "gate {gate}: {body}");
    }
    assert!(events.iter().all(|(_, html)| html.contains(&format!("href=\"/chains/{chain}\""))), "each links its run");
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Another tenant's feed shows nothing of it.
    let theirs = read_for(other, std::time::Duration::from_millis(500), |_| false).await;
    assert!(!theirs.contains(&chain), "{theirs}");

    // Resuming after the third event sends exactly what followed (the first connection of a
    // page, without an id, starts with the latest events instead).
    let resumed = ada
        .client
        .get(ada.url("/live/events"))
        .header("last-event-id", ids[2].to_string())
        .send()
        .await
        .expect("resume");
    let again = read_for(resumed, std::time::Duration::from_secs(5), |b| fragments(b).len() >= ids.len() - 3).await;
    let again: Vec<u64> = fragments(&again).iter().map(|(id, _)| *id).collect();
    assert_eq!(again, ids[3..].to_vec());
}
