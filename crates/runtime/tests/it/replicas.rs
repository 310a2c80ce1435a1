//! Several writers on one database, as replicas are: appends from two runtimes (each with its
//! own connections, as two processes have) for one tenant wait for each other and all land;
//! heads of logs written without heads are built; a store that refuses writes delays entries
//! but loses none; the writer's memory does not grow with the log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use domain::ledger::EntryDraft;
use ledger::encoding::seal_draft;
use ledger::proof::verify_inclusion;
use ledger::tree::MerkleTree;
use runtime::{LedgerError, Runtime, RuntimeParts};
use store::test_support::{TestDatabase, backends};

use crate::support::{config, draft, runtime, signer, tamper, tenant};

/// A second runtime on the same database through its own store handle and connections.
async fn second_replica(db: &TestDatabase) -> Runtime {
    let url = store::DatabaseUrl::parse(&db.url).expect("test database URL");
    let other = store::open(&url).await.expect("open the database a second time");
    Runtime::start(RuntimeParts::new(other, signer(1), config(), None)).await.expect("second runtime starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_appending_for_one_tenant_lose_nothing() {
    for db in backends().await {
        let first = Arc::new(runtime(&db).await);
        let second = Arc::new(second_replica(&db).await);
        let who = tenant("acme");
        let mut tasks = tokio::task::JoinSet::new();
        const WRITERS: u64 = 64;
        const EACH: u64 = 25;
        for w in 0..WRITERS {
            let rt = if w % 2 == 0 { first.clone() } else { second.clone() };
            let who = who.clone();
            tasks.spawn(async move {
                let mut got = Vec::new();
                for i in 0..EACH {
                    got.push(rt.ledger().append(&who, draft(w * EACH + i)).await.expect("append").index);
                }
                got
            });
        }
        let mut indexes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            indexes.extend(joined.expect("writer task"));
        }
        indexes.sort_unstable();
        let total = WRITERS * EACH;
        assert_eq!(indexes, (0..total).collect::<Vec<_>>(), "{}: every append has its own index", db.backend);
        assert_eq!(db.store.ledger_size(&who).await.expect("size"), total, "{}", db.backend);
        assert_eq!(first.ledger().size(&who).await.expect("size"), total);
        assert_eq!(second.ledger().size(&who).await.expect("size"), total);
        first.verifier().tenant(&who, None).await.expect("the interleaved log verifies");

        // Either replica signs and proves the whole log, entries of the other included.
        let checkpoint = second.ledger().checkpoint(&who).await.expect("checkpoint");
        assert_eq!(checkpoint.size, total);
        let leaves = db.store.leaf_hashes(&who).await.expect("leaves");
        assert_eq!(checkpoint.root_hash, MerkleTree::from_leaves(leaves.iter().copied()).root(), "{}", db.backend);
        for index in [0, 1, 255, 256, 777, total - 1] {
            let path = first.ledger().inclusion_proof(&who, index, total).await.expect("proof");
            verify_inclusion(&leaves[index as usize], index, total, &path, &checkpoint.root_hash)
                .unwrap_or_else(|e| panic!("{}: proof of #{index}: {e}", db.backend));
        }
        first.ledger().shutdown().await;
        second.ledger().shutdown().await;
    }
}

#[tokio::test]
async fn a_log_written_without_heads_gets_its_head_built_at_start() {
    for db in backends().await {
        let who = tenant("legacy");
        // Entries as an older build wrote them: rows only, no head, no stored tree nodes.
        let mut parent = String::new();
        let mut records = Vec::new();
        for i in 0..600u64 {
            let d = EntryDraft { chain_id: None, ..draft(i) };
            let record = seal_draft(&who, i, &d, domain::Timestamp::from_micros(1_000 + i as i64), parent);
            parent = record.fingerprint.clone();
            records.push(record);
        }
        db.store.append_records(&records).await.expect("raw rows");

        let rt = runtime(&db).await;
        assert_eq!(rt.ledger().size(&who).await.expect("size"), 600, "{}: head built at start", db.backend);
        let next = rt.ledger().append(&who, EntryDraft { chain_id: None, ..draft(600) }).await.expect("append");
        assert_eq!(next.index, 600);
        let tree = MerkleTree::from_leaves(db.store.leaf_hashes(&who).await.expect("leaves"));
        assert_eq!(rt.ledger().checkpoint(&who).await.expect("checkpoint").root_hash, tree.root());
        for (index, size) in [(0, 601), (300, 512), (599, 600), (600, 601)] {
            assert_eq!(
                rt.ledger().inclusion_proof(&who, index, size).await.expect("proof"),
                tree.inclusion_proof(index, size).expect("reference proof"),
                "{}: #{index} in {size}",
                db.backend
            );
        }
        assert_eq!(
            rt.ledger().consistency_proof(&who, 256, 601).await.expect("proof"),
            tree.consistency_proof(256, 601).expect("reference proof")
        );
        rt.verifier().tenant(&who, None).await.expect("verifies");
    }
}

