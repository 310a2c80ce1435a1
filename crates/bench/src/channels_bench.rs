//! The channels benchmark: messages per second through the Telegram adapter (a fake Bot API on
//! 127.0.0.1, long polling, the real adapter) to an in-process zero-latency model and back, and
//! the latency the adapter adds (P50/P99) over the run itself — the same chat turn made
//! straight on the runtime, measured in the same run. Also the moderation pre-screen's cost per
//! message, next to the cost of reading a Discord `MESSAGE_CREATE` payload (what every message
//! costs anyway).
//!
//! Latency is taken from the fake's own clock: from the moment an update is queued to the moment
//! the answer's `sendMessage` reaches the fake, so the benchmark's polling does not count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use channels::testing::FakeTelegram;
use domain::TenantId;
use domain::channel::{Admission, Channel};
use domain::moderation::{Inspected, Prescreen, ScreenRules};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use providers::{
    Capabilities, ChatRequest, ChatResponse, EventStream, FinishReason, ModelProvider, ProviderError, Usage,
};
use runtime::agent::{AgentServices, ModelTarget, Models};
use runtime::channels::{Account, Admitted};
use runtime::chat::ReplyEvent;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

const TOKEN: &str = "4242:BENCH-token";
/// Chats answered at once in the throughput phase.
const CONCURRENT_CHATS: usize = 16;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let (sequential, per_chat, screened) = if quick { (30, 3, 20_000) } else { (200, 12, 200_000) };
    println!("# channels benchmark (SQLite, Telegram adapter against a fake Bot API, zero-latency model)");
    println!("reported: messages/s through the adapter; latency it adds over the chat turn itself (P50/P99);");
    println!("          the moderation pre-screen's cost per message");
    println!();
    prescreen(screened);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(through_the_adapter(sequential, per_chat))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The pre-screen over a mix of ordinary chat and spam, against reading the payload it came in.
fn prescreen(messages: usize) {
    let rules = ScreenRules {
        words: (0..50).map(|i| format!("banned{i}")).chain(["free nitro".to_owned(), "scam".to_owned()]).collect(),
        patterns: ["(?i)discord\\.gift/", "(?i)free\\s+nitro", "(?i)claim your prize", r"\b\d{16}\b", "(?i)airdrop"]
            .iter()
            .filter_map(|p| regex::Regex::new(p).ok())
            .collect(),
        ..ScreenRules::default()
    };
    let texts = [
        "hey everyone, the release notes for 2.3 are up, have a look when you can",
        "does anyone know why the build fails on arm64? the linker complains about a missing symbol",
        "FREE NITRO for everyone at https://discord.gift/abc https://x.example https://y.example https://z.example",
        "lol same",
        "I think we should move the meeting to thursday, friday is a holiday here in Italy and half the team is away",
        "@everyone claim your prize now!!! scam scam",
    ];
    let payloads: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": format!("13000000000000000{i:02}"), "channel_id": "1", "guild_id": "2", "content": t,
                               "author": {"id": format!("{}", 500 + i), "username": "someone"}, "mentions": [],
                               "mention_roles": [], "mention_everyone": false, "timestamp": "2026-12-03T12:00:00+00:00"})
            .to_string()
        })
        .collect();
    let mut screen = Prescreen::new();
    let base = domain::Timestamp::now().as_micros();
    let started = Instant::now();
    let mut flagged = 0usize;
    for i in 0..messages {
        let text = texts[i % texts.len()];
        // 3000 authors, a message every 10 ms of simulated time: each writes twice a minute.
        let author = format!("{}", 1000 + i % 3000);
        let message = Inspected { author_id: &author, text, mentions: 0 };
        let now = domain::Timestamp::from_micros(base + i as i64 * 10_000);
        flagged += usize::from(!screen.check(&rules, &message, now).is_empty());
    }
    let screen_ns = started.elapsed().as_nanos() as f64 / messages as f64;
    let started = Instant::now();
    let mut read = 0usize;
    for i in 0..messages {
        let value: serde_json::Value = serde_json::from_str(&payloads[i % payloads.len()]).unwrap_or_default();
        read += value["content"].as_str().map_or(0, str::len);
    }
    let parse_ns = started.elapsed().as_nanos() as f64 / messages as f64;
    println!(
        "## moderation pre-screen ({} words, {} patterns, {messages} messages)",
        rules.words.len(),
        rules.patterns.len()
    );
    println!("pre-screen:                 {screen_ns:>9.0} ns per message ({flagged} flagged)");
    println!("baseline (read the payload): {parse_ns:>8.0} ns per message ({read} bytes of text read)");
    println!("ratio: {:.2}x the cost of reading the message", screen_ns / parse_ns.max(1.0));
    println!();
}

