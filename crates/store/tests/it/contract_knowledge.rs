//! The knowledge storage contract on every backend: de-duplication by content, deletion with
//! chunks, namespaces, and candidate search scoped by tenant, namespace and access level.

use domain::knowledge::{AccessLevel, KnowledgeDocument};
use domain::{DocumentId, TenantId, Timestamp};
use store::test_support::backends;

fn doc(tenant: &str, namespace: &str, content: &str, access: AccessLevel) -> KnowledgeDocument {
    KnowledgeDocument {
        id: DocumentId::generate(),
        tenant_id: TenantId::parse(tenant).expect("id"),
        namespace: namespace.into(),
        source: format!("{namespace}.md"),
        content: content.into(),
        content_hash: knowledge::content_hash(content),
        chunks: knowledge::chunk(content),
        access_level: access,
        metadata: serde_json::json!({"lang": "en"}),
        created_at: Timestamp::from_micros(1),
    }
}

#[tokio::test]
async fn documents_are_deduplicated_searched_and_deleted_per_tenant() {
    for db in backends().await {
        let a = TenantId::parse("a").expect("id");
        let b = TenantId::parse("b").expect("id");
        let ledger = doc("a", "docs", "The ledger is a Merkle tree of sealed entries.", AccessLevel::Internal);
        let (id, new) = db.store.insert_document(&ledger).await.expect("insert");
        assert!(new, "{}", db.backend);
        let again = doc("a", "docs", "The ledger is a Merkle tree of sealed entries.", AccessLevel::Internal);
        assert_eq!(
            db.store.insert_document(&again).await.expect("insert again"),
            (id.clone(), false),
            "same content once"
        );
        db.store
            .insert_document(&doc("a", "hr", "Salaries are confidential ledger data.", AccessLevel::Confidential))
            .await
            .expect("insert");
        db.store
            .insert_document(&doc("b", "docs", "Tenant b has its own ledger.", AccessLevel::Public))
            .await
            .expect("insert");

        assert_eq!(db.store.namespaces(&a).await.expect("namespaces"), vec!["docs".to_owned(), "hr".to_owned()]);
        let terms = vec!["ledger".to_owned()];
        let hits = db.store.chunks_matching(&a, "docs", &terms, AccessLevel::Internal, 10).await.expect("search");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].source, "docs.md");
        assert!(
            db.store.chunks_matching(&a, "hr", &terms, AccessLevel::Internal, 10).await.expect("search").is_empty(),
            "access level"
        );
        assert_eq!(
            db.store.chunks_matching(&a, "hr", &terms, AccessLevel::Confidential, 10).await.expect("search").len(),
            1
        );
        let b_hits = db.store.chunks_matching(&b, "docs", &terms, AccessLevel::Internal, 10).await.expect("search");
        assert!(b_hits.iter().all(|h| h.text.contains("Tenant b")), "tenant-scoped");

        assert!(!db.store.delete_document(&b, &id).await.expect("delete"), "not across tenants");
        assert!(db.store.delete_document(&a, &id).await.expect("delete"));
        assert!(
            db.store.chunks_matching(&a, "docs", &terms, AccessLevel::Internal, 10).await.expect("search").is_empty()
        );
        assert_eq!(db.store.documents(&a, None).await.expect("list").len(), 1);
    }
}
