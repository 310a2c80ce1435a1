//! Background jobs, schedules and equipment through the runtime on real SQLite, with the model
//! provider a fake OpenAI-compatible server: a schedule firing at a fixed clock (once, and once
//! for runs missed while down), a job whose worker died taken over exactly once, cancel and
//! retry, background spend stopped at the budget, and the router answering with equipment
//! (no model call) when it is sure and with a model when it is not.

use std::sync::Arc;
use std::time::Duration;

use domain::Timestamp;
use domain::job::{JobFilter, JobKind, JobState, MissedRuns};
use domain::ledger::EntryKind;
use domain::ports::RecordFilter;
use engine::machine::ModelTier;
use providers::pricing::PriceTable;
use runtime::agent::{AgentServices, Models};
use runtime::equipment::EquipmentError;
use runtime::jobs::{JobError, JobSettings, NewJob, NewSchedule};
use runtime::llm::{Routing, TierRouter};
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::{Value, json};
use store::test_support::{TestDatabase, sqlite};
use wiremock::MockServer;

use crate::agent::{ANSWER, demo, fake_model, models, provider, request};
use crate::support::signer;

/// A router that always gives the same answer: stands in for the in-process classifier, whose
/// own accuracy is measured by `cargo xtask bench models`.
struct Fixed(Routing);

impl TierRouter for Fixed {
    fn name(&self) -> &str {
        "classifier"
    }

    fn route(&self, _latest_user_turn: &str) -> Routing {
        self.0.clone()
    }
}

#[derive(Default)]
struct Setup {
    models: Option<Models>,
    router: Option<Routing>,
    budget_usd: Option<f64>,
    jobs: JobSettings,
    export_dir: Option<std::path::PathBuf>,
}

async fn start(db: &TestDatabase, setup: Setup) -> Runtime {
    let config = RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_secs(3600),
        default_budget_usd: setup.budget_usd,
        jobs: setup.jobs,
        equipment: runtime::equipment::EquipmentSettings { export_dir: setup.export_dir, data_dir: None },
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(Arc::clone(&db.store), signer(1), config, None);
    if let Some(models) = setup.models {
        let registry = tools::builtins(&tools::BuiltinSettings::default(), Arc::new(parts.knowledge()));
        parts.agent = Some(AgentServices {
            models,
            providers: Vec::new(),
            tools: registry,
            sandbox: tools::Sandbox::default(),
            workspace_root: std::env::temp_dir().join(format!("nexus-jobs-{}", domain::ChainId::generate())),
            prices: PriceTable::builtin(),
            approval_ttl: Duration::from_secs(3600),
        });
    }
    if let Some(routing) = setup.router {
        parts.router = Some(Arc::new(Fixed(routing)));
    }
    let runtime = Runtime::start(parts).await.expect("runtime");
    runtime.seed_demo().await.expect("seed");
    runtime
}

fn health_check() -> Value {
    json!({"equipment": "health_check"})
}

async fn records(runtime: &Runtime, kind: EntryKind) -> Vec<Value> {
    let filter = RecordFilter { kind: Some(kind), ..RecordFilter::default() };
    let page = runtime.store().records_page(&demo(), &filter, 1000).await.expect("records");
    // Oldest first.
    page.into_iter().rev().map(|r| serde_json::from_str(&r.payload).expect("json")).collect()
}

fn at(text: &str) -> Timestamp {
    Timestamp::from_micros(chrono::DateTime::parse_from_rfc3339(text).expect("time").timestamp_micros())
}

