//! Chat: a conversation with a gateway model streams its answer into the page, is kept per
//! person, searchable, exportable as Markdown and JSON and deletable; a conversation with the
//! agent answers through a sealed run.

use std::time::Duration;

use domain::tenant::Role;

use crate::support::{Browser, chat_model, spawn_with_agent};

/// Waits until the conversation's page shows `text`; returns the page.
async fn until_shown(browser: &Browser, page: &str, text: &str) -> String {
    for _ in 0..100 {
        let html = browser.page(page).await;
        if html.contains(text) {
            return html;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{page} never showed {text:?}: {}", browser.page(page).await);
}

#[tokio::test]
async fn a_model_conversation_streams_is_kept_searched_exported_and_deleted() {
    let openai = chat_model(Duration::from_millis(400)).await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    app.user("demo", "bob@demo.test", Role::Admin, 5).await;
    let ada = app.signed_in("ada@demo.test").await;
    let list = ada.page("/chat").await;
    assert!(list.contains("value=\"model:gpt-4o-mini\"") && list.contains("value=\"agent:researcher\""), "{list}");

    let csrf = ada.csrf().await;
    let started =
        ada.post("/chat", &[("csrf", &csrf), ("target", "model:gpt-4o-mini"), ("message", "Say hello\nplease")]).await;
    assert_eq!(started.status(), 303);
    let page = started.headers()["location"].to_str().expect("ascii").to_owned();
    let id = page.trim_start_matches("/chat/").to_owned();

    // The answer streams while it is written (the upstream takes 400 ms).
    let mut reply = ada.get(&format!("/chat/{id}/reply")).await;
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    let mut streamed = String::new();
    while !streamed.contains("event: done") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), reply.chunk()).await.expect("in time");
        let Some(chunk) = chunk.expect("chunk") else { break };
        streamed.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(streamed.contains("event: text\ndata: Hello there, "), "{streamed}");
    assert!(streamed.contains("&lt;b&gt;friend&lt;/b&gt;."), "fragments are escaped: {streamed}");

    let shown = until_shown(&ada, &page, "friend").await;
    assert!(shown.contains("&#60;b&#62;friend&#60;/b&#62;."), "the stored answer is text: {shown}");
    assert!(shown.contains("<code>gpt-4o-mini</code>"), "{shown}");
    assert!(shown.contains("Say hello\nplease"));
    let done = ada.get(&format!("/chat/{id}/reply")).await.text().await.expect("body");
    assert!(done.contains("event: done"), "nothing in flight: {done}");

    // A second turn carries the first as context.
    ada.post(&page, &[("csrf", &csrf), ("message", "And again")]).await;
    let followed = tokio::time::timeout(Duration::from_secs(10), ada.get(&format!("/chat/{id}/reply")).await.text())
        .await
        .expect("the reply ends")
        .expect("body");
    assert!(followed.contains("friend") && followed.ends_with("event: done\ndata: done\n\n"), "{followed}");
    let requests = openai.received_requests().await.expect("recorded");
    let last = requests.iter().rev().find(|r| String::from_utf8_lossy(&r.body).contains("And again")).expect("sent");
    let body = String::from_utf8_lossy(&last.body);
    assert!(body.contains("Say hello") && body.contains("Hello there"), "the history goes along: {body}");

    // Kept per person and searchable.
    assert!(ada.page("/chat?q=HELLO").await.contains(&format!("data-conversation=\"{id}\"")));
    assert!(!ada.page("/chat?q=zebra").await.contains("data-conversation="));
    let bob = app.signed_in("bob@demo.test").await;
    assert_eq!(bob.get(&page).await.status(), 404, "another person's conversation is not there");
    assert!(!bob.page("/chat").await.contains("data-conversation="));

    let markdown = ada.get(&format!("/chat/{id}/export?format=md")).await;
    assert!(markdown.headers()["content-disposition"].to_str().expect("ascii").ends_with(".md\""));
    let markdown = markdown.text().await.expect("md");
    assert!(
        markdown.starts_with("# Say hello")
            && markdown.contains("## You")
            && markdown.contains("## Assistant (gpt-4o-mini)")
    );
    let json: serde_json::Value = ada.get(&format!("/chat/{id}/export?format=json")).await.json().await.expect("json");
    let roles: Vec<&str> =
        json["messages"].as_array().expect("messages").iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles.len(), 4, "{json}");
    assert_eq!(&roles[..2], ["user", "assistant"]);
    assert_eq!(ada.get(&format!("/chat/{id}/export?format=pdf")).await.status(), 422);

    // Each answer went through the governed gateway: a model call in the ledger.
    let ledger = bob.page("/ledger?kind=model_call").await;
    assert!(ledger.contains("<td>model_call</td>"), "{ledger}");

    assert_eq!(ada.post(&format!("/chat/{id}/delete"), &[("csrf", &csrf)]).await.status(), 303);
    assert_eq!(ada.get(&page).await.status(), 404);
    assert_eq!(
        ada.post("/chat", &[("csrf", &csrf), ("target", "model:no-such"), ("message", "hi")]).await.status(),
        422
    );
    assert_eq!(
        ada.post("/chat", &[("csrf", &csrf), ("target", "model:gpt-4o-mini"), ("message", "  ")]).await.status(),
        422
    );
}

