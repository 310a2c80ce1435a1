//! The Plugins page: operator admins see each plugin with its state, disable one (its tool is
//! withdrawn at once) and enable it again; a bad action is refused; members and other tenants'
//! admins are refused.

use domain::tenant::Role;

use crate::support::spawn_with_plugins;

fn weather_available(app: &crate::support::App) -> bool {
    let tools = app.runtime.tool_list().expect("tools");
    tools.iter().any(|(d, a)| d.name == "weather" && *a == runtime::Availability::Available)
}

#[tokio::test]
async fn operator_admins_switch_plugins_live_and_everyone_else_is_refused() {
    let app = spawn_with_plugins().await;
    app.runtime.reconcile_plugins().await.expect("plugins checked");
    app.user("demo", "op@demo.test", Role::Admin, 5).await;
    app.user("demo", "mo@demo.test", Role::Member, 1).await;
    app.user("acme", "ada@acme.test", Role::Admin, 5).await;
    let op = app.signed_in("op@demo.test").await;
    let csrf = op.csrf().await;

    let page = op.page("/plugins").await;
    assert!(page.contains("data-plugin=\"weather\" data-state=\"active\""), "{page}");
    assert!(weather_available(&app));

    let switched = op.post("/plugins", &[("csrf", &csrf), ("name", "weather"), ("action", "disable")]).await;
    assert_eq!(switched.status(), 303);
    let page = op.page("/plugins?done=disabled").await;
    assert!(page.contains("data-plugin=\"weather\" data-state=\"disabled\"") && page.contains("id=\"done\""), "{page}");
    assert!(!weather_available(&app), "a disabled plugin's tool is withdrawn at once");

    let switched = op.post("/plugins", &[("csrf", &csrf), ("name", "weather"), ("action", "enable")]).await;
    assert_eq!(switched.status(), 303);
    assert!(op.page("/plugins").await.contains("data-plugin=\"weather\" data-state=\"active\""));
    assert!(weather_available(&app));

    let bad = op.post("/plugins", &[("csrf", &csrf), ("name", "weather"), ("action", "explode")]).await;
    assert_eq!(bad.status(), 422);
    let unknown = op.post("/plugins", &[("csrf", &csrf), ("name", "nosuch"), ("action", "enable")]).await;
    assert_eq!(unknown.status(), 404);

    let mo = app.signed_in("mo@demo.test").await;
    assert_eq!(mo.get("/plugins").await.status(), 403);
    let ada = app.signed_in("ada@acme.test").await;
    assert_eq!(ada.get("/plugins").await.status(), 403);
}
