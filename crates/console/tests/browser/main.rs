//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs), against the real server: signing in, the overview, keys created and
//! revoked, hostile names that stay text, a tampered ledger shown red, the Italian interface and
//! a phone-width page without horizontal scrolling. Each step's screenshot is written to
//! `console-screenshots/` under the target directory for a reviewer to look at.
//!
//! Without chromium the suite says so and passes, except with `CI=true`, where it must run.

#[path = "../it/support.rs"]
#[allow(dead_code, reason = "shared with the HTTP tests, which use all of it")]
mod support;
mod webdriver;

use std::path::PathBuf;

use domain::TenantId;
use domain::tenant::Role;
use support::{FakeSmtp, PASSWORD, chat_model, email_model, search_model, spawn, spawn_with_agent, spawn_with_mail};
use webdriver::{Driver, Session};

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

async fn browser() -> Option<(Driver, Session)> {
    let Some((chromium, driver)) = webdriver::installed() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but chromium and chromium-driver are not installed: .ci/run installs them"
        );
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let driver = Driver::start(driver).await;
    let session = driver.session(chromium).await;
    Some((driver, session))
}

async fn sign_in(session: &Session, base: &str, email: &str) {
    session.goto(&format!("{base}/login")).await;
    session.type_into("#email", email).await;
    session.type_into("#password", PASSWORD).await;
    session.click("#sign-in").await;
    session.find("#cards").await;
}

#[tokio::test]
async fn an_admin_signs_in_manages_keys_and_sees_a_tampered_ledger_in_red() {
    let Some((_driver, session)) = browser().await else { return };
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let shots = screenshots();

    session.goto(&format!("{}/login", app.base)).await;
    session.find("#email").await;
    session.screenshot(&shots.join("01-login.png")).await;
    sign_in(&session, &app.base, "ada@acme.test").await;
    assert_eq!(session.text("#signed-in-as").await, "ada@acme.test");
    session.screenshot(&shots.join("02-overview.png")).await;

    // A key named like a script is created, shown once, and stays text.
    session.goto(&format!("{}/keys", app.base)).await;
    session.type_into("#key-name", "<script>alert(1)</script>").await;
    session.click("#create-key button[type=submit]").await;
    let secret = session.text("#new-secret").await;
    assert!(secret.starts_with("nxs_"), "{secret}");
    assert!(!session.alert_open().await, "the name did not run as script");
    let shown = session.text("#keys tbody tr td").await;
    assert_eq!(shown, "<script>alert(1)</script>", "shown as the text it is");
    session.screenshot(&shots.join("03-key-created.png")).await;
    assert!(app.runtime.auth().authenticate(&secret).await.is_ok());

    // Revoking asks first (the console's script); the browser accepts, and the key stops working.
    session.execute("window.confirm = function () { return true; }; return null;").await;
    session.click("button.revoke").await;
    session.find("#keys .badge.revoked").await;
    assert!(app.runtime.auth().authenticate(&secret).await.is_err());
    session.screenshot(&shots.join("04-key-revoked.png")).await;

    // The ledger verifies, then is tampered with and shows red naming the entry.
    let tenant = TenantId::parse("acme").expect("tenant");
    app.runtime.ledger().checkpoint(&tenant).await.expect("checkpoint");
    session.goto(&format!("{}/ledger", app.base)).await;
    session.click("#verify-ledger").await;
    session.find("#ledger-ok").await;
    let path = app.db.url.trim_start_matches("sqlite://").to_owned();
    let mut db =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}")).await.expect("open");
    sqlx::query("DROP TRIGGER ledger_entries_no_update").execute(&mut db).await.expect("drop trigger");
    sqlx::query("UPDATE ledger_entries SET payload = replace(payload, 'revoked', 'REVOKED') WHERE tenant_id = 'acme'")
        .execute(&mut db)
        .await
        .expect("tamper");
    session.click("#verify-ledger").await;
    let alarm = session.text("#ledger-bad").await;
    assert!(alarm.contains("#"), "names the entry: {alarm}");
    let colour = session.execute("return getComputedStyle(document.getElementById('ledger-bad')).color;").await;
    assert_eq!(colour, "rgb(198, 40, 40)", "shown in red");
    session.screenshot(&shots.join("05-ledger-tampered.png")).await;
    session.close().await;
}