#[tokio::test]
async fn a_schedule_fires_once_per_planned_time_and_once_for_runs_missed_while_down() {
    let db = sqlite().await;
    let runtime = start(&db, Setup::default()).await;
    let tenant = demo();
    let new = |name: &str, missed| NewSchedule {
        name: name.into(),
        cron: "0 9 * * *".into(),
        timezone: Some("Europe/Rome".into()),
        kind: JobKind::Equipment,
        payload: health_check(),
        missed,
        enabled: true,
    };
    let schedule = runtime.create_schedule(&tenant, new("morning", MissedRuns::RunOnce), "test").await.expect("create");
    let planned = schedule.next_run_at.expect("a next run");
    assert!(planned > Timestamp::now());
    // Move the plan to a fixed clock: 09:00 in Rome on 2026-12-04 is 08:00 UTC.
    let fixed = at("2026-12-04T08:00:00Z");
    runtime.store().set_schedule_enabled(&tenant, &schedule.id, true, Some(fixed), fixed).await.expect("plan");

    assert!(runtime.sweep_jobs(at("2026-12-04T07:59:59Z")).await.expect("sweep").is_empty(), "not yet");
    let fired = runtime.sweep_jobs(fixed).await.expect("sweep");
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].run_at, fired[0].schedule_id.as_deref()), (fixed, Some(schedule.id.as_str())));
    assert!(runtime.sweep_jobs(fixed).await.expect("sweep again").is_empty(), "a planned run fires once");
    let moved = runtime.schedule(&tenant, "morning").await.expect("schedule");
    assert_eq!((moved.next_run_at, moved.last_run_at), (Some(at("2026-12-05T08:00:00Z")), Some(fixed)));

    // Down for three days: run_once fires one job for all the missed runs, skip fires none; both
    // plan the next run after now.
    let skipper = runtime.create_schedule(&tenant, new("skipper", MissedRuns::Skip), "test").await.expect("create");
    runtime.store().set_schedule_enabled(&tenant, &skipper.id, true, Some(fixed), fixed).await.expect("plan");
    let later = at("2026-12-08T10:00:00Z");
    let fired = runtime.sweep_jobs(later).await.expect("sweep");
    assert_eq!(fired.iter().map(|j| j.schedule_id.clone()).collect::<Vec<_>>(), [Some(schedule.id.clone())]);
    for name in ["morning", "skipper"] {
        let s = runtime.schedule(&tenant, name).await.expect("schedule");
        assert_eq!(s.next_run_at, Some(at("2026-12-09T08:00:00Z")), "{name}");
    }
    // Bad input names its field and stores nothing.
    let mut bad = new("bad", MissedRuns::Skip);
    bad.cron = "0 25 * * *".into();
    assert!(
        matches!(runtime.create_schedule(&tenant, bad, "t").await, Err(JobError::Invalid { field, .. }) if field == "cron")
    );
    let mut bad = new("bad", MissedRuns::Skip);
    bad.timezone = Some("Europe/Atlantis".into());
    assert!(
        matches!(runtime.create_schedule(&tenant, bad, "t").await, Err(JobError::Invalid { field, .. }) if field == "timezone")
    );
    let duplicate = runtime.create_schedule(&tenant, new("morning", MissedRuns::Skip), "t").await;
    assert!(matches!(duplicate, Err(JobError::Store(domain::ports::StoreError::Conflict { .. }))), "{duplicate:?}");
    assert_eq!(runtime.schedules(&tenant).await.expect("list").len(), 2);
    runtime.remove_schedule(&tenant, "skipper", "test").await.expect("remove");
    assert_eq!(runtime.schedules(&tenant).await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_exactly_once() {
    let db = sqlite().await;
    let jobs = JobSettings { lease: Duration::from_millis(600), ..JobSettings::default() };
    let runtime = start(&db, Setup { jobs, ..Setup::default() }).await;
    let tenant = demo();
    let job = runtime
        .enqueue_job(&tenant, NewJob { kind: JobKind::Equipment, payload: health_check(), run_at: None }, "test")
        .await
        .expect("enqueue");
    // A worker claims it, then its process dies: it never renews or finishes.
    let now = Timestamp::now();
    let claimed = runtime.store().claim_job("dead-process", now, now.plus(Duration::from_millis(600)), 2).await;
    assert_eq!(claimed.expect("claim").map(|j| j.id), Some(job.id.clone()));
    assert!(!runtime.work_one("survivor").await.expect("work"), "still held by its lease");
    tokio::time::sleep(Duration::from_millis(700)).await;
    runtime.sweep_jobs(Timestamp::now()).await.expect("sweep");
    assert!(runtime.work_one("survivor").await.expect("work"), "taken over");
    assert!(!runtime.work_one("survivor").await.expect("work"), "and only once");
    let done = runtime.job(&tenant, &job.id).await.expect("job");
    assert_eq!((done.state, done.attempts), (JobState::Completed, 2), "{done:?}");
    let result: Value = serde_json::from_str(done.result.as_deref().expect("result")).expect("json");
    assert_eq!(result["name"], "health_check");
    assert_eq!(records(&runtime, EntryKind::Equipment).await.len(), 1, "the equipment ran once");
    let events: Vec<String> = records(&runtime, EntryKind::Job)
        .await
        .iter()
        .filter(|p| p["job"] == job.id.as_str())
        .map(|p| p["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(events, ["enqueued", "lease_expired", "completed"]);
    // The dead process cannot finish it afterwards.
    let late = domain::job::JobOutcome::Failed { error: "x".into(), retry_at: None };
    assert!(
        !runtime.store().finish_job(&tenant, &job.id, "dead-process", &late, Timestamp::now()).await.expect("finish")
    );
}

#[tokio::test]
async fn jobs_are_cancelled_and_retried_as_state_changes() {
    let db = sqlite().await;
    let runtime = start(&db, Setup::default()).await;
    let tenant = demo();
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let job = runtime
        .enqueue_job(&tenant, NewJob { kind: JobKind::Equipment, payload: health_check(), run_at: Some(later) }, "t")
        .await
        .expect("enqueue");
    assert!(!runtime.work_one("w").await.expect("work"), "not due");
    let cancelled = runtime.cancel_job(&tenant, &job.id, "user:ada").await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(runtime.cancel_job(&tenant, &job.id, "x").await, Err(JobError::WrongState { .. })));
    let retried = runtime.retry_job(&tenant, &job.id, "user:ada").await.expect("retry");
    assert_eq!((retried.state, retried.attempts), (JobState::Pending, 0));
    assert!(runtime.work_one("w").await.expect("work"), "a retry runs now");
    assert_eq!(runtime.job(&tenant, &job.id).await.expect("job").state, JobState::Completed);
    assert!(matches!(runtime.retry_job(&tenant, &job.id, "x").await, Err(JobError::WrongState { .. })));
    assert!(matches!(runtime.cancel_job(&tenant, "job_nope", "x").await, Err(JobError::NoSuchJob { .. })));

    // A job whose equipment refuses its parameters fails for good, saying why.
    let bad = json!({"equipment": "cost_report", "params": {"days": 9999}});
    let job = runtime
        .enqueue_job(&tenant, NewJob { kind: JobKind::Equipment, payload: bad, run_at: None }, "t")
        .await
        .expect("enqueue");
    assert!(runtime.work_one("w").await.expect("work"));
    let failed = runtime.job(&tenant, &job.id).await.expect("job");
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.last_error.as_deref().is_some_and(|e| e.contains("days")), "{failed:?}");
    // A payload that does not fit its kind is refused when enqueued, naming the field.
    let refused = runtime
        .enqueue_job(&tenant, NewJob { kind: JobKind::WatcherPoll, payload: json!({}), run_at: None }, "t")
        .await;
    assert!(matches!(refused, Err(JobError::Invalid { field, .. }) if field == "payload.watcher"));
    let refused = runtime
        .enqueue_job(&tenant, NewJob { kind: JobKind::AgentTask, payload: json!({"task": " "}), run_at: None }, "t")
        .await;
    assert!(matches!(refused, Err(JobError::Invalid { field, .. }) if field == "payload.task"));
    let listed = runtime.jobs(&tenant, &JobFilter { states: vec![JobState::Failed], ..JobFilter::default() }, 10).await;
    assert_eq!(listed.expect("list").len(), 1);
}

#[tokio::test]
async fn background_agent_tasks_stop_at_the_budget() {
    let server = fake_model(&[(ANSWER, "Hello!")]).await;
    let db = sqlite().await;
    // One answer costs 120 × 0.15 + 30 × 0.6 per million tokens = $0.000036: the budget
    // allows the first and is spent after it.
    let setup = Setup { models: Some(models(provider(&server.uri()))), budget_usd: Some(0.00003), ..Setup::default() };
    let runtime = start(&db, setup).await;
    let tenant = demo();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let payload = json!({"task": "Hello! How are you?"});
        let job = runtime.enqueue_job(&tenant, NewJob { kind: JobKind::AgentTask, payload, run_at: None }, "t").await;
        ids.push(job.expect("enqueue").id);
    }
    while runtime.work_one("w").await.expect("work") {}
    let states: Vec<(JobState, Option<String>)> = {
        let mut out = Vec::new();
        for id in &ids {
            let job = runtime.job(&tenant, id).await.expect("job");
            out.push((job.state, job.last_error));
        }
        out
    };
    assert_eq!(states[0].0, JobState::Completed, "{states:?}");
    for (state, error) in &states[1..] {
        assert_eq!(*state, JobState::Failed, "{states:?}");
        assert!(error.as_deref().is_some_and(|e| e.contains("budget")), "{states:?}");
    }
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1, "no model call past the budget");
}

