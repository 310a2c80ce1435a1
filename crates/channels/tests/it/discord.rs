//! The Discord adapter against a fake Discord (REST and gateway WebSocket): answers to mentions,
//! DMs and `/nexus ask` (deferred, then edited) with their seal, long answers split under 2000
//! characters, moderation with its ledger entries and staff verdicts, resuming a dropped
//! connection without losing or repeating events, and the channel stopping on a fatal close
//! code or a refused token with the rest of Nexus unharmed; a watcher's posts sent to their
//! channel once each, paced.

use std::time::Duration;

use channels::testing::Call;
use domain::channel::{Admission, Channel};
use domain::ledger::EntryKind;
use domain::moderation::CaseStatus;
use domain::tenant::Role;
use runtime::channels::ChannelState;

use crate::support::{World, world};

const BOT: &str = channels::testing::DISCORD_BOT_ID;
const WAIT: Duration = Duration::from_secs(20);

fn tenant() -> domain::TenantId {
    domain::TenantId::parse("demo").expect("tenant")
}

fn posts_in(channel: &str) -> impl Fn(&Call) -> bool + '_ {
    move |c: &Call| c.method == "POST" && c.route == format!("channels/{channel}/messages")
}

async fn connected(world: &World) {
    assert!(world.discord.wait_connected(1, WAIT).await, "the adapter never connected");
    world.until_state_of(Channel::Discord, ChannelState::Connected, WAIT).await;
}

async fn moderation_entries(world: &World) -> Vec<serde_json::Value> {
    let filter = domain::ports::RecordFilter { kind: Some(EntryKind::Moderation), ..Default::default() };
    let page = world.runtime.ledger().page(&tenant(), &filter, 1000).await.expect("ledger");
    page.iter().map(|r| serde_json::from_str(&r.payload).expect("json")).collect()
}

#[tokio::test]
async fn mentions_dms_and_slash_commands_are_answered_with_their_seal() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    let registered = world.discord.wait_calls(1, WAIT, |c| c.method == "PUT" && c.route.ends_with("/commands")).await;
    let commands = &registered[0].body;
    assert_eq!(commands[0]["name"], "nexus");
    let subs: Vec<&str> =
        commands[0]["options"].as_array().expect("subs").iter().filter_map(|o| o["name"].as_str()).collect();
    assert_eq!(subs, ["ask", "status", "help", "link"]);

    // A mention in a guild channel: answered in place, as a reply, with the seal embedded.
    let asked = world.discord.message("c-general", Some("g1"), ("501", "alice"), &format!("<@{BOT}> hello there"));
    let answers = world.discord.wait_calls(1, WAIT, posts_in("c-general")).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = &answers[0].body;
    assert!(answer["content"].as_str().is_some_and(|c| c.contains("hello there")), "{answer}");
    assert_eq!(answer["message_reference"]["message_id"], asked.as_str());
    assert_eq!(answer["allowed_mentions"]["parse"], serde_json::json!([]), "answers never ping");
    let seal = &answer["embeds"][0];
    assert!(seal["description"].as_str().is_some_and(|d| d.contains("run `")), "{seal}");
    assert!(world.discord.calls().iter().any(|c| c.route == "channels/c-general/typing"), "typing shown");

    // A message that does not mention the bot is not answered.
    world.discord.message("c-general", Some("g1"), ("502", "bob"), "just chatting");
    // `/nexus ask`: deferred at once, then the deferred answer is edited; the channel's last
    // messages are its context.
    let id = world.discord.slash("c-general", Some("g1"), "502", "ask", &[("prompt", "what was said?")]);
    let callback = format!("interactions/{id}/itoken-{id}/callback");
    let deferred = world.discord.wait_calls(1, WAIT, |c| c.route == callback).await;
    assert_eq!(deferred[0].body["type"], 5, "deferred");
    let original = format!("webhooks/{}/itoken-{id}/messages/@original", channels::testing::DISCORD_APPLICATION_ID);
    let edited = world.discord.wait_calls(1, WAIT, |c| c.method == "PATCH" && c.route == original).await;
    let content = edited[0].body["content"].as_str().unwrap_or_default();
    assert!(content.contains("what was said?") && content.contains("just chatting"), "{content}");
    assert!(edited[0].body["embeds"][0]["title"].as_str().is_some_and(|t| t.contains("Sealed")));
    assert!(edited[0].at > deferred[0].at);
    assert_eq!(world.discord.wait_calls(2, Duration::from_millis(300), posts_in("c-general")).await.len(), 1);

    // `/nexus status`, answered at once, only to the one who asked.
    let id = world.discord.slash("c-general", Some("g1"), "502", "status", &[]);
    let callback = format!("interactions/{id}/itoken-{id}/callback");
    let status = world.discord.wait_calls(1, WAIT, |c| c.route == callback).await;
    assert_eq!(status[0].body["type"], 4);
    assert_eq!(status[0].body["data"]["flags"], 64);
    let text = status[0].body["data"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("Nexus status") && text.contains("moderation on 1 channel"), "{text}");
    adapter.abort();
}

