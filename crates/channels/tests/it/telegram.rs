//! The Telegram adapter against a fake Bot API: linking, admission, answers as sealed runs,
//! splitting and escaping, flood control, the watchdog, and each update handled once.

use std::time::Duration;

use domain::channel::{Admission, Channel};
use domain::tenant::Role;
use runtime::channels::ChannelState;

use crate::support::world;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_message_becomes_a_sealed_run_and_its_answer_comes_back_with_the_seal() {
    let world = world().await;
    let ada = world.user("ada@demo.test", Role::Member, 2).await;
    let adapter = world.start(Admission::Closed);
    world.until_state(ChannelState::Connected, WAIT).await;
    // The command menu is registered in English and Italian.
    let menus = world.telegram.commands();
    assert_eq!(menus.len(), 2, "{menus:?}");
    assert_eq!(menus[1]["language_code"], "it");

    world.link(101, &ada).await;
    world.telegram.push_message(101, 101, "What does the ledger keep?");
    let sent = world.telegram.wait_sent(101, 2, WAIT).await;
    let answer = &sent[1];
    assert!(answer.html);
    assert!(answer.text.starts_with("You asked: <b>What does the ledger keep?</b>"), "{}", answer.text);
    assert!(answer.text.contains("🔏 sealed <code>"), "the seal at the foot: {}", answer.text);
    assert!(world.telegram.actions().iter().any(|(chat, action)| *chat == 101 && action == "typing"));

    // The run is the member's: requested by their user, its chain sealed in the ledger.
    let chain = answer.text.rsplit("run <code>").next().and_then(|s| s.split('<').next()).expect("chain id");
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let chain = domain::ChainId::parse(chain.to_owned()).expect("a chain id");
    let report = world.runtime.run_report(&tenant, &chain).await.expect("the run");
    assert!(report.task.contains("What does the ledger keep?"));
    let records = world.runtime.ledger().chain_records(&tenant, &chain).await.expect("records");
    assert!(!records.is_empty());

    // The conversation keeps its memory: the next turn's run sees the first.
    world.telegram.push_message(101, 101, "And then?");
    let sent = world.telegram.wait_sent(101, 3, WAIT).await;
    assert!(sent[2].text.contains("And then?"), "{}", sent[2].text);
    let chain2 = sent[2].text.rsplit("run <code>").next().and_then(|s| s.split('<').next()).expect("chain id");
    let report =
        world.runtime.run_report(&tenant, &domain::ChainId::parse(chain2.to_owned()).expect("id")).await.expect("run");
    assert!(
        report.task.contains("Conversation so far") && report.task.contains("What does the ledger keep?"),
        "{}",
        report.task
    );

    // Linking was an admin change in the ledger.
    let page =
        world.runtime.ledger().page(&tenant, &domain::ports::RecordFilter::default(), 1000).await.expect("ledger");
    assert!(page.iter().any(|r| r.payload.contains("\"identity.linked\"")));
    adapter.abort();
}

#[tokio::test]
async fn strangers_are_refused_in_a_closed_tenant_and_the_admins_told_once() {
    let world = world().await;
    let boss = world.user("boss@demo.test", Role::Admin, 5).await;
    let adapter = world.start(Admission::Closed);
    world.link(7, &boss).await;

    world.telegram.push_message(666, 666, "let me in");
    let refused = world.telegram.wait_sent(666, 1, WAIT).await;
    assert!(refused[0].text.contains("this assistant is private"), "{}", refused[0].text);
    let told = world.telegram.wait_sent(7, 2, WAIT).await;
    assert!(told[1].text.contains("@user666") && told[1].text.contains("nexus users link-code"), "{}", told[1].text);

    // Again: refused again, but the admins are not told twice the same day; no run, no user.
    world.telegram.push_message(666, 666, "please");
    world.telegram.wait_sent(666, 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.telegram.sent_to(7).len(), 2);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let overview = world.runtime.overview(&tenant).await.expect("overview");
    assert_eq!(overview.runs_today, 0);
    adapter.abort();
}