#[tokio::test]
async fn the_italian_interface_fits_a_phone_without_scrolling_sideways() {
    let Some((_driver, session)) = browser().await else { return };
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let shots = screenshots();
    sign_in(&session, &app.base, "ada@acme.test").await;

    session.execute("document.getElementById('lang-picker').value = 'it'; return null;").await;
    session.click("footer form[action='/language'] button").await;
    session.wait_text("main h1", "Panoramica").await;
    session.screenshot(&shots.join("06-italiano.png")).await;

    session.set_window(390, 844).await;
    for path in ["/", "/chains", "/ledger", "/keys", "/approvals"] {
        session.goto(&format!("{}{path}", app.base)).await;
        session.find("main h1").await;
        let overflow = session
            .execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
            .await;
        if overflow.as_i64().is_none_or(|px| px > 0) {
            let culprits = session
                .execute(
                    "var w = document.documentElement.clientWidth; return Array.from(document.querySelectorAll('body *'))\
                     .filter(function (e) { return e.getBoundingClientRect().right > w + 1; })\
                     .slice(0, 8).map(function (e) { return e.tagName + '.' + e.className + '#' + e.id + ' ' + \
                     Math.round(e.getBoundingClientRect().right); });",
                )
                .await;
            panic!("{path} scrolls sideways by {overflow} px; elements past the edge: {culprits}");
        }
    }
    session.goto(&format!("{}/", app.base)).await;
    session.find("#cards").await;
    session.screenshot(&shots.join("07-phone.png")).await;
    session.close().await;
}

#[tokio::test]
async fn a_task_run_on_execute_shows_its_four_gates_and_seals_live() {
    let Some((_driver, session)) = browser().await else { return };
    let openai = search_model().await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    let shots = screenshots();
    sign_in(&session, &app.base, "ada@demo.test").await;

    session.goto(&format!("{}/execute", app.base)).await;
    session.type_into("#task", "What is the ledger?").await;
    session.click("#run").await;
    session.find("#live-events li.chain_completed").await;
    for gate in ["scope", "intent", "ttl", "drift"] {
        session.find(&format!("#live-events li[data-gate='{gate}'] .badge")).await;
        let shown = session
            .execute(&format!(
                "var b = document.querySelector(\"#live-events li[data-gate='{gate}'] .badge\").getBoundingClientRect(); \
                 return b.width > 0 && b.left >= 0;"
            ))
            .await;
        assert_eq!(shown, true, "the {gate} gate's badge is on screen");
    }
    let seals = session.execute("return document.querySelectorAll('#live-events code.seal').length;").await;
    assert_eq!(seals, 2, "an intent and a result seal");
    session.screenshot(&shots.join("08-execute-live.png")).await;

    session.click("#live-events li.chain_completed a").await;
    session.find("#answer").await;
    assert!(session.text("#answer").await.contains("The ledger is <b>tamper-evident</b>."), "the answer, as text");
    session.screenshot(&shots.join("09-chain.png")).await;

    // The overview's live feed shows the run (its latest events, on one SSE connection).
    session.goto(&app.base).await;
    session.find("#feed li.chain_completed a.chain").await;
    session.find("#feed li[data-gate='scope'] .badge").await;
    session.screenshot(&shots.join("10-overview-live.png")).await;
    session.close().await;
}

