//! The knowledge storage contract on every backend: de-duplication by content, deletion with
//! chunks and vectors, namespaces, candidate search scoped by tenant, namespace and access
//! level, chunk vectors stored with their document and read back page by page, and back-filling.

use domain::knowledge::{AccessLevel, ChunkEmbeddings, ChunkRef, KnowledgeDocument};
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
        let (id, new) = db.store.insert_document(&ledger, None).await.expect("insert");
        assert!(new, "{}", db.backend);
        let again = doc("a", "docs", "The ledger is a Merkle tree of sealed entries.", AccessLevel::Internal);
        assert_eq!(
            db.store.insert_document(&again, None).await.expect("insert again"),
            (id.clone(), false),
            "same content once"
        );
        db.store
            .insert_document(&doc("a", "hr", "Salaries are confidential ledger data.", AccessLevel::Confidential), None)
            .await
            .expect("insert");
        db.store
            .insert_document(&doc("b", "docs", "Tenant b has its own ledger.", AccessLevel::Public), None)
            .await
            .expect("insert");

        assert_eq!(db.store.namespaces(&a).await.expect("namespaces"), vec!["docs".to_owned(), "hr".to_owned()]);
        let hash = &ledger.content_hash;
        assert_eq!(db.store.document_by_hash(&a, "docs", hash).await.expect("by hash"), Some(id.clone()));
        assert_eq!(db.store.document_by_hash(&a, "hr", hash).await.expect("by hash"), None, "per namespace");
        assert_eq!(db.store.document_by_hash(&b, "docs", hash).await.expect("by hash"), None, "per tenant");
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

fn unit(seed: u32, dims: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..dims).map(|i| ((seed * 31 + i as u32 * 7) % 13) as f32 - 6.0).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.into_iter().map(|x| x / norm).collect()
}

fn embeddings(model: &str, document: &KnowledgeDocument, seed: u32) -> ChunkEmbeddings {
    ChunkEmbeddings {
        model: model.into(),
        vectors: (0..document.chunks.len()).map(|i| unit(seed + i as u32, 8)).collect(),
    }
}

