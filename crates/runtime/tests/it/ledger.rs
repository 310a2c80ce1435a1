//! The ledger through the runtime, on every backend: group commit, restart, tamper evidence,
//! proofs.

use std::collections::HashMap;
use std::sync::Arc;

use domain::ChainId;
use domain::ledger::{EntryDraft, StoredCheckpoint};
use ledger::bundle::BundleError;
use ledger::checkpoint::{Checkpoint, CheckpointError};
use ledger::encoding::seal_draft;
use ledger::proof::verify_consistency;
use ledger::verify::{CheckpointFault, EntryFault};
use runtime::verify::all_records;
use runtime::{Runtime, RuntimeParts, StartError, VerifyError};
use serde_json::json;
use store::test_support::backends;

use crate::support::{append_n, config, draft, runtime, signer, tamper, tenant};

#[tokio::test(flavor = "current_thread")]
async fn concurrent_appends_share_commits_and_all_verify() {
    for db in backends().await {
        let rt = Arc::new(runtime(&db).await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64u64 {
            let rt = rt.clone();
            let who = tenant(if i % 2 == 0 { "even" } else { "odd" });
            tasks.spawn(async move { rt.ledger().append(&who, draft(i)).await.map(|a| (who, a)) });
        }
        let mut indexes: HashMap<String, Vec<u64>> = HashMap::new();
        let mut timestamps = std::collections::HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (who, appended) = joined.expect("task").expect("append");
            indexes.entry(who.to_string()).or_default().push(appended.index);
            timestamps.insert(appended.timestamp);
        }
        for list in indexes.values_mut() {
            list.sort_unstable();
            assert_eq!(*list, (0..32).collect::<Vec<u64>>(), "{}: dense indexes per tenant", db.backend);
        }
        // Entries committed together carry the batch's time: 64 appends took fewer commits.
        assert!(timestamps.len() < 64, "{}: expected group commit, saw {} commits", db.backend, timestamps.len());
        rt.ledger().publish_checkpoints().await.expect("checkpoints");
        let reports = rt.verifier().all().await.expect("verifies");
        assert_eq!(reports.iter().map(|r| r.entries).sum::<u64>(), 64);
        assert!(reports.iter().all(|r| r.latest_checkpoint.as_ref().map(|c| c.size) == Some(32)));
    }
}

#[tokio::test]
async fn a_restarted_runtime_continues_the_same_log() {
    for db in backends().await {
        let who = tenant("acme");
        let first = runtime(&db).await;
        append_n(&first, &who, 10).await;
        first.ledger().checkpoint(&who).await.expect("checkpoint");
        first.ledger().shutdown().await;

        let second = runtime(&db).await;
        let next = second.ledger().append(&who, draft(10)).await.expect("append after restart");
        assert_eq!(next.index, 10, "{}", db.backend);
        append_n(&second, &who, 5).await;
        let cp = second.ledger().checkpoint(&who).await.expect("checkpoint");
        assert_eq!(cp.size, 16);
        second.verifier().tenant(&who, None).await.expect("the continued log verifies");
    }
}

#[tokio::test]
async fn one_flipped_byte_is_detected_and_named() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let who = tenant("acme");
        append_n(&rt, &who, 20).await;
        rt.ledger().checkpoint(&who).await.expect("checkpoint");
        rt.verifier().tenant(&who, None).await.expect("honest log verifies");

        tamper(
            &db,
            &["UPDATE ledger_entries SET payload = replace(payload, 'knowledge_search', 'knowledge_searcH') \
                       WHERE tenant_id = 'acme' AND idx = 7"],
        )
        .await;
        match rt.verifier().tenant(&who, None).await {
            Err(VerifyError::Entry { source, .. }) => {
                assert_eq!((source.index, source.fault), (7, EntryFault::FingerprintMismatch), "{}", db.backend);
            }
            other => panic!("{}: tampering not detected: {other:?}", db.backend),
        }
        let err = rt.verifier().all().await.expect_err("whole-database verification fails too");
        assert!(err.to_string().contains("entry #7"), "{err}");
    }
}

#[tokio::test]
async fn rewritten_history_is_caught_by_an_earlier_signed_checkpoint() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let who = tenant("acme");
        append_n(&rt, &who, 10).await;
        let early = rt.ledger().checkpoint(&who).await.expect("checkpoint at 10");
        append_n(&rt, &who, 20).await;
        rt.ledger().checkpoint(&who).await.expect("checkpoint at 30");

        // Rewrite from entry 6 on, recomputing every fingerprint and leaf hash.
        let honest = all_records(db.store.as_ref(), &who).await.expect("records");
        let mut heads: HashMap<Option<ChainId>, String> = HashMap::new();
        for r in &honest[..6] {
            heads.insert(r.chain_id.clone(), r.fingerprint.clone());
        }
        let forged: Vec<_> = honest[6..]
            .iter()
            .map(|r| {
                let d =
                    EntryDraft { kind: r.kind, chain_id: r.chain_id.clone(), payload: json!({"rewritten": r.index}) };
                let parent = heads.get(&r.chain_id).cloned().unwrap_or_default();
                let new = seal_draft(&who, r.index, &d, r.timestamp, parent);
                heads.insert(r.chain_id.clone(), new.fingerprint.clone());
                new
            })
            .collect();
        tamper(&db, &["DELETE FROM ledger_entries WHERE tenant_id = 'acme' AND idx >= 6"]).await;
        db.store.append_records(&forged).await.expect("insert forged history");

        // Every entry is internally consistent, but the checkpoints signed earlier are not.
        match rt.verifier().tenant(&who, None).await {
            Err(VerifyError::Checkpoint { source: CheckpointFault::Rewritten { size: 10, after: None }, .. }) => {}
            other => panic!("{}: rewrite not caught: {other:?}", db.backend),
        }
        // Even with the stored checkpoints deleted too, the one an auditor kept catches it.
        tamper(&db, &["DELETE FROM ledger_checkpoints WHERE tenant_id = 'acme'"]).await;
        rt.verifier().tenant(&who, None).await.expect("without checkpoints the forgery looks consistent");
        match rt.verifier().external_checkpoint(&early.signed_note).await {
            Err(VerifyError::Checkpoint { source: CheckpointFault::Rewritten { size: 10, .. }, .. }) => {}
            other => panic!("{}: kept checkpoint did not catch the rewrite: {other:?}", db.backend),
        }
        // And a consistency proof from the forged log does not lead to the early root.
        let forged_tree = ledger::tree::MerkleTree::from_leaves(db.store.leaf_hashes(&who).await.expect("leaves"));
        let proof = forged_tree.consistency_proof(10, 30).expect("proof");
        assert!(verify_consistency(10, 30, &early.root_hash, &forged_tree.root(), &proof).is_err());
    }
}

