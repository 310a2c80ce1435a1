//! `nexus backup` and `nexus restore` on SQLite and PostgreSQL, with a real `nexus serve`
//! writing while the backup is taken: the backup verifies and carries its manifest, retention
//! keeps the newest, a running server stops a restore, a damaged file, a foreign signing key and
//! another master key are refused, and a restore brings the database back to the backup (what
//! came after is gone) with its ledger verifying. `POST /v1/admin/backups` takes one through the equipment.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::replicas::{Backend, Options, Replicas};
use crate::support::Env;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The backup file `nexus backup` printed.
fn backup_path(printed: &str) -> PathBuf {
    let line = printed.lines().find(|l| l.starts_with("backup ")).expect("the backup line");
    PathBuf::from(line.trim_start_matches("backup ").split(" (").next().expect("a path"))
}

fn manifest(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(format!("{}.manifest.json", path.display())).expect("the manifest");
    serde_json::from_str(&text).expect("JSON")
}

async fn backup_under_load_and_restore(backend: Backend) {
    backup_under_load_and_restore_with(backend, Vec::new()).await;
}

async fn backup_under_load_and_restore_with(backend: Backend, env: Vec<(String, String)>) {
    let extension = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres if env.iter().any(|(k, v)| k == "PATH" && v == "/nonexistent") => "pgexport",
        Backend::Postgres => "pgdump",
    };
    let options = Options { replicas: 1, backend, env };
    let Some(mut cluster) = Replicas::start_with(options).await else { return };
    let key = cluster.admin_key("demo").await;
    // Knowledge too: its full-text column is computed by the database, never copied.
    let doc = cluster.data_dir().join("handbook.md");
    std::fs::write(&doc, "# Handbook\n\nThe ledger keeps every seal, signed in checkpoints.").expect("write");
    cluster.nexus(&["ingest", &doc.display().to_string(), "--namespace", "docs", "--tenant", "demo"]).await;

    // Gateway calls keep writing ledger entries and costs while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = tokio::task::JoinSet::new();
    {
        let (client, url, key) = (cluster.client.clone(), cluster.url(0, "/v1/chat/completions"), key.clone());
        let (stop, served) = (stop.clone(), served.clone());
        load.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
                let response = client.post(&url).bearer_auth(&key).json(&body).send().await.expect("send");
                assert!(response.status().is_success(), "served under backup: {}", response.status());
                served.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let printed = cluster.nexus(&["backup", "--keep", "2"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    load.join_next().await.expect("the load task").expect("the load ran");
    assert!(served.load(Ordering::SeqCst) > 0);
    let first = backup_path(&printed);
    assert_eq!(first.extension().and_then(|e| e.to_str()), Some(extension), "{printed}");
    assert!(first.starts_with(cluster.data_dir().join("backups")), "{printed}");
    let recorded = manifest(&first);
    let demo = recorded["tenants"].as_array().into_iter().flatten().find(|t| t["tenant"] == "demo").expect("demo");
    assert!(demo["entries"].as_u64().is_some_and(|n| n > 0), "{recorded}");
    assert_eq!(recorded["sha256"].as_str().map(str::len), Some(64));
    assert!(recorded["row_counts"]["api_keys"].as_i64().is_some_and(|n| n >= 1), "{recorded}");
    assert!(printed.contains("keep ") && printed.contains("signing key"), "where the key must be kept: {printed}");
    let master_key_id = recorded["master_key_id"].as_str().expect("the master key's id is recorded").to_owned();
    assert_eq!(master_key_id.len(), 16, "{recorded}");

    // Retention: of three backups, the newest two stay.
    cluster.nexus(&["backup", "--keep", "2"]).await;
    let third = backup_path(&cluster.nexus(&["backup", "--keep", "2"]).await);
    assert!(!first.exists(), "the oldest was removed");
    assert!(third.exists());
    let kept = std::fs::read_dir(cluster.data_dir().join("backups"))
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
        .count();
    assert_eq!(kept, 2);

    // After the backup: a key that a restore must take away.
    cluster.nexus(&["keys", "create", "--tenant", "demo", "--name", "made-after-the-backup"]).await;
    let path = third.display().to_string();
    let refused = cluster.nexus_output(&["restore", &path]).await;
    assert!(!refused.status.success(), "a running server stops a restore");
    assert!(stderr(&refused).contains("stop every server"), "{}", stderr(&refused));
    let checked = cluster.nexus(&["restore", "--dry-run", &path]).await;
    assert!(checked.contains("verifies and can be restored"), "{checked}");
    cluster.stop(0);

    // A damaged copy is refused, naming the digest.
    let damaged = third.with_file_name(format!("damaged-{}", third.file_name().expect("name").to_string_lossy()));
    let mut bytes = std::fs::read(&third).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("write");
    std::fs::copy(format!("{path}.manifest.json"), format!("{}.manifest.json", damaged.display())).expect("copy");
    let refused = cluster.nexus_output(&["restore", "--dry-run", &damaged.display().to_string()]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("damaged"), "{}", stderr(&refused));

    // Another installation's signing key is refused.
    let other = Env::sqlite();
    other.ok(&["seed"]);
    let foreign = other.data_dir().join("keys").join("ledger.ed25519.pem");
    let foreign = foreign.display().to_string();
    let refused = cluster.nexus_output_with(&["restore", "--dry-run", &path], &[("NEXUS_SIGNING_KEY", &foreign)]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("ledger key"), "{}", stderr(&refused));

    // So is another master key: the backup's secrets would not open under it.
    let other_key = "5a".repeat(32);
    let refused =
        cluster.nexus_output_with(&["restore", "--dry-run", &path], &[("NEXUS_MASTER_KEY", &other_key)]).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains(&format!("master key {master_key_id}")), "{}", stderr(&refused));

    // The restore: verified first, a safety copy kept, the later key gone, the ledger verifying.
    let restored = cluster.nexus(&["restore", &path]).await;
    assert!(restored.contains("restored") && restored.contains("pre-restore"), "{restored}");
    let keys = cluster.nexus(&["keys", "list", "--tenant", "demo"]).await;
    assert!(!keys.contains("made-after-the-backup"), "{keys}");
    let verified = cluster.nexus(&["verify"]).await;
    assert!(verified.contains("ok"), "{verified}");

    // The server starts on the restored database, finds the restored knowledge by its words
    // (the full-text index rebuilt), and takes a backup over HTTP.
    cluster.restart(0).await;
    let found: Value = cluster
        .client
        .get(cluster.url(0, "/v1/knowledge/query?q=checkpoints&namespace=docs"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(found["hits"][0]["text"].as_str().is_some_and(|t| t.contains("signed in checkpoints")), "{found}");
    let response = cluster
        .client
        .post(cluster.url(0, "/v1/admin/backups"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"keep": 5}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let run: Value = response.json().await.expect("json");
    assert_eq!(run["name"], "backup");
    assert!(run["result"]["sha256"].as_str().is_some_and(|s| s.len() == 64), "{run}");
    assert!(run["ledger_index"].as_u64().is_some(), "sealed: {run}");
}

#[tokio::test]
async fn sqlite_backups_are_consistent_under_writes_verified_kept_and_restored() {
    backup_under_load_and_restore(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_backups_are_consistent_under_writes_verified_kept_and_restored() {
    backup_under_load_and_restore(Backend::Postgres).await;
}

#[tokio::test]
async fn postgres_backups_without_postgresqls_tools_use_the_built_in_export() {
    // No `pg_dump` or `pg_restore` on this PATH: the backup is Nexus's own export, and the same
    // checks (under load, digests, keys, retention, restore, ledger) hold for it.
    let env = vec![("PATH".to_owned(), "/nonexistent".to_owned())];
    backup_under_load_and_restore_with(Backend::Postgres, env).await;
}
