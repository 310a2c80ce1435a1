//! Each test runs against every available backend and checks the port's promises, tenant
//! scoping first among them.

use domain::cost::CostRecord;
use domain::ledger::{EntryDraft, EntryKind, LedgerRecord, StoredCheckpoint};
use domain::persona::default_personas;
use domain::ports::StoreError;
use domain::tenant::{ApiKey, Role, Tenant, User, UserLevel};
use domain::{ApiKeyId, ChainId, TenantId, Timestamp, UserId};
use serde_json::json;
use store::test_support::{TestDatabase, backends};

pub(crate) fn tenant_id(name: &str) -> TenantId {
    TenantId::parse(name).expect("valid tenant id")
}

pub(crate) async fn with_tenants(db: &TestDatabase, names: &[&str]) -> Vec<TenantId> {
    let mut ids = Vec::new();
    for name in names {
        let id = tenant_id(name);
        db.store.insert_tenant_if_missing(&Tenant::new(id.clone(), *name)).await.expect("insert tenant");
        ids.push(id);
    }
    ids
}

pub(crate) fn records(tenant: &TenantId, from: u64, n: u64, chain: Option<&ChainId>) -> Vec<LedgerRecord> {
    let mut parent = String::new();
    (from..from + n)
        .map(|i| {
            let draft = EntryDraft { kind: EntryKind::ModelCall, chain_id: chain.cloned(), payload: json!({"i": i}) };
            let r = ledger::encoding::seal_draft(
                tenant,
                i,
                &draft,
                Timestamp::from_micros(i as i64),
                std::mem::take(&mut parent),
            );
            parent = r.fingerprint.clone();
            r
        })
        .collect()
}

#[tokio::test]
async fn tenants_are_inserted_once() {
    for db in backends().await {
        let t = Tenant::new(tenant_id("acme"), "Acme");
        assert!(db.store.insert_tenant_if_missing(&t).await.expect("insert"), "{}", db.backend);
        assert!(!db.store.insert_tenant_if_missing(&t).await.expect("insert again"), "{}", db.backend);
        let back = db.store.tenant(&t.id).await.expect("read").expect("exists");
        assert_eq!(back, t, "{}", db.backend);
        assert_eq!(db.store.tenants().await.expect("list").len(), 1);
        assert_eq!(db.store.tenant(&tenant_id("nobody")).await.expect("read"), None);
    }
}

#[tokio::test]
async fn users_are_scoped_to_their_tenant() {
    for db in backends().await {
        let [a, b] = <[TenantId; 2]>::try_from(with_tenants(&db, &["a", "b"]).await).expect("two");
        let user = User {
            id: UserId::generate(),
            tenant_id: a.clone(),
            name: "ada".into(),
            level: UserLevel::ARCHITECT,
            role: Role::Admin,
            created_at: Timestamp::from_micros(10),
        };
        db.store.insert_user(&user).await.expect("insert user");
        assert_eq!(db.store.user(&a, &user.id).await.expect("read"), Some(user.clone()));
        assert_eq!(db.store.user(&b, &user.id).await.expect("read"), None, "{}", db.backend);
        assert!(db.store.users(&b).await.expect("list").is_empty());
        assert!(matches!(db.store.insert_user(&user).await, Err(StoreError::Conflict { .. })));
    }
}