async fn tracked_server() -> MockServer {
    fake_model(&[(ANSWER, "Let me think about that.")]).await
}

#[tokio::test]
async fn equipment_answers_a_request_the_router_is_sure_of_with_no_model_call() {
    let server = tracked_server().await;
    let db = sqlite().await;
    let sure = Routing { tier: ModelTier::Trivial, equipment: Some("health_check".into()), confidence: Some(0.93) };
    let setup = Setup { models: Some(models(provider(&server.uri()))), router: Some(sure), ..Setup::default() };
    let runtime = start(&db, setup).await;
    let report = runtime.execute(request("run a health check", None)).await.expect("runs");
    assert_eq!(report.status, domain::agent::ChainStatus::Completed, "{report:?}");
    assert!(report.answer.as_deref().is_some_and(|a| a.starts_with("Healthy")), "{report:?}");
    assert!(report.notice.as_deref().is_some_and(|n| n.contains("health_check") && n.contains("no model")));
    assert!(server.received_requests().await.expect("recorded").is_empty(), "no model was asked");
    let sealed = records(&runtime, EntryKind::Equipment).await;
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0]["equipment"], "health_check");

    // Switched off, the same request goes to a model.
    runtime.set_equipment_enabled(&demo(), "health_check", false, "user:ada").await.expect("disable");
    let report = runtime.execute(request("run a health check", None)).await.expect("runs");
    assert_eq!(report.answer.as_deref(), Some("Let me think about that."), "{report:?}");
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn a_near_miss_goes_to_the_model_and_state_changing_equipment_never_runs_on_words_alone() {
    for routing in [
        Routing { tier: ModelTier::Trivial, equipment: Some("health_check".into()), confidence: Some(0.55) },
        Routing { tier: ModelTier::Trivial, equipment: Some("log_rotate".into()), confidence: Some(0.99) },
    ] {
        let server = tracked_server().await;
        let db = sqlite().await;
        let setup =
            Setup { models: Some(models(provider(&server.uri()))), router: Some(routing.clone()), ..Setup::default() };
        let runtime = start(&db, setup).await;
        let report = runtime.execute(request("rotate the logs please", None)).await.expect("runs");
        assert_eq!(report.answer.as_deref(), Some("Let me think about that."), "{routing:?}: {report:?}");
        assert!(!server.received_requests().await.expect("recorded").is_empty(), "{routing:?}");
        assert!(records(&runtime, EntryKind::Equipment).await.is_empty(), "{routing:?}");
    }
}

