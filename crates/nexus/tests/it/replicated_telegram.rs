//! The Telegram bot under `nexus serve`: two replicas on one PostgreSQL database share one bot
//! token — one polls, the other stands by and takes over when the first dies — and every
//! message is answered exactly once; a refused token fails the channel and nothing else.

use std::time::{Duration, Instant};

use channels::testing::FakeTelegram;
use serde_json::Value;

use crate::replicas::{Backend, Options, Replicas};

const TOKEN: &str = "4242:REPLICA-token";
const WAIT: Duration = Duration::from_secs(60);

fn options(telegram: &FakeTelegram, token: &str, replicas: usize, backend: Backend) -> Options {
    let env = [
        ("NEXUS_TELEGRAM_BOT_TOKEN", token.to_owned()),
        ("NEXUS_TELEGRAM_API_URL", telegram.url.clone()),
        ("NEXUS_TELEGRAM_ADMISSION", "closed".to_owned()),
    ];
    Options { replicas, backend, env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

/// The Telegram entry of replica `i`'s `/ready`.
async fn telegram_state(cluster: &Replicas, i: usize) -> Value {
    let ready: Value =
        cluster.client.get(cluster.url(i, "/ready")).send().await.expect("ready").json().await.expect("json");
    ready["checks"]["channels"]["telegram"].clone()
}

/// Waits until exactly one of the running replicas polls and the others stand by; returns the
/// poller.
async fn poller(cluster: &Replicas, running: &[usize]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut states = Vec::new();
        for &i in running {
            states.push((i, telegram_state(cluster, i).await["status"].as_str().unwrap_or_default().to_owned()));
        }
        let connected: Vec<usize> = states.iter().filter(|(_, s)| s == "connected").map(|(i, _)| *i).collect();
        let standing_by = states.iter().filter(|(_, s)| s == "standby").count();
        if connected.len() == 1 && standing_by == running.len() - 1 {
            return connected[0];
        }
        assert!(Instant::now() < deadline, "no single poller: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_replicas_share_one_bot_and_answer_every_message_once_across_a_takeover() {
    let telegram = FakeTelegram::start(TOKEN).await;
    let Some(mut cluster) = Replicas::start_with(options(&telegram, TOKEN, 2, Backend::Postgres)).await else {
        return;
    };
    cluster.provider.script(&[("Break the following task", "[]"), ("Answer the user", "Here is your answer.")]);
    // A person linked with the CLI's one-time code.
    cluster
        .nexus_with_input(
            &[
                "users",
                "create",
                "--tenant",
                "demo",
                "--email",
                "ada@demo.test",
                "--role",
                "member",
                "--password-stdin",
            ],
            "a long enough console password\n",
        )
        .await;
    let code = cluster.nexus(&["users", "link-code", "--tenant", "demo", "--email", "ada@demo.test"]).await;
    let first = poller(&cluster, &[0, 1]).await;
    telegram.push_message(1, 1, &format!("/link {}", code.trim()));
    let linked = telegram.wait_sent(1, 1, WAIT).await;
    assert!(linked[0].text.starts_with("Linked"), "{}", linked[0].text);

    // The link's answer, then one answer per question.
    for n in 0..4 {
        telegram.push_message(1, 1, &format!("question {n}"));
    }
    telegram.wait_sent(1, 5, WAIT).await;

    // The poller dies; the other replica takes the bot over once the lease runs out.
    cluster.kill(first);
    let second = poller(&cluster, &[1 - first]).await;
    assert_ne!(first, second);
    for n in 4..7 {
        telegram.push_message(1, 1, &format!("question {n}"));
    }
    let sent = telegram.wait_sent(1, 8, WAIT).await;
    // Nothing twice: give a duplicate time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_after = telegram.sent_to(1);
    assert_eq!(sent_after.len(), 8, "every message answered once: {sent_after:#?}");
    let answers = sent.iter().filter(|m| m.text.starts_with("Here is your answer.")).count();
    assert_eq!(answers, 7);
    assert!(sent.iter().skip(1).all(|m| m.text.contains("🔏")), "every answer sealed");
}

#[tokio::test]
async fn a_refused_or_malformed_token_fails_its_channel_and_the_server_keeps_serving() {
    let telegram = FakeTelegram::start(TOKEN).await;
    let mut options = options(&telegram, "4242:WRONG-token", 1, Backend::Sqlite);
    options.env.push(("NEXUS_DISCORD_BOT_TOKEN".into(), "not a token".into()));
    let cluster = Replicas::start_with(options).await.expect("a SQLite cluster always starts");
    let deadline = Instant::now() + WAIT;
    let state = loop {
        let state = telegram_state(&cluster, 0).await;
        if state["status"] == "failed" {
            break state;
        }
        assert!(Instant::now() < deadline, "never failed: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = state["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("NEXUS_TELEGRAM_BOT_TOKEN") && !detail.contains("WRONG"), "{detail}");
    let ready = cluster.client.get(cluster.url(0, "/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 200, "the server stays ready");
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["checks"]["channels"]["discord"]["status"], "failed", "a malformed token fails its channel alone");
    let detail = ready["checks"]["channels"]["discord"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("channels.discord.bot_token") && !detail.contains("not a token"), "{detail}");
    assert!(cluster.log(0).iter().any(|l| l.contains("the Telegram channel stopped")));
    // The same states as metrics, for alerting.
    let metrics = cluster.client.get(cluster.url(0, "/metrics")).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    for line in [
        "nexus_channel_up{channel=\"telegram\"} 0",
        "nexus_channel_up{channel=\"discord\"} 0",
        "nexus_channel_state{channel=\"telegram\",state=\"failed\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}
