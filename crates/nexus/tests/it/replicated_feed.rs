//! The live feed across two replicas of `nexus serve` on one PostgreSQL database: the console's
//! feed on one replica shows the runs the other drives as they happen, and the API's feed,
//! dropped mid-run on one replica and resumed on the other with `Last-Event-ID`, delivers every
//! event of every run exactly once and in order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::replicas::Replicas;

const PLAN: &str =
    r#"[{"action": "compute", "tool": "compute_stats", "params": {"values": [1, 2, 3, 4]}, "persona": "analyst"}]"#;
const DECLARE: &str = r#"{"planned_action": "compute the mean", "tool_params": {"values": [1, 2, 3, 4]}, "reasoning": "asked for statistics", "confidence": 0.9}"#;
const PASSWORD: &str = "a long enough console password";

/// One server-sent event.
#[derive(Debug, Clone)]
struct Frame {
    name: String,
    id: Option<u64>,
    data: String,
}

/// Reads events from an SSE response into `frames` until `enough` holds, the stream ends, or
/// `within` passes.
async fn read(
    response: reqwest::Response,
    frames: &mut Vec<Frame>,
    within: Duration,
    enough: impl Fn(&[Frame]) -> bool,
) {
    assert!(response.status().is_success(), "SSE answered {}", response.status());
    let deadline = Instant::now() + within;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while !enough(frames) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(chunk)) = tokio::time::timeout(left, body.next()).await else { return };
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut frame = Frame { name: "message".into(), id: None, data: String::new() };
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    frame.name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("id:") {
                    frame.id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            frame.data = data.join("\n");
            if !data.is_empty() {
                frames.push(frame);
            }
        }
    }
}

/// The chains whose `chain_completed` the API feed delivered.
fn completed(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.name == "chain_completed")
        .filter_map(|f| serde_json::from_str::<Value>(&f.data).ok())
        .filter_map(|v| v["chain_id"].as_str().map(str::to_owned))
        .collect()
}

async fn sign_in(cluster: &Replicas, i: usize, email: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client
        .post(cluster.url(i, "/login"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER, "signed in");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("nexus_session="))
        .expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

async fn execute(cluster: &Replicas, i: usize, key: &str, task: &str) -> String {
    let response = cluster
        .client
        .post(cluster.url(i, "/v1/execute"))
        .bearer_auth(key)
        .json(&json!({"task": task}))
        .send()
        .await
        .expect("execute");
    let status = response.status();
    let body: Value = response.json().await.expect("execute answers JSON");
    assert!(status.is_success(), "execute on replica {i}: {status} {body}");
    body["chain_id"].as_str().expect("chain id").to_owned()
}

#[tokio::test]
async fn the_feed_shows_every_replicas_runs_and_resumes_on_another_replica_without_gaps() {
    let Some(cluster) = Replicas::start(2).await else { return };
    cluster.provider.script(&[
        ("Break the following task", PLAN),
        ("Declare your intent", DECLARE),
        ("Answer the user", "The mean is 2.5."),
    ]);
    // Slow enough that a run is still going when the first watch is dropped.
    cluster.provider.set_delay(Duration::from_millis(150));
    cluster.nexus(&["seed"]).await;
    let key = cluster.admin_key("demo").await;
    let email = "ops@example.com";
    let create = ["users", "create", "--tenant", "demo", "--email", email, "--role", "admin", "--password-stdin"];
    cluster.nexus_with_input(&create, &format!("{PASSWORD}\n")).await;
    let cookie = sign_in(&cluster, 0, email).await;

    // The console's feed on replica 0 and the API's feed on replica 1, both open before any run.
    let console = cluster
        .client
        .get(cluster.url(0, "/live/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("console feed");
    assert_eq!(console.headers()["content-type"], "text/event-stream");
    let api = cluster.client.get(cluster.url(1, "/v1/events")).bearer_auth(&key).send().await.expect("API feed");

    let runs = async {
        let (a, b) = tokio::join!(
            execute(&cluster, 1, &key, "mean of 1, 2, 3 and 4, on replica 1"),
            execute(&cluster, 0, &key, "mean of 1, 2, 3 and 4, on replica 0"),
        );
        let c = execute(&cluster, 1, &key, "the mean again, on replica 1").await;
        vec![a, b, c]
    };
    // The API watch reads a few events on replica 1 and hangs up while the runs go on.
    let mut frames = Vec::new();
    let first = read(api, &mut frames, Duration::from_secs(30), |f| f.len() >= 4);
    let (chains, ()) = tokio::join!(runs, first);
    assert!(frames.len() >= 4, "the API feed on replica 1 showed events: {frames:?}");
    let last_seen = frames.last().and_then(|f| f.id).expect("feed ids");

    // Resumed on replica 0 after the last id seen.
    let resumed = cluster
        .client
        .get(cluster.url(0, "/v1/events"))
        .bearer_auth(&key)
        .header("last-event-id", last_seen.to_string())
        .send()
        .await
        .expect("resume");
    read(resumed, &mut frames, Duration::from_secs(30), |f| chains.iter().all(|c| completed(f).contains(c))).await;
    for chain in &chains {
        assert!(completed(&frames).contains(chain), "run {chain} finished in the feed: {:#?}", frames);
    }
    let ids: Vec<u64> = frames.iter().filter_map(|f| f.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "feed ids grow with no repeats across the reconnect: {ids:?}");
    let mut per_chain: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for frame in &frames {
        let data: Value = serde_json::from_str(&frame.data).expect("JSON event");
        let chain = data["chain_id"].as_str().expect("chain_id").to_owned();
        per_chain.entry(chain).or_default().push(data["seq"].as_u64().expect("seq"));
    }
    for chain in &chains {
        let seqs = &per_chain[chain];
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, &expected, "run {chain}: every event once, in order, none missing");
        assert!(seqs.len() >= 8, "run {chain}: its start, step, four gates, seals and end: {seqs:?}");
    }

    // The console on replica 0 showed the runs replica 1 drove, live.
    let mut html = Vec::new();
    let seen = |frames: &[Frame], chain: &str| {
        frames.iter().any(|f| f.data.contains(&format!("data-chain=\"{chain}\"")) && f.data.contains("chain_completed"))
    };
    read(console, &mut html, Duration::from_secs(30), |f| chains.iter().all(|c| seen(f, c))).await;
    for chain in &chains {
        assert!(seen(&html, chain), "the console feed on replica 0 shows run {chain} finishing: {html:#?}");
    }
    assert!(html.iter().any(|f| f.data.contains("class=\"badge pass\"")), "gate results are shown");
    assert!(html.iter().all(|f| f.name == "event" && f.id.is_some()));
}
