//! The knowledge service over a real database: files extracted and ingested whole or not at
//! all, hybrid search (BM25 fused with vectors) scoped by tenant, namespace and access level,
//! the vector index rebuilt from the store, kept up to date on delete, and back-filled.
//!
//! The embedder here is a stand-in for the outside world's model: hashed bag of words with a
//! few synonyms folded together, so "automobile" is near "car" while BM25 sees no match.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use domain::embed::Embedder as _;
use domain::knowledge::AccessLevel;
use runtime::knowledge::{KnowledgeError, KnowledgeService, RetrievalMode};
use serde_json::json;
use store::test_support::{TestDatabase, sqlite};

use crate::support::{WordsEmbedder, tenant};

fn hybrid(db: &TestDatabase) -> (KnowledgeService, Arc<WordsEmbedder>) {
    let embedder = Arc::new(WordsEmbedder::default());
    (KnowledgeService::new(Arc::clone(&db.store)).with_embedder(embedder.clone()), embedder)
}

async fn ingest(service: &KnowledgeService, who: &str, namespace: &str, source: &str, text: &str, access: AccessLevel) {
    let stored = service.ingest_text(&tenant(who), namespace, source, text, access).await.expect("ingest");
    assert!(stored.new, "{source}");
}

#[tokio::test]
async fn hybrid_search_finds_by_meaning_as_well_as_by_words() {
    let db = sqlite().await;
    let (service, embedder) = hybrid(&db);
    assert_eq!(service.embedding_model(), Some("test-words"));
    ingest(&service, "acme", "docs", "cars.md", "A car needs oil changes every year.", AccessLevel::Internal).await;
    ingest(&service, "acme", "docs", "ledger.md", "The ledger seals every action.", AccessLevel::Internal).await;
    ingest(&service, "acme", "docs", "doctor.md", "Ask a physician about symptoms.", AccessLevel::Internal).await;

    // No word in common with the passage: only the vectors can find it.
    let found = service.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
    assert_eq!(found.mode, RetrievalMode::Hybrid);
    assert_eq!(found.hits.first().map(|h| h.source.as_str()), Some("cars.md"), "{found:?}");
    assert!(found.hits.iter().all(|h| h.source != "ledger.md"), "unrelated passages stay out: {found:?}");
    // No query term in the passage: the confidence is the vectors' cosine similarity.
    let vectors = embedder.embed(&["automobile", "A car needs oil changes every year."]).expect("embed");
    let cosine = f64::from(domain::embed::cosine(&vectors[0], &vectors[1]));
    assert!(cosine > 0.2 && (found.confidence - cosine).abs() < 0.01, "{} vs {cosine}", found.confidence);

    // Words and meaning agree: fused first, with the text and source.
    let found =
        service.search(&tenant("acme"), "docs", "ledger seals", 3, AccessLevel::Internal).await.expect("search");
    assert_eq!(found.hits[0].source, "ledger.md");
    assert_eq!(found.hits[0].text, "The ledger seals every action.");
    assert!((found.confidence - 1.0).abs() < 1e-6, "every query term, and the same vector: {}", found.confidence);
    let nothing = service.search(&tenant("acme"), "docs", "quantum chromodynamics", 3, AccessLevel::Internal).await;
    let nothing = nothing.expect("search");
    assert!(nothing.hits.is_empty() && nothing.confidence < 0.2, "{nothing:?}");
}

#[tokio::test]
async fn search_sees_only_the_tenant_namespace_and_readable_levels() {
    let db = sqlite().await;
    let (service, _) = hybrid(&db);
    ingest(&service, "acme", "hr", "pay.md", "Salaries of every automobile engineer.", AccessLevel::Confidential).await;
    ingest(&service, "acme", "hr", "handbook.md", "Engineers get a car allowance.", AccessLevel::Internal).await;
    ingest(&service, "other", "hr", "theirs.md", "Their automobile policy is secret.", AccessLevel::Public).await;

    let internal = service.search(&tenant("acme"), "hr", "automobile salaries", 10, AccessLevel::Internal).await;
    let sources: Vec<String> = internal.expect("search").hits.into_iter().map(|h| h.source).collect();
    assert_eq!(sources, vec!["handbook.md".to_owned()], "neither the confidential document nor another tenant's");
    let all = service.search(&tenant("acme"), "hr", "automobile salaries", 10, AccessLevel::Confidential).await;
    assert_eq!(all.expect("search").hits[0].source, "pay.md");
    let elsewhere = service.search(&tenant("acme"), "finance", "automobile", 10, AccessLevel::Confidential).await;
    assert!(elsewhere.expect("an unknown namespace is not an error").hits.is_empty());
    let stranger = service.search(&tenant("nobody"), "hr", "automobile", 10, AccessLevel::Confidential).await;
    assert!(stranger.expect("search").hits.is_empty());
}

