//! Background jobs under two `nexus serve` replicas on one PostgreSQL database: every job
//! enqueued on either is run exactly once by one of them, a schedule firing every second is
//! enqueued once per planned time although both replicas sweep it, and a job whose replica is
//! killed mid-run is taken over by the other exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::replicas::{Backend, Options, Replicas};

const WAIT: Duration = Duration::from_secs(60);
const JOBS: usize = 24;

async fn get(cluster: &Replicas, i: usize, key: &str, path: &str) -> Value {
    let response = cluster.client.get(cluster.url(i, path)).bearer_auth(key).send().await.expect("get");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("json")
}

#[tokio::test]
async fn two_replicas_never_run_one_job_twice_and_fire_each_planned_run_once() {
    let options = Options { replicas: 2, backend: Backend::Postgres, env: Vec::new() };
    let Some(cluster) = Replicas::start_with(options).await else { return };
    let key = cluster.admin_key("demo").await;

    let mut ids = Vec::new();
    for n in 0..JOBS {
        let response = cluster
            .client
            .post(cluster.url(n % 2, "/v1/jobs"))
            .bearer_auth(&key)
            .json(&json!({"kind": "equipment", "payload": {"equipment": "health_check"}}))
            .send()
            .await
            .expect("enqueue");
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
        let job: Value = response.json().await.expect("json");
        ids.push(job["id"].as_str().expect("id").to_owned());
    }
    let deadline = Instant::now() + WAIT;
    let completed = loop {
        let jobs = get(&cluster, 0, &key, "/v1/jobs?state=completed&limit=500").await;
        let done: Vec<Value> = jobs.as_array().cloned().unwrap_or_default();
        if done.len() >= JOBS {
            break done;
        }
        assert!(Instant::now() < deadline, "only {} of {JOBS} jobs completed", done.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for job in &completed {
        assert_eq!(job["attempts"], 1, "claimed once: {job}");
        assert!(ids.contains(&job["id"].as_str().unwrap_or_default().to_owned()));
    }
    let ledger = get(&cluster, 1, &key, "/v1/ledger?kind=equipment&limit=500").await;
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(JOBS), "each job's equipment ran once");

    // A schedule every second, swept by both replicas: one job per planned second.
    let created = cluster
        .nexus(&["schedule", "add", "every-second", "--cron", "* * * * * *", "--equipment", "health_check"])
        .await;
    assert!(created.contains("created schedule every-second"), "{created}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let removed = cluster.nexus(&["schedule", "remove", "every-second"]).await;
    assert!(removed.contains("removed schedule"), "{removed}");
    let schedule_id = removed.split('(').nth(1).and_then(|s| s.split(')').next()).expect("id").to_owned();
    let fired = get(&cluster, 0, &key, &format!("/v1/jobs?schedule={schedule_id}&limit=500")).await;
    let fired = fired.as_array().cloned().unwrap_or_default();
    assert!(fired.len() >= 2, "the schedule fired: {fired:?}");
    let planned: HashSet<&str> = fired.iter().filter_map(|j| j["run_at"].as_str()).collect();
    assert_eq!(planned.len(), fired.len(), "one job per planned time: {fired:?}");
}

#[tokio::test]
async fn a_job_whose_replica_is_killed_mid_run_is_taken_over_once_by_the_other() {
    let env = vec![("NEXUS_JOB_LEASE_SECONDS".to_owned(), "3".to_owned())];
    let options = Options { replicas: 2, backend: Backend::Postgres, env };
    let Some(mut cluster) = Replicas::start_with(options).await else { return };
    let key = cluster.admin_key("demo").await;
    // Each model answer takes long enough to kill the replica waiting for it.
    cluster.provider.set_delay(Duration::from_secs(5));
    let response = cluster
        .client
        .post(cluster.url(0, "/v1/jobs"))
        .bearer_auth(&key)
        .json(&json!({"kind": "agent_task", "payload": {"task": "Write one line about ledgers", "tier": "trivial"}}))
        .send()
        .await
        .expect("enqueue");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let id = response.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();

    // Find the replica that claimed it, and kill it while the model call is in flight.
    let deadline = Instant::now() + WAIT;
    let holder = loop {
        let claimed = |i: usize| cluster.log(i).iter().any(|l| l.contains(&id) && l.contains("claimed a job"));
        if let Some(i) = (0..2).find(|&i| claimed(i)) {
            break i;
        }
        assert!(Instant::now() < deadline, "nobody claimed {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let running = get(&cluster, holder, &key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(running["state"], "running", "{running}");
    assert!(running["lease_owner"].as_str().is_some_and(|o| !o.is_empty()), "{running}");
    cluster.kill(holder);
    let other = 1 - holder;

    let deadline = Instant::now() + WAIT;
    let job = loop {
        let job = get(&cluster, other, &key, &format!("/v1/jobs/{id}")).await;
        if job["state"] == "completed" || job["state"] == "failed" {
            break job;
        }
        assert!(Instant::now() < deadline, "never finished: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempts"], 2, "the dead replica's attempt and the takeover: {job}");
    assert_eq!(job["result"]["answer"], "pong", "{job}");
    assert!(
        cluster.log(other).iter().any(|l| l.contains(&id) && l.contains("claimed a job")),
        "the other replica took it"
    );

    let ledger = get(&cluster, other, &key, "/v1/ledger?kind=job&limit=500").await;
    let events: Vec<String> = ledger["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["payload"]["job"] == id.as_str())
        .filter_map(|e| e["payload"]["event"].as_str().map(str::to_owned))
        .collect();
    let count = |event: &str| events.iter().filter(|e| *e == event).count();
    assert_eq!((count("enqueued"), count("lease_expired"), count("completed")), (1, 1, 1), "{events:?}");
}