#[tokio::test]
async fn open_channels_let_strangers_in_at_level_zero() {
    let world = world().await;
    let adapter = world.start(Admission::Open);
    world.telegram.push_message(55, 55, "hello there");
    let sent = world.telegram.wait_sent(55, 2, WAIT).await;
    assert!(sent[0].text.starts_with("Welcome"), "{}", sent[0].text);
    assert!(sent[1].text.contains("hello there"), "{}", sent[1].text);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let staff = world.runtime.channel_staff(&tenant, Channel::Telegram, 0).await.expect("identities");
    let stranger = staff.iter().find(|i| i.external_id == "55").expect("the stranger's identity");
    assert_eq!(stranger.display, "@user55");
    assert_eq!(stranger.chat_id.as_deref(), Some("55"));
    adapter.abort();
}

#[tokio::test]
async fn a_ten_thousand_character_answer_arrives_split_in_order_and_reserved_characters_intact() {
    let world = world().await;
    let adapter = world.start(Admission::Open);
    world.telegram.push_message(9, 9, "LONG please");
    let sent = world.telegram.wait_sent(9, 4, WAIT).await;
    let parts: Vec<_> = sent[1..].to_vec();
    // The fake refuses anything over 4096 UTF-16 units or badly formed: all went through.
    let text: String = parts.iter().map(|p| channels::text::strip_tags(&p.text)).collect::<Vec<_>>().join("\n\n");
    let expected: Vec<String> = crate::support::long_answer().split("\n\n").map(|p| p.trim().to_owned()).collect();
    let paragraphs: Vec<String> =
        text.split("\n\n").filter(|p| p.starts_with("Paragraph")).map(|p| p.trim().to_owned()).collect();
    assert_eq!(paragraphs, expected, "every paragraph, whole and in order");
    assert!(parts.iter().all(|p| !p.text.trim().is_empty()));
    assert!(parts.last().is_some_and(|p| p.text.contains("🔏")), "the seal rides on the last part");

    world.telegram.push_message(9, 9, "RESERVED characters");
    let before = world.telegram.sent_to(9).len();
    let sent = world.telegram.wait_sent(9, before + 1, WAIT).await;
    let shown = channels::text::strip_tags(&sent[before].text);
    // Markdown treats `\` as an escape and `*`/`_` pairs as emphasis; every other reserved
    // character and the markup-looking text arrive as written.
    for c in ["[", "]", "(", ")", "~", "`", ">", "#", "+", "-", "=", "|", "{", "}", ".", "!", "<tags>", "&"] {
        assert!(shown.contains(c), "{c:?} missing from {shown:?}");
    }
    adapter.abort();
}

#[tokio::test]
async fn formatting_telegram_refuses_is_sent_again_as_plain_text() {
    let world = world().await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(41, &ada).await;
    world.telegram.refuse_formatting(1);
    world.telegram.push_message(41, 41, "Tell me about the ledger");
    let sent = world.telegram.wait_sent(41, 2, WAIT).await;
    let answer = &sent[1];
    assert!(!answer.html, "the refused message went again without formatting");
    assert!(
        answer.text.starts_with("You asked: **Tell me about the ledger**"),
        "the answer's own text: {}",
        answer.text
    );
    assert!(!answer.text.contains("<b>"), "{}", answer.text);
    assert!(answer.text.contains("🔏"), "the seal survives: {}", answer.text);
    adapter.abort();
}

#[tokio::test]
async fn flood_control_is_waited_out_and_parts_keep_their_order() {
    let world = world().await;
    let adapter = world.start(Admission::Open);
    world.telegram.push_message(3, 3, "first");
    world.telegram.wait_sent(3, 2, WAIT).await;
    world.telegram.flood(2);
    let started = std::time::Instant::now();
    world.telegram.push_message(3, 3, "second");
    let sent = world.telegram.wait_sent(3, 3, WAIT).await;
    assert!(started.elapsed() >= Duration::from_secs(2), "retry_after was honoured");
    assert!(sent[2].text.contains("second"));
    adapter.abort();
}

