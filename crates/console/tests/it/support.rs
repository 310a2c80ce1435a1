//! A real server (console and API merged, as `nexus serve` does) on a fresh SQLite database,
//! and a browser-like client that keeps cookies and says where its forms come from.

use std::sync::Arc;
use std::time::Duration;

use domain::tenant::{Role, UserLevel};
use ledger::checkpoint::CheckpointSigner;
use runtime::web_users::NewWebUser;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

pub const PASSWORD: &str = "correct horse battery";

pub struct App {
    pub base: String,
    pub runtime: Arc<Runtime>,
    pub db: store::test_support::TestDatabase,
    _workspace: tempfile::TempDir,
}

pub async fn spawn() -> App {
    spawn_with(None).await
}

/// A server whose agent plans, declares and answers with `openai` (a fake OpenAI upstream):
/// runs started from the console really run.
pub async fn spawn_with_agent(openai: &wiremock::MockServer) -> App {
    spawn_with(Some(openai.uri())).await
}

/// Like [`spawn_with_agent`], with `send_email` (which always waits for an approval) delivering
/// to `smtp` at 127.0.0.1.
pub async fn spawn_with_mail(openai: &wiremock::MockServer, smtp: &FakeSmtp) -> App {
    spawn_full(Some(openai.uri()), Some(smtp.port)).await
}

async fn spawn_with(openai: Option<String>) -> App {
    spawn_full(openai, None).await
}

/// A server whose rate limits are `limits`.
pub async fn spawn_with_limits(limits: runtime::limits::LimitSettings) -> App {
    spawn_configured(None, None, Some(limits), false).await
}

/// A server that manages live settings ([`SETTINGS`], `log.format` pinned by a variable).
pub async fn spawn_with_settings() -> App {
    spawn_configured(None, None, None, true).await
}

/// With settings, plugins (weather) and the agent (a provider that is never called).
pub async fn spawn_with_plugins() -> App {
    spawn_configured(Some("http://127.0.0.1:9/v1".into()), None, None, true).await
}

async fn spawn_full(openai: Option<String>, smtp_port: Option<u16>) -> App {
    spawn_configured(openai, smtp_port, None, false).await
}

/// The settings of [`spawn_with_settings`].
pub const SETTINGS: runtime::settings::Registry = {
    use runtime::settings::{Applies, SettingScope, SettingSpec, SettingType};
    const fn spec(key: &'static str, kind: SettingType, secret: bool, applies: Applies) -> SettingSpec {
        SettingSpec {
            key,
            env: None,
            kind,
            default: None,
            scope: SettingScope::Global,
            secret,
            applies,
            doc: "a test setting",
        }
    }
    runtime::settings::Registry(&[
        spec("limits.key_requests_per_minute", SettingType::Whole { min: 1, max: 1_000_000 }, false, Applies::Live),
        spec("tools.brave_api_key", SettingType::Text, true, Applies::Live),
        spec("log.format", SettingType::Choice(&["text", "json"]), false, Applies::Restart),
        spec("server.listen", SettingType::Text, false, Applies::Bootstrap),
    ])
};

/// Rebuilds the rate limits from the key limit setting, as the binary's host does.
struct LimitsHost;

impl runtime::settings::SettingsHost for LimitsHost {
    fn reconfigure(
        &self,
        values: &runtime::settings::Values,
    ) -> Result<runtime::settings::Reconfiguration, runtime::settings::Invalid> {
        let per_key = values.get("limits.key_requests_per_minute").map_or(Ok(100_000), |v| v.parse::<u64>());
        let per_key = per_key.map_err(|e| runtime::settings::Invalid {
            setting: "limits.key_requests_per_minute".into(),
            reason: e.to_string(),
        })?;
        Ok(runtime::settings::Reconfiguration {
            agent: None,
            limits: runtime::limits::LimitSettings {
                key_requests_per_minute: per_key,
                tenant_requests_per_minute: 100_000,
                tenant_chains_per_hour: 100_000,
            },
            default_budget_usd: None,
            budget_alert_fraction: None,
        })
    }
}