#[tokio::test]
async fn a_long_answer_is_split_under_2000_characters_in_order() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    // Discord's rate limit on the first two posts is waited out; the parts keep their order.
    world.discord.rate_limit(2);
    world.discord.message("dm-601", None, ("601", "carol"), "LONG please");
    let expected = crate::support::long_answer();
    let parts = world.discord.wait_calls(6, WAIT, posts_in("dm-601")).await;
    // Wait for the last part (the one carrying the seal).
    let mut parts = parts;
    for _ in 0..100 {
        if parts.last().is_some_and(|p| p.body["embeds"].as_array().is_some_and(|e| !e.is_empty())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        parts = world.discord.calls().into_iter().filter(posts_in("dm-601")).collect();
    }
    assert!(parts.len() >= 6, "{}", parts.len());
    let texts: Vec<&str> = parts.iter().map(|p| p.body["content"].as_str().unwrap_or_default()).collect();
    assert!(texts.iter().all(|t| !t.trim().is_empty() && t.chars().count() <= 2000), "{texts:?}");
    let joined = texts.join("\n\n");
    assert_eq!(joined.split_whitespace().collect::<Vec<_>>(), expected.split_whitespace().collect::<Vec<_>>());
    assert_eq!(world.discord.refused_for_rate(), 2, "two posts were refused, waited out and sent again");
    let with_seal = parts.iter().filter(|p| p.body["embeds"].as_array().is_some_and(|e| !e.is_empty())).count();
    assert_eq!(with_seal, 1, "the seal rides on the last part only");
    adapter.abort();
}