#[tokio::test]
async fn equipment_runs_are_checked_sealed_and_switchable() {
    let server = fake_model(&[(ANSWER, "Hi!")]).await;
    let db = sqlite().await;
    let export = std::env::temp_dir().join(format!("nexus-export-{}", domain::ChainId::generate()));
    let setup =
        Setup { models: Some(models(provider(&server.uri()))), export_dir: Some(export.clone()), ..Setup::default() };
    let runtime = start(&db, setup).await;
    let tenant = demo();
    runtime.execute(request("Hello! How are you?", None)).await.expect("a run that spends");

    let report =
        runtime.run_equipment(&tenant, "cost_report", &json!({"days": 30}), "user:ada", None).await.expect("run");
    assert!(report.ok && report.result["calls"] == 1, "{report:?}");
    assert_eq!(report.result["by_model"][0]["name"], "fake/gpt-4o-mini");
    assert!(report.summary.contains("1 model call"), "{}", report.summary);

    let bad = runtime.run_equipment(&tenant, "cost_report", &json!({"weeks": 2}), "u", None).await;
    assert!(matches!(bad, Err(EquipmentError::InvalidParam { ref param, .. }) if param == "weeks"), "{bad:?}");
    let bad = runtime.run_equipment(&tenant, "cost_report", &json!({"days": "ten"}), "u", None).await;
    assert!(matches!(bad, Err(EquipmentError::InvalidParam { ref param, .. }) if param == "days"), "{bad:?}");
    assert!(matches!(
        runtime.run_equipment(&tenant, "coffee", &Value::Null, "u", None).await,
        Err(EquipmentError::Unknown { .. })
    ));
    assert!(
        matches!(
            runtime.run_equipment(&tenant, "backup", &Value::Null, "u", None).await,
            Err(EquipmentError::Unavailable { ref reason, .. }) if reason.contains("not configured")
        ),
        "a process without backups says so"
    );

    runtime.set_equipment_enabled(&tenant, "cost_report", false, "user:ada").await.expect("disable");
    assert!(matches!(
        runtime.run_equipment(&tenant, "cost_report", &Value::Null, "u", None).await,
        Err(EquipmentError::Disabled { .. })
    ));
    let listed = runtime.equipment(&tenant).await.expect("list");
    let cost = listed.iter().find(|e| e.spec.name == "cost_report").expect("listed");
    assert!(!cost.enabled);
    let exporter = listed.iter().find(|e| e.spec.name == "ledger_checkpoint_export").expect("listed");
    assert!(exporter.unavailable.is_none(), "configured here");

    // Checkpoints are written for off-site keeping.
    runtime.ledger().checkpoint(&tenant).await.expect("checkpoint");
    let export_run =
        runtime.run_equipment(&tenant, "ledger_checkpoint_export", &Value::Null, "u", None).await.expect("export");
    let written = export_run.result["written"].as_array().cloned().unwrap_or_default();
    assert_eq!(written.len(), 1, "{export_run:?}");
    let file = written[0]["file"].as_str().expect("file");
    assert!(std::fs::read_to_string(file).expect("note").starts_with("test.nexus/ledger/demo"));
    let _ = std::fs::remove_dir_all(&export);
    assert_eq!(records(&runtime, EntryKind::Equipment).await.len(), 2, "each completed run is sealed");
}

