//! `spawn_app()`: the real server on a real socket (port 0) over a fresh SQLite database, with
//! fake OpenAI and Anthropic servers that speak their vendors' wire formats.

use std::sync::Arc;
use std::time::Duration;

use domain::TenantId;
use domain::tenant::{Role, UserLevel};
use ledger::checkpoint::CheckpointSigner;
use providers::anthropic::{AnthropicConfig, AnthropicProvider};
use providers::openai::{OpenAiConfig, OpenAiProvider};
use providers::pricing::{ModelPrice, PriceTable};
use providers::{ApiKey, ModelProvider};
use runtime::agent::{AgentServices, ModelTarget, Models};
use runtime::limits::LimitSettings;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::json;
use store::test_support::TestDatabase;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub struct Options {
    pub limits: LimitSettings,
    pub budget_usd: Option<f64>,
    /// USD per million tokens for gpt-4o-mini (both directions).
    pub openai_price: f64,
    /// `[models] default_price` (both directions), if any.
    pub default_price: Option<f64>,
    pub embedder: Option<Arc<dyn domain::embed::Embedder>>,
    /// Install a (trivial) metrics renderer, so `/metrics` answers 200.
    pub metrics: bool,
    /// When gateway calls are answered relative to their ledger entry.
    pub gateway_ack: runtime::llm::LedgerAck,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: LimitSettings {
                key_requests_per_minute: 10_000,
                tenant_requests_per_minute: 10_000,
                tenant_chains_per_hour: 1000,
            },
            budget_usd: None,
            openai_price: 0.15,
            default_price: None,
            embedder: None,
            metrics: false,
            gateway_ack: runtime::llm::LedgerAck::Durable,
        }
    }
}

pub struct App {
    pub base: String,
    pub runtime: Arc<Runtime>,
    pub client: reqwest::Client,
    pub openai: MockServer,
    pub anthropic: MockServer,
    _db: TestDatabase,
    _workspace: tempfile::TempDir,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new key for `tenant`; returns its secret.
    pub async fn key(&self, tenant: &str, role: Role) -> String {
        let tenant = TenantId::parse(tenant).expect("tenant id");
        self.runtime.create_api_key(&tenant, "test", UserLevel::NEWCOMER, role).await.expect("key").secret
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }

    pub fn post(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key)
    }
}

/// An OpenAI chat completion answer.
pub fn openai_completion(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    }))
}

/// An OpenAI streamed answer (`Hel` `lo`), with usage in the last chunk.
pub fn openai_stream() -> ResponseTemplate {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut body = String::new();
    for event in [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({}), Some("stop")),
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-4o-mini",
               "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}),
    ] {
        body.push_str(&format!("data: {event}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body)
}

pub fn anthropic_message(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 40, "output_tokens": 12}
    }))
}

pub fn anthropic_stream() -> ResponseTemplate {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 40, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let body: String = events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect();
    ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body)
}