#[tokio::test]
async fn spam_is_moderated_and_sealed_and_a_staff_overturn_is_recorded() {
    let world = world().await;
    let moderator = world.user("mod@demo.test", Role::Member, 4).await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    world.link_discord("801", &moderator).await;

    // Sure spam: deleted (with the reason in the audit log), shown to staff, sealed.
    let spam = world.discord.message("c-mod", Some("g1"), ("666", "spammer"), "FREE NITRO at https://x.example");
    let deleted = world
        .discord
        .wait_calls(1, WAIT, |c| c.method == "DELETE" && c.route == format!("channels/c-mod/messages/{spam}"))
        .await;
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].audit_reason.as_deref().is_some_and(|r| r.contains("spam")), "{:?}", deleted[0].audit_reason);
    let shown = world.discord.wait_calls(1, WAIT, posts_in("c-staff")).await;
    let card = &shown[0].body;
    assert!(card["content"].as_str().is_some_and(|c| c.contains("acted") && c.contains("delete")), "{card}");
    let overturn = card["components"][0]["components"][0]["custom_id"].as_str().expect("a button").to_owned();
    assert!(overturn.starts_with("m:o:mod_"), "{overturn}");
    let case_id = overturn.trim_start_matches("m:o:").to_owned();
    let entries = moderation_entries(&world).await;
    let decided = entries.iter().find(|e| e["case_id"] == case_id.as_str()).expect("a decided entry");
    assert_eq!(decided["event"], "decided");
    assert_eq!(decided["action"], "delete");
    assert_eq!(decided["message_id"], spam.as_str());
    let digest = runtime::keys::key_hash("FREE NITRO at https://x.example");
    assert_eq!(decided["message_sha256"], digest.as_str());
    assert!(decided["decided_by"].as_str().is_some_and(|d| d.starts_with("model:")));

    // Someone who is not staff cannot decide.
    world.link_discord("802", &world.user("member@demo.test", Role::Member, 1).await).await;
    let id = world.discord.press("c-staff", Some("g1"), "802", &overturn);
    let refused = world
        .discord
        .wait_calls(1, WAIT, |c| {
            c.method == "POST"
                && c.route == format!("webhooks/{}/itoken-{id}", channels::testing::DISCORD_APPLICATION_ID)
        })
        .await;
    assert!(refused[0].body["content"].as_str().is_some_and(|c| c.contains("only staff")), "{:?}", refused[0].body);

    // The moderator overturns it: recorded, sealed, and spam gets stricter to act on alone.
    let id = world.discord.press("c-staff", Some("g1"), "801", &overturn);
    let original = format!("webhooks/{}/itoken-{id}/messages/@original", channels::testing::DISCORD_APPLICATION_ID);
    let edited = world.discord.wait_calls(1, WAIT, |c| c.route == original).await;
    let text = edited[0].body["content"].as_str().unwrap_or_default();
    assert!(text.contains("overturned") && text.contains("strictness of spam is now +0.05"), "{text}");
    assert_eq!(edited[0].body["components"], serde_json::json!([]));
    let case = world.runtime.moderation_case(&tenant(), &case_id).await.expect("read").expect("case");
    assert_eq!(case.status, CaseStatus::Overturned);
    assert_eq!(case.reviewed_by.as_deref(), Some(format!("user:{moderator}").as_str()));
    let reviewed = moderation_entries(&world).await;
    let verdict = reviewed.iter().find(|e| e["event"] == "reviewed").expect("a reviewed entry");
    assert_eq!(verdict["verdict"], "overturn");
    assert_eq!(verdict["status_before"], "acted");
    assert!((verdict["strictness_adjustment"].as_f64().unwrap_or_default() - 0.05).abs() < 1e-9);
    // A second verdict on the same case is refused: the first one stands.
    let id = world.discord.press("c-staff", Some("g1"), "801", &format!("m:u:{case_id}"));
    let again = world
        .discord
        .wait_calls(1, WAIT, |c| {
            c.method == "POST"
                && c.route == format!("webhooks/{}/itoken-{id}", channels::testing::DISCORD_APPLICATION_ID)
        })
        .await;
    assert!(again[0].body["content"].as_str().is_some_and(|c| c.contains("decided already")), "{:?}", again[0].body);
    adapter.abort();
}

#[tokio::test]
async fn a_message_edited_into_spam_is_moderated_once_and_ignored_chatter_is_not_recorded() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    let chatter = world.discord.message("c-general", Some("g1"), ("670", "someone"), "nothing for the bot here");
    let id = world.discord.message("c-mod", Some("g1"), ("671", "sneaky"), "hello all");
    world.discord.edit("c-mod", &id, "FREE NITRO at https://x.example");
    let deleted = world
        .discord
        .wait_calls(1, WAIT, |c| c.method == "DELETE" && c.route == format!("channels/c-mod/messages/{id}"))
        .await;
    assert_eq!(deleted.len(), 1);
    let cases = world.runtime.moderation_cases(&tenant(), None, 10).await.expect("cases");
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].message_id, id);
    // A message neither for the bot nor in a moderated channel is not even claimed.
    let claimed = world.runtime.claim_channel_update(&tenant(), Channel::Discord, &format!("m:{chatter}")).await;
    assert!(claimed.expect("claim"), "chatter was never recorded");
    adapter.abort();
}

