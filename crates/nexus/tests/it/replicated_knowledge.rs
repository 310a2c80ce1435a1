//! Knowledge on two replicas of `nexus serve` sharing one PostgreSQL database: each searches
//! its own in-memory word index (and, with the embedding model, its own vector index), yet a
//! document stored through one replica is found by the other within a few seconds without a
//! restart, by its words and by its meaning, a document deleted through one is gone from the
//! other's answers at once, and a replica finds what it stored itself at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::replicas::{Options, Replicas};

/// The longest another replica's document may take to be found (the index checks the store
/// once a second and rebuilds in the background).
const DEADLINE: Duration = Duration::from_secs(5);

async fn ingest(cluster: &Replicas, i: usize, key: &str, source: &str, content: &str) -> String {
    let response = cluster
        .client
        .post(cluster.url(i, "/v1/knowledge/ingest"))
        .bearer_auth(key)
        .json(&json!({"source": source, "content": content}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status(), StatusCode::CREATED, "replica {i} stores {source}");
    let body: Value = response.json().await.expect("json");
    body["document_id"].as_str().expect("an id").to_owned()
}

/// The sources replica `i` finds for `q`, by words alone.
async fn sources(cluster: &Replicas, i: usize, key: &str, q: &str) -> Vec<String> {
    let (sources, mode) = found(cluster, i, key, q).await;
    assert_eq!(mode, "lexical", "no embedding model in these replicas");
    sources
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_stored_or_deleted_on_one_replica_is_seen_by_the_others_word_index() {
    let Some(cluster) = Replicas::start(2).await else { return };
    let key = cluster.admin_key("acme").await;
    ingest(&cluster, 0, &key, "giraffes.md", "Giraffes browse the tall acacia trees of the savanna.").await;
    // Both replicas build their index now, holding the first document.
    for i in 0..2 {
        assert_eq!(sources(&cluster, i, &key, "giraffes acacia").await, vec!["giraffes.md"], "replica {i}");
    }

    // Stored through replica 0: replica 0 finds it at once, replica 1 within the deadline.
    let stored = Instant::now();
    let zebras = ingest(&cluster, 0, &key, "zebras.md", "Zebras graze the savanna grasslands in large herds.").await;
    assert_eq!(sources(&cluster, 0, &key, "zebras herds").await, vec!["zebras.md"], "its own write, at once");
    loop {
        if sources(&cluster, 1, &key, "zebras herds").await == vec!["zebras.md"] {
            break;
        }
        assert!(stored.elapsed() < DEADLINE, "replica 1 never found replica 0's document");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("replica 1 found replica 0's document after {} ms", stored.elapsed().as_millis());

    // Deleted through replica 0: gone from replica 1's answers at once (hits are read back).
    let deleted = cluster
        .client
        .delete(cluster.url(0, &format!("/v1/knowledge/documents/{zebras}")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    for i in 0..2 {
        assert!(sources(&cluster, i, &key, "zebras herds").await.is_empty(), "replica {i} no longer finds it");
    }
    // Savanna still finds the giraffes on both, and nothing of the zebras.
    for i in 0..2 {
        assert_eq!(sources(&cluster, i, &key, "savanna").await, vec!["giraffes.md"], "replica {i}");
    }
}

/// The sources replica `i` finds for `q` and how it ranked them.
async fn found(cluster: &Replicas, i: usize, key: &str, q: &str) -> (Vec<String>, String) {
    let response = cluster
        .client
        .get(cluster.url(i, "/v1/knowledge/query"))
        .query(&[("q", q)])
        .bearer_auth(key)
        .send()
        .await
        .expect("query");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let hits = body["hits"].as_array().expect("hits");
    let sources = hits.iter().map(|h| h["source"].as_str().unwrap_or_default().to_owned()).collect();
    (sources, body["mode"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_embedding_model_another_replicas_document_is_found_by_meaning_without_a_restart() {
    let Some(models) = models::testing::models_dir() else { return };
    let env = vec![("NEXUS_MODELS_DIR".to_owned(), models.display().to_string())];
    let Some(cluster) = Replicas::start_with(Options { env, ..Options::default() }).await else { return };
    let key = cluster.admin_key("acme").await;
    ingest(&cluster, 0, &key, "giraffes.md", "Giraffes browse the tall acacia trees of the savanna.").await;
    // Both replicas load their indexes now, without the next document.
    for i in 0..2 {
        let (sources, mode) = found(&cluster, i, &key, "giraffes acacia").await;
        assert_eq!((sources, mode.as_str()), (vec!["giraffes.md".to_owned()], "hybrid"), "replica {i}");
    }

    let stored = Instant::now();
    ingest(&cluster, 0, &key, "cars.md", "A car needs its oil changed every year.").await;
    // No word of the query is in the passage: only replica 1's vectors can find it.
    loop {
        let (sources, _) = found(&cluster, 1, &key, "automobile maintenance").await;
        if sources.first().is_some_and(|s| s == "cars.md") {
            break;
        }
        assert!(stored.elapsed() < DEADLINE, "replica 1 never found replica 0's document by meaning: {sources:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("replica 1 found replica 0's document by meaning after {} ms", stored.elapsed().as_millis());
}
