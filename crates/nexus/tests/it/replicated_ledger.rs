//! The ledger under scale-out, with real `nexus serve` processes on one PostgreSQL database:
//! thousands of concurrent gateway calls for one tenant split across two replicas each leave
//! exactly one `model_call` entry and cost record; a replica killed with SIGKILL mid-load loses
//! no call it answered 200; a store that refuses ledger writes mid-load makes callers get 503,
//! never a 200 without its entry. These calls ask for durable answers
//! (`x-nexus-ledger-ack: durable`), so every 200 names its entry (`x-nexus-ledger-index`), which
//! is how the tests check it. Calls answered as queued (the server's default) are all in the
//! ledger once both replicas stop cleanly.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;

use crate::replicas::Replicas;

const TENANT: &str = "acme";

/// What one call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 200, naming the index of its ledger entry.
    Recorded(u64),
    /// 200 when queued answers were asked for (queued, or durable under back-pressure).
    Queued,
    /// Any other status.
    Refused(u16),
    /// No complete HTTP answer (the replica died mid-request).
    NoAnswer,
}

/// Sends `calls` chat completions (`call {i}`), `concurrency` at a time, call `i` to
/// `bases[i % bases.len()]`, asking for answers acknowledged as `ack`; `done` counts finished
/// calls.
async fn load(
    client: reqwest::Client,
    bases: Vec<String>,
    key: String,
    calls: usize,
    concurrency: usize,
    done: Arc<AtomicUsize>,
    ack: &'static str,
) -> Vec<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, bases, key, next, done) = (client.clone(), bases.clone(), key.clone(), next.clone(), done.clone());
        workers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return mine;
                }
                let body =
                    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("call {i}")}]});
                let sent = client
                    .post(format!("{}/v1/chat/completions", bases[i % bases.len()]))
                    .bearer_auth(&key)
                    .header("x-nexus-ledger-ack", ack)
                    .json(&body)
                    .send()
                    .await;
                let outcome = match sent {
                    Err(_) => Outcome::NoAnswer,
                    Ok(response) if response.status() == 200 && ack == "queued" => {
                        // `durable` when the writer lagged and the answer waited for its commit.
                        let ack = response.headers()["x-nexus-ledger-ack"].to_str().unwrap_or_default().to_owned();
                        assert!(ack == "queued" || ack == "durable", "call {i}: {ack}");
                        match response.bytes().await {
                            Ok(_) => Outcome::Queued,
                            Err(_) => Outcome::NoAnswer,
                        }
                    }
                    Ok(response) if response.status() == 200 => {
                        let index = response
                            .headers()
                            .get("x-nexus-ledger-index")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| panic!("call {i}: a 200 without x-nexus-ledger-index"));
                        // A 200 whose body never arrived whole is not an answer.
                        match response.bytes().await {
                            Ok(_) => Outcome::Recorded(index),
                            Err(_) => Outcome::NoAnswer,
                        }
                    }
                    Ok(response) => Outcome::Refused(response.status().as_u16()),
                };
                mine.push(outcome);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut outcomes = Vec::with_capacity(calls);
    while let Some(joined) = workers.join_next().await {
        outcomes.extend(joined.expect("load worker"));
    }
    outcomes
}