#[tokio::test]
async fn unsure_or_garbled_decisions_go_to_staff_and_an_upheld_one_is_carried_out() {
    let world = world().await;
    let moderator = world.user("mod@demo.test", Role::Admin, 5).await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    world.link_discord("801", &moderator).await;

    let unsure = world.discord.message("c-mod", Some("g1"), ("667", "edgy"), "you are MAYBE a bit rude");
    let garbled = world.discord.message("c-mod", Some("g1"), ("668", "odd"), "GARBLED words");
    let cards = world.discord.wait_calls(2, WAIT, posts_in("c-staff")).await;
    assert_eq!(cards.len(), 2);
    for card in &cards {
        let content = card.body["content"].as_str().unwrap_or_default();
        assert!(content.contains("review"), "{content}");
        let labels: Vec<&str> = card.body["components"][0]["components"]
            .as_array()
            .expect("buttons")
            .iter()
            .filter_map(|b| b["label"].as_str())
            .collect();
        assert_eq!(labels, ["Uphold", "Overturn", "Dismiss"]);
    }
    // Nothing was done to either author without a person.
    let punished = world.discord.calls().into_iter().any(|c| c.method == "DELETE" || c.route.starts_with("guilds/"));
    assert!(!punished, "no automatic punishment when unsure");
    let cases = world.runtime.moderation_cases(&tenant(), Some(CaseStatus::Review), 10).await.expect("cases");
    let garbled_case = cases.iter().find(|c| c.message_id == garbled).expect("garbled case");
    assert!(garbled_case.reason.contains("not a decision"), "{}", garbled_case.reason);
    assert_eq!(garbled_case.confidence, None);
    let unsure_case = cases.iter().find(|c| c.message_id == unsure).expect("unsure case");

    // Upheld by staff: the proposed timeout is carried out now, and harassment gets easier.
    let id = world.discord.press("c-staff", Some("g1"), "801", &format!("m:u:{}", unsure_case.id));
    let timed_out =
        world.discord.wait_calls(1, WAIT, |c| c.method == "PATCH" && c.route == "guilds/g1/members/667").await;
    assert!(timed_out[0].body["communication_disabled_until"].is_string(), "{:?}", timed_out[0].body);
    let original = format!("webhooks/{}/itoken-{id}/messages/@original", channels::testing::DISCORD_APPLICATION_ID);
    let edited = world.discord.wait_calls(1, WAIT, |c| c.route == original).await;
    assert!(edited[0].body["content"].as_str().is_some_and(|t| t.contains("-0.05")), "{:?}", edited[0].body);
    let strictness = world.runtime.moderation_strictness(&tenant(), "g1").await.expect("strictness");
    assert_eq!(strictness.len(), 1);
    assert_eq!(strictness[0].0, "harassment");

    // A staff member's own flagged words are not moderated.
    world.discord.message("c-mod", Some("g1"), ("801", "moderator"), "FREE NITRO is a scam, do not click");
    let later = world.discord.wait_calls(3, Duration::from_secs(1), posts_in("c-staff")).await;
    assert_eq!(later.len(), 2, "staff are not moderated");
    adapter.abort();
}

