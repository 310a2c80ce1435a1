//! Sign-in, sessions, CSRF, admin-only pages, escaping and security headers.

use domain::tenant::Role;

use crate::support::{PASSWORD, spawn};

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_the_session() {
    let app = spawn().await;
    let browser = app.browser();
    let home = browser.get("/").await;
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/login");

    let login = browser.page("/login").await;
    assert!(login.contains("id=\"no-users\""), "a fresh install says how to create the first admin");
    assert!(login.contains("nexus users create"));

    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let wrong = browser.sign_in("ada@acme.test", "wrong password!").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("body").contains("Wrong email or password"));

    let signed = browser.sign_in("ADA@acme.test", PASSWORD).await;
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.starts_with("nexus_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP without a proxy saying otherwise");

    let overview = browser.page("/").await;
    assert!(overview.contains("id=\"signed-in-as\">ada@acme.test<"), "{overview}");
    let csrf = browser.csrf().await;
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(browser.get("/").await.status(), 303, "signed out");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let proxied = app
        .browser()
        .client
        .post(app.url("/login"))
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-proto", "https")
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert!(proxied.headers()["set-cookie"].to_str().expect("ascii").contains("; Secure"));
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_browser_s_session() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Member, 0).await;
    let laptop = app.signed_in("ada@acme.test").await;
    let phone = app.signed_in("ada@acme.test").await;
    let csrf = laptop.csrf().await;
    let out = laptop.post("/logout/everywhere", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(phone.get("/").await.status(), 303, "the other browser is signed out too");
}

#[tokio::test]
async fn state_changes_without_the_token_or_from_another_site_are_refused_with_403() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let browser = app.signed_in("ada@acme.test").await;
    let csrf = browser.csrf().await;

    let no_token = browser.post("/keys", &[("name", "ci"), ("level", "0"), ("role", "member")]).await;
    assert_eq!(no_token.status(), 403);
    let wrong = browser.post("/keys", &[("csrf", "0000"), ("name", "ci"), ("level", "0"), ("role", "member")]).await;
    assert_eq!(wrong.status(), 403);
    let cross_site = browser
        .client
        .post(browser.url("/keys"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("name", "ci"), ("level", "0"), ("role", "member")])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status(), 403);
    let other_origin = browser
        .client
        .post(browser.url("/keys"))
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "ci"), ("level", "0"), ("role", "member")])
        .send()
        .await
        .expect("post");
    assert_eq!(other_origin.status(), 403);
    assert!(app.runtime.api_keys(&domain::TenantId::parse("acme").expect("t")).await.expect("keys").is_empty());

    let cross_site_login = app
        .browser()
        .client
        .post(app.url("/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("email", "ada@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site_login.status(), 403, "no signing in from another site's form");
}

#[tokio::test]
async fn members_get_403_on_admin_pages_and_actions() {
    let app = spawn().await;
    app.user("acme", "mo@acme.test", Role::Member, 0).await;
    let browser = app.signed_in("mo@acme.test").await;
    for path in ["/keys", "/approvals", "/users"] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.text().await.expect("body").contains("for admins"), "{path}");
    }
    let csrf = browser.csrf().await;
    let create = browser.post("/keys", &[("csrf", &csrf), ("name", "x"), ("level", "0"), ("role", "member")]).await;
    assert_eq!(create.status(), 403);
    let overview = browser.page("/").await;
    assert!(!overview.contains("href=\"/keys\""), "members are not shown admin links");
    for path in ["/", "/chains", "/ledger"] {
        assert_eq!(browser.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn hostile_names_render_as_text_and_every_page_carries_a_strict_policy() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let browser = app.signed_in("ada@acme.test").await;
    let csrf = browser.csrf().await;
    let script = "<script>alert(1)</script>";
    let created = browser.post("/keys", &[("csrf", &csrf), ("name", script), ("level", "0"), ("role", "member")]).await;
    assert_eq!(created.status(), 200);
    let csp = created.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = created.text().await.expect("body");
    assert!(!html.contains(script), "the name is escaped");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no inline script at all");
    assert!(html.contains("id=\"new-secret\">nxs_"), "the secret is shown once");
    let again = browser.page("/keys").await;
    assert!(!again.contains("id=\"new-secret\""), "and never again");

    let user = browser
        .post(
            "/users",
            &[
                ("csrf", &csrf),
                ("email", "eve@acme.test"),
                ("name", script),
                ("role", "member"),
                ("level", "0"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(user.status(), 200);
    assert!(!user.text().await.expect("body").contains(script));
    let bad = browser
        .post(
            "/users",
            &[("csrf", &csrf), ("email", "x@acme.test"), ("role", "member"), ("level", "0"), ("password", "short")],
        )
        .await;
    assert_eq!(bad.status(), 422, "a field error, as the API answers it");
    assert!(bad.text().await.expect("body").contains("password: needs at least 10 characters"));
}

#[tokio::test]
async fn guessing_passwords_is_throttled_per_account() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Member, 0).await;
    let browser = app.browser();
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(browser.sign_in("ada@acme.test", "guess guess guess").await.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[10], 429);
    let right = browser.sign_in("ada@acme.test", PASSWORD).await;
    assert_eq!(right.status(), 429, "the right password waits too");
    assert!(right.text().await.expect("body").contains("Too many attempts"));
}

#[tokio::test]
async fn a_persons_pages_count_against_the_same_rate_limits_as_an_api_key() {
    let limits = runtime::limits::LimitSettings {
        key_requests_per_minute: 5,
        tenant_requests_per_minute: 1000,
        tenant_chains_per_hour: 100,
    };
    let app = crate::support::spawn_with_limits(limits).await;
    app.user("acme", "ada@acme.test", domain::tenant::Role::Member, 0).await;
    app.user("acme", "bob@acme.test", domain::tenant::Role::Member, 0).await;
    let ada = app.signed_in("ada@acme.test").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(ada.get("/chains").await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(&codes[..5], [200; 5], "{codes:?}");
    let limited = statuses.pop().expect("the last");
    assert_eq!(limited.status(), 429, "{codes:?}");
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.expect("page").contains("rate limit exceeded"), "said on a page");
    let bob = app.signed_in("bob@acme.test").await;
    assert_eq!(bob.get("/chains").await.status(), 200, "per person: another person is not limited by ada");
}
