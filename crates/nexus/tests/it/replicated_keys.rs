//! Keys on two replicas of `nexus serve` sharing one PostgreSQL database: a key made over HTTP
//! on one works on the other, and once revoked (over HTTP on one replica, or with `nexus keys
//! revoke` in another process) both refuse it, and tokens traded for it, within one second. The
//! CLI case also runs with two servers on one SQLite file.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::replicas::{Backend, Options, Replicas};

/// Polled every 50 ms; the revocation must be seen within this long.
const DEADLINE: Duration = Duration::from_secs(1);

/// What replica `i` says to the key and to the token traded for it.
async fn statuses(cluster: &Replicas, i: usize, key: &str, token: &str) -> (StatusCode, StatusCode) {
    let chat = cluster.chat(i, key, "ping").await.status();
    let whoami = cluster.client.get(cluster.url(i, "/v1/whoami")).bearer_auth(token).send().await.expect("whoami");
    (chat, whoami.status())
}

/// Polls every replica until each refuses both credentials; returns how long that took.
async fn until_refused(cluster: &Replicas, key: &str, token: &str, since: Instant) -> Duration {
    let mut refused = vec![false; cluster.len()];
    loop {
        for (i, done) in refused.iter_mut().enumerate() {
            if !*done {
                *done = statuses(cluster, i, key, token).await == (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED);
            }
        }
        if refused.iter().all(|r| *r) {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(5), "still accepted after 5 s on replicas {refused:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Uses the key and a token on every replica, so each has both in its caches.
async fn use_everywhere(cluster: &Replicas, key: &str) -> String {
    let token: Value = cluster
        .client
        .post(cluster.url(1, "/v1/auth/token"))
        .json(&json!({"api_key": key}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    for i in 0..cluster.len() {
        assert_eq!(statuses(cluster, i, key, &token).await, (StatusCode::OK, StatusCode::OK), "replica {i}");
    }
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_made_and_revoked_over_http_on_one_replica_is_refused_by_the_other_within_a_second() {
    let Some(cluster) = Replicas::start(2).await else { return };
    let admin = cluster.admin_key("acme").await;

    let created = cluster
        .client
        .post(cluster.url(0, "/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "app", "role": "member"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let key = created["secret"].as_str().expect("the secret, once").to_owned();
    let id = created["key"]["id"].as_str().expect("id").to_owned();
    let listed: Value = cluster
        .client
        .get(cluster.url(1, "/v1/keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let listed = listed.as_array().expect("a list");
    assert!(listed.iter().any(|k| k["id"] == id.as_str() && k["active"] == true), "{listed:?}");
    assert!(!serde_json::to_string(listed).expect("json").contains(key.as_str()), "no secrets in listings");
    let token = use_everywhere(&cluster, &key).await;
    assert_eq!(cluster.provider.calls(), 2);

    let started = Instant::now();
    let revoked = cluster
        .client
        .delete(cluster.url(0, &format!("/v1/keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    let took = until_refused(&cluster, &key, &token, started).await;
    eprintln!("revoked over HTTP on replica 0: refused everywhere after {took:?}");
    assert!(took < DEADLINE, "refused after {took:?}");

    // Both changes are admin entries naming the admin key that made them.
    let page: Value = cluster
        .client
        .get(cluster.url(1, "/v1/ledger?kind=admin_change"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("json");
    let entries = page["entries"].as_array().expect("entries");
    let actions: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["payload"]["key_id"] == id.as_str())
        .map(|e| {
            (
                e["payload"]["action"].as_str().unwrap_or("").to_owned(),
                e["payload"]["by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let whoami: Value = cluster
        .client
        .get(cluster.url(0, "/v1/whoami"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    let by = format!("key:{}", whoami["key_id"].as_str().expect("key id"));
    assert!(actions.contains(&("api_key.created".into(), by.clone())), "{actions:?}");
    assert!(actions.contains(&("api_key.revoked".into(), by)), "{actions:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_with_the_cli_is_refused_by_every_replica_within_a_second() {
    // PostgreSQL: the CLI's NOTIFY. SQLite (two servers on one file): their reads of the keys
    // revoked lately, every half second.
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let options = Options { backend, ..Options::default() };
        if let Some(cluster) = Replicas::start_with(options).await {
            revoke_with_the_cli(&cluster, backend).await;
        }
    }
}

async fn revoke_with_the_cli(cluster: &Replicas, backend: Backend) {
    let key = cluster.nexus(&["keys", "create", "--tenant", "acme", "--name", "app"]).await.trim().to_owned();
    let listed = cluster.nexus(&["keys", "list", "--tenant", "acme"]).await;
    let id = listed.split_whitespace().next().expect("the key's id").to_owned();
    let token = use_everywhere(cluster, &key).await;

    // The clock starts when the CLI has revoked the key and exited.
    let out = cluster.nexus_output(&["keys", "revoke", &id, "--tenant", "acme"]).await;
    let started = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = until_refused(cluster, &key, &token, started).await;
    eprintln!("{backend:?}: revoked with nexus keys revoke, refused everywhere after {took:?}");
    assert!(took < DEADLINE, "{backend:?}: refused after {took:?}");
}