#[tokio::test]
async fn api_keys_are_found_by_hash_scoped_and_revocable() {
    for db in backends().await {
        let [a, b] = <[TenantId; 2]>::try_from(with_tenants(&db, &["a", "b"]).await).expect("two");
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: a.clone(),
            user_id: None,
            name: "ci".into(),
            key_hash: "ab".repeat(32),
            display_prefix: "nxs_abcd".into(),
            access_level: UserLevel::NEWCOMER,
            role: Role::Admin,
            created_at: Timestamp::from_micros(1),
            last_used_at: None,
            revoked_at: None,
        };
        db.store.insert_api_key(&key).await.expect("insert key");
        assert_eq!(db.store.api_key_by_hash(&key.key_hash).await.expect("find"), Some(key.clone()));
        assert_eq!(db.store.api_keys(&a).await.expect("list").len(), 1);
        assert!(db.store.api_keys(&b).await.expect("list").is_empty(), "{}", db.backend);

        db.store.touch_api_keys(&[(a.clone(), key.id.clone(), Timestamp::from_micros(50))]).await.expect("touch");
        db.store.touch_api_keys(&[(a.clone(), key.id.clone(), Timestamp::from_micros(40))]).await.expect("touch");
        let touched = db.store.api_key_by_hash(&key.key_hash).await.expect("find").expect("exists");
        assert_eq!(touched.last_used_at, Some(Timestamp::from_micros(50)), "last_used only moves forward");

        assert!(
            !db.store.revoke_api_key(&b, &key.id, Timestamp::from_micros(60)).await.expect("revoke"),
            "other tenant"
        );
        assert!(db.store.api_key_by_hash(&key.key_hash).await.expect("find").is_some());
        assert!(db.store.revoke_api_key(&a, &key.id, Timestamp::from_micros(60)).await.expect("revoke"));
        assert_eq!(
            db.store.api_key_by_hash(&key.key_hash).await.expect("find"),
            None,
            "revoked keys do not authenticate"
        );
        assert!(!db.store.revoke_api_key(&a, &key.id, Timestamp::from_micros(61)).await.expect("revoke twice"));
        let revoked = |since| {
            let store = db.store.clone();
            async move { store.api_keys_revoked_since(Timestamp::from_micros(since)).await.expect("revoked since") }
        };
        assert_eq!(revoked(60).await, vec![(key.id.clone(), Timestamp::from_micros(60))], "{}", db.backend);
        assert!(revoked(61).await.is_empty(), "{}", db.backend);
    }
}

#[tokio::test]
async fn personas_are_scoped_unique_by_name_and_versioned() {
    for db in backends().await {
        let [a, b] = <[TenantId; 2]>::try_from(with_tenants(&db, &["a", "b"]).await).expect("two");
        let personas = default_personas(&a);
        for p in &personas {
            db.store.insert_persona(p).await.expect("insert persona");
        }
        let listed = db.store.personas(&a).await.expect("list");
        assert_eq!(listed.len(), 5, "{}", db.backend);
        assert!(db.store.personas(&b).await.expect("list").is_empty());
        let researcher = db.store.persona_by_name(&a, "researcher").await.expect("read").expect("exists");
        assert_eq!(researcher, personas[0]);
        assert_eq!(db.store.persona(&b, &researcher.id).await.expect("read"), None, "another tenant's id is not found");

        let mut duplicate = default_personas(&a).remove(0);
        duplicate.description = "again".into();
        assert!(matches!(db.store.insert_persona(&duplicate).await, Err(StoreError::Conflict { .. })));

        let mut changed = researcher.clone();
        changed.allowed_tools.push("weather".into());
        assert_eq!(db.store.update_persona(&changed).await.expect("update"), Some(2));
        let back = db.store.persona(&a, &researcher.id).await.expect("read").expect("exists");
        assert_eq!((back.version, back.allowed_tools.last().map(String::as_str)), (2, Some("weather")));

        let mut foreign = changed.clone();
        foreign.tenant_id = b.clone();
        assert_eq!(db.store.update_persona(&foreign).await.expect("update"), None, "cannot update across tenants");
    }
}

#[tokio::test]
async fn ledger_records_round_trip_in_order_per_tenant() {
    for db in backends().await {
        let (a, b) = (tenant_id("a"), tenant_id("b"));
        let chain = ChainId::parse("chain-1").expect("id");
        let mut batch = records(&a, 0, 5, Some(&chain));
        batch.extend(records(&b, 0, 3, None));
        db.store.append_records(&batch).await.expect("append");
        db.store.append_records(&records(&a, 5, 2, None)).await.expect("append more");

        assert_eq!(db.store.ledger_size(&a).await.expect("size"), 7, "{}", db.backend);
        assert_eq!(db.store.ledger_size(&b).await.expect("size"), 3);
        assert_eq!(db.store.ledger_size(&tenant_id("c")).await.expect("size"), 0);
        let page = db.store.records(&a, 2, 3).await.expect("page");
        assert_eq!(page, batch[2..5].to_vec());
        assert_eq!(db.store.record(&a, 0).await.expect("read"), Some(batch[0].clone()));
        assert_eq!(db.store.record(&b, 5).await.expect("read"), None);
        assert_eq!(db.store.chain_records(&a, &chain).await.expect("chain").len(), 5);
        assert!(db.store.chain_records(&b, &chain).await.expect("chain").is_empty(), "chains are tenant-scoped");
        let leaves = db.store.leaf_hashes(&b).await.expect("leaves");
        assert_eq!(leaves, batch[5..8].iter().map(|r| r.leaf_hash).collect::<Vec<_>>());
        assert_eq!(db.store.last_fingerprint(&a, Some(&chain)).await.expect("fp"), Some(batch[4].fingerprint.clone()));
        assert!(db.store.last_fingerprint(&a, None).await.expect("fp").is_some());
        assert_eq!(db.store.last_fingerprint(&b, Some(&chain)).await.expect("fp"), None);
        assert_eq!(db.store.ledger_tenants().await.expect("tenants"), vec![a, b]);
    }
}

