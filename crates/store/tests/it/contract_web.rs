//! Contract for console sign-in: users with credentials and their sessions.

use domain::ports::StoreError;
use domain::tenant::{Role, User, UserLevel};
use domain::web::{WebSession, WebUser};
use domain::{Timestamp, UserId};
use store::test_support::backends;

use crate::contract::with_tenants;

fn web_user(tenant: &domain::TenantId, email: &str, role: Role) -> WebUser {
    WebUser {
        user: User {
            id: UserId::generate(),
            tenant_id: tenant.clone(),
            name: email.into(),
            level: UserLevel::ARCHITECT,
            role,
            created_at: Timestamp::from_micros(1),
        },
        email: email.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        locale: None,
    }
}

#[tokio::test]
async fn web_users_are_found_by_email_across_tenants_and_emails_are_unique() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let email = format!("ada@{a}.example");
        let ada = web_user(a, &email, Role::Admin);
        db.store.insert_web_user(&ada).await.expect("insert");
        assert!(db.store.any_web_user().await.expect("any"));

        let found = db.store.web_user_by_email(&email).await.expect("by email").expect("found");
        assert_eq!(found, ada, "{}", db.backend);
        assert_eq!(db.store.web_user(a, &ada.user.id).await.expect("by id"), Some(ada.clone()));
        assert_eq!(db.store.web_user(b, &ada.user.id).await.expect("other tenant"), None);
        assert!(db.store.user(a, &ada.user.id).await.expect("user").is_some(), "a web user is a user");

        let taken = db.store.insert_web_user(&web_user(b, &email, Role::Member)).await;
        assert!(matches!(taken, Err(StoreError::Conflict { .. })), "{}: {taken:?}", db.backend);
        assert!(db.store.web_users(b).await.expect("b's users").is_empty(), "a refused insert leaves nothing");

        assert!(db.store.set_web_password(a, &ada.user.id, "$argon2id$new").await.expect("password"));
        db.store.set_web_locale(a, &ada.user.id, Some("it")).await.expect("locale");
        let changed = db.store.web_user_by_email(&email).await.expect("read").expect("found");
        assert_eq!((changed.password_hash.as_str(), changed.locale.as_deref()), ("$argon2id$new", Some("it")));
        assert!(!db.store.set_web_password(b, &ada.user.id, "x").await.expect("no such user"));
    }
}

#[tokio::test]
async fn sessions_expire_slide_and_end_everywhere() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a"]).await;
        let a = &tenants[0];
        let ada = web_user(a, &format!("ada@{a}.sessions"), Role::Member);
        db.store.insert_web_user(&ada).await.expect("insert");
        let session = |hash: &str, expires: i64| WebSession {
            token_hash: format!("{hash}-{a}"),
            tenant_id: a.clone(),
            user_id: ada.user.id.clone(),
            csrf: "csrf".into(),
            created_at: Timestamp::from_micros(10),
            expires_at: Timestamp::from_micros(expires),
        };
        let (one, two) = (session("one", 100), session("two", 100));
        db.store.insert_session(&one).await.expect("one");
        db.store.insert_session(&two).await.expect("two");

        let now = Timestamp::from_micros(50);
        assert_eq!(db.store.session(&one.token_hash, now).await.expect("read"), Some(one.clone()));
        let both = db.store.session_user(&one.token_hash, now).await.expect("read with the person");
        assert_eq!(both, Some((one.clone(), ada.clone())), "{}", db.backend);
        let later = Timestamp::from_micros(150);
        assert_eq!(db.store.session_user(&one.token_hash, later).await.expect("expired"), None);
        assert_eq!(db.store.session_user("no-such-hash", now).await.expect("unknown"), None);
        assert_eq!(db.store.session(&one.token_hash, later).await.expect("expired"), None, "{}", db.backend);
        db.store.touch_session(&one.token_hash, Timestamp::from_micros(200)).await.expect("touch");
        assert!(db.store.session(&one.token_hash, later).await.expect("slid").is_some());

        db.store.delete_session(&one.token_hash).await.expect("sign out");
        assert_eq!(db.store.session(&one.token_hash, now).await.expect("gone"), None);
        db.store.insert_session(&session("three", 1000)).await.expect("three");
        assert_eq!(db.store.delete_sessions_of(a, &ada.user.id).await.expect("everywhere"), 2);
        assert_eq!(db.store.session(&two.token_hash, now).await.expect("gone"), None);

        db.store.insert_session(&session("old", 20)).await.expect("old");
        assert!(db.store.delete_expired_sessions(Timestamp::from_micros(30)).await.expect("sweep") >= 1);
    }
}
