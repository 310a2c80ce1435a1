//! Configured secrets never reach the logs: a `nexus serve` at debug level with a provider key,
//! a Telegram bot token (answering), a Discord bot token (its API unreachable, so errors are
//! logged again and again), gateway calls with an admin key and refused calls with a made-up
//! key — and not one log line holds any of those secrets, on standard error or in the log file.

use std::time::{Duration, Instant};

use channels::testing::FakeTelegram;

use crate::replicas::{Backend, Options, Replicas};

const TELEGRAM_TOKEN: &str = "4242:SECRET-telegram_token-abcdef";
const DISCORD_TOKEN: &str = "MTAx.SECRET-discord-token.abcdef";
const PROVIDER_KEY: &str = "sk-SECRET-provider-key-0123456789";
const MADE_UP_KEY: &str = "nxs_SECRETmadeUpKey0123456789abcdefghij";

#[tokio::test]
async fn configured_secrets_never_reach_the_logs() {
    let telegram = FakeTelegram::start(TELEGRAM_TOKEN).await;
    let env = [
        ("OPENAI_API_KEY", PROVIDER_KEY.to_owned()),
        ("NEXUS_TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN.to_owned()),
        ("NEXUS_TELEGRAM_API_URL", telegram.url.clone()),
        ("NEXUS_TELEGRAM_ADMISSION", "closed".to_owned()),
        ("NEXUS_DISCORD_BOT_TOKEN", DISCORD_TOKEN.to_owned()),
        // Nothing listens there: the Discord adapter fails and logs, again and again.
        ("NEXUS_DISCORD_API_URL", "http://127.0.0.1:9".to_owned()),
        ("NEXUS_LOG_LEVEL", "debug,sqlx=warn,hyper=info,hyper_util=info,h2=info,tower=info".to_owned()),
    ];
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log_file = log_dir.path().join("nexus.log");
    let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    env.push(("NEXUS_LOG_FILE".into(), log_file.display().to_string()));
    let Some(cluster) = Replicas::start_with(Options { replicas: 1, backend: Backend::Sqlite, env }).await else {
        return;
    };
    let key = cluster.admin_key("demo").await;
    for _ in 0..3 {
        assert!(cluster.chat(0, &key, "hello").await.status().is_success());
    }
    for bad in [MADE_UP_KEY, &format!("{key}x")] {
        let refused = cluster.chat(0, bad, "hello").await;
        assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    // A stranger writes to the bot in a closed tenant: refused, logged.
    telegram.push_message(77, 77, "let me in");
    let deadline = Instant::now() + Duration::from_secs(30);
    while telegram.sent_to(77).is_empty() {
        assert!(Instant::now() < deadline, "the stranger was never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the Discord adapter fail a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut lines = cluster.log(0);
    let written = std::fs::read_to_string(&log_file).expect("the log file was written");
    assert!(written.lines().count() > 20, "the file has the server's log too");
    lines.extend(written.lines().map(str::to_owned));
    assert!(lines.len() > 20, "a debug-level server says plenty: {}", lines.len());
    assert!(lines.iter().any(|l| l.to_lowercase().contains("discord")), "the Discord failures were logged");
    let secret_part = |s: &str| s.split(':').next_back().unwrap_or(s).to_owned();
    for secret in [
        TELEGRAM_TOKEN.to_owned(),
        secret_part(TELEGRAM_TOKEN),
        DISCORD_TOKEN.to_owned(),
        PROVIDER_KEY.to_owned(),
        MADE_UP_KEY.to_owned(),
        key.clone(),
    ] {
        let leaked: Vec<&String> = lines.iter().filter(|l| l.contains(&secret)).collect();
        assert!(leaked.is_empty(), "{secret} appears in the log:\n{leaked:#?}");
    }
}