#[tokio::test]
async fn a_conversation_with_the_agent_answers_through_a_sealed_run() {
    let openai = chat_model(Duration::from_millis(400)).await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    let ada = app.signed_in("ada@demo.test").await;
    let csrf = ada.csrf().await;
    let started =
        ada.post("/chat", &[("csrf", &csrf), ("target", "agent:researcher"), ("message", "What is the ledger?")]).await;
    let page = started.headers()["location"].to_str().expect("ascii").to_owned();
    let shown = until_shown(&ada, &page, "tamper-evident").await;
    let chain =
        shown.split("href=\"/chains/").nth(1).and_then(|s| s.split('"').next()).expect("the answer links its run");
    let run = ada.page(&format!("/chains/{chain}")).await;
    assert!(run.contains("What is the ledger?"), "the run's task is the turn: {run}");
}

#[tokio::test]
async fn a_person_makes_a_code_that_links_a_chat_account_to_them() {
    let app = crate::support::spawn().await;
    app.user("demo", "ada@demo.test", Role::Member, 2).await;
    let ada = app.signed_in("ada@demo.test").await;
    let list = ada.page("/chat").await;
    assert!(list.contains("id=\"make-link-code\"") && !list.contains("id=\"link-code\""), "{list}");
    let refused = ada.post("/chat/link-code", &[("csrf", "forged")]).await;
    assert_eq!(refused.status(), 403);

    let csrf = ada.csrf().await;
    let made = ada.post("/chat/link-code", &[("csrf", &csrf)]).await;
    assert_eq!(made.status(), 200);
    let page = made.text().await.expect("page");
    let shown = page.split("id=\"link-code\"").nth(1).expect("the code is shown");
    let code = shown.split("<code>").nth(1).and_then(|c| c.split("</code>").next()).expect("a code").to_owned();
    assert_eq!(code.len(), 8, "{code}");

    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let account = runtime::channels::Account {
        channel: domain::channel::Channel::Telegram,
        external_id: "4001".into(),
        display: "@ada".into(),
        private_chat: Some("4001".into()),
    };
    let member = app.runtime.link_account(&tenant, &account, &code).await.expect("linked");
    assert_eq!(member.user.level.get(), 2);
    assert_eq!(member.principal.subject(), ada_subject(&app, "ada@demo.test").await);
}

async fn ada_subject(app: &crate::support::App, email: &str) -> String {
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let users = app.runtime.web_users(&tenant).await.expect("users");
    let user = users.into_iter().find(|u| u.email == email).expect("a user");
    format!("user:{}", user.user.id)
}