#[tokio::test]
async fn chunk_vectors_are_stored_with_their_document_and_read_back_by_page() {
    for db in backends().await {
        let a = TenantId::parse("a").expect("id");
        let b = TenantId::parse("b").expect("id");
        let long = "The ledger seals every action. ".repeat(40);
        let docs = doc("a", "docs", &long, AccessLevel::Internal);
        assert!(docs.chunks.len() > 2, "several chunks");
        let docs_vectors = embeddings("mini", &docs, 1);
        assert!(db.store.insert_document(&docs, Some(&docs_vectors)).await.expect("insert").1);
        let hr = doc("a", "hr", "Salaries are confidential.", AccessLevel::Confidential);
        db.store.insert_document(&hr, Some(&embeddings("mini", &hr, 100))).await.expect("insert");
        let other_model = doc("a", "docs", "Embedded by another model.", AccessLevel::Public);
        db.store.insert_document(&other_model, Some(&embeddings("other", &other_model, 7))).await.expect("insert");
        let bare = doc("a", "docs", "Stored before any embedder.", AccessLevel::Public);
        db.store.insert_document(&bare, None).await.expect("insert");
        let foreign = doc("b", "docs", "Tenant b's vectors.", AccessLevel::Public);
        db.store.insert_document(&foreign, Some(&embeddings("mini", &foreign, 50))).await.expect("insert");

        // A wrong number of vectors stores nothing.
        let mismatched = doc("a", "docs", "Two vectors for one chunk.", AccessLevel::Public);
        let two = ChunkEmbeddings { model: "mini".into(), vectors: vec![unit(1, 8), unit(2, 8)] };
        assert!(db.store.insert_document(&mismatched, Some(&two)).await.is_err(), "{}", db.backend);
        assert_eq!(db.store.documents(&a, None).await.expect("list").len(), 4, "nothing partial");

        // Paging by chunk: pages of two join up to everything of this tenant and model, in order.
        let mut all = Vec::new();
        let mut after: Option<ChunkRef> = None;
        loop {
            let page = db.store.chunk_vectors(&a, "mini", after.as_ref(), 2).await.expect("page");
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.chunk.clone());
            all.extend(page);
        }
        assert_eq!(all.len(), docs.chunks.len() + hr.chunks.len(), "{}", db.backend);
        let refs: Vec<&ChunkRef> = all.iter().map(|v| &v.chunk).collect();
        assert!(refs.windows(2).all(|w| w[0] < w[1]), "ordered by chunk, no repeats");
        for v in &all {
            let (document, vectors) = if v.chunk.document_id == docs.id {
                (&docs, &docs_vectors)
            } else {
                (&hr, &embeddings("mini", &hr, 100))
            };
            assert_eq!(v.vector, vectors.vectors[v.chunk.ordinal as usize], "bit-exact round trip");
            assert_eq!((v.namespace.as_str(), v.access_level), (document.namespace.as_str(), document.access_level));
        }
        assert_eq!(db.store.chunk_vectors(&b, "mini", None, 100).await.expect("b").len(), 1, "tenant-scoped");
        assert_eq!(db.store.chunk_vectors(&a, "other", None, 100).await.expect("other").len(), 1, "model-scoped");

        // Fetching hits by reference respects namespace and access level.
        let wanted = vec![
            ChunkRef { document_id: docs.id.clone(), ordinal: 1 },
            ChunkRef { document_id: hr.id.clone(), ordinal: 0 },
            ChunkRef { document_id: docs.id.clone(), ordinal: 999 },
        ];
        let hits = db.store.chunks_by_ref(&a, "docs", AccessLevel::Confidential, &wanted).await.expect("refs");
        assert_eq!(hits.iter().map(|h| h.chunk_ref()).collect::<Vec<_>>(), vec![wanted[0].clone()]);
        assert_eq!(hits[0].text, docs.chunks[1]);
        assert_eq!(hits[0].source, "docs.md");
        assert!(db.store.chunks_by_ref(&a, "hr", AccessLevel::Internal, &wanted).await.expect("refs").is_empty());
        assert!(db.store.chunks_by_ref(&b, "docs", AccessLevel::Confidential, &wanted).await.expect("refs").is_empty());
        let many: Vec<ChunkRef> = (0..450).map(|ordinal| ChunkRef { document_id: docs.id.clone(), ordinal }).collect();
        let found = db.store.chunks_by_ref(&a, "docs", AccessLevel::Internal, &many).await.expect("batched");
        assert_eq!(found.len(), docs.chunks.len(), "refs beyond one query's batch");

        // Back-filling: chunks without a vector of this model, then set.
        let missing = db.store.chunks_without_vectors(&a, "mini", 100).await.expect("missing");
        let mut missing_ids: Vec<&DocumentId> = missing.iter().map(|h| &h.document_id).collect();
        missing_ids.dedup();
        let mut expected = vec![&other_model.id, &bare.id];
        expected.sort();
        missing_ids.sort();
        assert_eq!(missing_ids, expected);
        let fill: Vec<(ChunkRef, Vec<f32>)> = missing.iter().map(|h| (h.chunk_ref(), unit(9, 8))).collect();
        assert_eq!(db.store.set_chunk_vectors(&a, "mini", &fill).await.expect("set"), fill.len() as u64);
        assert!(db.store.chunks_without_vectors(&a, "mini", 100).await.expect("none").is_empty());
        assert_eq!(db.store.set_chunk_vectors(&b, "mini", &fill).await.expect("set"), 0, "not across tenants");

        // Deleting a document deletes its vectors.
        assert!(db.store.delete_document(&a, &docs.id).await.expect("delete"));
        let left = db.store.chunk_vectors(&a, "mini", None, 100).await.expect("left");
        assert!(left.iter().all(|v| v.chunk.document_id != docs.id));
        assert_eq!(left.len(), hr.chunks.len() + fill.len());
    }
}

