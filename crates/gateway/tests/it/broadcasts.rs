//! `/v1/broadcasts`: users at level 3 or above and admins queue a message for the tenant's
//! reachable channel accounts and follow its progress; others get 403, bad input a JSON error
//! naming the field, another tenant's broadcast 404.

use domain::TenantId;
use domain::channel::{Admission, Channel};
use domain::tenant::{Role, UserLevel};
use reqwest::StatusCode;
use runtime::channels::Account;
use serde_json::{Value, json};

use crate::support::{Options, spawn_app};

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn broadcasts_are_queued_by_staff_and_reported() {
    let app = spawn_app(Options::default()).await;
    let demo = TenantId::parse("demo").expect("tenant");
    // Three people reached the Telegram bot privately; one is a group member only.
    for (id, private) in [("11", true), ("12", true), ("13", true), ("14", false)] {
        let account = Account {
            channel: Channel::Telegram,
            external_id: id.into(),
            display: format!("@user{id}"),
            private_chat: private.then(|| id.to_owned()),
        };
        app.runtime.channel_member(&demo, &account, Admission::Open).await.expect("admitted");
    }
    let staff = app.runtime.create_api_key(&demo, "staff", UserLevel::new(3).expect("level"), Role::Member).await;
    let staff = staff.expect("key").secret;
    let member = app.key("demo", Role::Member).await;

    let (status, created) =
        send(app.post("/v1/broadcasts", &staff).json(&json!({"text": "Maintenance at 22:00"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["channel"], "telegram");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["progress"]["total"], 3, "only accounts reachable privately: {created}");
    assert_eq!(created["progress"]["pending"], 3);
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("bc_"));

    let (status, read) = send(app.get(&format!("/v1/broadcasts/{id}"), &staff)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!((read["text"].as_str(), read["finished_at"].is_null()), (Some("Maintenance at 22:00"), true));
    let (status, _) = send(app.get(&format!("/v1/broadcasts/{id}"), &app.key("acme", Role::Admin).await)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's broadcast");

    let (status, refused) = send(app.post("/v1/broadcasts", &member).json(&json!({"text": "hi"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    for (body, field) in [
        (json!({"text": "   "}), "text"),
        (json!({"text": "hi", "channel": "fax"}), "channel"),
        (json!({"text": "hi", "channel": "discord"}), "channel"),
        (json!({"text": "hi", "min_level": 9}), "min_level"),
    ] {
        let (status, error) = send(app.post("/v1/broadcasts", &staff).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (status, error) = send(app.post("/v1/broadcasts", &staff).json(&json!({"text": "hi", "extra": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    // Queuing was sealed.
    let page = app.runtime.ledger().page(&demo, &domain::ports::RecordFilter::default(), 100).await.expect("ledger");
    assert!(page.iter().any(|r| r.payload.contains("broadcast.created") && r.payload.contains(&id)));
}