#[tokio::test]
async fn destructive_actions_wait_for_staff_and_dry_run_never_acts() {
    let world = world().await;
    let mut settings = world.discord_settings(Admission::Open);
    let adapter = world.start_discord(settings.clone());
    connected(&world).await;
    world.discord.message("c-mod", Some("g1"), ("669", "scammer"), "BANHAMMER crypto giveaway");
    let card = world.discord.wait_calls(1, WAIT, posts_in("c-staff")).await;
    let content = card[0].body["content"].as_str().unwrap_or_default();
    assert!(content.contains("review") && content.contains("ban"), "a ban waits for a person: {content}");
    assert!(!world.discord.calls().iter().any(|c| c.route.contains("/bans/")));
    adapter.abort();

    let world = crate::support::world().await;
    settings = world.discord_settings(Admission::Open);
    settings.moderation.dry_run = true;
    let adapter = world.start_discord(settings);
    connected(&world).await;
    let spam = world.discord.message("c-mod", Some("g1"), ("666", "spammer"), "FREE NITRO again");
    let card = world.discord.wait_calls(1, WAIT, posts_in("c-staff")).await;
    assert!(card[0].body["content"].as_str().is_some_and(|c| c.contains("dry_run")), "{:?}", card[0].body);
    assert!(!world.discord.calls().iter().any(|c| c.method == "DELETE"), "dry run decides but does not act");
    let entries = moderation_entries(&world).await;
    assert!(entries.iter().any(|e| e["status"] == "dry_run" && e["message_id"] == spam.as_str()));
    adapter.abort();
}

#[tokio::test]
async fn a_guild_moderated_its_own_way_runs_dry_and_shows_its_own_staff_while_another_acts() {
    let world = world().await;
    let mut settings = world.discord_settings(Admission::Open);
    settings.moderated_channels.push("c-mod2".into());
    let mut own = settings.moderation.clone();
    own.dry_run = true;
    settings.guilds.insert(
        "g2".into(),
        channels::discord::GuildModeration { moderation: own, staff_channel: Some("c-staff2".into()) },
    );
    let adapter = world.start_discord(settings);
    connected(&world).await;

    let dry = world.discord.message("c-mod2", Some("g2"), ("700", "spammer2"), "FREE NITRO in guild two");
    let card = world.discord.wait_calls(1, WAIT, posts_in("c-staff2")).await;
    assert!(card[0].body["content"].as_str().is_some_and(|c| c.contains("dry_run")), "{:?}", card[0].body);
    assert!(!world.discord.calls().iter().any(|c| c.method == "DELETE"), "guild two runs dry");

    let acted = world.discord.message("c-mod", Some("g1"), ("701", "spammer1"), "FREE NITRO in guild one");
    world.discord.wait_calls(1, WAIT, posts_in("c-staff")).await;
    assert!(
        world.discord.calls().iter().any(|c| c.method == "DELETE" && c.route.contains(&acted)),
        "guild one acts as the bot's own policy says"
    );
    assert!(
        world.discord.calls().iter().filter(|c| posts_in("c-staff2")(c)).count() == 1,
        "each guild's staff see their own"
    );
    let entries = moderation_entries(&world).await;
    assert!(entries.iter().any(|e| e["status"] == "dry_run" && e["message_id"] == dry.as_str()));
    assert!(entries.iter().any(|e| e["status"] == "acted" && e["message_id"] == acted.as_str()));
    adapter.abort();
}

#[tokio::test]
async fn a_dropped_connection_resumes_without_losing_or_repeating_events() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    world.discord.message("dm-701", None, ("701", "dora"), "first question");
    assert_eq!(world.discord.wait_calls(1, WAIT, posts_in("dm-701")).await.len(), 1);
    // Heartbeats every 400 ms are acknowledged: the connection stays up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(world.discord.handshakes(), (1, 0));

    world.discord.drop_connection(4000);
    world.discord.message("dm-701", None, ("701", "dora"), "second question");
    assert!(world.discord.wait_connected(2, WAIT).await, "never reconnected");
    assert_eq!(world.discord.handshakes(), (1, 1), "resumed, not identified again");
    let answers = world.discord.wait_calls(2, WAIT, posts_in("dm-701")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers_now: Vec<Call> = world.discord.calls().into_iter().filter(posts_in("dm-701")).collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers_now.len(), 2, "each message answered once: {answers_now:?}");
    assert!(answers_now[1].body["content"].as_str().is_some_and(|c| c.contains("second question")));
    adapter.abort();
}

