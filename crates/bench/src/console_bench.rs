//! The console benchmark: server render time of the overview, chains list, chain page and
//! ledger page with 100k ledger entries and 10k chains in a SQLite store (target: P99 ≤ 20 ms
//! each), against a baseline measured in the same run (the sign-in page, which reads nothing),
//! and the bytes a cold load of the overview transfers, assets included, gzip-compressed
//! (target: ≤ 250 KB).
//!
//! Requests go through the console's real router (sessions, CSRF-free GETs, security headers,
//! compression) in process, without sockets, so the figures are the server's own time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoredRun;
use domain::tenant::{Role, UserLevel};
use domain::{ChainId, TenantId, Timestamp};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use runtime::web_users::NewWebUser;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use tower::ServiceExt as _;

const TARGET_P99_MS: f64 = 20.0;
const TARGET_COLD_KB: f64 = 250.0;
/// A finished run in the stored format, as the runtime's fixtures keep it.
const DONE_RUN: &str = include_str!("../../runtime/tests/fixtures/runs/v2/done.json");

pub fn run(quick: bool) -> anyhow::Result<()> {
    let (entries, chains, requests) = if quick { (10_000, 1_000, 100) } else { (100_000, 10_000, 400) };
    println!("# console benchmark (SQLite, {entries} ledger entries, {chains} chains, {requests} requests per page)");
    println!(
        "targets: server render P99 <= {TARGET_P99_MS} ms per page; a cold page load <= {TARGET_COLD_KB} KB compressed"
    );
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(measure(entries, chains, requests))
}