async fn through_the_adapter(sequential: usize, per_chat: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = runtime(&dir).await?;
    let tenant = TenantId::parse("demo")?;
    let telegram = FakeTelegram::start(TOKEN).await;
    let settings = channels::telegram::TelegramSettings {
        token: TOKEN.into(),
        api_url: url::Url::parse(&telegram.url)?,
        tenant: tenant.clone(),
        admission: Admission::Open,
        allowed_chats: Vec::new(),
        poll_timeout: Duration::from_secs(10),
        stall_after: Duration::from_secs(60),
        webhook: None,
    };
    let adapter = channels::telegram::start(runtime.clone(), settings);

    // Warm up: every chat's member, conversation and worker exist before anything is timed.
    let chats: Vec<i64> = (0..CONCURRENT_CHATS as i64).map(|i| 10_000 + i).collect();
    for &chat in &chats {
        ask(&telegram, chat, "warm up").await?;
    }
    let baseline_member = member(&runtime, &tenant, "baseline-1").await?;
    turn(&runtime, &baseline_member, "warm up").await?;

    // Latency, one message at a time: the adapter, then the turn itself.
    let mut through = Vec::with_capacity(sequential);
    for i in 0..sequential {
        through.push(ask(&telegram, chats[i % chats.len()], &format!("question {i}")).await?.as_secs_f64() * 1e3);
    }
    let mut direct = Vec::with_capacity(sequential);
    for i in 0..sequential {
        direct.push(turn(&runtime, &baseline_member, &format!("question {i}")).await?.as_secs_f64() * 1e3);
    }
    let (through, direct) = (sorted(through), sorted(direct));
    println!("## latency, one message at a time ({sequential} messages)");
    println!(
        "the run itself (runtime chat turn): P50 {:>7.2} ms  P99 {:>7.2} ms",
        percentile(&direct, 0.5),
        percentile(&direct, 0.99)
    );
    println!(
        "through the Telegram adapter:       P50 {:>7.2} ms  P99 {:>7.2} ms",
        percentile(&through, 0.5),
        percentile(&through, 0.99)
    );
    println!(
        "added by the adapter:               P50 {:>7.2} ms  P99 {:>7.2} ms",
        percentile(&through, 0.5) - percentile(&direct, 0.5),
        percentile(&through, 0.99) - percentile(&direct, 0.99)
    );
    println!();

    // Throughput: every chat asks `per_chat` questions, each after its previous answer.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for &chat in &chats {
        let telegram = telegram.clone();
        tasks.spawn(async move {
            for i in 0..per_chat {
                ask(&telegram, chat, &format!("load {i}")).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let adapter_rate = (chats.len() * per_chat) as f64 / started.elapsed().as_secs_f64();
    let mut members = Vec::new();
    for i in 0..chats.len() {
        members.push(Arc::new(member(&runtime, &tenant, &format!("baseline-load-{i}")).await?));
    }
    let started = Instant::now();
    for member in &members {
        let runtime = runtime.clone();
        let member = member.clone();
        tasks.spawn(async move {
            for i in 0..per_chat {
                turn(&runtime, &member, &format!("load {i}")).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let direct_rate = (members.len() * per_chat) as f64 / started.elapsed().as_secs_f64();
    println!("## throughput ({} chats at once, {per_chat} messages each)", chats.len());
    println!("the runs themselves:          {direct_rate:>8.1} messages/s");
    println!(
        "through the Telegram adapter: {adapter_rate:>8.1} messages/s ({:.0}% of the runs alone)",
        adapter_rate / direct_rate * 100.0
    );
    adapter.abort();
    runtime.shutdown().await;
    Ok(())
}

/// Sends `text` from the private chat `chat` and waits for the answer; how long it took by the
/// fake's clock.
async fn ask(telegram: &FakeTelegram, chat: i64, text: &str) -> anyhow::Result<Duration> {
    let before = telegram.sent_to(chat).len();
    let asked = Instant::now();
    telegram.push_message(chat, chat, text);
    let deadline = asked + Duration::from_secs(30);
    loop {
        if let Some(answer) = telegram.sent_to(chat).get(before) {
            return Ok(answer.at.saturating_duration_since(asked));
        }
        anyhow::ensure!(Instant::now() < deadline, "chat {chat} was not answered within 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn member(runtime: &Runtime, tenant: &TenantId, id: &str) -> anyhow::Result<runtime::channels::Member> {
    let account = Account { channel: Channel::Discord, external_id: id.into(), display: id.into(), private_chat: None };
    match runtime.channel_member(tenant, &account, Admission::Open).await? {
        Admitted::Member { member, .. } => Ok(*member),
        Admitted::Refused => anyhow::bail!("an open channel refused a member"),
    }
}

/// One chat turn made straight on the runtime; how long until its reply is stored.
async fn turn(runtime: &Arc<Runtime>, member: &runtime::channels::Member, text: &str) -> anyhow::Result<Duration> {
    let mut member = member.clone();
    let started = Instant::now();
    let conversation = runtime.channel_conversation(&mut member).await?;
    let mut watch = runtime.say_watched(&member.principal, &conversation.id, text).await?;
    loop {
        match watch.recv().await {
            Ok(ReplyEvent::Done(_)) => return Ok(started.elapsed()),
            Ok(ReplyEvent::Failed(reason)) => anyhow::bail!("a turn failed: {reason}"),
            Ok(ReplyEvent::Text(_)) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => anyhow::bail!("a turn stopped"),
        }
    }
}

async fn runtime(dir: &tempfile::TempDir) -> anyhow::Result<Arc<Runtime>> {
    let store: Arc<dyn domain::ports::Store> =
        Arc::new(store::SqliteStore::open(&dir.path().join("channels.db")).await?);
    let signer = CheckpointSigner::new(SigningKey::from_bytes(&[5; 32]));
    let config = RuntimeConfig {
        ledger_origin: "bench.nexus".into(),
        checkpoint_interval: Duration::from_secs(1),
        limits: runtime::limits::LimitSettings {
            key_requests_per_minute: u64::MAX / 2,
            tenant_requests_per_minute: u64::MAX / 2,
            tenant_chains_per_hour: u64::MAX / 2,
        },
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(store, signer, config, None);
    let model: Arc<dyn ModelProvider> = Arc::new(InstantModel);
    let target = ModelTarget { provider: model.clone(), model: "instant".into() };
    let registry = tools::builtins(&tools::BuiltinSettings::default(), Arc::new(parts.knowledge()));
    parts.agent = Some(AgentServices {
        models: Models::Configured { trivial: target.clone(), normal: target.clone(), complex: target },
        providers: vec![model],
        tools: registry,
        sandbox: tools::Sandbox::default(),
        workspace_root: dir.path().join("workspace"),
        prices: providers::pricing::PriceTable::builtin()
            .with_overrides([("instant".to_owned(), providers::pricing::ModelPrice::FREE)]),
        approval_ttl: Duration::from_secs(60),
    });
    let runtime = Runtime::start(parts).await?;
    runtime.seed_demo().await?;
    Ok(Arc::new(runtime))
}

/// A model that answers at once: a direct answer (no tool steps) to every question.
struct InstantModel;

#[async_trait]
impl ModelProvider for InstantModel {
    fn name(&self) -> &str {
        "instant"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { streaming: false, tools: false, list_models: false }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let prompt = request.messages.first().map(|m| m.content.as_str()).unwrap_or_default();
        let content =
            if prompt.contains("Break the following task") { "[]" } else { "Here is the answer, **sealed**." };
        Ok(ChatResponse {
            provider: "instant".into(),
            model: "instant".into(),
            content: content.to_owned(),
            tool_calls: Vec::new(),
            usage: Usage { input_tokens: 10, output_tokens: 5 },
            finish_reason: FinishReason::Stop,
        })
    }

    async fn stream(&self, _request: &ChatRequest) -> Result<EventStream, ProviderError> {
        Err(ProviderError::NotConfigured("the benchmark model does not stream".into()))
    }
}
