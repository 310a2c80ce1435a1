//! The Discord bot under `nexus serve`: two replicas on one PostgreSQL database share one bot
//! token — one holds the gateway connection, the other stands by and takes over when the first
//! dies — and every message is answered exactly once.

use std::time::{Duration, Instant};

use channels::testing::{Call, FakeDiscord};
use serde_json::Value;

use crate::replicas::{Backend, Options, Replicas};

const TOKEN: &str = "MTAx.replica-token";
const WAIT: Duration = Duration::from_secs(60);

/// The Discord entry of replica `i`'s `/ready`.
async fn discord_state(cluster: &Replicas, i: usize) -> Value {
    let ready: Value =
        cluster.client.get(cluster.url(i, "/ready")).send().await.expect("ready").json().await.expect("json");
    ready["checks"]["channels"]["discord"].clone()
}

/// Waits until exactly one of the running replicas is connected and the others stand by.
async fn holder(cluster: &Replicas, running: &[usize]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut states = Vec::new();
        for &i in running {
            states.push((i, discord_state(cluster, i).await["status"].as_str().unwrap_or_default().to_owned()));
        }
        let connected: Vec<usize> = states.iter().filter(|(_, s)| s == "connected").map(|(i, _)| *i).collect();
        let standing_by = states.iter().filter(|(_, s)| s == "standby").count();
        if connected.len() == 1 && standing_by == running.len() - 1 {
            return connected[0];
        }
        assert!(Instant::now() < deadline, "no single holder: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn answers(discord: &FakeDiscord) -> Vec<Call> {
    discord.calls().into_iter().filter(|c| c.method == "POST" && c.route == "channels/dm-1/messages").collect()
}

async fn wait_answers(discord: &FakeDiscord, count: usize) -> Vec<Call> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = answers(discord);
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "{} of {count} answers: {found:#?}", found.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_replicas_share_one_discord_bot_and_answer_every_message_once_across_a_takeover() {
    let discord = FakeDiscord::start(TOKEN, Duration::from_secs(1)).await;
    let env = [
        ("NEXUS_DISCORD_BOT_TOKEN", TOKEN.to_owned()),
        ("NEXUS_DISCORD_API_URL", discord.url.clone()),
        ("NEXUS_DISCORD_ADMISSION", "open".to_owned()),
    ];
    let options = Options {
        replicas: 2,
        backend: Backend::Postgres,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };
    let Some(mut cluster) = Replicas::start_with(options).await else {
        return;
    };
    cluster.provider.script(&[("Break the following task", "[]"), ("Answer the user", "Here is your answer.")]);
    let first = holder(&cluster, &[0, 1]).await;
    assert_eq!(discord.handshakes(), (1, 0), "one gateway connection for the token");
    for n in 0..3 {
        discord.message("dm-1", None, ("501", "ada"), &format!("question {n}"));
    }
    wait_answers(&discord, 3).await;

    // The holder dies; the other replica connects once the lease runs out.
    cluster.kill(first);
    let second = holder(&cluster, &[1 - first]).await;
    assert_ne!(first, second);
    assert!(discord.wait_connected(2, WAIT).await);
    for n in 3..6 {
        discord.message("dm-1", None, ("501", "ada"), &format!("question {n}"));
    }
    wait_answers(&discord, 6).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = answers(&discord);
    assert_eq!(all.len(), 6, "every message answered once: {all:#?}");
    let contents: Vec<&str> = all.iter().map(|c| c.body["content"].as_str().unwrap_or_default()).collect();
    assert!(contents.iter().all(|t| t.starts_with("Here is your answer.")), "{contents:?}");
    assert!(all.iter().all(|c| c.body["embeds"][0]["title"].as_str().is_some_and(|t| t.contains("Sealed"))));
}
