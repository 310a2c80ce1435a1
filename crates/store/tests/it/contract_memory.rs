//! Contract for memory: versions are append-only and numbered by compare-and-set (a version
//! number taken twice is refused), an item reads as its latest version, lists show each item
//! once (deleted ones only when asked, text found case-insensitively with wildcards literal),
//! duplicates are found by hash among live items, usage counts live items only, and live items
//! read with the vectors stored for their content (per model, first one kept).

use domain::memory::{MemoryTrust, MemoryVersion, Provenance};
use domain::{TenantId, Timestamp};
use store::test_support::backends;

fn version(id: &str, n: i64, owner: &str, content: &str, deleted: bool) -> MemoryVersion {
    MemoryVersion {
        tenant: TenantId::parse("acme").expect("tenant"),
        id: id.into(),
        owner: owner.into(),
        version: n,
        content: content.into(),
        content_hash: format!("hash-{}", content.to_lowercase()),
        trust: MemoryTrust::Confirmed,
        provenance: Provenance { source: Some("https://example.org".into()), ..Provenance::default() },
        deleted,
        created_at: Timestamp::from_micros(1_000 + n),
        created_by: "user:u1".into(),
    }
}

#[tokio::test]
async fn memory_versions_are_append_only_and_read_as_their_latest() {
    for db in backends().await {
        let store = &db.store;
        let tenant = TenantId::parse("acme").expect("tenant");
        assert!(store.append_memory(&version("a", 1, "user:u1", "Likes 100% green tea", false)).await.expect("append"));
        assert!(
            !store.append_memory(&version("a", 1, "user:u1", "other", false)).await.expect("again"),
            "{}",
            db.backend
        );
        assert!(store.append_memory(&version("a", 2, "user:u1", "Likes black tea", false)).await.expect("append"));
        assert!(store.append_memory(&version("b", 1, "user:u1", "Lives in Rome", false)).await.expect("append"));
        assert!(store.append_memory(&version("b", 2, "user:u1", "Lives in Rome", true)).await.expect("tombstone"));
        assert!(store.append_memory(&version("c", 1, "user:u2", "Likes tea too", false)).await.expect("append"));

        let latest = store.memory_item(&tenant, "a").await.expect("read").expect("item");
        assert_eq!((latest.version, latest.content.as_str()), (2, "Likes black tea"));
        assert_eq!(latest.provenance.source.as_deref(), Some("https://example.org"));
        assert_eq!(store.memory_history(&tenant, "a").await.expect("history").len(), 2);

        let mine = store.memory_items(&tenant, Some("user:u1"), None, false, 10).await.expect("list");
        assert_eq!(mine.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a"], "{}", db.backend);
        let all = store.memory_items(&tenant, Some("user:u1"), None, true, 10).await.expect("list");
        assert_eq!(all.len(), 2);
        let found = store.memory_items(&tenant, None, Some("TEA"), false, 10).await.expect("search");
        assert_eq!(found.len(), 2, "case-insensitive, every owner: {}", db.backend);
        assert!(
            store.memory_items(&tenant, None, Some("100%"), false, 10).await.expect("search").is_empty(),
            "the old text is no longer the item's"
        );
        assert!(
            store.memory_items(&tenant, None, Some("%"), false, 10).await.expect("search").is_empty(),
            "wildcards are literal"
        );

        assert_eq!(store.memory_duplicates(&tenant, "user:u1", "hash-likes black tea").await.expect("dups").len(), 1);
        assert!(
            store.memory_duplicates(&tenant, "user:u1", "hash-lives in rome").await.expect("dups").is_empty(),
            "deleted items are no duplicates"
        );
        assert_eq!(store.memory_usage(&tenant, "user:u1").await.expect("usage"), (1, "Likes black tea".len() as u64));
    }
}

#[tokio::test]
async fn live_items_come_with_the_vectors_of_their_content() {
    for db in backends().await {
        let store = &db.store;
        let tenant = TenantId::parse("acme").expect("tenant");
        store.append_memory(&version("a", 1, "user:u1", "Likes tea", false)).await.expect("append");
        store.append_memory(&version("b", 1, "user:u1", "Lives in Rome", false)).await.expect("append");
        store.append_memory(&version("b", 2, "user:u1", "Lives in Rome", true)).await.expect("tombstone");
        store.append_memory(&version("c", 1, "user:u1", "Has a cat", false)).await.expect("append");
        let vectors =
            vec![("hash-likes tea".to_owned(), vec![0.5, -1.25]), ("hash-lives in rome".to_owned(), vec![1.0, 0.0])];
        store.put_memory_vectors(&tenant, "user:u1", "m1", &vectors).await.expect("put");
        // A vector already stored for the hash and model is kept.
        store
            .put_memory_vectors(&tenant, "user:u1", "m1", &[("hash-likes tea".into(), vec![9.0, 9.0])])
            .await
            .expect("again");

        let found = store.memory_with_vectors(&tenant, "user:u1", "m1", 10).await.expect("read");
        let seen: Vec<(&str, Option<Vec<f32>>)> = found.iter().map(|(i, v)| (i.content.as_str(), v.clone())).collect();
        assert_eq!(
            seen,
            vec![("Has a cat", None), ("Likes tea", Some(vec![0.5, -1.25]))],
            "{}: live items only, newest first",
            db.backend
        );
        // Another model's vectors are not these; another owner has none.
        let other_model = store.memory_with_vectors(&tenant, "user:u1", "m2", 10).await.expect("read");
        assert!(other_model.iter().all(|(_, v)| v.is_none()), "{}", db.backend);
        assert!(
            store.memory_with_vectors(&tenant, "user:u2", "m1", 10).await.expect("read").is_empty(),
            "{}",
            db.backend
        );
        assert_eq!(
            store.memory_with_vectors(&tenant, "user:u1", "m1", 1).await.expect("read").len(),
            1,
            "{}: limit",
            db.backend
        );
    }
}
