//! Console sign-in: users created by the operator or an admin, passwords checked with argon2,
//! sessions that name the same principal an API key would, sign-out (here and everywhere),
//! throttled guessing, and a second runtime on the same database honouring the same sessions.

use domain::ledger::EntryKind;
use domain::tenant::{Role, UserLevel};
use runtime::auth::{AuthMethod, Credential};
use runtime::web_users::{NewWebUser, WebAuthError};
use store::test_support::backends;

use crate::support::tenant;

fn new_user(tenant_name: &str, email: &str, role: Role) -> NewWebUser {
    NewWebUser {
        tenant: tenant(tenant_name),
        email: email.into(),
        name: String::new(),
        role,
        level: UserLevel::ARCHITECT,
        password: "correct horse battery".into(),
    }
}

#[tokio::test]
async fn a_person_signs_in_as_the_same_principal_a_key_would_be_and_signs_out() {
    for db in backends().await {
        let rt = crate::support::runtime(&db).await;
        let acme = tenant("acme");
        let email = format!("Ada@{acme}.Example");
        assert!(!rt.any_web_user().await.expect("any"), "a fresh database has no one");
        let ada = rt.create_web_user(new_user("acme", &email, Role::Admin)).await.expect("create");
        assert_eq!(ada.email, email.to_lowercase(), "emails are stored lower-cased");
        assert!(ada.password_hash.starts_with("$argon2id$"), "{}", ada.password_hash);
        assert!(rt.any_web_user().await.expect("any"));

        let wrong = rt.sign_in(&email, "not the password", "10.0.0.1").await;
        assert!(matches!(wrong, Err(WebAuthError::WrongCredentials)), "{wrong:?}");
        let unknown = rt.sign_in(&format!("nobody@{acme}.example"), "correct horse battery", "10.0.0.1").await;
        assert!(matches!(unknown, Err(WebAuthError::WrongCredentials)), "same answer for an unknown email");

        let signed = rt.sign_in(&email, "correct horse battery", "10.0.0.1").await.expect("sign in");
        assert_ne!(signed.token, signed.session.token_hash, "only the hash is stored");
        let who = rt.session_user(&signed.token).await.expect("session").expect("live");
        assert_eq!(who.principal.tenant, acme);
        assert_eq!(who.principal.method, AuthMethod::Session);
        assert!(who.principal.is_admin());
        assert!(matches!(&who.principal.credential, Credential::User { id, .. } if *id == ada.user.id));
        assert_eq!(who.principal.subject(), format!("user:{}", ada.user.id));
        assert_eq!(who.csrf, signed.session.csrf);

        // The same principal type does the same things: an admin person creates an API key.
        let key = rt.create_api_key_as(&who.principal, "from the console", UserLevel::NEWCOMER, Role::Member).await;
        assert!(key.is_ok(), "{key:?}");

        let other = rt.sign_in(&email, "correct horse battery", "10.0.0.2").await.expect("second browser");
        rt.sign_out(&signed.token).await.expect("sign out");
        assert!(rt.session_user(&signed.token).await.expect("read").is_none());
        assert!(rt.session_user(&other.token).await.expect("read").is_some(), "only that session ended");
        let again = rt.sign_in(&email, "correct horse battery", "10.0.0.3").await.expect("third");
        assert_eq!(rt.sign_out_everywhere(&who.principal).await.expect("everywhere"), 2);
        assert!(rt.session_user(&other.token).await.expect("read").is_none());
        assert!(rt.session_user(&again.token).await.expect("read").is_none());

        let entries = rt.store().records(&acme, 0, 100).await.expect("records");
        let created: Vec<serde_json::Value> = entries
            .iter()
            .filter(|r| r.kind == EntryKind::AdminChange)
            .map(|r| serde_json::from_str(&r.payload).expect("json"))
            .collect();
        assert!(created.iter().any(|c| c["action"] == "web_user.created" && c["by"] == "operator"), "{created:?}");
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn users_are_checked_and_only_admins_add_them_in_their_own_tenant() {
    for db in backends().await {
        let rt = crate::support::runtime(&db).await;
        let acme = tenant("acme");
        let short = NewWebUser { password: "short".into(), ..new_user("acme", &format!("a@{acme}.x"), Role::Member) };
        let refused = rt.create_web_user(short).await;
        assert!(matches!(&refused, Err(WebAuthError::BadPassword(_))), "{refused:?}");
        assert!(refused.expect_err("refused").to_string().starts_with("password:"), "names the field");
        let bad = rt.create_web_user(new_user("acme", "no-at-sign", Role::Member)).await;
        assert!(matches!(bad, Err(WebAuthError::BadEmail(_))));

        let email = format!("m@{acme}.x");
        rt.create_web_user(new_user("acme", &email, Role::Member)).await.expect("member");
        let taken = rt.create_web_user(new_user("other", &email.to_uppercase(), Role::Member)).await;
        assert!(matches!(taken, Err(WebAuthError::EmailTaken(_))), "{taken:?}");

        let member = rt.sign_in(&email, "correct horse battery", "10.1.0.1").await.expect("member signs in");
        let member = rt.session_user(&member.token).await.expect("read").expect("live").principal;
        let refused = rt.create_web_user_as(&member, new_user("acme", &format!("x@{acme}.x"), Role::Member)).await;
        assert!(matches!(refused, Err(WebAuthError::NotAdmin(_))));
        assert!(matches!(rt.web_users_as(&member).await, Err(WebAuthError::NotAdmin(_))));

        let admin_email = format!("root@{acme}.x");
        let low = NewWebUser { level: UserLevel::NEWCOMER, ..new_user("acme", &admin_email, Role::Admin) };
        rt.create_web_user(low).await.expect("admin");
        let admin = rt.sign_in(&admin_email, "correct horse battery", "10.1.0.2").await.expect("admin signs in");
        let admin = rt.session_user(&admin.token).await.expect("read").expect("live").principal;
        let above = rt.create_web_user_as(&admin, new_user("acme", &format!("y@{acme}.x"), Role::Member)).await;
        assert!(matches!(above, Err(WebAuthError::LevelAbove { .. })), "{above:?}");
        let elsewhere =
            NewWebUser { level: UserLevel::NEWCOMER, ..new_user("other", &format!("z@{acme}.x"), Role::Member) };
        let added = rt.create_web_user_as(&admin, elsewhere).await.expect("added");
        assert_eq!(added.user.tenant_id, acme, "an admin adds users to their own tenant only");
        assert_eq!(rt.web_users_as(&admin).await.expect("list").len(), 3);
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn guessing_is_throttled_per_account() {
    for db in backends().await {
        let rt = crate::support::runtime(&db).await;
        let acme = tenant("acme");
        let email = format!("t@{acme}.x");
        rt.create_web_user(new_user("acme", &email, Role::Member)).await.expect("create");
        let mut throttled = None;
        for i in 0..12 {
            match rt.sign_in(&email, "guess guess guess", &format!("10.2.0.{i}")).await {
                Err(WebAuthError::Throttled(limited)) => {
                    throttled = Some((i, limited));
                    break;
                }
                Err(WebAuthError::WrongCredentials) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let (at, limited) = throttled.expect("throttled before the twelfth guess");
        assert_eq!(at, 10, "ten attempts per account");
        assert!(limited.retry_after_secs > 0);
        let right = rt.sign_in(&email, "correct horse battery", "10.2.1.1").await;
        assert!(matches!(right, Err(WebAuthError::Throttled(_))), "even the right password waits");
        rt.shutdown().await;
    }
}

#[tokio::test]
async fn a_session_opened_on_one_runtime_is_honoured_and_ended_on_another() {
    for db in backends().await {
        let a = crate::support::runtime(&db).await;
        let b = crate::support::runtime(&db).await;
        let acme = tenant("acme");
        let email = format!("r@{acme}.x");
        a.create_web_user(new_user("acme", &email, Role::Member)).await.expect("create");
        let signed = a.sign_in(&email, "correct horse battery", "10.3.0.1").await.expect("sign in on a");
        assert!(b.session_user(&signed.token).await.expect("read on b").is_some());
        b.sign_out(&signed.token).await.expect("sign out on b");
        assert!(a.session_user(&signed.token).await.expect("read on a").is_none());
        a.shutdown().await;
        b.shutdown().await;
    }
}
