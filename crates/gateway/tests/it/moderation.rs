//! `/v1/moderation/*`: staff read the cases moderation opened (the review queue by status),
//! one case by id, and what verdicts taught a community's categories, within the bound;
//! members get 403, another tenant's case 404, a bad status a field error. A model that is
//! down sends the message to staff, never clears it.

use domain::TenantId;
use domain::moderation::{Flag, Verdict};
use domain::tenant::{Role, UserLevel};
use reqwest::StatusCode;
use runtime::moderation::{Flagged, Judged, ModerationPolicy};
use serde_json::Value;

use crate::support::{Options, spawn_app};

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn staff_read_the_moderation_record_and_what_verdicts_taught() {
    let app = spawn_app(Options::default()).await;
    let demo = TenantId::parse("demo").expect("tenant");
    // The model answers prose, not the decision's JSON: "unsure", so the case waits for staff.
    let policy = ModerationPolicy { model: "gpt-4o-mini".into(), ..ModerationPolicy::default() };
    let flagged = Flagged {
        tenant: demo.clone(),
        channel: "discord".into(),
        scope: "9001".into(),
        place: "42".into(),
        message_id: "777".into(),
        author_id: "555".into(),
        author: "spammer".into(),
        text: "free nitro at discord.gift/xyz".into(),
        flags: vec![Flag { rule: "word", detail: "free nitro".into() }],
    };
    let Judged::Case(case) = app.runtime.moderate(&policy, flagged).await.expect("moderated") else {
        panic!("an unsure decision opens a case");
    };
    assert_eq!(case.status.as_str(), "review");

    let staff = app.runtime.create_api_key(&demo, "mods", UserLevel::new(3).expect("level"), Role::Member).await;
    let staff = staff.expect("key").secret;
    let member = app.key("demo", Role::Member).await;

    let (status, queue) = send(app.get("/v1/moderation/cases?status=review", &staff)).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let queue = queue.as_array().cloned().unwrap_or_default();
    assert_eq!(queue.len(), 1);
    assert_eq!((queue[0]["id"].as_str(), queue[0]["scope"].as_str()), (Some(case.id.as_str()), Some("9001")));
    assert_eq!(queue[0]["message_sha256"].as_str().map(str::len), Some(64), "the digest, not the message");
    assert_eq!(queue[0]["flags"][0], "word");
    let (status, acted) = send(app.get("/v1/moderation/cases?status=acted", &staff)).await;
    assert_eq!((status, acted.as_array().map(Vec::len)), (StatusCode::OK, Some(0)));

    let (status, one) = send(app.get(&format!("/v1/moderation/cases/{}", case.id), &staff)).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["status"], "review");

    // A staff verdict (here through the runtime, as a channel's button does) is what teaches.
    let principal = app.runtime.auth().authenticate(&staff).await.expect("staff");
    app.runtime.review_case(&principal, 3, &case.id, Verdict::Overturn).await.expect("overturned");
    let (_, one) = send(app.get(&format!("/v1/moderation/cases/{}", case.id), &staff)).await;
    assert_eq!(one["status"], "overturned");
    assert!(one["reviewed_by"].as_str().is_some_and(|by| by.starts_with("key:")), "{one}");
    let (status, learned) = send(app.get("/v1/moderation/strictness?scope=9001", &staff)).await;
    assert_eq!(status, StatusCode::OK, "{learned}");
    assert_eq!(learned["bound"], 0.2);
    let categories = learned["categories"].as_array().cloned().unwrap_or_default();
    assert_eq!(categories.len(), 1, "{learned}");
    assert!(categories[0]["adjustment"].as_f64().is_some_and(|a| a > 0.0 && a <= 0.2), "{learned}");
    let (_, other_scope) = send(app.get("/v1/moderation/strictness?scope=1234", &staff)).await;
    assert_eq!(other_scope["categories"].as_array().map(Vec::len), Some(0), "per community");

    // The model down (a provider this server does not have): staff decide, nothing is done.
    let down = ModerationPolicy { model: "mistral/mistral-small-latest".into(), ..ModerationPolicy::default() };
    let flagged = Flagged {
        tenant: demo.clone(),
        channel: "discord".into(),
        scope: "9001".into(),
        place: "42".into(),
        message_id: "778".into(),
        author_id: "556".into(),
        author: "another".into(),
        text: "free nitro again".into(),
        flags: vec![Flag { rule: "word", detail: "free nitro".into() }],
    };
    let Judged::Case(held) = app.runtime.moderate(&down, flagged).await.expect("moderated") else {
        panic!("a model that cannot be asked never clears a message");
    };
    assert_eq!((held.status.as_str(), held.decided_by.as_str()), ("review", "prescreen"));
    assert!(held.reason.contains("could not be asked"), "{}", held.reason);

    let (status, _) = send(app.get("/v1/moderation/cases", &member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members are not staff");
    let (status, _) =
        send(app.get(&format!("/v1/moderation/cases/{}", case.id), &app.key("acme", Role::Admin).await)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's case");
    let (status, error) = send(app.get("/v1/moderation/cases?status=angry", &staff)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("status")));
    let (status, error) = send(app.get("/v1/moderation/cases?limit=0", &staff)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));
    let (status, _) = send(app.get("/v1/moderation/strictness", &staff)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the community is required");
}