#[tokio::test]
async fn a_ledger_batch_is_all_or_nothing() {
    for db in backends().await {
        let a = tenant_id("a");
        db.store.append_records(&records(&a, 0, 3, None)).await.expect("append");
        // Index 2 already exists: the whole batch, including the new index 3, must be refused.
        let clash = records(&a, 2, 2, None);
        assert!(matches!(db.store.append_records(&clash).await, Err(StoreError::Conflict { .. })), "{}", db.backend);
        assert_eq!(db.store.ledger_size(&a).await.expect("size"), 3);
    }
}

#[tokio::test]
async fn checkpoints_are_kept_per_tenant_by_size() {
    for db in backends().await {
        let a = tenant_id("a");
        let cp = |size: u64| StoredCheckpoint {
            tenant_id: a.clone(),
            size,
            root_hash: [size as u8; 32],
            signed_note: format!("note {size}"),
            created_at: Timestamp::from_micros(size as i64),
        };
        for size in [3, 10, 7] {
            db.store.insert_checkpoint(&cp(size)).await.expect("insert");
        }
        db.store.insert_checkpoint(&cp(10)).await.expect("the same checkpoint twice is harmless");
        assert_eq!(db.store.latest_checkpoint(&a).await.expect("latest"), Some(cp(10)), "{}", db.backend);
        let sizes: Vec<u64> = db.store.checkpoints(&a).await.expect("all").iter().map(|c| c.size).collect();
        assert_eq!(sizes, [3, 7, 10]);
        assert_eq!(db.store.latest_checkpoint(&tenant_id("b")).await.expect("latest"), None);
    }
}

#[tokio::test]
async fn costs_sum_per_tenant_since_a_time() {
    for db in backends().await {
        let (a, b) = (tenant_id("a"), tenant_id("b"));
        for (tenant, usd, at) in [(&a, 0.25, 10), (&a, 0.5, 20), (&b, 9.0, 20)] {
            let cost = CostRecord {
                tenant_id: tenant.clone(),
                chain_id: None,
                seal_id: None,
                api_key_id: None,
                subject: None,
                provider: Some("anthropic".into()),
                model: "claude-haiku".into(),
                input_tokens: 100,
                output_tokens: 20,
                cost_usd: usd,
                timestamp: Timestamp::from_micros(at),
            };
            db.store.insert_cost(&cost).await.expect("insert cost");
        }
        assert_eq!(
            db.store.tenant_cost_since(&a, Timestamp::from_micros(0)).await.expect("sum"),
            0.75,
            "{}",
            db.backend
        );
        assert_eq!(db.store.tenant_cost_since(&a, Timestamp::from_micros(15)).await.expect("sum"), 0.5);
        assert_eq!(db.store.tenant_cost_since(&tenant_id("c"), Timestamp::from_micros(0)).await.expect("sum"), 0.0);
        // The running monthly totals agree with the records (all three are in January 1970).
        let january = Timestamp::from_micros(0);
        assert_eq!(db.store.tenant_month_spend(&a, january).await.expect("month"), 0.75, "{}", db.backend);
        assert_eq!(db.store.tenant_month_spend(&b, january).await.expect("month"), 9.0);
        assert_eq!(
            db.store.tenant_month_spend(&a, Timestamp::from_micros(2_678_400_000_000)).await.expect("month"),
            0.0
        );
    }
}

#[tokio::test]
async fn the_backends_answer_and_check_themselves() {
    for db in backends().await {
        db.store.ping().await.expect("ping");
        db.store.integrity_check().await.expect("integrity");
        assert_eq!(db.store.backend(), db.backend);
        db.store.close().await;
        assert!(matches!(db.store.ping().await, Err(StoreError::Unavailable { .. })), "{}", db.backend);
    }
}