#[tokio::test]
async fn fatal_close_codes_and_refused_tokens_stop_the_channel_not_nexus() {
    let world = world().await;
    world.discord.close_on_identify(Some(4014));
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    let health = world.until_state_of(Channel::Discord, ChannelState::Failed, WAIT).await;
    assert!(health.detail.as_deref().is_some_and(|d| d.contains("Message Content")), "{health:?}");
    assert_eq!(world.discord.handshakes(), (1, 0), "no reconnect loop");
    adapter.abort();

    let world = crate::support::world().await;
    let mut settings = world.discord_settings(Admission::Open);
    settings.token = "not-the-token".into();
    let adapter = world.start_discord(settings);
    let health = world.until_state_of(Channel::Discord, ChannelState::Failed, WAIT).await;
    assert!(health.detail.as_deref().is_some_and(|d| d.contains("NEXUS_DISCORD_BOT_TOKEN")), "{health:?}");
    assert!(world.runtime.tenant(&tenant()).await.expect("the runtime still serves").is_some());
    adapter.abort();
}

#[tokio::test]
async fn strangers_are_refused_in_a_closed_tenant() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Closed));
    connected(&world).await;
    let asked = world.discord.message("dm-901", None, ("901", "stranger"), "let me in");
    let answers = world.discord.wait_calls(1, WAIT, posts_in("dm-901")).await;
    assert_eq!(answers[0].body["message_reference"]["message_id"], asked.as_str());
    assert!(answers[0].body["content"].as_str().is_some_and(|c| c.contains("private")), "{:?}", answers[0].body);
    let user = world
        .runtime
        .channel_member(
            &tenant(),
            &runtime::channels::Account {
                channel: Channel::Discord,
                external_id: "901".into(),
                display: "stranger".into(),
                private_chat: None,
            },
            Admission::Closed,
        )
        .await
        .expect("lookup");
    assert!(matches!(user, runtime::channels::Admitted::Refused), "no user was created");
    // Staff are told once a day, however often the stranger writes.
    world.discord.message("dm-901", None, ("901", "stranger"), "hello?");
    world.discord.wait_calls(2, WAIT, posts_in("dm-901")).await;
    let notices = world.discord.wait_calls(2, Duration::from_millis(500), posts_in("c-staff")).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].body["content"].as_str().is_some_and(|c| c.contains("<@901>") && c.contains("refused")));
    adapter.abort();
}

#[tokio::test]
async fn quick_messages_from_one_person_are_answered_in_order_not_refused_as_busy() {
    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    for n in 0..3 {
        world.discord.message("dm-702", None, ("702", "eve"), &format!("SLOW question {n}"));
    }
    let answers = world.discord.wait_calls(3, Duration::from_secs(30), posts_in("dm-702")).await;
    let texts: Vec<&str> = answers.iter().map(|c| c.body["content"].as_str().unwrap_or_default()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts.iter().all(|t| t.starts_with("Slowly")), "{texts:?}");
    adapter.abort();
}