async fn measure(entries: u64, chains: usize, requests: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = store::open(&store::DatabaseUrl::Sqlite(dir.path().join("console.db"))).await?;
    let signer = CheckpointSigner::new(SigningKey::from_bytes(&[7; 32]));
    // A person's page views count against the rate limits (the check is part of each measured
    // request); set far above what the benchmark sends.
    let limits = runtime::limits::LimitSettings {
        key_requests_per_minute: u64::MAX / 2,
        tenant_requests_per_minute: u64::MAX / 2,
        tenant_chains_per_hour: u64::MAX / 2,
    };
    let config = RuntimeConfig { ledger_origin: "bench.nexus".into(), limits, ..RuntimeConfig::default() };
    let runtime = Arc::new(Runtime::start(RuntimeParts::new(store.clone(), signer, config, None)).await?);
    let tenant = TenantId::parse("demo")?;

    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    let per_writer = entries / 64;
    for w in 0..64u64 {
        let runtime = runtime.clone();
        let tenant = tenant.clone();
        writers.spawn(async move {
            for i in 0..per_writer {
                let kind = if i % 3 == 0 { EntryKind::SealIntent } else { EntryKind::ModelCall };
                let draft = EntryDraft { kind, chain_id: None, payload: serde_json::json!({"writer": w, "i": i}) };
                runtime.ledger().append(&tenant, draft).await?;
            }
            Ok::<_, runtime::LedgerError>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    runtime.ledger().checkpoint(&tenant).await?;
    println!("setup: {} ledger entries in {:.1} s", per_writer * 64, started.elapsed().as_secs_f64());

    let started = Instant::now();
    let fixture: serde_json::Value = serde_json::from_str(DONE_RUN)?;
    let state = fixture["state"].to_string();
    let mut last = None;
    for i in 0..chains {
        let chain = ChainId::generate();
        let at = Timestamp::from_micros(Timestamp::now().as_micros() - i64::try_from(chains - i)? * 1_000_000);
        store
            .save_run(&StoredRun {
                tenant_id: tenant.clone(),
                chain_id: chain.clone(),
                task: format!("Tell the team the release is at {i}"),
                status: "completed".parse()?,
                state: state.replace("fixture-chain", chain.as_str()),
                created_at: at,
                updated_at: at,
                owner: None,
                personas: Vec::new(),
                // A version-2 state carries its own context.
                context: None,
            })
            .await?;
        last = Some(chain);
    }
    let chain = last.context("no chains")?;
    println!("setup: {chains} stored chains in {:.1} s", started.elapsed().as_secs_f64());

    let password = "bench password 1234".to_owned();
    let new = NewWebUser {
        tenant: tenant.clone(),
        email: "bench@example.com".into(),
        name: String::new(),
        role: Role::Admin,
        level: UserLevel::ARCHITECT,
        password: password.clone(),
    };
    runtime.create_web_user(new).await?;
    let session = runtime.sign_in("bench@example.com", &password, "127.0.0.1").await?;
    let cookie = format!("nexus_session={}", session.token);
    let app = console::router(runtime.clone());

    let get = |path: String, gzip: bool| {
        let mut request = Request::get(path).header(header::COOKIE, cookie.clone());
        if gzip {
            request = request.header(header::ACCEPT_ENCODING, "gzip");
        }
        request.body(Body::empty())
    };
    println!();
    println!("| page | P50 ms | P99 ms | target P99 |");
    println!("|---|---|---|---|");
    let pages = [
        ("sign-in page (baseline: reads nothing)", "/login".to_owned()),
        ("overview", "/".to_owned()),
        ("chains list", "/chains".to_owned()),
        ("chain page", format!("/chains/{chain}")),
        ("ledger page", "/ledger".to_owned()),
    ];
    let mut worst: f64 = 0.0;
    for (name, path) in &pages {
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            let request = get(path.clone(), false)?;
            let started = Instant::now();
            let response = app.clone().oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            samples.push(started.elapsed());
            if status != StatusCode::OK {
                bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
            }
        }
        samples.sort();
        let (p50, p99) = (ms(samples[samples.len() / 2]), ms(samples[samples.len() * 99 / 100]));
        if *path != "/login" {
            worst = worst.max(p99);
        }
        println!(
            "| {name} | {p50:.2} | {p99:.2} | {} |",
            if *path == "/login" { "-".to_owned() } else { format!("{TARGET_P99_MS}") }
        );
    }
    // The overview's parts on their own, so a slow overview says where its time goes.
    let now = Timestamp::now();
    let month = Timestamp::from_micros(now.as_micros() - 30 * 86_400_000_000);
    for (name, which) in [
        ("overview counts (one query)", 0),
        ("usage rows, 30 days", 1),
        ("budget status", 2),
        ("activity per day, 30 days (one query)", 3),
    ] {
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let answered = match which {
                0 => runtime.overview(&tenant).await.map(|o| o.runs_today > 0)?,
                1 => runtime.usage(&tenant, month, now).await.map(|rows| rows.is_empty())?,
                3 => runtime.activity(&tenant, month).await.map(|days| days.is_empty())?,
                _ => runtime.budgets().status(&tenant).await.map(|b| b.limit_usd > 0.0)?,
            };
            std::hint::black_box(answered);
            samples.push(started.elapsed());
        }
        samples.sort();
        println!(
            "| part: {name} | {:.2} | {:.2} | - |",
            ms(samples[samples.len() / 2]),
            ms(samples[samples.len() * 99 / 100])
        );
    }
    println!();
    println!(
        "worst page P99: {worst:.2} ms ({})",
        if worst <= TARGET_P99_MS { "meets the target" } else { "ABOVE the target" }
    );

    // A cold load: the overview and every asset it links to, compressed as a browser asks.
    let response = app.clone().oneshot(get("/".into(), true)?).await?;
    let encoded = response.headers().get(header::CONTENT_ENCODING).is_some();
    let html = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    let mut total = html.len();
    let plain = app.clone().oneshot(get("/".into(), false)?).await?;
    let page = String::from_utf8(axum::body::to_bytes(plain.into_body(), usize::MAX).await?.to_vec())?;
    let assets: Vec<&str> = page.split("\"/static/").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    for asset in &assets {
        let response = app.clone().oneshot(get(format!("/static/{asset}"), true)?).await?;
        total += axum::body::to_bytes(response.into_body(), usize::MAX).await?.len();
    }
    let kb = total as f64 / 1024.0;
    println!(
        "cold load of the overview: {kb:.1} KB (page gzip: {encoded}, {} assets) ({})",
        assets.len(),
        if kb <= TARGET_COLD_KB { "meets the target" } else { "ABOVE the target" }
    );
    runtime.shutdown().await;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