#[tokio::test]
async fn a_held_call_approved_by_another_admin_lets_the_run_complete() {
    let Some((_driver, session)) = browser().await else { return };
    let openai = email_model().await;
    let smtp = FakeSmtp::start().await;
    let app = spawn_with_mail(&openai, &smtp).await;
    app.user("demo", "ada@demo.test", Role::Admin, 3).await;
    app.user("demo", "bob@demo.test", Role::Admin, 3).await;
    let shots = screenshots();

    sign_in(&session, &app.base, "ada@demo.test").await;
    session.goto(&format!("{}/execute", app.base)).await;
    session.type_into("#task", "Email the board the report").await;
    session.click("#run").await;
    session.find("#live-events li.approval").await;
    session.screenshot(&shots.join("10-held.png")).await;

    // The requester may not approve their own run.
    session.goto(&format!("{}/approvals", app.base)).await;
    session.click("button.approve").await;
    let refused = session.text("#error-message").await;
    assert!(refused.contains("may not approve"), "{refused}");
    assert!(smtp.messages.lock().expect("lock").is_empty());

    session.goto(&format!("{}/", app.base)).await;
    session.click("#sign-out").await;
    sign_in(&session, &app.base, "bob@demo.test").await;
    session.goto(&format!("{}/approvals", app.base)).await;
    let call = session.text(".approval pre.payload").await;
    assert!(call.contains("board@example.com"), "the exact call: {call}");
    session.type_into(".approval input[name=note]", "checked with Ada").await;
    session.screenshot(&shots.join("11-approval.png")).await;
    session.click("button.approve").await;
    session.find("#decided").await;

    let chain =
        app.runtime.run_reports(&TenantId::parse("demo").expect("t"), None, 1).await.expect("runs")[0].chain_id.clone();
    session.goto(&format!("{}/chains/{chain}", app.base)).await;
    session.wait_text("#chain-status", "completed").await;
    assert_eq!(smtp.messages.lock().expect("lock").len(), 1, "the approved email was sent once");
    session.screenshot(&shots.join("12-approved-completed.png")).await;
    session.close().await;
}

#[tokio::test]
async fn documents_uploaded_together_are_found_by_a_query() {
    let Some((_driver, session)) = browser().await else { return };
    let app = spawn().await;
    app.user("demo", "ada@demo.test", Role::Member, 3).await;
    let shots = screenshots();
    let folder = tempfile::tempdir().expect("temporary folder");
    let ledger = folder.path().join("ledger.md");
    let gates = folder.path().join("gates.txt");
    std::fs::write(&ledger, "# The ledger\n\nEvery action is sealed in a tamper-evident ledger.").expect("write");
    std::fs::write(&gates, "Four gates check each call: scope, intent, time to live and drift.").expect("write");
    sign_in(&session, &app.base, "ada@demo.test").await;

    session.goto(&format!("{}/knowledge", app.base)).await;
    session.type_into("#upload-namespace", "handbook").await;
    // Several files in one input: WebDriver takes their paths one per line.
    session.type_into("#files", &format!("{}\n{}", ledger.display(), gates.display())).await;
    session.click("#upload").await;
    session.find("#upload-results li[data-file='ledger.md'] .badge.stored").await;
    session.find("#upload-results li[data-file='gates.txt'] .badge.stored").await;
    session.find("#documents tr[data-document]").await;
    session.screenshot(&shots.join("11-knowledge-upload.png")).await;

    session.type_into("#q", "tamper-evident ledger").await;
    session.click("#search").await;
    session.find("#hits .hit .score").await;
    assert!(session.text("#hits .hit").await.contains("ledger.md"), "the best passage comes from ledger.md");
    let mode = session.text("#mode").await;
    assert!(mode == "lexical" || mode == "hybrid", "the mode is shown: {mode}");
    session.screenshot(&shots.join("12-knowledge-query.png")).await;
    session.close().await;
}

#[tokio::test]
async fn a_chat_answer_streams_into_the_page_and_is_kept() {
    let Some((_driver, session)) = browser().await else { return };
    // Slow enough that the page is open while the answer is written.
    let openai = chat_model(std::time::Duration::from_secs(2)).await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    let shots = screenshots();
    sign_in(&session, &app.base, "ada@demo.test").await;

    session.goto(&format!("{}/chat", app.base)).await;
    session.type_into("#chat-first", "Say hello").await;
    session.click("#start-chat").await;
    // The answer arrives over the page's SSE connection, escaped, without a reload.
    session.wait_text("#reply", "Hello there, <b>friend</b>.").await;
    session.screenshot(&shots.join("13-chat-streamed.png")).await;

    session.goto(&format!("{}/chat", app.base)).await;
    session.click("#conversations a").await;
    session.find(".message.theirs .content").await;
    assert_eq!(session.text(".message.theirs .content").await, "Hello there, <b>friend</b>.", "kept, as text");
    session.close().await;
}