#[tokio::test]
async fn the_index_is_rebuilt_from_the_store_and_follows_deletions() {
    let db = sqlite().await;
    let (first, embedder) = hybrid(&db);
    ingest(&first, "acme", "docs", "cars.md", "A car needs oil changes every year.", AccessLevel::Internal).await;
    let calls = embedder.calls.load(Ordering::SeqCst);
    let duplicate = first
        .ingest_text(&tenant("acme"), "docs", "again.md", "A car needs oil changes every year.", AccessLevel::Internal)
        .await
        .expect("ingest");
    assert!(!duplicate.new && !duplicate.embedded, "a duplicate is not embedded again");
    assert_eq!(embedder.calls.load(Ordering::SeqCst), calls);

    // A fresh service (a restart) loads the vectors from the database on first use.
    let (restarted, _) = hybrid(&db);
    let found =
        restarted.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
    assert_eq!(found.hits.len(), 1, "found by vector alone, once: {found:?}");
    assert_eq!(found.hits[0].document_id, duplicate.document_id.to_string());

    assert!(restarted.delete_document(&tenant("acme"), &duplicate.document_id).await.expect("delete"));
    let found =
        restarted.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
    assert!(found.hits.is_empty(), "{found:?}");
    // The other service's index is stale, but hits are read back from the store.
    let stale = first.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
    assert!(stale.hits.is_empty(), "{stale:?}");
}