#[tokio::test]
async fn a_scheduled_broadcast_queues_a_message_for_each_reachable_account() {
    use domain::channel::{Admission, Channel};
    use runtime::channels::{Account, Admitted};

    let db = sqlite().await;
    let runtime = start(&db, Setup::default()).await;
    let tenant = demo();
    // Three strangers let in at level 0 through their private chats; one only seen in a group.
    for n in 0..4 {
        let account = Account {
            channel: Channel::Telegram,
            external_id: format!("{}", 1000 + n),
            display: format!("person {n}"),
            private_chat: (n < 3).then(|| format!("{}", 1000 + n)),
        };
        let admitted = runtime.channel_member(&tenant, &account, Admission::Open).await.expect("admitted");
        assert!(matches!(admitted, Admitted::Member { new: true, .. }));
    }

    let bad = [
        (json!({"text": "  "}), "payload.text"),
        (json!({"text": "hi", "channel": "discord"}), "payload.channel"),
        (json!({"text": "hi", "channel": "fax"}), "payload.channel"),
        (json!({"text": "hi", "min_level": 9}), "payload.min_level"),
        (json!({"text": "hi", "to": "everyone"}), "payload.to"),
    ];
    for (payload, field) in bad {
        let new = NewJob { kind: JobKind::Broadcast, payload: payload.clone(), run_at: None };
        match runtime.enqueue_job(&tenant, new, "test").await {
            Err(JobError::Invalid { field: named, .. }) => assert_eq!(named, field, "{payload}"),
            other => panic!("{payload} should be refused naming {field}: {other:?}"),
        }
    }

    let schedule = runtime
        .create_schedule(
            &tenant,
            NewSchedule {
                name: "monday-news".into(),
                cron: "0 9 * * 1".into(),
                timezone: Some("Europe/Rome".into()),
                kind: JobKind::Broadcast,
                payload: json!({"text": "**Good morning**, the week's news is out."}),
                missed: MissedRuns::Skip,
                enabled: true,
            },
            "user:admin",
        )
        .await
        .expect("schedule");
    let fixed = at("2026-11-30T08:00:00Z"); // a Monday, 09:00 in Rome, already past
    runtime.store().set_schedule_enabled(&tenant, &schedule.id, true, Some(fixed), fixed).await.expect("plan");
    let fired = runtime.sweep_jobs(fixed).await.expect("sweep");
    assert_eq!(fired.len(), 1);
    assert!(runtime.work_one("worker-1").await.expect("work"));

    let job = runtime.job(&tenant, &fired[0].id).await.expect("job");
    assert_eq!(job.state, JobState::Completed, "{:?}", job.last_error);
    let result: Value = serde_json::from_str(job.result.as_deref().expect("result")).expect("json");
    assert_eq!(result["recipients"], 3, "only accounts reachable privately: {result}");
    let id = result["broadcast_id"].as_str().expect("broadcast id");
    let (broadcast, progress) = runtime.broadcast(&tenant, id).await.expect("read").expect("stored");
    assert_eq!((broadcast.body.as_str(), progress.pending), ("**Good morning**, the week's news is out.", 3));
    assert_eq!(broadcast.created_by, format!("schedule:{}", schedule.id), "the schedule sent it");
    let created = records(&runtime, EntryKind::AdminChange).await;
    assert!(created.iter().any(|p| p["action"] == "broadcast.created" && p["broadcast_id"] == id));
}
