//! Background jobs under two `nexus serve` replicas on one PostgreSQL database: every job
//! enqueued on either is run exactly once by one of them, and a schedule firing every second is
//! enqueued once per planned time although both replicas sweep it.

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
