//! A runtime on a fresh SQLite database whose agent answers through a fake OpenAI upstream,
//! and a Telegram adapter pointed at a fake Bot API.

use std::sync::Arc;
use std::time::Duration;

use channels::discord::DiscordSettings;
use channels::telegram::TelegramSettings;
use channels::testing::{FakeDiscord, FakeTelegram};
use domain::channel::Admission;
use domain::tenant::{Role, UserLevel};
use ledger::checkpoint::CheckpointSigner;
use runtime::web_users::NewWebUser;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

pub const TOKEN: &str = "4242:TEST-token_secret";
pub const DISCORD_TOKEN: &str = "MTAx.discord-test-token";

pub struct World {
    pub runtime: Arc<Runtime>,
    pub telegram: FakeTelegram,
    pub discord: FakeDiscord,
    _openai: wiremock::MockServer,
    _db: store::test_support::TestDatabase,
    _workspace: tempfile::TempDir,
}

/// Answers like a model: the planner plans nothing (a direct answer) and the answer depends on
/// the question — `LONG` asks for ~10,000 characters in paragraphs, `RESERVED` for every
/// character MarkdownV2 reserves, anything else is echoed.
struct Model;

const RESERVED: &str = "Reserved: _ * [ ] ( ) ~ ` > # + - = | { } . ! \\ and <tags> & done.";

/// The email the `EMAIL` plan sends (a call that always waits for an approval).
const EMAIL: &str = r#"{"to": "board@example.com", "subject": "Report", "body": "The report is ready."}"#;

pub fn long_answer() -> String {
    (0..40)
        .map(|i| format!("Paragraph {i}. {}", "The ledger keeps every action sealed. ".repeat(7)))
        .collect::<Vec<_>>()
        .join("\n\n")
}

impl wiremock::Respond for Model {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let body = String::from_utf8_lossy(&request.body);
        let mut delay = Duration::ZERO;
        let content = if body.contains("Break the following task") && body.contains("EMAIL") {
            format!(
                r#"[{{"action": "email the board", "tool": "send_email", "params": {EMAIL}, "persona": "communicator"}}]"#
            )
        } else if body.contains("Break the following task") {
            "[]".to_owned()
        } else if body.contains("Declare your intent") {
            format!(
                r#"{{"planned_action": "send", "tool_params": {EMAIL}, "reasoning": "asked to", "confidence": 0.9}}"#
            )
        } else if body.contains("You moderate a community chat") {
            moderation_decision(&body)
        } else if body.contains("LONG") {
            long_answer()
        } else if body.contains("RESERVED") {
            RESERVED.to_owned()
        } else if body.contains("STUCK") {
            // Far longer than any test waits: only a cancel ends such a run in time.
            delay = Duration::from_secs(120);
            "Too late.".to_owned()
        } else if body.contains("SLOW") {
            delay = Duration::from_millis(1500);
            "Slowly: done.".to_owned()
        } else {
            let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let last =
                json["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("");
            let asked = last.rsplit("Request: ").next().unwrap_or(last);
            format!("You asked: **{}**", asked.trim())
        };
        if body.contains("\"stream\":true") {
            // A chat with a model streams: the same answer as server-sent events.
            let chunk = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}}]});
            let end = serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}});
            let events = format!("data: {chunk}\n\ndata: {end}\n\ndata: [DONE]\n\n");
            return wiremock::ResponseTemplate::new(200)
                .set_delay(delay)
                .insert_header("content-type", "text/event-stream")
                .set_body_raw(events, "text/event-stream");
        }
        wiremock::ResponseTemplate::new(200).set_delay(delay).set_body_json(serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        }))
    }
}

