//! Keys across processes: a key revoked by one runtime stops working on another runtime over
//! the same database within a second (PostgreSQL: heard through LISTEN/NOTIFY; SQLite: read
//! from the store by the watcher), tokens minted from it included; admin-only, tenant-scoped
//! changes, each an `admin_change` entry naming who made it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::ledger::EntryKind;
use domain::tenant::{Role, UserLevel};
use runtime::auth::{AuthError, Principal};
use runtime::keys::KeyError;
use runtime::{Runtime, RuntimeParts};
use store::test_support::backends;

use crate::support::{config, signer, tenant};

/// A second runtime on the same database, as another replica or process would be.
async fn replica(url: &str) -> Runtime {
    let url = store::DatabaseUrl::parse(url).expect("url");
    let store = store::open(&url).await.expect("open the same database again");
    Runtime::start(RuntimeParts::new(store, signer(1), config(), None)).await.expect("runtime starts")
}

async fn admin(rt: &Runtime, tenant_name: &str, level: u8) -> Principal {
    let level = UserLevel::new(level).expect("level");
    let created = rt.create_api_key(&tenant(tenant_name), "root", level, Role::Admin).await.expect("admin key");
    rt.auth().authenticate(&created.secret).await.expect("admin authenticates")
}

#[tokio::test]
async fn a_key_revoked_on_one_runtime_is_refused_by_another_within_a_second() {
    for db in backends().await {
        let a = crate::support::runtime(&db).await;
        let b = replica(&db.url).await;
        b.watch_key_revocations();
        let root = admin(&a, "acme", 3).await;
        let created = a.create_api_key_as(&root, "app", UserLevel::NEWCOMER, Role::Member).await.expect("create");
        // B has the key (and a token traded for it) in its caches before the revocation.
        b.auth().authenticate(&created.secret).await.expect("usable on b");
        let token = b.auth().issue_token(&created.secret, Duration::from_secs(60)).await.expect("token").token;
        b.auth().authenticate(&token).await.expect("token usable on b");

        let started = Instant::now();
        let revoked = a.revoke_api_key_as(&root, created.key.id.as_str()).await.expect("revoke");
        assert!(revoked.revoked_at.is_some());
        let (mut key_refused, mut token_refused) = (None, None);
        while started.elapsed() < Duration::from_secs(3) && (key_refused.is_none() || token_refused.is_none()) {
            if key_refused.is_none()
                && matches!(b.auth().authenticate(&created.secret).await, Err(AuthError::UnknownKey))
            {
                key_refused = Some(started.elapsed());
            }
            if token_refused.is_none() && matches!(b.auth().authenticate(&token).await, Err(AuthError::RevokedKey)) {
                token_refused = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let key_refused = key_refused.expect("the key is refused on b");
        let token_refused = token_refused.expect("the token is refused on b");
        eprintln!("{}: key refused after {key_refused:?}, token after {token_refused:?}", db.backend);
        assert!(key_refused < Duration::from_secs(1), "{}: {key_refused:?}", db.backend);
        assert!(token_refused < Duration::from_secs(1), "{}: {token_refused:?}", db.backend);

        let entries = a.store().records(&tenant("acme"), 0, 100).await.expect("records");
        let changes: Vec<serde_json::Value> = entries
            .iter()
            .filter(|r| r.kind == EntryKind::AdminChange)
            .map(|r| serde_json::from_str(&r.payload).expect("json"))
            .collect();
        let by_root = root.subject();
        assert!(changes.iter().any(|c| c["action"] == "api_key.created" && c["by"] == "operator"));
        assert!(changes.iter().any(|c| c["action"] == "api_key.created" && c["by"] == by_root.as_str()));
        assert!(
            changes.iter().any(|c| c["action"] == "api_key.revoked"
                && c["key_id"] == created.key.id.as_str()
                && c["by"] == by_root.as_str()),
            "{changes:?}"
        );
        b.shutdown().await;
        a.shutdown().await;
    }
}

#[tokio::test]
async fn key_changes_are_for_admins_of_the_tenant_only() {
    for db in backends().await {
        let rt = Arc::new(crate::support::runtime(&db).await);
        let root = admin(&rt, "acme", 2).await;
        let other_root = admin(&rt, "other", 5).await;
        let member_secret =
            rt.create_api_key(&tenant("acme"), "m", UserLevel::NEWCOMER, Role::Member).await.expect("member");
        let member = rt.auth().authenticate(&member_secret.secret).await.expect("member authenticates");

        let refused = rt.create_api_key_as(&member, "x", UserLevel::NEWCOMER, Role::Member).await;
        assert!(matches!(refused, Err(KeyError::NotAdmin(_))), "{refused:?}");
        let refused = rt.create_api_key_as(&root, "x", UserLevel::new(3).expect("level"), Role::Admin).await;
        assert!(matches!(refused, Err(KeyError::LevelAbove { asked: 3, own: 2 })), "{refused:?}");
        let refused = rt.create_api_key_as(&root, " \t ", UserLevel::NEWCOMER, Role::Member).await;
        assert!(matches!(refused, Err(KeyError::BadName(_))), "{refused:?}");

        let id = member.key_id().expect("a key").as_str();
        let refused = rt.revoke_api_key_as(&member, id).await;
        assert!(matches!(refused, Err(KeyError::NotAdmin(_))), "{refused:?}");
        let refused = rt.revoke_api_key_as(&other_root, id).await;
        assert!(matches!(refused, Err(KeyError::NoSuchKey { .. })), "another tenant's key: {refused:?}");
        let refused = rt.revoke_api_key_as(&root, "not a key id").await;
        assert!(matches!(refused, Err(KeyError::NoSuchKey { .. })), "{refused:?}");
        rt.revoke_api_key_as(&root, id).await.expect("revoke");
        let refused = rt.revoke_api_key_as(&root, id).await;
        assert!(matches!(refused, Err(KeyError::AlreadyRevoked { .. })), "{refused:?}");

        // Revoking the key one is calling with is allowed (rotation); it stops working at once.
        rt.revoke_api_key_as(&root, root.key_id().expect("a key").as_str()).await.expect("revoke own key");
        let listed = rt.api_keys(&tenant("acme")).await.expect("list");
        assert!(listed.iter().all(|k| k.revoked_at.is_some()), "{listed:?}");
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_revocation_nobody_announced_is_read_from_the_store_within_a_second() {
    for db in backends().await {
        let a = crate::support::runtime(&db).await;
        let b = replica(&db.url).await;
        b.watch_key_revocations();
        let created = a.create_api_key(&tenant("acme"), "app", UserLevel::NEWCOMER, Role::Member).await.expect("key");
        b.auth().authenticate(&created.secret).await.expect("cached on b");
        // Revoked in the database with no notification, as when the revoking process dies
        // between its commit and its NOTIFY, or a listener is reconnecting.
        let started = Instant::now();
        let revoked = db.store.revoke_api_key(&tenant("acme"), &created.key.id, domain::Timestamp::now()).await;
        assert!(revoked.expect("revoke"));
        while b.auth().authenticate(&created.secret).await.is_ok() {
            assert!(started.elapsed() < Duration::from_secs(1), "{}: still accepted after 1 s", db.backend);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("{}: refused after {:?} without a notification", db.backend, started.elapsed());
        b.shutdown().await;
        a.shutdown().await;
    }
}