/// Mounts the default answers: streaming first (more specific), then blocking.
pub async fn mount_defaults(openai: &MockServer, anthropic: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(openai_stream())
        .with_priority(1)
        .mount(openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(openai_completion("Hello from OpenAI"))
        .with_priority(5)
        .mount(openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(anthropic_stream())
        .with_priority(1)
        .mount(anthropic)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(anthropic_message("Hello from Claude"))
        .with_priority(5)
        .mount(anthropic)
        .await;
}

pub async fn spawn_app(options: Options) -> App {
    let openai = MockServer::start().await;
    let anthropic = MockServer::start().await;
    spawn_app_with(options, openai, anthropic).await
}

pub async fn spawn_app_with(options: Options, openai: MockServer, anthropic: MockServer) -> App {
    let db = store::test_support::sqlite().await;
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let workspace = tempfile::tempdir().expect("workspace");
    let config = RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_millis(200),
        token_secret: Some(vec![42; 32]),
        limits: options.limits,
        default_budget_usd: options.budget_usd,
        budget_alert_fraction: None,
        // As the server does: exported checkpoints go under the data directory.
        equipment: runtime::equipment::EquipmentSettings {
            export_dir: Some(workspace.path().join("checkpoints")),
            data_dir: Some(workspace.path().to_path_buf()),
        },
        gateway_ack: options.gateway_ack,
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(Arc::clone(&db.store), signer, config, options.embedder);
    let openai_provider: Arc<dyn ModelProvider> = Arc::new(
        OpenAiProvider::new(OpenAiConfig { base_url: openai.uri(), ..OpenAiConfig::openai(ApiKey::new("sk-test")) })
            .expect("openai"),
    );
    let anthropic_provider: Arc<dyn ModelProvider> = Arc::new(
        AnthropicProvider::new(AnthropicConfig {
            base_url: anthropic.uri(),
            ..AnthropicConfig::new(ApiKey::new("sk-ant-test"))
        })
        .expect("anthropic"),
    );
    let cheap = ModelTarget { provider: openai_provider.clone(), model: "gpt-4o-mini".into() };
    let strong = ModelTarget { provider: anthropic_provider.clone(), model: "claude-sonnet-4-5".into() };
    // SMTP "configured" at a closed port: send_email is registered (and gated by approval);
    // no test lets it reach the network.
    let tool_settings = tools::BuiltinSettings {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(1),
        smtp_from: Some("Nexus <nexus@example.org>".into()),
        smtp_tls: tools::builtin::SmtpTls::None,
        ..tools::BuiltinSettings::default()
    };
    let tools = tools::builtins(&tool_settings, Arc::new(parts.knowledge()));
    let prices = PriceTable::builtin()
        .with_overrides([("gpt-4o-mini".to_owned(), ModelPrice::new(options.openai_price, options.openai_price))])
        .with_default(options.default_price.map(|p| ModelPrice::new(p, p)));
    let services = AgentServices {
        models: Models::Configured { trivial: cheap.clone(), normal: cheap, complex: strong },
        providers: vec![openai_provider, anthropic_provider],
        tools,
        sandbox: tools::Sandbox::default(),
        workspace_root: workspace.path().to_path_buf(),
        prices,
        approval_ttl: Duration::from_secs(3600),
    };
    parts.agent = Some(services);
    // A server keeps its recent log lines; tests write to the tail directly.
    parts.logs = Some(Arc::new(runtime::logs::LogTail::default()));
    let runtime = Runtime::start(parts).await.expect("runtime");
    runtime.seed_demo().await.expect("seed");
    let runtime = Arc::new(runtime);
    let settings =
        gateway::HttpSettings { max_body_bytes: 64 * 1024, cors_origins: vec!["https://app.example.com".into()] };
    let mut state = gateway::AppState::new(runtime.clone()).with_settings(settings);
    if options.metrics {
        state = state.with_metrics(Arc::new(|| "# metrics\n".to_owned()));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    runtime::tasks::spawn("test-server", async move {
        let _ = axum::serve(listener, gateway::router(state)).await;
    });
    App {
        base: format!("http://{address}"),
        runtime,
        client: reqwest::Client::new(),
        openai,
        anthropic,
        _db: db,
        _workspace: workspace,
    }
}

/// The tenant's ledger entries of `kind`, waiting (up to 2.5 s) until there are `count` of them:
/// gateway calls reach the ledger through its queue, after the answer.
pub async fn entries_of_kind(app: &App, key: &str, kind: &str, count: usize) -> Vec<serde_json::Value> {
    let mut entries = Vec::new();
    for _ in 0..50 {
        let page: serde_json::Value =
            app.get(&format!("/v1/ledger?kind={kind}"), key).send().await.expect("send").json().await.expect("json");
        entries = page["entries"].as_array().cloned().unwrap_or_default();
        if entries.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    entries
}

/// Reads an SSE body into (event name, data) pairs; `None` names for unnamed events.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.trim_start().to_owned());
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

/// A stand-in for the in-process model: letters counted into 8 dimensions, normalised.
pub struct LetterEmbedder;

impl domain::embed::Embedder for LetterEmbedder {
    fn model(&self) -> &str {
        "letters-8"
    }
    fn dims(&self) -> usize {
        8
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, domain::embed::EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 8];
                for b in t.bytes() {
                    v[usize::from(b % 8)] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}