/// Two services on one database, as two replicas are: what one stores is found by the other's
/// vectors within a few seconds, without a restart, and the other's own writes around the
/// reload stay in its index (the replay of writes made during a reload is held exactly by the
/// vector module's own test).
#[tokio::test]
async fn another_replicas_documents_are_found_by_their_vectors_without_a_restart() {
    for db in store::test_support::backends().await {
        let (one, _) = hybrid(&db);
        let (other, _) = hybrid(&db);
        let acme = tenant("acme");
        ingest(&one, "acme", "docs", "ledger.md", "The ledger seals every action.", AccessLevel::Internal).await;
        // The other replica loads its indexes now, without the car passage.
        let before = other.search(&acme, "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
        assert!(before.hits.is_empty(), "{before:?}");

        ingest(&one, "acme", "docs", "cars.md", "A car needs oil changes every year.", AccessLevel::Internal).await;
        let stored = std::time::Instant::now();
        // No word in common with the query: found only once the other's vectors hold it.
        loop {
            let found = other.search(&acme, "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
            if found.hits.first().is_some_and(|h| h.source == "cars.md") {
                break;
            }
            assert!(stored.elapsed() < std::time::Duration::from_secs(10), "never found by vector: {found:?}");
            // The other replica's own write, made while its reload may be running.
            if other.documents(&acme, Some("docs")).await.expect("documents").len() == 2 {
                ingest(&other, "acme", "docs", "doctor.md", "Ask a physician about symptoms.", AccessLevel::Internal)
                    .await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // Its own document, written before or during the reload, is still found by vector.
        if other.documents(&acme, Some("docs")).await.expect("documents").len() == 2 {
            ingest(&other, "acme", "docs", "doctor.md", "Ask a physician about symptoms.", AccessLevel::Internal).await;
        }
        let doctor = other.search(&acme, "docs", "doctor", 3, AccessLevel::Internal).await.expect("search");
        assert_eq!(doctor.hits.first().map(|h| h.source.as_str()), Some("doctor.md"), "{doctor:?}");
    }
}

#[tokio::test]
async fn files_are_extracted_and_stored_whole_or_not_at_all() {
    let db = sqlite().await;
    let (service, embedder) = hybrid(&db);
    let acme = tenant("acme");
    let page = b"<html><head><title>Fleet</title><script>track()</script></head><body><p>Every vehicle is insured.</p></body></html>";
    let stored = service
        .ingest_file(&acme, "docs", "fleet.html", None, page, AccessLevel::Public, json!({"team": "ops"}))
        .await
        .expect("html");
    assert!(stored.new && stored.embedded && stored.chunks == 1);
    let documents = service.documents(&acme, Some("docs")).await.expect("list");
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].metadata, json!({"team": "ops", "format": "html", "title": "Fleet"}));
    assert_eq!(documents[0].content, "Every vehicle is insured.");
    let found = service.search(&acme, "docs", "car insurance", 1, AccessLevel::Public).await.expect("search");
    assert_eq!(found.hits[0].source, "fleet.html");

    let error = service
        .ingest_file(&acme, "docs", "fake.pdf", None, b"just text", AccessLevel::Public, json!(null))
        .await
        .expect_err("not a pdf");
    assert!(matches!(error, KnowledgeError::Extract(_)));
    assert_eq!(error.to_string(), "fake.pdf: not a PDF: it does not start with %PDF-");
    let error = service
        .ingest_file(&acme, "docs", "empty.txt", Some("text/plain"), b"", AccessLevel::Public, json!({}))
        .await
        .expect_err("empty");
    assert_eq!(error.to_string(), "empty.txt: the file is empty");

    // The model failing on one chunk stores nothing of the document.
    let long = format!("{} POISON at the end.", "Useful words about cars. ".repeat(40));
    let calls = embedder.calls.load(Ordering::SeqCst);
    let error = service
        .ingest_file(&acme, "docs", "poison.md", None, long.as_bytes(), AccessLevel::Public, json!({}))
        .await
        .expect_err("embedding fails");
    assert!(error.to_string().starts_with("poison.md: embedding failed"), "{error}");
    assert!(embedder.calls.load(Ordering::SeqCst) > calls, "it really tried");
    assert_eq!(service.documents(&acme, None).await.expect("list").len(), 1, "nothing partial");
    assert_eq!(service.namespaces(&acme).await.expect("namespaces"), vec!["docs".to_owned()]);
    let error = service.ingest_text(&acme, " ", "x.md", "text", AccessLevel::Public).await.expect_err("namespace");
    assert!(matches!(error, KnowledgeError::EmptyNamespace));
}

#[tokio::test]
async fn without_an_embedder_search_is_bm25_and_a_backfill_adds_vectors_later() {
    let db = sqlite().await;
    let lexical = KnowledgeService::new(Arc::clone(&db.store));
    assert_eq!(lexical.embedding_model(), None);
    let stored = lexical
        .ingest_text(&tenant("acme"), "docs", "cars.md", "A car needs oil changes every year.", AccessLevel::Internal)
        .await
        .expect("ingest");
    assert!(!stored.embedded);
    let found = lexical.search(&tenant("acme"), "docs", "car oil", 3, AccessLevel::Internal).await.expect("search");
    assert_eq!((found.mode, found.hits.len(), found.confidence), (RetrievalMode::Lexical, 1, 1.0));
    assert!(
        lexical
            .search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal)
            .await
            .expect("s")
            .hits
            .is_empty()
    );
    assert_eq!(lexical.backfill(&tenant("acme"), 10).await.expect("no embedder, nothing to do"), 0);

    // The model arrives: old chunks have no vectors until back-filled.
    let (service, _) = hybrid(&db);
    assert!(
        service
            .search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal)
            .await
            .expect("s")
            .hits
            .is_empty()
    );
    assert_eq!(service.backfill(&tenant("acme"), 10).await.expect("backfill"), 1);
    assert_eq!(service.backfill(&tenant("acme"), 10).await.expect("again"), 0);
    let found = service.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("search");
    assert_eq!(found.hits.len(), 1, "found by its new vector, in this process");
    let (restarted, _) = hybrid(&db);
    let found = restarted.search(&tenant("acme"), "docs", "automobile", 3, AccessLevel::Internal).await.expect("s");
    assert_eq!(found.hits.len(), 1, "and after a restart");
}