#[tokio::test]
async fn rows_appended_behind_the_writers_back_are_built_into_the_head() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let who = tenant("acme");
        let one = |i: u64| EntryDraft { chain_id: None, ..draft(i) };
        let mut last = rt.ledger().append(&who, one(0)).await.expect("append");
        for i in 1..10 {
            last = rt.ledger().append(&who, one(i)).await.expect("append");
        }
        // A raw writer (no head) takes indexes 10..15.
        let mut parent = last.fingerprint;
        let raw: Vec<_> = (10..15u64)
            .map(|i| {
                let record = seal_draft(&who, i, &one(i), domain::Timestamp::now(), std::mem::take(&mut parent));
                parent = record.fingerprint.clone();
                record
            })
            .collect();
        db.store.append_records(&raw).await.expect("raw rows");
        let next = rt.ledger().append(&who, one(15)).await.expect("append after the raw rows");
        assert_eq!(next.index, 15, "{}: the writer rebuilt its head and continued", db.backend);
        rt.verifier().tenant(&who, None).await.expect("verifies");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_writes_delays_entries_and_loses_none() {
    for db in backends().await {
        let rt = Arc::new(runtime(&db).await);
        let who = tenant("acme");
        rt.ledger().append(&who, draft(0)).await.expect("append while healthy");

        // The store starts refusing every ledger write.
        tamper(&db, &["ALTER TABLE ledger_heads RENAME TO ledger_heads_away"]).await;
        let mut waiting = tokio::task::JoinSet::new();
        for i in 1..=20u64 {
            let rt = rt.clone();
            let who = who.clone();
            waiting.spawn(async move { rt.ledger().append(&who, draft(i)).await.map(|a| a.index) });
        }
        // Callers that must answer soon are turned away while the store fails.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rt.ledger().accepting().is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "{}: the failure was never noticed", db.backend);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let refused = rt.ledger().append_within(&who, draft(99), Default::default(), Duration::from_millis(200)).await;
        assert!(matches!(refused, Err(LedgerError::Unavailable(_))), "{}: {refused:?}", db.backend);
        assert!(waiting.try_join_next().is_none(), "{}: nothing is acknowledged while failing", db.backend);

        // The store recovers: every waiting append lands, once.
        tamper(&db, &["ALTER TABLE ledger_heads_away RENAME TO ledger_heads"]).await;
        let mut indexes = HashSet::new();
        while let Some(joined) = waiting.join_next().await {
            assert!(indexes.insert(joined.expect("task").expect("append after recovery")));
        }
        assert_eq!(indexes.len(), 20);
        assert!(rt.ledger().accepting().is_ok(), "{}: accepting again", db.backend);
        assert_eq!(db.store.ledger_size(&who).await.expect("size"), 21, "{}: each entry exactly once", db.backend);
        rt.verifier().tenant(&who, None).await.expect("verifies");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_memory_does_not_grow_with_the_log() {
    let db = store::test_support::sqlite().await;
    let rt = Arc::new(runtime(&db).await);
    let who = tenant("acme");
    let append = |from: u64, n: u64| {
        let rt = rt.clone();
        let who = who.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for w in 0..32 {
                let rt = rt.clone();
                let who = who.clone();
                tasks.spawn(async move {
                    for i in (from + w..from + n).step_by(32) {
                        let d = EntryDraft { chain_id: None, ..draft(i) };
                        rt.ledger().append(&who, d).await.expect("append");
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    };
    append(0, 2_000).await;
    let small = rt.ledger().cached_bytes();
    append(2_000, 30_000).await;
    let large = rt.ledger().cached_bytes();
    assert_eq!(rt.ledger().size(&who).await.expect("size"), 32_000);
    // A few hundred bytes per tenant, whatever its size (the old in-memory tree held ~64 bytes
    // per entry: ~2 MB here).
    assert!(large <= small + 1_024, "cache grew from {small} to {large} bytes over 30,000 entries");
    assert!(large < 16 * 1024, "{large} bytes cached for one tenant");
}