#[tokio::test]
async fn a_held_call_is_approved_by_a_staff_button_and_the_answer_reaches_the_asker() {
    let world = world().await;
    let boss = world.user("boss@demo.test", Role::Admin, 5).await;
    let ada = world.user("ada@demo.test", Role::Member, 1).await;
    let adapter = world.start_discord(world.discord_settings(Admission::Closed));
    connected(&world).await;
    world.link_discord("901", &boss).await;
    // Ada links from her DM, so her DM channel is where the decided answer goes.
    let tenant = tenant();
    let (code, _) = world.runtime.create_link_code(&tenant, &ada, "operator").await.expect("code");
    world.discord.message("dm-902", None, ("902", "ada"), &format!("link {code}"));
    let linked = world.discord.wait_calls(1, WAIT, posts_in("dm-902")).await;
    assert!(linked[0].body["content"].as_str().is_some_and(|c| c.contains("Linked")), "{:?}", linked[0].body);

    world.discord.message("dm-902", None, ("902", "ada"), "EMAIL the board the report");
    let held = world.discord.wait_calls(2, WAIT, posts_in("dm-902")).await;
    assert!(held[1].body["content"].as_str().is_some_and(|c| c.contains("approval")), "{:?}", held[1].body);
    let card = world.discord.wait_calls(1, WAIT, posts_in("c-staff")).await;
    let content = card[0].body["content"].as_str().unwrap_or_default();
    assert!(content.contains("Approval needed") && content.contains("send_email"), "{content}");
    let approve = card[0].body["components"][0]["components"][0]["custom_id"].as_str().expect("button").to_owned();
    assert!(approve.starts_with("a:y:ap_"), "{approve}");

    // Ada cannot approve her own call; the admin can, once.
    world.discord.press("c-staff", Some("g1"), "902", &approve);
    let id = world.discord.press("c-staff", Some("g1"), "901", &approve);
    let original = format!("webhooks/{}/itoken-{id}/messages/@original", channels::testing::DISCORD_APPLICATION_ID);
    let decided = world.discord.wait_calls(1, WAIT, |c| c.route == original).await;
    assert!(decided[0].body["content"].as_str().is_some_and(|c| c.starts_with("✅ Approved")), "{:?}", decided[0].body);
    let answered = world.discord.wait_calls(3, WAIT, posts_in("dm-902")).await;
    assert!(
        answered[2].body["embeds"][0]["title"].as_str().is_some_and(|t| t.contains("Sealed")),
        "{:?}",
        answered[2].body
    );
    let approvals = world.runtime.approvals(&tenant, None).await.expect("approvals");
    assert_eq!(approvals[0].decided_by.as_deref(), Some(format!("user:{boss}").as_str()));
    adapter.abort();
}

#[tokio::test]
async fn a_watchers_new_items_are_posted_in_its_channel_once_each() {
    use domain::watcher::{PostTarget, SourceKind};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let world = world().await;
    let adapter = world.start_discord(world.discord_settings(Admission::Open));
    connected(&world).await;
    let rss = |titles: &[&str]| {
        let items: String = titles
            .iter()
            .map(|t| format!("<item><title>{t}</title><link>https://news.example/{t}</link><description>About {t}</description></item>"))
            .collect();
        format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>N</title>{items}</channel></rss>")
    };
    let site = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/feed.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(rss(&["old"])))
        .up_to_n_times(1)
        .mount(&site)
        .await;
    Mock::given(method("GET"))
        .and(path("/feed.xml"))
        .respond_with(ResponseTemplate::new(200).set_body_string(rss(&["second", "first", "old"])))
        .mount(&site)
        .await;
    let new = runtime::watchers::NewWatcher {
        name: "news".into(),
        kind: SourceKind::Feed,
        url: format!("{}/feed.xml", site.uri()),
        selector: None,
        target: PostTarget::Discord { channel_id: "777000111".into() },
        summarise: None,
        max_posts: None,
        cron: None,
        timezone: None,
    };
    world.runtime.add_watcher(&tenant(), new, "user:admin").await.expect("watcher");
    assert_eq!(world.runtime.poll_watcher(&tenant(), "news").await.expect("seed").posted, 0);
    assert_eq!(world.runtime.poll_watcher(&tenant(), "news").await.expect("poll").posted, 2);
    let posts = world.discord.wait_calls(2, WAIT, posts_in("777000111")).await;
    assert_eq!(posts.len(), 2);
    let first = posts[0].body["content"].as_str().unwrap_or_default();
    assert!(first.contains("first") && first.contains("https://news.example/first"), "{first}");
    assert!(posts[1].body["content"].as_str().is_some_and(|c| c.contains("second")), "oldest first");
    assert_eq!(posts[0].body["allowed_mentions"]["parse"], serde_json::json!([]), "posts never ping");
    assert!(posts[1].at.duration_since(posts[0].at) >= Duration::from_secs(1), "paced under the channel's limit");
    assert_eq!(world.runtime.poll_watcher(&tenant(), "news").await.expect("again").posted, 0);
    assert_eq!(world.discord.wait_calls(3, Duration::from_millis(1500), posts_in("777000111")).await.len(), 2);
    adapter.abort();
}