#[tokio::test]
async fn a_stalled_poll_is_rebuilt_by_the_watchdog_and_nothing_is_answered_twice() {
    let world = world().await;
    // The first getUpdates never answers, as on a wedged connection.
    world.telegram.hang_polls(1);
    world.telegram.push_message(4, 4, "are you there?");
    let adapter = world.start(Admission::Open);
    let sent = world.telegram.wait_sent(4, 2, WAIT).await;
    assert!(sent[1].text.contains("are you there?"));
    let health = world.until_state(ChannelState::Connected, WAIT).await;
    assert!(health.restarts >= 1, "the watchdog rebuilt the session: {health:?}");
    // Outgoing messages never counted as liveness: only completed polls did.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(world.telegram.sent_to(4).len(), 2, "answered exactly once");
    adapter.abort();
}

#[tokio::test]
async fn sessions_failing_in_a_row_read_degraded_then_recover_without_a_restart_storm() {
    let world = world().await;
    // Three wedged sessions in a row: the watchdog rebuilds each, backing off between them.
    world.telegram.hang_polls(3);
    world.telegram.push_message(5, 5, "still there?");
    let started = std::time::Instant::now();
    let adapter = world.start(Admission::Open);
    let degraded = world.until_state(ChannelState::Degraded, Duration::from_secs(40)).await;
    assert!(degraded.restarts >= 3, "{degraded:?}");
    assert!(degraded.detail.as_deref().is_some_and(|d| !d.is_empty()), "the reason is shown: {degraded:?}");
    // 3 stalls of 3 s and backoffs of 1 s and 2 s between them: no storm of reconnects.
    assert!(started.elapsed() >= Duration::from_secs(9), "{:?}", started.elapsed());
    let (polls, _) = world.telegram.polls();
    assert!(polls <= 6, "{polls} getUpdates calls while failing");
    let recovered = world.until_state(ChannelState::Connected, Duration::from_secs(40)).await;
    assert!(recovered.restarts >= 3);
    let sent = world.telegram.wait_sent(5, 2, WAIT).await;
    assert!(sent[1].text.contains("still there?"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(world.telegram.sent_to(5).len(), 2, "answered exactly once");
    adapter.abort();
}

#[tokio::test]
async fn an_update_delivered_again_after_a_restart_is_not_answered_twice() {
    let world = world().await;
    let adapter = world.start(Admission::Open);
    let update = world.telegram.push_message(8, 8, "once only");
    world.telegram.wait_sent(8, 2, WAIT).await;
    adapter.abort();
    // A crash before the offset was confirmed: Telegram sends the same update again.
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    world.runtime.set_channel_cursor(&tenant, Channel::Telegram, "4242:0").await.expect("cursor");
    world.telegram.redeliver(update);
    let (calls_before, _) = world.telegram.polls();
    let adapter = world.start(Admission::Open);
    // Wait until the restarted adapter has polled past the redelivered update.
    let deadline = std::time::Instant::now() + WAIT;
    while world.telegram.confirmed() <= update {
        assert!(std::time::Instant::now() < deadline, "the adapter never confirmed the update");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(world.telegram.polls().0 > calls_before);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.telegram.sent_to(8).len(), 2, "no second answer");
    adapter.abort();
}

#[tokio::test]
async fn a_refused_token_fails_the_channel_alone() {
    let world = world().await;
    let mut settings = world.settings(Admission::Open);
    settings.token = "4242:WRONG".into();
    let adapter = channels::telegram::start(world.runtime.clone(), settings);
    let health = world.until_state(ChannelState::Failed, WAIT).await;
    let detail = health.detail.unwrap_or_default();
    assert!(detail.contains("NEXUS_TELEGRAM_BOT_TOKEN") && !detail.contains("WRONG"), "{detail}");
    assert!(world.runtime.readiness().await.database.is_ok(), "the rest keeps serving");
    adapter.abort();
}

#[tokio::test]
async fn a_second_poller_on_the_token_is_a_conflict() {
    let world = world().await;
    world.telegram.conflict(true);
    let adapter = world.start(Admission::Open);
    let health = world.until_state(ChannelState::Conflict, WAIT).await;
    assert!(health.detail.unwrap_or_default().contains("Conflict"));
    adapter.abort();
}

#[tokio::test]
async fn commands_choose_language_persona_and_report_status_and_cost() {
    let world = world().await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(21, &ada).await;

    world.telegram.push_message(21, 21, "/lang it");
    let sent = world.telegram.wait_sent(21, 2, WAIT).await;
    assert_eq!(sent[1].text, "Parlerò italiano.");

    world.telegram.push_message(21, 21, "/persona");
    let sent = world.telegram.wait_sent(21, 3, WAIT).await;
    let keyboard = sent[2].keyboard.clone().expect("a persona keyboard");
    let data: Vec<String> = keyboard["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().into_iter().flatten())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .collect();
    assert!(data.contains(&"p:researcher".to_owned()), "{data:?}");
    world.telegram.push_callback(21, 21, 99, "p:researcher");
    let sent = world.telegram.wait_sent(21, 4, WAIT).await;
    assert!(sent[3].text.starts_with("Ora parli con researcher"), "{}", sent[3].text);
    assert!(!world.telegram.callback_answers().is_empty(), "the button press was answered");
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let identity = world.runtime.channel_staff(&tenant, Channel::Telegram, 0).await.expect("ids");
    assert_eq!(identity[0].persona.as_deref(), Some("researcher"));

    world.telegram.push_message(21, 21, "ciao");
    world.telegram.wait_sent(21, 5, WAIT).await;
    world.telegram.push_message(21, 21, "/cost");
    let sent = world.telegram.wait_sent(21, 6, WAIT).await;
    assert!(sent[5].text.starts_with("Questo mese hai speso $0.0000"), "{}", sent[5].text);
    assert!(!sent[5].text.contains("hai speso $0;"), "the turn's cost is the member's: {}", sent[5].text);
    world.telegram.push_message(21, 21, "/status");
    let sent = world.telegram.wait_sent(21, 7, WAIT).await;
    assert!(sent[6].text.contains("Stato") && sent[6].text.contains("openai"), "{}", sent[6].text);
    world.telegram.push_message(21, 21, "/nonsense");
    let sent = world.telegram.wait_sent(21, 8, WAIT).await;
    assert!(sent[7].text.starts_with("Non conosco"), "{}", sent[7].text);
    adapter.abort();
}

#[tokio::test]
async fn cancel_stops_the_member_s_running_task_at_once_instead_of_waiting_behind_it() {
    let world = world().await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(31, &ada).await;
    world.telegram.push_message(31, 31, "/cancel");
    let sent = world.telegram.wait_sent(31, 2, WAIT).await;
    assert_eq!(sent[1].text, "Nothing of yours is running.", "nothing to stop yet");

    // A run whose model call would take two minutes.
    world.telegram.push_message(31, 31, "Please think about STUCK things");
    let started = std::time::Instant::now();
    while !world.telegram.actions().iter().any(|(chat, action)| *chat == 31 && action == "typing") {
        assert!(started.elapsed() < WAIT, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.telegram.push_message(31, 31, "/cancel");
    let sent = world.telegram.wait_sent(31, 4, WAIT).await;
    assert!(started.elapsed() < WAIT, "the model's answer was not waited for");
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"Stopped your running task."), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("Too late")), "{texts:?}");
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let runs = world.runtime.store().runs(&tenant, &domain::ports::RunFilter::default(), 10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, domain::agent::ChainStatus::Cancelled);
    adapter.abort();
}

#[tokio::test]
async fn a_held_call_is_approved_by_an_admins_button_once_and_the_run_finishes() {
    let world = world().await;
    let boss = world.user("boss@demo.test", Role::Admin, 5).await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(7, &boss).await;
    world.link(101, &ada).await;

    world.telegram.push_message(101, 101, "EMAIL the board the report");
    let asked = world.telegram.wait_sent(7, 2, WAIT).await;
    let request = &asked[1];
    assert!(request.text.contains("Approval needed") && request.text.contains("send_email"), "{}", request.text);
    assert!(request.text.contains("board@example.com"));
    let buttons = request.keyboard.clone().expect("buttons");
    let approve = buttons["inline_keyboard"][0][0]["callback_data"].as_str().expect("approve data").to_owned();
    assert!(approve.starts_with("a:y:ap_"), "{approve}");
    // The one who asked is told the run waits; pressing the button anyway (no admin) does nothing.
    let held = world.telegram.wait_sent(101, 2, WAIT).await;
    assert!(held[1].text.starts_with("⏳ This needs an admin's approval"), "{}", held[1].text);
    world.telegram.push_callback(101, 101, 5, &approve);
    let sent = world.telegram.wait_sent(101, 3, WAIT).await;
    assert!(sent[2].text.starts_with("Only the workspace's admins"), "{}", sent[2].text);

    world.telegram.push_callback(7, 7, 6, &approve);
    let sent = world.telegram.wait_sent(7, 3, WAIT).await;
    assert!(sent[2].text.starts_with("Approved: run"), "{}", sent[2].text);
    // The run went on and its answer reached the person who asked, sealed.
    let sent = world.telegram.wait_sent(101, 4, WAIT).await;
    assert!(sent[3].text.contains("🔏") && sent[3].text.contains("run <code>"), "{}", sent[3].text);
    // A second press finds the approval decided.
    world.telegram.push_callback(7, 7, 6, &approve);
    let sent = world.telegram.wait_sent(7, 4, WAIT).await;
    assert!(sent[3].text.starts_with("That decision was not taken"), "{}", sent[3].text);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let decided = world.runtime.approvals(&tenant, None).await.expect("approvals");
    assert_eq!(decided[0].decided_by.as_deref(), Some(format!("user:{boss}").as_str()));
    adapter.abort();
}

#[tokio::test]
async fn a_broadcast_to_sixty_people_respects_the_limits_and_survives_a_restart_without_a_second_copy() {
    let world = world().await;
    let architect = world.user("arch@demo.test", Role::Member, 3).await;
    let member = world.user("mo@demo.test", Role::Member, 2).await;
    let adapter = world.start(Admission::Open);
    world.link(5, &architect).await;
    world.link(6, &member).await;
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    for account in 1000..1060 {
        let account = runtime::channels::Account {
            channel: Channel::Telegram,
            external_id: account.to_string(),
            display: format!("@user{account}"),
            private_chat: Some(account.to_string()),
        };
        world.runtime.channel_member(&tenant, &account, Admission::Open).await.expect("admit");
    }
    // Below level 3: refused.
    world.telegram.push_message(6, 6, "/broadcast hello all");
    let sent = world.telegram.wait_sent(6, 2, WAIT).await;
    assert!(sent[1].text.contains("level 3"), "{}", sent[1].text);

    world.telegram.flood(2);
    world.telegram.push_message(5, 5, "/broadcast **News**: the ledger is live.");
    let queued = world.telegram.wait_sent(5, 2, WAIT).await;
    assert!(queued[1].text.contains("62 people"), "60 strangers and the two linked: {}", queued[1].text);
    let recipients = |world: &crate::support::World| {
        world.telegram.sent().into_iter().filter(|m| m.chat_id >= 1000 && m.text.contains("the ledger is live")).count()
    };
    // Halfway, the server stops; another start goes on where it left off.
    let deadline = std::time::Instant::now() + WAIT;
    while recipients(&world) < 25 {
        assert!(std::time::Instant::now() < deadline, "the broadcast did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    adapter.abort();
    let halfway = recipients(&world);
    assert!(halfway < 60, "stopped halfway ({halfway})");
    let adapter = world.start(Admission::Open);
    let done = world.telegram.wait_sent(5, 4, WAIT).await;
    let report = done.iter().find(|m| m.text.contains("finished")).expect("the sender hears of the end");
    let sent = world.telegram.sent();
    for chat in 1000..1060 {
        let copies = sent.iter().filter(|m| m.chat_id == chat && m.text.contains("the ledger is live")).count();
        assert!(copies <= 1, "chat {chat} got {copies} copies");
    }
    // A recipient taken when the first server stopped may be lost (never sent twice).
    let delivered = recipients(&world);
    assert!(delivered >= 59, "{delivered} of 60 delivered");
    let total = sent.iter().filter(|m| m.text.contains("the ledger is live")).count();
    let reported: usize = report
        .text
        .split("delivered ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("a delivered count");
    assert!(reported == total || reported + 1 == total, "reported {reported}, sent {total}: {}", report.text);
    assert!(sent.iter().any(|m| m.chat_id == 1000 && m.text.starts_with("<b>News</b>")), "formatted");
    // Never more than 30 messages in any second.
    let times: Vec<std::time::Instant> = sent.iter().filter(|m| m.chat_id >= 1000).map(|m| m.at).collect();
    for (i, start) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|t| t.duration_since(*start) < Duration::from_secs(1)).count();
        assert!(within <= 30, "{within} messages within a second");
    }
    let page =
        world.runtime.ledger().page(&tenant, &domain::ports::RecordFilter::default(), 1000).await.expect("ledger");
    assert!(page.iter().any(|r| r.payload.contains("\"broadcast.created\"")));
    assert!(page.iter().any(|r| r.payload.contains("\"broadcast.finished\"")));
    adapter.abort();
}

#[tokio::test]
async fn documents_from_staff_go_to_the_knowledge_base_judged_per_file() {
    let world = world().await;
    let curator = world.user("curator@demo.test", Role::Member, 3).await;
    let member = world.user("member@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(31, &curator).await;
    world.link(32, &member).await;
    let guide = b"# Onboarding\n\nNew joiners get their laptop from the ops desk on the second floor.\n";

    world.telegram.push_document(31, 31, "onboarding.md", "text/markdown", guide, Some("/ingest"));
    let sent = world.telegram.wait_sent(31, 2, WAIT).await;
    assert!(sent[1].text.contains("is in the knowledge base") && sent[1].text.contains("internal"), "{}", sent[1].text);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let found = world
        .runtime
        .knowledge()
        .search(&tenant, "default", "laptop ops desk", 5, domain::knowledge::AccessLevel::Internal)
        .await
        .expect("search");
    assert!(found.hits.first().is_some_and(|h| h.text.contains("ops desk")), "{found:?}");

    // The same file again is a duplicate; a reply /ingest works on the replied document; a level
    // above what the sender may read, a file that is not text and a member below level 3 are
    // each refused with the reason.
    let again = world.telegram.push_document(31, 31, "onboarding.md", "text/markdown", guide, None);
    world.telegram.push_reply(
        31,
        31,
        again,
        "/ingest",
        serde_json::json!({
            "from": {"id": 31, "is_bot": false, "first_name": "User31"},
            "document": {"file_id": format!("file-{again}"), "file_unique_id": "u", "file_name": "onboarding.md",
                         "mime_type": "text/markdown", "file_size": guide.len()},
        }),
    );
    let sent = world.telegram.wait_sent(31, 3, WAIT).await;
    assert!(sent[2].text.contains("already in the knowledge base"), "{}", sent[2].text);
    world.telegram.push_document(
        31,
        31,
        "secret.md",
        "text/markdown",
        b"# Secret\n\nplans",
        Some("/ingest confidential"),
    );
    let sent = world.telegram.wait_sent(31, 4, WAIT).await;
    assert!(
        sent[3].text.contains("could not be added") && sent[3].text.contains("at most restricted"),
        "{}",
        sent[3].text
    );
    world.telegram.push_document(31, 31, "photo.png", "image/png", &[0x89, b'P', b'N', b'G', 0, 1, 2], Some("/ingest"));
    let sent = world.telegram.wait_sent(31, 5, WAIT).await;
    assert!(sent[4].text.contains("photo.png") && sent[4].text.contains("could not be added"), "{}", sent[4].text);
    world.telegram.push_document(32, 32, "notes.md", "text/markdown", b"# Notes\n\nhello", Some("/ingest"));
    let sent = world.telegram.wait_sent(32, 2, WAIT).await;
    assert!(sent[1].text.contains("level 3 or above"), "{}", sent[1].text);
    world.telegram.push_message(31, 31, "/ingest");
    let sent = world.telegram.wait_sent(31, 6, WAIT).await;
    assert!(sent[5].text.contains("Send a document"), "{}", sent[5].text);
    adapter.abort();
}

#[tokio::test]
async fn in_webhook_mode_deliveries_are_answered_once_and_need_the_secret() {
    let world = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/telegram/webhook", listener.local_addr().expect("address"));
    let mut settings = world.settings(Admission::Open);
    settings.webhook = Some(channels::telegram::WebhookSettings {
        url: url::Url::parse(&url).expect("url"),
        secret: "s3cret-token".into(),
    });
    let router = channels::telegram::webhook_router(world.runtime.clone(), settings.clone()).expect("a router");
    runtime::tasks::spawn("test-webhook", async move {
        let _ = axum::serve(listener, router).await;
    });
    let adapter = channels::telegram::start(world.runtime.clone(), settings);
    let health = world.until_state_of(Channel::Telegram, ChannelState::Connected, WAIT).await;
    assert!(health.detail.as_deref().is_some_and(|d| d.contains("webhook at")), "{health:?}");
    assert_eq!(world.telegram.webhook(), Some((url.clone(), Some("s3cret-token".to_owned()))));

    let http = reqwest::Client::new();
    let update = world.telegram.webhook_message(77, 77, "hello by webhook");
    let refused = http.post(&url).json(&update).send().await.expect("post");
    assert_eq!(refused.status(), 401, "no secret");
    let wrong = http.post(&url).header("X-Telegram-Bot-Api-Secret-Token", "guess").json(&update).send().await;
    assert_eq!(wrong.expect("post").status(), 401);
    for _ in 0..2 {
        let delivered =
            http.post(&url).header("X-Telegram-Bot-Api-Secret-Token", "s3cret-token").json(&update).send().await;
        assert_eq!(delivered.expect("post").status(), 200);
    }
    let sent = world.telegram.wait_sent(77, 2, WAIT).await;
    assert!(sent[0].text.starts_with("Welcome"), "{}", sent[0].text);
    assert!(sent[1].text.contains("hello by webhook"), "{}", sent[1].text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(world.telegram.sent_to(77).len(), 2, "a delivery Telegram repeats is answered once");
    assert_eq!(world.telegram.polls().0, 0, "no getUpdates in webhook mode");
    adapter.abort();
}

#[tokio::test]
async fn a_model_chosen_from_the_menu_answers_instead_of_the_agent() {
    let world = world().await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start(Admission::Closed);
    world.link(22, &ada).await;
    world.telegram.push_message(22, 22, "/persona");
    let sent = world.telegram.wait_sent(22, 2, WAIT).await;
    let keyboard = sent[1].keyboard.clone().expect("a keyboard");
    let buttons: Vec<(String, String)> = keyboard["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().into_iter().flatten())
        .filter_map(|b| Some((b["text"].as_str()?.to_owned(), b["callback_data"].as_str()?.to_owned())))
        .collect();
    let model = buttons.iter().find(|(_, data)| data.starts_with("p:model:")).expect("a model button").clone();
    assert!(model.0.starts_with("🧠 "), "{buttons:?}");
    world.telegram.push_callback(22, 22, 98, &model.1);
    let sent = world.telegram.wait_sent(22, 3, WAIT).await;
    assert!(sent[2].text.contains("🧠"), "{}", sent[2].text);

    world.telegram.push_message(22, 22, "hello model");
    let sent = world.telegram.wait_sent(22, 4, WAIT).await;
    assert!(sent[3].text.contains("hello model"), "{}", sent[3].text);
    assert!(!sent[3].text.contains("run <code>"), "a model answers without a run: {}", sent[3].text);
    let tenant = domain::TenantId::parse("demo").expect("tenant");
    let identity = world.runtime.channel_staff(&tenant, Channel::Telegram, 0).await.expect("ids");
    let mine = identity.iter().find(|i| i.external_id == "22").expect("identity");
    assert_eq!(mine.persona.as_deref(), Some(model.1.trim_start_matches("p:")));
    adapter.abort();
}

#[tokio::test]
async fn the_sender_hears_of_a_broadcast_s_end_in_their_language() {
    let world = world().await;
    let architect = world.user("arch@demo.test", Role::Member, 3).await;
    let adapter = world.start(Admission::Closed);
    world.link(8, &architect).await;
    world.telegram.push_message(8, 8, "/lang it");
    world.telegram.wait_sent(8, 2, WAIT).await;
    world.telegram.push_message(8, 8, "/broadcast ciao a tutti");
    let sent = world.telegram.wait_sent(8, 5, WAIT).await;
    let report = sent.iter().find(|m| m.text.contains("consegnati")).expect("the report, in Italian");
    assert!(report.text.contains("consegnati 1"), "{}", report.text);
    adapter.abort();
}
