//! `/v1/jobs`, `/v1/schedules` and `/v1/equipment`: admins enqueue, cancel, retry, schedule and
//! run equipment; members read; bad input is a JSON error naming the field; another tenant's
//! job is 404.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, spawn_app};

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn jobs_and_schedules_are_managed_by_admins_and_read_by_members() {
    let app = spawn_app(Options::default()).await;
    let admin = app.key("demo", Role::Admin).await;
    let member = app.key("demo", Role::Member).await;
    let stranger = app.key("other", Role::Admin).await;

    let later = "2099-01-01T00:00:00Z";
    let body = json!({"kind": "equipment", "payload": {"equipment": "health_check"}, "run_at": later});
    let (status, refused) = send(app.post("/v1/jobs", &member).json(&body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, job) = send(app.post("/v1/jobs", &admin).json(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!((job["state"].as_str(), job["kind"].as_str()), (Some("pending"), Some("equipment")));
    let id = job["id"].as_str().expect("id").to_owned();
    let (status, listed) = send(app.get("/v1/jobs?state=pending", &member)).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{listed}");
    let (status, _) = send(app.get(&format!("/v1/jobs/{id}"), &stranger)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's job");

    let (status, cancelled) = send(app.post(&format!("/v1/jobs/{id}/cancel"), &admin)).await;
    assert_eq!((status, cancelled["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{cancelled}");
    let (status, again) = send(app.post(&format!("/v1/jobs/{id}/cancel"), &admin)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, retried) = send(app.post(&format!("/v1/jobs/{id}/retry"), &admin)).await;
    assert_eq!((status, retried["state"].as_str()), (StatusCode::OK, Some("pending")), "{retried}");

    for (body, field) in [
        (json!({"kind": "dance", "payload": {}}), "kind"),
        (json!({"kind": "equipment", "payload": {"equipment": "coffee"}}), "payload.equipment"),
        (json!({"kind": "agent_task", "payload": {"task": ""}}), "payload.task"),
        (json!({"kind": "equipment", "payload": {"equipment": "health_check"}, "run_at": "tomorrow"}), "run_at"),
    ] {
        let (status, error) = send(app.post("/v1/jobs", &admin).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let (status, error) = send(app.get("/v1/jobs?state=done", &member)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("state")));

    let schedule = json!({"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Rome",
        "kind": "equipment", "payload": {"equipment": "cost_report", "params": {"days": 1}}});
    let (status, created) = send(app.post("/v1/schedules", &admin).json(&schedule)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created["next_run_at"].as_str().is_some_and(|t| t.contains("T02:00:00") || t.contains("T01:00:00")),
        "{created}"
    );
    let (status, _) = send(app.post("/v1/schedules", &admin).json(&schedule)).await;
    assert_eq!(status, StatusCode::CONFLICT, "a taken name");
    let mut bad = schedule.clone();
    bad["name"] = json!("other");
    bad["cron"] = json!("every day");
    let (status, error) = send(app.post("/v1/schedules", &admin).json(&bad)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cron")), "{error}");
    let (status, one) = send(app.get("/v1/schedules/nightly", &member)).await;
    assert_eq!((status, one["cron"].as_str()), (StatusCode::OK, Some("0 3 * * *")));
    let (status, equipment) = send(app.get("/v1/equipment/cost_report", &member)).await;
    assert_eq!(status, StatusCode::OK, "{equipment}");
    assert_eq!(equipment["schedules"][0]["name"], "nightly", "the equipment shows its schedule");
    let (status, _) = send(app.client.delete(app.url("/v1/schedules/nightly")).bearer_auth(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(app.client.delete(app.url("/v1/schedules/nightly")).bearer_auth(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, listed) = send(app.get("/v1/schedules", &admin)).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
}

#[tokio::test]
async fn equipment_is_listed_run_and_switched_over_http() {
    let app = spawn_app(Options::default()).await;
    let admin = app.key("demo", Role::Admin).await;
    let member = app.key("demo", Role::Member).await;

    let (status, listed) = send(app.get("/v1/equipment", &member)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let names: Vec<&str> = listed.as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["health_check", "cost_report", "log_rotate", "backup", "ledger_checkpoint_export"]);

    let (status, _) = send(app.post("/v1/equipment/health_check/run", &member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, run) = send(app.post("/v1/equipment/health_check/run", &admin)).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!((run["name"].as_str(), run["ok"].as_bool()), (Some("health_check"), Some(true)), "{run}");
    assert!(run["ledger_index"].as_u64().is_some());
    let (status, run) =
        send(app.post("/v1/equipment/cost_report/run", &admin).json(&json!({"params": {"days": 3}}))).await;
    assert_eq!((status, run["result"]["days"].as_i64()), (StatusCode::OK, Some(3)), "{run}");
    let (status, error) =
        send(app.post("/v1/equipment/cost_report/run", &admin).json(&json!({"params": {"days": 0}}))).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("params.days")),
        "{error}"
    );
    let (status, _) = send(app.post("/v1/equipment/coffee/run", &admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, run) = send(app.post("/v1/equipment/ledger_checkpoint_export/run", &admin)).await;
    assert_eq!(status, StatusCode::OK, "{run}");

    let (status, off) = send(app.post("/v1/equipment/health_check/disable", &admin)).await;
    assert_eq!((status, off["enabled"].as_bool()), (StatusCode::OK, Some(false)), "{off}");
    let (status, error) = send(app.post("/v1/equipment/health_check/run", &admin)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, on) = send(app.post("/v1/equipment/health_check/enable", &admin)).await;
    assert_eq!((status, on["enabled"].as_bool()), (StatusCode::OK, Some(true)));

    // This server has no backup service (the binary provides one): said plainly, not a 5xx.
    let (status, error) = send(app.post("/v1/admin/backups", &admin)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("equipment_unavailable")),
        "{error}"
    );
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("not configured")), "{error}");
    let (status, _) = send(app.post("/v1/admin/backups", &member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, error) = send(app.post("/v1/admin/backups", &admin).json(&json!({"keep": 0}))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("keep")), "{error}");
    let (status, error) = send(app.post("/v1/admin/backups", &admin).json(&json!({"keep": "all"}))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("keep")), "{error}");
}