/// The tenant's `model_call` entries (index, request digest) and cost-record count, read
/// straight from the database.
async fn stored(cluster: &Replicas) -> (Vec<(u64, String)>, i64) {
    let mut db = sqlx::PgConnection::connect(&cluster.database_url()).await.expect("connect to the test database");
    let entries: Vec<(i64, String)> = sqlx::query_as(
        "SELECT idx, payload FROM ledger_entries WHERE tenant_id = $1 AND kind = 'model_call' ORDER BY idx",
    )
    .bind(TENANT)
    .fetch_all(&mut db)
    .await
    .expect("read entries");
    let costs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cost_records WHERE tenant_id = $1")
        .bind(TENANT)
        .fetch_one(&mut db)
        .await
        .expect("count cost records");
    let digests = entries
        .into_iter()
        .map(|(idx, payload)| {
            let payload: serde_json::Value = serde_json::from_str(&payload).expect("payload is JSON");
            (idx as u64, payload["request_sha256"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    (digests, costs)
}

fn recorded(outcomes: &[Outcome]) -> Vec<u64> {
    outcomes.iter().filter_map(|o| if let Outcome::Recorded(i) = o { Some(*i) } else { None }).collect()
}

/// Every index a 200 named holds a `model_call` entry, no two calls name the same one, and
/// no request is recorded twice.
fn assert_every_answer_recorded(outcomes: &[Outcome], entries: &[(u64, String)]) {
    let answered = recorded(outcomes);
    let refused = outcomes.iter().filter(|o| matches!(o, Outcome::Refused(_))).count();
    let lost = outcomes.iter().filter(|o| **o == Outcome::NoAnswer).count();
    eprintln!(
        "{} calls: {} answered 200, {refused} refused, {lost} without an answer; {} model_call entries stored",
        outcomes.len(),
        answered.len(),
        entries.len()
    );
    let named: HashSet<u64> = answered.iter().copied().collect();
    assert_eq!(named.len(), answered.len(), "two answers named the same ledger entry");
    let stored: HashSet<u64> = entries.iter().map(|(i, _)| *i).collect();
    let missing: Vec<&u64> = named.difference(&stored).collect();
    assert!(missing.is_empty(), "{} calls answered 200 have no model_call entry: {missing:?}", missing.len());
    let digests: HashSet<&str> = entries.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(digests.len(), entries.len(), "a request was recorded twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_calls_across_two_replicas_each_leave_one_entry() {
    let Some(cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key(TENANT).await;
    let bases = vec![cluster.base(0).to_owned(), cluster.base(1).to_owned()];
    let outcomes = load(cluster.client.clone(), bases, key, 5_000, 64, Arc::default(), "durable").await;
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !matches!(o, Outcome::Recorded(_))).collect();
    assert!(
        failed.is_empty(),
        "{} of 5,000 calls did not answer 200: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    let (entries, costs) = stored(&cluster).await;
    assert_eq!(entries.len(), 5_000, "exactly one model_call entry per call");
    assert_eq!(costs, 5_000, "exactly one cost record per call");
    assert_every_answer_recorded(&outcomes, &entries);
    assert_eq!(cluster.provider.calls(), 5_000);
    cluster.nexus(&["verify", "--tenant", TENANT]).await;
}

/// Queued answers (the default): thousands of calls across two replicas, then both stop with
/// SIGTERM; every call answered 200 left exactly one entry and one cost record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_across_two_replicas_are_all_recorded_by_a_clean_stop() {
    let Some(mut cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key(TENANT).await;
    let bases = vec![cluster.base(0).to_owned(), cluster.base(1).to_owned()];
    let outcomes = load(cluster.client.clone(), bases, key, 3_000, 64, Arc::default(), "queued").await;
    let answered = outcomes.iter().filter(|o| **o == Outcome::Queued).count();
    assert_eq!(answered, 3_000, "every call answered 200: {:?}", outcomes.iter().find(|o| **o != Outcome::Queued));
    cluster.stop(0);
    cluster.stop(1);
    let (entries, costs) = stored(&cluster).await;
    assert_eq!(entries.len(), answered, "exactly one model_call entry per answered call");
    assert_eq!(costs as usize, answered, "exactly one cost record per answered call");
    let digests: HashSet<&str> = entries.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(digests.len(), answered, "each call recorded once");
    cluster.nexus(&["verify", "--tenant", TENANT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_no_answered_call() {
    let Some(mut cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key(TENANT).await;
    // Upstream answers take a moment, so calls are in flight on the replica when it dies.
    cluster.provider.set_delay(Duration::from_millis(5));
    let bases = vec![cluster.base(0).to_owned(), cluster.base(1).to_owned()];
    let done = Arc::new(AtomicUsize::new(0));
    let mut running = tokio::task::JoinSet::new();
    running.spawn(load(cluster.client.clone(), bases, key, 3_000, 64, done.clone(), "durable"));
    while done.load(Ordering::Relaxed) < 1_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(0);
    let outcomes = running.join_next().await.expect("load").expect("load task");
    let answered = recorded(&outcomes).len();
    let lost = outcomes.iter().filter(|o| **o == Outcome::NoAnswer).count();
    assert!(answered >= 1_500, "replica 1 kept answering: {answered} answered");
    assert!(lost > 0, "the kill interrupted nothing; the test proves nothing");

    let (entries, costs) = stored(&cluster).await;
    assert_every_answer_recorded(&outcomes, &entries);
    assert!(entries.len() >= answered && costs as usize == entries.len(), "{} entries, {costs} costs", entries.len());
    // The killed replica comes back on the same log, which still verifies.
    cluster.restart(0).await;
    cluster.nexus(&["verify", "--tenant", TENANT]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_ledger_writes_mid_load_gets_503s_and_no_unrecorded_200() {
    let Some(cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key(TENANT).await;
    let bases = vec![cluster.base(0).to_owned(), cluster.base(1).to_owned()];
    let done = Arc::new(AtomicUsize::new(0));
    let mut running = tokio::task::JoinSet::new();
    running.spawn(load(cluster.client.clone(), bases, key, 4_000, 32, done.clone(), "durable"));
    while done.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The database starts refusing every ledger write (the head table is gone), then recovers.
    let mut db = sqlx::PgConnection::connect(&cluster.database_url()).await.expect("connect");
    sqlx::query("ALTER TABLE ledger_heads RENAME TO ledger_heads_away").execute(&mut db).await.expect("break");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sqlx::query("ALTER TABLE ledger_heads_away RENAME TO ledger_heads").execute(&mut db).await.expect("mend");
    let outcomes = running.join_next().await.expect("load").expect("load task");

    let refused: Vec<u16> =
        outcomes.iter().filter_map(|o| if let Outcome::Refused(s) = o { Some(*s) } else { None }).collect();
    assert!(!refused.is_empty(), "no call was refused while the store failed");
    assert!(refused.iter().all(|s| *s == 503), "refusals are 503s: {:?}", refused.iter().collect::<HashSet<_>>());
    assert!(outcomes.iter().all(|o| *o != Outcome::NoAnswer), "every call got an answer");
    assert!(recorded(&outcomes).len() > 500, "calls succeed again once the store recovers");
    let (entries, costs) = stored(&cluster).await;
    assert_every_answer_recorded(&outcomes, &entries);
    assert_eq!(costs as usize, entries.len());
    cluster.nexus(&["verify", "--tenant", TENANT]).await;
}