async fn spawn_configured(
    openai: Option<String>,
    smtp_port: Option<u16>,
    limits: Option<runtime::limits::LimitSettings>,
    settings: bool,
) -> App {
    let db = store::test_support::sqlite().await;
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let config = RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_millis(200),
        token_secret: Some(vec![42; 32]),
        // Tests click faster than people (`spawn_with_limits` shows the limits themselves).
        limits: limits.unwrap_or(runtime::limits::LimitSettings {
            key_requests_per_minute: 100_000,
            tenant_requests_per_minute: 100_000,
            tenant_chains_per_hour: 100_000,
        }),
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(Arc::clone(&db.store), signer, config, None);
    parts.logs = Some(Arc::new(runtime::logs::LogTail::default()));
    // With settings come the plugins: the weather tool as a built-in plugin.
    let plugins = settings.then(|| {
        let weather = runtime::plugins::PluginManifest {
            name: "weather".into(),
            version: "1".into(),
            description: "The weather tool.".into(),
            settings: vec![],
            tools: vec!["weather".into()],
            jobs: vec![],
            channel: None,
        };
        runtime::plugins::Plugins::new(vec![weather], None)
    });
    parts.plugins = plugins.clone();
    let workspace = tempfile::tempdir().expect("workspace");
    if let Some(base_url) = openai {
        use providers::openai::{OpenAiConfig, OpenAiProvider};
        let openai: Arc<dyn providers::ModelProvider> = Arc::new(
            OpenAiProvider::new(OpenAiConfig { base_url, ..OpenAiConfig::openai(providers::ApiKey::new("sk-test")) })
                .expect("openai"),
        );
        // Guarded as the binary guards every provider: no retry here, and three failures in a
        // row open the breaker.
        let retry = providers::RetryPolicy { max_attempts: 1, ..providers::RetryPolicy::default() };
        let breaker = providers::CircuitBreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(60) };
        let provider: Arc<dyn providers::ModelProvider> = Arc::new(providers::Resilient::new(openai, retry, breaker));
        let target = runtime::agent::ModelTarget { provider: provider.clone(), model: "gpt-4o-mini".into() };
        let settings = match smtp_port {
            Some(port) => tools::BuiltinSettings {
                smtp_host: Some("127.0.0.1".into()),
                smtp_port: Some(port),
                smtp_from: Some("Nexus <nexus@example.org>".into()),
                smtp_tls: tools::builtin::SmtpTls::None,
                ..tools::BuiltinSettings::default()
            },
            None => tools::BuiltinSettings::default(),
        };
        let mut tools = tools::builtins(&settings, Arc::new(parts.knowledge()));
        if let Some(plugins) = &plugins {
            tools = tools.with_source(plugins.clone());
        }
        parts.agent = Some(runtime::agent::AgentServices {
            models: runtime::agent::Models::Configured {
                trivial: target.clone(),
                normal: target.clone(),
                complex: target,
            },
            providers: vec![provider],
            tools,
            sandbox: tools::Sandbox::default(),
            workspace_root: workspace.path().to_path_buf(),
            prices: providers::pricing::PriceTable::builtin(),
            approval_ttl: Duration::from_secs(3600),
        });
    }
    if settings {
        let key = runtime::settings::MasterKey::generate();
        let (revision, _) = runtime::settings::load(db.store.as_ref(), &key).await.expect("load settings");
        let pinned = [(
            "log.format".to_owned(),
            runtime::settings::Pinned {
                source: runtime::settings::PinSource::Env { variable: "NEXUS_LOG_FORMAT".into() },
                value: "json".into(),
            },
        )]
        .into_iter()
        .collect();
        parts.settings = Some(runtime::settings::SettingsParts {
            registry: SETTINGS,
            key,
            pinned,
            host: Arc::new(LimitsHost),
            revision,
        });
    }
    let runtime = Arc::new(Runtime::start(parts).await.expect("runtime"));
    runtime.seed_demo().await.expect("seed");
    let app = console::router(runtime.clone()).merge(gateway::router(gateway::AppState::new(runtime.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    runtime::tasks::spawn("test-server", async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    App { base: format!("http://{address}"), runtime, db, _workspace: workspace }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn user(&self, tenant: &str, email: &str, role: Role, level: u8) {
        let new = NewWebUser {
            tenant: domain::TenantId::parse(tenant).expect("tenant"),
            email: email.into(),
            name: String::new(),
            role,
            level: UserLevel::new(level).expect("level"),
            password: PASSWORD.into(),
        };
        self.runtime.create_web_user(new).await.expect("create user");
    }

    /// A browser: cookies kept, no redirects followed (so tests see them), same-origin forms.
    pub fn browser(&self) -> Browser {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser { client, base: self.base.clone() }
    }

    /// A browser already signed in as `email`.
    pub async fn signed_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        let response = browser.sign_in(email, PASSWORD).await;
        assert_eq!(response.status(), 303, "sign-in redirects home");
        browser
    }
}

pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("body")
    }

    /// Posts a form as the browser would from one of our pages.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).header("sec-fetch-site", "same-origin").form(form).send().await.expect("POST")
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/login", &[("email", email), ("password", password)]).await
    }

    /// The CSRF token a page's forms carry.
    pub async fn csrf(&self) -> String {
        let html = self.page("/").await;
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
        html[start..].split('"').next().expect("token").to_owned()
    }
}

