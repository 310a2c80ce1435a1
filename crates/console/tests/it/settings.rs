//! The Settings page: operator admins see every setting with its source (secrets masked),
//! change one and see it in force at once, reset it; pinned and bootstrap settings cannot be
//! changed here; a bad value is refused naming the setting; members and other tenants' admins
//! are refused.

use domain::tenant::Role;

use crate::support::spawn_with_settings;

#[tokio::test]
async fn operator_admins_change_settings_live_and_everyone_else_is_refused() {
    let app = spawn_with_settings().await;
    app.user("demo", "op@demo.test", Role::Admin, 5).await;
    app.user("demo", "mo@demo.test", Role::Member, 1).await;
    app.user("acme", "ada@acme.test", Role::Admin, 5).await;
    let op = app.signed_in("op@demo.test").await;
    let csrf = op.csrf().await;

    let page = op.page("/settings").await;
    for key in ["limits.key_requests_per_minute", "tools.brave_api_key", "log.format", "server.listen"] {
        assert!(page.contains(&format!("data-setting=\"{key}\"")), "{key} listed");
    }
    assert!(page.contains("NEXUS_LOG_FORMAT"), "what pins a setting is shown");

    // A live change is in force at once.
    let saved = op
        .post(
            "/settings",
            &[("csrf", &csrf), ("key", "limits.key_requests_per_minute"), ("value", "700"), ("action", "set")],
        )
        .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(app.runtime.limits().settings().key_requests_per_minute, 700);
    assert!(op.page("/settings?done=saved").await.contains("id=\"done\""));

    // A secret is stored and never shown.
    let secret = "brave-console-SECRET";
    let saved = op
        .post("/settings", &[("csrf", &csrf), ("key", "tools.brave_api_key"), ("value", secret), ("action", "set")])
        .await;
    assert_eq!(saved.status(), 303);
    let page = op.page("/settings").await;
    assert!(!page.contains(secret) && page.contains("********"), "masked");

    // Refusals name the setting and change nothing.
    let bad = op
        .post(
            "/settings",
            &[("csrf", &csrf), ("key", "limits.key_requests_per_minute"), ("value", "0"), ("action", "set")],
        )
        .await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("body").contains("limits.key_requests_per_minute"));
    let pinned =
        op.post("/settings", &[("csrf", &csrf), ("key", "log.format"), ("value", "text"), ("action", "set")]).await;
    assert_eq!(pinned.status(), 409);
    let bootstrap = op
        .post("/settings", &[("csrf", &csrf), ("key", "server.listen"), ("value", "0.0.0.0:1"), ("action", "set")])
        .await;
    assert_eq!(bootstrap.status(), 409);
    let forged = op
        .post(
            "/settings",
            &[("csrf", "forged"), ("key", "limits.key_requests_per_minute"), ("value", "9"), ("action", "set")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(app.runtime.limits().settings().key_requests_per_minute, 700);

    // Reset: back to the host's default.
    let reset =
        op.post("/settings", &[("csrf", &csrf), ("key", "limits.key_requests_per_minute"), ("action", "reset")]).await;
    assert_eq!(reset.status(), 303);
    assert_eq!(app.runtime.limits().settings().key_requests_per_minute, 100_000);

    // Members and other tenants' admins.
    let mo = app.signed_in("mo@demo.test").await;
    assert_eq!(mo.get("/settings").await.status(), 403);
    let ada = app.signed_in("ada@acme.test").await;
    assert_eq!(ada.get("/settings").await.status(), 403);
    let ada_csrf = ada.csrf().await;
    let refused = ada
        .post(
            "/settings",
            &[("csrf", &ada_csrf), ("key", "limits.key_requests_per_minute"), ("value", "1"), ("action", "set")],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(app.runtime.limits().settings().key_requests_per_minute, 100_000);
}