#[tokio::test]
async fn truncation_is_caught() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let who = tenant("acme");
        append_n(&rt, &who, 12).await;
        rt.ledger().checkpoint(&who).await.expect("checkpoint");
        tamper(&db, &["DELETE FROM ledger_entries WHERE tenant_id = 'acme' AND idx >= 9"]).await;
        match rt.verifier().tenant(&who, None).await {
            Err(VerifyError::Checkpoint { source: CheckpointFault::Truncated { size: 12, entries: 9 }, .. }) => {}
            other => panic!("{}: truncation not caught: {other:?}", db.backend),
        }
    }
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_rejected() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let who = tenant("acme");
        append_n(&rt, &who, 4).await;
        let root = ledger::tree::MerkleTree::from_leaves(db.store.leaf_hashes(&who).await.expect("leaves")).root();
        let origin = rt.ledger().origin(&who);
        let forged = StoredCheckpoint {
            tenant_id: who.clone(),
            size: 4,
            root_hash: root,
            signed_note: signer(9).sign(&Checkpoint { origin, size: 4, root }),
            created_at: domain::Timestamp::now(),
        };
        db.store.insert_checkpoint(&forged).await.expect("insert forged checkpoint");
        match rt.verifier().tenant(&who, None).await {
            Err(VerifyError::Checkpoint {
                source: CheckpointFault::Invalid { source: CheckpointError::WrongKey { .. }, .. },
                ..
            }) => {}
            other => panic!("{}: foreign checkpoint accepted: {other:?}", db.backend),
        }
        // A runtime started with that other key refuses to sign on top of this database.
        match Runtime::start(RuntimeParts::new(Arc::clone(&db.store), signer(2), config(), None)).await {
            Err(StartError::SigningKeyMismatch { .. }) => {}
            Err(other) => panic!("{}: unexpected error {other}", db.backend),
            Ok(_) => panic!("{}: started with the wrong key", db.backend),
        }
    }
}

#[tokio::test]
async fn proof_bundles_verify_offline_and_only_for_their_tenant() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let (acme, demo) = (tenant("acme"), tenant("demo"));
        append_n(&rt, &acme, 9).await;
        append_n(&rt, &demo, 9).await;
        let bundle = rt.ledger().proof_bundle(&acme, 4).await.expect("bundle");
        let report = bundle.verify(Some(rt.ledger().signer().verifier())).expect("verifies");
        assert_eq!((report.index, report.checkpoint.size), (4, 9), "{}", db.backend);

        let other = rt.ledger().proof_bundle(&demo, 4).await.expect("bundle");
        let mut crossed = bundle.clone();
        crossed.checkpoint = other.checkpoint.clone();
        assert!(matches!(crossed.verify(None), Err(BundleError::OtherTenant { .. })));
        let mut swapped_path = bundle.clone();
        swapped_path.inclusion_path = other.inclusion_path.clone();
        assert!(matches!(swapped_path.verify(None), Err(BundleError::Proof(_))));

        assert!(matches!(rt.ledger().proof_bundle(&acme, 9).await, Err(runtime::LedgerError::NoSuchEntry { .. })));

        let chain = ChainId::parse("chain-0").expect("id");
        let report = rt.verifier().chain(&acme, &chain).await.expect("chain verifies");
        assert!(report.entries > 0 && report.proven == report.entries, "{report:?}");
    }
}

#[tokio::test]
async fn seeding_is_idempotent_and_ledgered() {
    for db in backends().await {
        let rt = runtime(&db).await;
        let first = rt.seed_demo().await.expect("seed");
        assert!(first.tenant_created);
        assert_eq!(first.personas_created, ["researcher", "analyst", "creator", "communicator", "operator"]);
        let again = rt.seed_demo().await.expect("seed again");
        assert!(!again.tenant_created && again.personas_created.is_empty(), "{}", db.backend);
        let demo = tenant("demo");
        assert_eq!(db.store.personas(&demo).await.expect("personas").len(), 5);
        assert_eq!(rt.ledger().size(&demo).await.expect("size"), 6, "one admin entry per creation");
    }
}
