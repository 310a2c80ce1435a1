//! Contract for the live feed: appends become visible in id order across concurrent writers,
//! so a reader that resumes after the last id it saw never misses a row.

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::ports::{FeedRecord, Store};
use domain::{ChainId, TenantId, Timestamp};
use store::test_support::backends;

use crate::contract::with_tenants;

fn record(tenant: &TenantId, chain: &ChainId, seq: u64, at: i64) -> FeedRecord {
    FeedRecord {
        tenant_id: tenant.clone(),
        chain_id: chain.clone(),
        seq,
        created_at: Timestamp::from_micros(at),
        event: format!(r#"{{"event":"step_completed","step":{seq},"status":"executed"}}"#),
    }
}

#[tokio::test]
async fn the_feed_is_per_tenant_ordered_and_pruned_by_age() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let chain = ChainId::generate();
        assert!(db.store.feed_latest(a, 10).await.expect("empty").is_empty(), "{}", db.backend);

        // Created far in the past, so pruning them touches no other test's rows.
        let old: Vec<_> = (0..3).map(|seq| record(a, &chain, seq, 5)).collect();
        db.store.append_feed(&old).await.expect("append");
        db.store.append_feed(&[record(b, &chain, 0, 5)]).await.expect("other tenant");
        db.store.append_feed(&[]).await.expect("nothing to append");

        let all = db.store.feed_after(a, 0, 100).await.expect("after 0");
        assert_eq!(all.iter().map(|e| e.record.clone()).collect::<Vec<_>>(), old, "{}", db.backend);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let rest = db.store.feed_after(a, all[0].id, 100).await.expect("after the first");
        assert_eq!(rest.len(), 2);
        let latest = db.store.feed_latest(a, 2).await.expect("latest");
        assert_eq!(latest.iter().map(|e| e.record.seq).collect::<Vec<_>>(), vec![1, 2], "oldest first");
        assert!(db.store.feed_head().await.expect("head") >= all[2].id);

        assert!(db.store.prune_feed(Timestamp::from_micros(6)).await.expect("prune") >= 4);
        assert!(db.store.feed_after(a, 0, 100).await.expect("pruned").is_empty(), "{}", db.backend);
        assert!(db.store.feed_after(b, 0, 100).await.expect("pruned").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::disallowed_methods, reason = "the writers must run in parallel with the reader")]
async fn a_reader_following_concurrent_writers_misses_nothing() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["feed"]).await;
        let tenant = tenants[0].clone();
        let store: Arc<dyn Store> = db.store.clone();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (store, tenant) = (store.clone(), tenant.clone());
                tokio::spawn(async move {
                    let chain = ChainId::generate();
                    for seq in 0..25u64 {
                        let batch = [record(&tenant, &chain, seq, Timestamp::now().as_micros())];
                        store.append_feed(&batch).await.unwrap_or_else(|e| panic!("writer {w}: {e}"));
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            // Read while writers write; once they are all done, one more read sees the end.
            let finished = writers.iter().all(|w| w.is_finished());
            let page = store.feed_after(&tenant, cursor, 7).await.expect("read");
            if let Some(last) = page.last() {
                cursor = last.id;
            }
            let empty = page.is_empty();
            seen.extend(page.into_iter().map(|e| e.id));
            if finished && empty {
                break;
            }
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let stored: BTreeSet<u64> =
            store.feed_after(&tenant, 0, 1000).await.expect("all").into_iter().map(|e| e.id).collect();
        assert_eq!(stored.len(), 100, "{}", db.backend);
        assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), stored, "{}: the reader skipped a row", db.backend);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{}: in order, no repeats", db.backend);
    }
}