/// The moderation model: sure about `NITRO` spam, unsure about `MAYBE`, garbled on `GARBLED`,
/// and fine with anything else.
fn moderation_decision(body: &str) -> String {
    let decision = |violation: bool, category: &str, action: &str, confidence: f64| {
        serde_json::json!({"violation": violation, "category": category, "severity": "high", "action": action,
                           "confidence": confidence, "reason": format!("judged {category}")})
        .to_string()
    };
    if body.contains("NITRO") {
        decision(true, "spam", "delete", 0.95)
    } else if body.contains("MAYBE") {
        decision(true, "harassment", "timeout", 0.5)
    } else if body.contains("BANHAMMER") {
        decision(true, "scam", "ban", 0.99)
    } else if body.contains("GARBLED") {
        "I think this might be spam, not sure.".to_owned()
    } else {
        decision(false, "none", "none", 0.9)
    }
}

pub async fn world() -> World {
    let openai = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/chat/completions"))
        .respond_with(Model)
        .mount(&openai)
        .await;
    let db = store::test_support::sqlite().await;
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let config = RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_millis(200),
        token_secret: Some(vec![42; 32]),
        limits: runtime::limits::LimitSettings {
            key_requests_per_minute: 100_000,
            tenant_requests_per_minute: 100_000,
            tenant_chains_per_hour: 100_000,
        },
        // Watchers' test feeds are served on loopback.
        watchers: runtime::watchers::WatcherSettings {
            allow_addresses: vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
            ..runtime::watchers::WatcherSettings::default()
        },
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(Arc::clone(&db.store), signer, config, None);
    let workspace = tempfile::tempdir().expect("workspace");
    use providers::openai::{OpenAiConfig, OpenAiProvider};
    let provider: Arc<dyn providers::ModelProvider> = Arc::new(
        OpenAiProvider::new(OpenAiConfig {
            base_url: openai.uri(),
            ..OpenAiConfig::openai(providers::ApiKey::new("sk-test"))
        })
        .expect("openai"),
    );
    let target = runtime::agent::ModelTarget { provider: provider.clone(), model: "gpt-4o-mini".into() };
    // Email is configured (so the planner may pick it) towards a port nothing listens on.
    let settings = tools::BuiltinSettings {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(9),
        smtp_from: Some("Nexus <nexus@example.org>".into()),
        smtp_tls: tools::builtin::SmtpTls::None,
        ..tools::BuiltinSettings::default()
    };
    let tools = tools::builtins(&settings, Arc::new(parts.knowledge()));
    parts.agent = Some(runtime::agent::AgentServices {
        models: runtime::agent::Models::Configured { trivial: target.clone(), normal: target.clone(), complex: target },
        providers: vec![provider],
        tools,
        sandbox: tools::Sandbox::default(),
        workspace_root: workspace.path().to_path_buf(),
        prices: providers::pricing::PriceTable::builtin(),
        approval_ttl: Duration::from_secs(3600),
    });
    let runtime = Arc::new(Runtime::start(parts).await.expect("runtime"));
    runtime.seed_demo().await.expect("seed");
    let telegram = FakeTelegram::start(TOKEN).await;
    let discord = FakeDiscord::start(DISCORD_TOKEN, Duration::from_millis(400)).await;
    World { runtime, telegram, discord, _openai: openai, _db: db, _workspace: workspace }
}

impl World {
    pub fn settings(&self, admission: Admission) -> TelegramSettings {
        TelegramSettings {
            token: TOKEN.into(),
            api_url: url::Url::parse(&self.telegram.url).expect("url"),
            tenant: domain::TenantId::parse("demo").expect("tenant"),
            admission,
            allowed_chats: Vec::new(),
            poll_timeout: Duration::from_secs(1),
            stall_after: Duration::from_secs(3),
            webhook: None,
        }
    }

    /// Starts the adapter; aborting the handle stops it.
    pub fn start(&self, admission: Admission) -> tokio::task::JoinHandle<()> {
        channels::telegram::start(self.runtime.clone(), self.settings(admission))
    }