/// A fake OpenAI upstream whose planner picks one knowledge search, whose declaration matches
/// it, and whose answer holds markup (which the console must show as text).
pub async fn search_model() -> wiremock::MockServer {
    let replies = [
        (
            "Break the following task",
            r#"[{"action": "search the knowledge base", "tool": "knowledge_search", "params": {"query": "ledger"}, "persona": "researcher"}]"#,
        ),
        (
            "Declare your intent",
            r#"{"planned_action": "search", "tool_params": {"query": "ledger"}, "resource_targets": ["kb:default"], "reasoning": "look it up", "confidence": 0.9}"#,
        ),
        ("Answer the user", "The ledger is <b>tamper-evident</b>."),
    ];
    fake_model(&replies).await
}

/// A fake SMTP server (the real wire format, no TLS) that accepts every message and keeps it.
pub struct FakeSmtp {
    pub port: u16,
    pub messages: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("address").port();
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = messages.clone();
        runtime::tasks::spawn("fake-smtp", async move {
            while let Ok((socket, _)) = listener.accept().await {
                let kept = kept.clone();
                runtime::tasks::spawn("fake-smtp-session", async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 fake.smtp ESMTP\r\n").await;
                    let mut data: Option<String> = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(body) = data.as_mut() {
                            if line == "." {
                                kept.lock().expect("lock").push(std::mem::take(body));
                                data = None;
                                let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                            } else {
                                body.push_str(&line);
                                body.push('\n');
                            }
                            continue;
                        }
                        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250-fake.smtp\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 end with .\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        FakeSmtp { port, messages }
    }
}

/// A fake OpenAI upstream whose planner emails the board (held for an approval).
pub async fn email_model() -> wiremock::MockServer {
    let params = r#"{"to": "board@example.com", "subject": "Report", "body": "The report is ready."}"#;
    let plan = format!(
        r#"[{{"action": "email the board", "tool": "send_email", "params": {params}, "persona": "communicator"}}]"#
    );
    let declare = format!(r#"{{"planned_action": "send", "tool_params": {params}}}"#);
    fake_model(&[
        ("Break the following task", plan.as_str()),
        ("Declare your intent", declare.as_str()),
        ("Answer the user", "Sent."),
    ])
    .await
}

/// A fake OpenAI upstream answering each request that contains a phrase with its content, as
/// a blocking chat completion in OpenAI's wire format.
async fn fake_model(replies: &[(&str, &str)]) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    for (phrase, content) in replies {
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        });
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/chat/completions"))
            .and(wiremock::matchers::body_string_contains(*phrase))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    server
}

/// The OpenAI wire format's streamed answer: role, two text deltas, the stop, then usage.
fn streamed(parts: &[&str]) -> String {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut body = format!("data: {}\n\n", chunk(serde_json::json!({"role": "assistant", "content": ""}), None));
    for part in parts {
        body.push_str(&format!("data: {}\n\n", chunk(serde_json::json!({"content": part}), None)));
    }
    body.push_str(&format!("data: {}\n\n", chunk(serde_json::json!({}), Some("stop"))));
    let usage = serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}});
    body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    body
}

/// A fake OpenAI upstream for chat: streamed requests get a streamed answer after `delay`; the
/// agent's planner, declaration and answer get blocking ones (one knowledge search).
pub async fn chat_model(delay: std::time::Duration) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/chat/completions"))
        .and(wiremock::matchers::body_string_contains("\"stream\":true"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(streamed(&["Hello there, ", "<b>friend</b>."]))
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    let reply = |content: &str| {
        serde_json::json!({"id": "c2", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
    };
    for (phrase, content) in [
        (
            "Break the following task",
            r#"[{"action": "search", "tool": "knowledge_search", "params": {"query": "ledger"}, "persona": "researcher"}]"#,
        ),
        (
            "Declare your intent",
            r#"{"planned_action": "search", "tool_params": {"query": "ledger"}, "resource_targets": ["kb:default"], "reasoning": "look it up", "confidence": 0.9}"#,
        ),
        ("Answer the user", "The ledger is tamper-evident."),
    ] {
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/chat/completions"))
            .and(wiremock::matchers::body_string_contains(phrase))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(reply(content)))
            .mount(&server)
            .await;
    }
    server
}