#[tokio::test]
async fn lexical_candidates_come_best_first_from_the_full_text_index() {
    for db in backends().await {
        let a = TenantId::parse("a").expect("id");
        // Many weak matches stored before the one strong match: a scan in storage order with a
        // limit would never reach it.
        for i in 0..30 {
            let text = format!("Note {i}: the ledger is mentioned once among many other words here.");
            db.store.insert_document(&doc("a", "docs", &text, AccessLevel::Internal), None).await.expect("insert");
        }
        let strong = doc("a", "docs", "Seal the ledger: every ledger seal is a ledger entry.", AccessLevel::Internal);
        db.store.insert_document(&strong, None).await.expect("insert");
        let terms = vec!["ledger".to_owned(), "seal".to_owned()];
        let hits = db.store.chunks_matching(&a, "docs", &terms, AccessLevel::Internal, 3).await.expect("search");
        assert_eq!(hits.len(), 3, "{}", db.backend);
        assert_eq!(hits[0].document_id, strong.id, "{}: {hits:?}", db.backend);
        // Whole words only, case-insensitively, and query syntax is just text.
        let hits = db.store.chunks_matching(&a, "docs", &["led".to_owned()], AccessLevel::Internal, 50).await;
        assert!(hits.expect("search").is_empty(), "{}: no prefix matches", db.backend);
        let hostile = vec!["note\"".to_owned(), "or".to_owned(), "and".to_owned(), "near".to_owned(), "x*".to_owned()];
        let hits =
            db.store.chunks_matching(&a, "docs", &hostile, AccessLevel::Internal, 50).await.expect("no syntax error");
        assert_eq!(hits.len(), 30, "{}: the notes, by the word note", db.backend);
        // Deleted chunks leave the index.
        assert!(db.store.delete_document(&a, &strong.id).await.expect("delete"));
        let hits = db.store.chunks_matching(&a, "docs", &["seal".to_owned()], AccessLevel::Internal, 50).await;
        assert!(hits.expect("search").is_empty(), "{}", db.backend);
    }
}

/// Chunk texts read back page by page (what an in-memory word index is built from), and the
/// revision that tells such an index it is behind: it moves with every document stored or
/// deleted, per tenant.
#[tokio::test]
async fn chunk_texts_are_read_by_page_and_the_revision_follows_stores_and_deletes() {
    for db in backends().await {
        let a = TenantId::parse("a").expect("id");
        let b = TenantId::parse("b").expect("id");
        let empty = db.store.knowledge_revision(&a).await.expect("revision");
        assert_eq!((empty.documents, empty.newest), (0, 0), "{}", db.backend);

        let mut long = doc("a", "docs", &"The ledger seals every action. ".repeat(40), AccessLevel::Internal);
        long.created_at = Timestamp::from_micros(10);
        let mut hr = doc("a", "hr", "Salaries are confidential.", AccessLevel::Confidential);
        hr.created_at = Timestamp::from_micros(20);
        let mut foreign = doc("b", "docs", "Tenant b's text.", AccessLevel::Public);
        foreign.created_at = Timestamp::from_micros(30);
        for document in [&long, &hr, &foreign] {
            assert!(db.store.insert_document(document, None).await.expect("insert").1);
        }
        let revision = db.store.knowledge_revision(&a).await.expect("revision");
        assert_eq!((revision.documents, revision.newest), (2, 20), "{}", db.backend);

        let mut all = Vec::new();
        let mut after: Option<ChunkRef> = None;
        loop {
            let page = db.store.chunk_texts(&a, after.as_ref(), 3).await.expect("page");
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            after = Some(last.chunk.clone());
            all.extend(page);
        }
        assert_eq!(all.len(), long.chunks.len() + hr.chunks.len(), "{}", db.backend);
        assert!(all.windows(2).all(|w| w[0].chunk < w[1].chunk), "ordered by chunk, no repeats");
        for chunk in &all {
            let document = if chunk.chunk.document_id == long.id { &long } else { &hr };
            assert_eq!(chunk.text, document.chunks[chunk.chunk.ordinal as usize]);
            assert_eq!(
                (chunk.namespace.as_str(), chunk.access_level),
                (document.namespace.as_str(), document.access_level)
            );
        }
        assert_eq!(db.store.chunk_texts(&b, None, 100).await.expect("b").len(), 1, "tenant-scoped");

        assert!(db.store.delete_document(&a, &hr.id).await.expect("delete"));
        let after_delete = db.store.knowledge_revision(&a).await.expect("revision");
        assert_eq!((after_delete.documents, after_delete.newest), (1, 10), "{}", db.backend);
        assert_eq!(db.store.knowledge_revision(&b).await.expect("b").documents, 1);
    }
}
