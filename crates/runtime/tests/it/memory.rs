//! Memory recall over a real database: hybrid (words fused with meaning) when an embedding
//! model is loaded, items written before the model existed embedded when first recalled, and
//! recall by words when embedding fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use domain::memory::{MemoryTrust, Provenance};
use runtime::memory::MemoryWrite;
use runtime::{Runtime, RuntimeParts};
use store::test_support::{TestDatabase, backends};

use crate::support::{WordsEmbedder, config, signer, tenant};

async fn start(db: &TestDatabase, embedder: Option<Arc<WordsEmbedder>>) -> Runtime {
    let embedder = embedder.map(|e| e as Arc<dyn domain::embed::Embedder>);
    Runtime::start(RuntimeParts::new(Arc::clone(&db.store), signer(1), config(), embedder)).await.expect("runtime")
}

async fn remember(rt: &Runtime, content: &str) {
    let write = MemoryWrite {
        owner: "alice".into(),
        content: content.into(),
        trust: MemoryTrust::Confirmed,
        provenance: Provenance::default(),
        by: "user:alice".into(),
    };
    rt.remember(&tenant("acme"), write).await.expect("remember");
}

#[tokio::test]
async fn recall_finds_by_meaning_as_well_as_by_words() {
    for db in backends().await {
        let embedder = Arc::new(WordsEmbedder::default());
        let rt = start(&db, Some(Arc::clone(&embedder))).await;
        for text in ["Likes green tea", "Lives in Lisbon", "Has a dog named Rex"] {
            remember(&rt, text).await;
        }
        let written = embedder.calls.load(Ordering::SeqCst);
        assert_eq!(written, 3, "{}: each item is embedded once, when written", db.backend);

        // No word in common with the item: only its meaning finds it.
        let recalled = rt.recall(&tenant("acme"), "alice", "favourite beverage", 5).await.expect("recall");
        assert!(recalled.contains("Likes green tea"), "{}: {recalled}", db.backend);
        assert!(
            !recalled.contains("Lisbon") && !recalled.contains("Rex"),
            "{}: unrelated stays out: {recalled}",
            db.backend
        );
        assert_eq!(embedder.calls.load(Ordering::SeqCst), written + 1, "{}: only the query is embedded", db.backend);

        // Words still count, and both rankings meet: the item sharing words comes first.
        let recalled = rt.recall(&tenant("acme"), "alice", "the dog Rex and some tea", 1).await.expect("recall");
        assert!(recalled.contains("Has a dog named Rex"), "{}: {recalled}", db.backend);

        // Another person's memory is never recalled.
        let other = rt.recall(&tenant("acme"), "bob", "favourite beverage", 5).await.expect("recall");
        assert_eq!(other, "", "{}", db.backend);
    }
}

#[tokio::test]
async fn items_written_without_a_model_are_embedded_when_first_recalled() {
    for db in backends().await {
        let before = start(&db, None).await;
        remember(&before, "Drinks coffee every morning").await;
        remember(&before, "Works as a physician").await;
        // Without a model, recall is by words only.
        let recalled = before.recall(&tenant("acme"), "alice", "favourite beverage", 5).await.expect("recall");
        assert_eq!(recalled, "", "{}", db.backend);
        drop(before);

        let embedder = Arc::new(WordsEmbedder::default());
        let rt = start(&db, Some(Arc::clone(&embedder))).await;
        let recalled = rt.recall(&tenant("acme"), "alice", "favourite beverage", 5).await.expect("recall");
        assert!(recalled.contains("Drinks coffee every morning"), "{}: {recalled}", db.backend);
        assert!(!recalled.contains("physician"), "{}: {recalled}", db.backend);
        assert_eq!(embedder.calls.load(Ordering::SeqCst), 3, "{}: the query and both items", db.backend);

        // Their vectors were stored: the next recall embeds only its query.
        rt.recall(&tenant("acme"), "alice", "a doctor", 5).await.expect("recall");
        assert_eq!(embedder.calls.load(Ordering::SeqCst), 4, "{}", db.backend);
    }
}

#[tokio::test]
async fn recall_falls_back_to_words_when_embedding_fails() {
    let db = store::test_support::sqlite().await;
    let embedder = Arc::new(WordsEmbedder::default());
    let rt = start(&db, Some(Arc::clone(&embedder))).await;
    remember(&rt, "Likes green tea").await;
    // The stand-in model refuses any text containing POISON, here the query.
    let recalled = rt.recall(&tenant("acme"), "alice", "POISON green", 5).await.expect("recall still answers");
    assert!(recalled.contains("Likes green tea"), "{recalled}");
    assert!(embedder.calls.load(Ordering::SeqCst) >= 2, "it really tried");
}
