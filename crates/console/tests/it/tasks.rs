//! The Tasks page: admins run equipment through the job queue, cancel and retry jobs, add and
//! remove schedules and switch equipment; members only read; each mistake is named.

use domain::TenantId;
use domain::job::{JobFilter, JobState};
use domain::tenant::Role;

use crate::support::spawn;

#[tokio::test]
async fn admins_queue_cancel_retry_and_schedule_work_and_members_only_read() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    app.user("acme", "mo@acme.test", Role::Member, 1).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let ada = app.signed_in("ada@acme.test").await;
    let csrf = ada.csrf().await;

    let page = ada.page("/tasks").await;
    for name in ["health_check", "cost_report", "log_rotate", "ledger_checkpoint_export"] {
        assert!(page.contains(&format!("data-equipment=\"{name}\"")), "{name} listed");
    }
    assert!(page.contains("id=\"no-jobs\"") && page.contains("id=\"no-schedules\""));

    // Run now: a job in the queue, worked by a worker, its summary shown.
    let queued = ada
        .post(
            "/tasks/jobs",
            &[("csrf", &csrf), ("kind", "equipment"), ("equipment", "cost_report"), ("params", "{\"days\": 7}")],
        )
        .await;
    assert_eq!(queued.status(), 303);
    let jobs = app.runtime.jobs(&tenant, &JobFilter::default(), 10).await.expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Pending);
    assert!(ada.page("/tasks?state=pending").await.contains(&format!("data-job=\"{}\"", jobs[0].id)));
    assert!(app.runtime.work_one("console-test").await.expect("work"));
    let done = ada.page("/tasks?state=completed").await;
    assert!(done.contains(&format!("data-job=\"{}\"", jobs[0].id)) && done.contains("badge completed"), "{done}");
    assert!(done.contains("cost_report {&#34;days&#34;:7}"), "what the job does, escaped: {done}");
    assert!(!ada.page("/tasks?state=failed").await.contains(&jobs[0].id), "the filter keeps to its state");

    // Cancel a pending job, then retry it.
    ada.post("/tasks/jobs", &[("csrf", &csrf), ("kind", "equipment"), ("equipment", "health_check")]).await;
    let pending = app
        .runtime
        .jobs(&tenant, &JobFilter { states: vec![JobState::Pending], ..JobFilter::default() }, 10)
        .await
        .expect("jobs");
    let id = pending[0].id.clone();
    assert_eq!(ada.post(&format!("/tasks/jobs/{id}/cancel"), &[("csrf", &csrf)]).await.status(), 303);
    assert_eq!(app.runtime.job(&tenant, &id).await.expect("job").state, JobState::Cancelled);
    assert!(ada.page("/tasks").await.contains(&format!("action=\"/tasks/jobs/{id}/retry\"")));
    assert_eq!(ada.post(&format!("/tasks/jobs/{id}/retry"), &[("csrf", &csrf)]).await.status(), 303);
    assert_eq!(app.runtime.job(&tenant, &id).await.expect("job").state, JobState::Pending);
    assert_eq!(
        ada.post(&format!("/tasks/jobs/{id}/retry"), &[("csrf", &csrf)]).await.status(),
        409,
        "a pending job is not retried"
    );

    // Mistakes are named and change nothing.
    let bad = [
        (vec![("kind", "equipment"), ("equipment", "coffee_machine")], "payload.equipment"),
        (vec![("kind", "equipment"), ("equipment", "cost_report"), ("params", "{days")], "params"),
        (vec![("kind", "agent_task"), ("text", "  ")], "payload.task"),
        (vec![("kind", "dance")], "kind"),
    ];
    for (fields, named) in bad {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let response = ada.post("/tasks/jobs", &form).await;
        assert_eq!(response.status(), 422, "{fields:?}");
        assert!(response.text().await.expect("body").contains(named), "{fields:?} names {named}");
    }
    assert_eq!(app.runtime.jobs(&tenant, &JobFilter::default(), 10).await.expect("jobs").len(), 2);

    // A schedule: a bad expression is refused, a good one shows its next run, then goes.
    let schedule = |cron: &'static str| {
        vec![
            ("name", "nightly health"),
            ("cron", cron),
            ("timezone", "Europe/Rome"),
            ("missed", "skip"),
            ("kind", "equipment"),
            ("equipment", "health_check"),
        ]
    };
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend(schedule("61 3 * * *"));
    let refused = ada.post("/tasks/schedules", &form).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("body").contains("cron"));
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend(schedule("0 3 * * *"));
    assert_eq!(ada.post("/tasks/schedules", &form).await.status(), 303);
    let stored = app.runtime.schedules(&tenant).await.expect("schedules");
    assert_eq!(stored.len(), 1);
    let page = ada.page("/tasks").await;
    assert!(page.contains("nightly health") && page.contains("Europe/Rome · skip"), "{page}");
    let next = stored[0].next_run_at.expect("next run");
    let shown = chrono::DateTime::from_timestamp(next.as_micros() / 1_000_000, 0)
        .expect("time")
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    assert!(page.contains(&shown), "the next planned run is shown: {shown}");
    assert!(page.contains("health_check</code></td><td>") || page.contains("nightly health"));

    // Switch a piece of equipment off: it shows off and can no longer run.
    assert_eq!(ada.post("/tasks/equipment/log_rotate/switch", &[("csrf", &csrf), ("to", "off")]).await.status(), 303);
    let page = ada.page("/tasks").await;
    assert!(
        page.contains("action=\"/tasks/equipment/log_rotate/switch\"><input type=\"hidden\" name=\"csrf\" value=\"")
            && page.contains("switch-on")
    );
    assert_eq!(ada.post("/tasks/equipment/kettle/switch", &[("csrf", &csrf), ("to", "off")]).await.status(), 404);

    // A member reads the page but changes nothing.
    let mo = app.signed_in("mo@acme.test").await;
    let page = mo.page("/tasks").await;
    assert!(page.contains("nightly health") && !page.contains("id=\"work-form\"") && !page.contains("/cancel\""));
    let mo_csrf = mo.csrf().await;
    let refused =
        mo.post("/tasks/jobs", &[("csrf", &mo_csrf), ("kind", "equipment"), ("equipment", "health_check")]).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        mo.post(&format!("/tasks/schedules/{}/remove", stored[0].id), &[("csrf", &mo_csrf)]).await.status(),
        403
    );

    // Without the page's token nothing happens.
    assert_eq!(
        ada.post("/tasks/jobs", &[("csrf", "forged"), ("kind", "equipment"), ("equipment", "health_check")])
            .await
            .status(),
        403
    );

    assert_eq!(ada.post(&format!("/tasks/schedules/{}/remove", stored[0].id), &[("csrf", &csrf)]).await.status(), 303);
    assert!(app.runtime.schedules(&tenant).await.expect("schedules").is_empty());
    let italian = ada.client.get(ada.url("/tasks")).header("accept-language", "it").send().await.expect("GET");
    assert!(italian.status().is_success());
    assert!(italian.text().await.expect("body").contains("Pianificazioni"), "the page speaks Italian too");
}