    pub fn discord_settings(&self, admission: Admission) -> DiscordSettings {
        let rules = domain::moderation::ScreenRules {
            words: vec!["nitro".into(), "maybe".into(), "garbled".into(), "banhammer".into()],
            ..Default::default()
        };
        DiscordSettings {
            token: DISCORD_TOKEN.into(),
            api_url: url::Url::parse(&self.discord.url).expect("url"),
            tenant: domain::TenantId::parse("demo").expect("tenant"),
            admission,
            allowed_guilds: Vec::new(),
            moderated_channels: vec!["c-mod".into()],
            staff_channel: Some("c-staff".into()),
            moderation: runtime::moderation::ModerationPolicy { rules, ..Default::default() },
            guilds: std::collections::HashMap::new(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Starts the Discord adapter with `settings`.
    pub fn start_discord(&self, settings: DiscordSettings) -> tokio::task::JoinHandle<()> {
        channels::discord::start(self.runtime.clone(), settings)
    }

    /// Links Discord user `account` to `user` through `/nexus link`.
    pub async fn link_discord(&self, account: &str, user: &domain::UserId) {
        let tenant = domain::TenantId::parse("demo").expect("tenant");
        let (code, _) = self.runtime.create_link_code(&tenant, user, "operator").await.expect("code");
        let id = self.discord.slash("c-general", Some("g1"), account, "link", &[("code", &code)]);
        let route = format!("interactions/{id}/itoken-{id}/callback");
        let answered = self.discord.wait_calls(1, Duration::from_secs(10), |c| c.route == route).await;
        let text = answered.first().map(|c| c.body["data"]["content"].as_str().unwrap_or("").to_owned());
        assert!(text.as_deref().is_some_and(|t| t.contains("Linked")), "{text:?}");
    }

    /// A console user of tenant `demo`; returns its id.
    pub async fn user(&self, email: &str, role: Role, level: u8) -> domain::UserId {
        let new = NewWebUser {
            tenant: domain::TenantId::parse("demo").expect("tenant"),
            email: email.into(),
            name: email.split('@').next().unwrap_or_default().to_owned(),
            role,
            level: UserLevel::new(level).expect("level"),
            password: "correct horse battery".into(),
        };
        self.runtime.create_web_user(new).await.expect("create user").user.id
    }

    /// Links Telegram user `account` (in its private chat) to `user`, through `/link CODE`.
    pub async fn link(&self, account: i64, user: &domain::UserId) {
        let tenant = domain::TenantId::parse("demo").expect("tenant");
        let (code, _) = self.runtime.create_link_code(&tenant, user, "operator").await.expect("code");
        let before = self.telegram.sent_to(account).len();
        self.telegram.push_message(account, account, &format!("/link {code}"));
        let sent = self.telegram.wait_sent(account, before + 1, Duration::from_secs(10)).await;
        assert!(sent[before].text.starts_with("Linked"), "{:?}", sent[before].text);
    }

    /// The health `channel`'s adapter reported.
    pub fn health_of(&self, channel: domain::channel::Channel) -> runtime::channels::ChannelHealth {
        self.runtime.channel_health().into_iter().find(|h| h.channel == channel).expect("channel health")
    }

    /// Waits until the adapter's state is `state`.
    pub async fn until_state(
        &self,
        state: runtime::channels::ChannelState,
        within: Duration,
    ) -> runtime::channels::ChannelHealth {
        self.until_state_of(domain::channel::Channel::Telegram, state, within).await
    }

    /// Waits until `channel`'s state is `state`.
    pub async fn until_state_of(
        &self,
        channel: domain::channel::Channel,
        state: runtime::channels::ChannelState,
        within: Duration,
    ) -> runtime::channels::ChannelHealth {
        let deadline = std::time::Instant::now() + within;
        loop {
            let health = self.health_of(channel);
            if health.state == state {
                return health;
            }
            assert!(std::time::Instant::now() < deadline, "never {state:?}: {health:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
