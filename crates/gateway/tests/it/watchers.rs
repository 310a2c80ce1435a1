//! Watchers over HTTP: an admin creates one (its schedule made with it), members read but may
//! not create, remove or poll; bad fields are refused naming the field; a webhook's URL is
//! shown masked; an unreachable source answers 424 with the reason kept on the watcher.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::support::{Options, spawn_app_with};

#[tokio::test]
async fn watchers_are_managed_by_admins_and_refuse_bad_fields() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let admin = app.key("acme", Role::Admin).await;
    let member = app.key("acme", Role::Member).await;
    let body = json!({"name": "news", "kind": "feed", "url": "http://10.9.8.7/feed.xml",
                      "post_to": {"type": "webhook", "url": "https://hooks.example/services/T0/B0/secret?token=x"}});

    let refused = app.post("/v1/watchers", &member).json(&body).send().await.expect("send");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let created = app.post("/v1/watchers", &admin).json(&body).send().await.expect("send");
    assert_eq!(created.status(), StatusCode::CREATED);
    let watcher: Value = created.json().await.expect("json");
    assert_eq!(watcher["post_to"], json!({"type": "webhook", "url": "https://hooks.example/…"}), "masked");
    assert!(watcher["schedule_id"].as_str().is_some_and(|s| s.starts_with("sch_")));
    let again = app.post("/v1/watchers", &admin).json(&body).send().await.expect("send");
    assert_eq!(again.status(), StatusCode::CONFLICT);

    for (patch, field) in [
        (json!({"kind": "podcast"}), "kind"),
        (json!({"url": "file:///etc/passwd"}), "url"),
        (json!({"post_to": {"type": "telegram", "chat_id": "news"}}), "post_to.chat_id"),
        (json!({"schedule": "sometimes"}), "cron"),
        (json!({"max_posts": 500}), "max_posts"),
    ] {
        let mut bad = body.clone();
        bad["name"] = json!(format!("bad-{field}"));
        for (k, v) in patch.as_object().expect("object") {
            bad[k] = v.clone();
        }
        let response = app.post("/v1/watchers", &admin).json(&bad).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{error}");
    }

    let listed: Value = app.get("/v1/watchers", &member).send().await.expect("send").json().await.expect("json");
    assert_eq!(listed["watchers"].as_array().map(Vec::len), Some(1));
    let member_poll = app.post("/v1/watchers/news/poll", &member).send().await.expect("send");
    assert_eq!(member_poll.status(), StatusCode::FORBIDDEN);
    let poll = app.post("/v1/watchers/news/poll", &admin).send().await.expect("send");
    assert_eq!(poll.status(), StatusCode::FAILED_DEPENDENCY);
    let error: Value = poll.json().await.expect("json");
    assert_eq!(error["error"]["code"], "source_failed");
    let read: Value = app.get("/v1/watchers/news", &member).send().await.expect("send").json().await.expect("json");
    assert!(read["last_error"].as_str().is_some_and(|e| e.contains("blocked")), "{read}");
    assert_eq!(read["items"], json!([]));

    let other = app.key("other", Role::Admin).await;
    assert_eq!(app.get("/v1/watchers/news", &other).send().await.expect("send").status(), StatusCode::NOT_FOUND);
    let gone = app.client.delete(app.url("/v1/watchers/news")).bearer_auth(&admin).send().await.expect("send");
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/watchers/news", &admin).send().await.expect("send").status(), StatusCode::NOT_FOUND);
}
