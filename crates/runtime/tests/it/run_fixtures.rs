//! Stored runs written by every released format still run to their end, and a stored run that
//! cannot be read is an error naming its chain, never a panic, that holds up no other run. `tests/fixtures/runs/`
//! holds one stored run per phase of the agent loop (one of them waiting for an approval) for
//! every version of the stored format; each is loaded into a real SQLite store and resumed
//! through the runtime. The current version's fixtures must be exactly what this build writes:
//! after a deliberate change to the stored layout, regenerate them with
//! `NEXUS_WRITE_RUN_FIXTURES=1 cargo nextest run -p runtime run_fixtures` — and when runs stored
//! by the previous build can no longer be read as they are, add a version instead.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::agent::{ApprovalStatus, ChainStatus};
use domain::persona::{PersonaContract, RiskLevel, TrustTier};
use domain::ports::{Approval, StoredRun};
use domain::{ChainId, PersonaId, Timestamp};
use engine::gates::DriftHistory;
use engine::machine::{Input, Run, RunContext};
use serde_json::{Value, json};
use store::test_support::sqlite;
use tools::Tool;

use crate::agent::{Notify, approval_agent, demo, notify_server};

/// The stored format this build writes.
const CURRENT_VERSION: u64 = engine::machine::stored::VERSION;
/// Every phase of the agent loop, in the order the fixture run passes through them.
const PHASES: [&str; 12] = [
    "new",
    "planning",
    "retrieving",
    "activating",
    "declaring",
    "gating",
    "sealing_intent",
    "awaiting_approval",
    "executing",
    "sealing_result",
    "answering",
    "done",
];
const CHAIN: &str = "fixture-chain";
const TASK: &str = "Tell the team the release is at 5";
const AT: i64 = 1_750_000_000_000_000;
/// 2100-01-01: the fixture's approval never expires.
const NEVER: i64 = 4_102_444_800_000_000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs")
}

fn announcer() -> PersonaContract {
    PersonaContract {
        id: PersonaId::parse("persona-announcer").expect("id"),
        tenant_id: demo(),
        name: "announcer".into(),
        description: "Posts announcements".into(),
        allowed_tools: vec!["notify_team".into()],
        resource_scopes: vec!["*".into()],
        intent_patterns: vec!["announce".into()],
        max_ttl_seconds: 120,
        risk_tolerance: RiskLevel::High,
        trust_tier: TrustTier::ColdStart,
        intent_threshold: 0.75,
        on_low_intent: domain::persona::LowIntent::Approve,
        version: 1,
        is_active: true,
        created_at: Timestamp::from_micros(AT),
    }
}

fn model_reply(text: &str) -> Input {
    Input::ModelReplied {
        text: text.into(),
        input_tokens: 120,
        output_tokens: 30,
        model: "gpt-4o-mini".into(),
        cost_usd: 0.000_036,
    }
}

/// The stored state as this build writes it.
fn encode(run: &Run) -> Value {
    let text = engine::machine::stored::encode(run, Some("alice")).expect("encode");
    serde_json::from_str(&text).expect("JSON")
}

/// The context stored beside the state (a fixture of version 4 on), as JSON text.
fn context_of(fixture: &Value) -> Option<String> {
    fixture.get("context").map(Value::to_string)
}

/// The fixture run's stored rows at every phase, as this build writes them.
fn current_fixtures() -> Vec<(&'static str, Value)> {
    let tool = Notify { calls: Arc::new(Mutex::new(Vec::new())) }.definition();
    let context = RunContext {
        personas: vec![announcer()],
        tools: vec![tool],
        persona_override: None,
        qa_spec: None,
        max_steps: None,
    };
    let mut run = Run::new(ChainId::parse(CHAIN).expect("id"), TASK, context);
    let inputs = [
        Input::Start,
        model_reply(
            r#"[{"action": "announce", "tool": "notify_team", "params": {"message": "release at 5"}, "persona": "announcer"}]"#,
        ),
        Input::Retrieved { confidence: 0.9, context: "[notes] the release moved to 5 pm".into(), untrusted: None },
        Input::PersonaActivated { drift: DriftHistory { counts: vec![("4f1c".into(), 3)] } },
        model_reply(r#"{"planned_action": "announce", "tool_params": {"message": "release at 5"}}"#),
        Input::GatesMeasured {
            since_activation: Duration::from_millis(3),
            intent_similarity: None,
            now: Timestamp::from_micros(AT + 1_000),
        },
        Input::Sealed { fingerprint: "a1".repeat(32), index: 3 },
        Input::ApprovalDecided { approved: true, by: "bob".into(), note: "go".into() },
        Input::ToolFinished { result: Ok(json!({"posted": true})) },
        Input::Sealed { fingerprint: "b2".repeat(32), index: 5 },
        model_reply("The team was told."),
    ];
    let mut fixtures = Vec::new();
    let mut inputs = inputs.into_iter();
    for phase in PHASES {
        let approval = (phase == "awaiting_approval").then(|| {
            let step = run.awaiting_approval().expect("the fixture run waits for an approval here");
            let s = &run.steps[step];
            json!({
                "id": "ap_fixture", "step": step, "tool": s.tool, "params": s.params.to_string(),
                "call_digest": engine::machine::call_digest(&run.chain_id, step, &s.tool, &s.params),
                "reason": s.error.clone().unwrap_or_default(), "requested_by": "alice", "status": "pending",
                "created_at": AT, "expires_at": NEVER,
            })
        });
        fixtures.push((
            phase,
            json!({
                "tenant": "demo", "chain_id": CHAIN, "task": TASK, "status": run.status.as_str(),
                "state": encode(&run), "approval": approval,
                "context": serde_json::from_str::<Value>(
                    &engine::machine::stored::encode_context(&run.context).expect("context"),
                ).expect("JSON"),
            }),
        ));
        if let Some(input) = inputs.next() {
            run.advance(input);
        }
    }
    assert!(run.is_finished(), "the fixture run ends after its last phase");
    fixtures
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_current_version_fixtures_are_what_this_build_writes() {
    let dir = fixtures_dir().join(format!("v{CURRENT_VERSION}"));
    let write = std::env::var("NEXUS_WRITE_RUN_FIXTURES").is_ok_and(|v| v == "1");
    if write {
        std::fs::create_dir_all(&dir).expect("fixture directory");
    }
    for (phase, fixture) in current_fixtures() {
        let path = dir.join(format!("{phase}.json"));
        if write {
            let text = serde_json::to_string_pretty(&fixture).expect("json") + "\n";
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        assert_eq!(
            read(&path),
            fixture,
            "{} is not what this build stores; if the change is deliberate and older builds' runs \
             still load, regenerate with NEXUS_WRITE_RUN_FIXTURES=1, else add a stored-format version",
            path.display()
        );
    }
}

/// Every version directory and its fixtures, in order.
fn all_fixtures() -> Vec<(String, String, Value)> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures/runs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    let mut out = Vec::new();
    for version in versions {
        let name = version.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        for phase in PHASES {
            let path = version.join(format!("{phase}.json"));
            assert!(path.exists(), "{} is missing: every version keeps a stored run of every phase", path.display());
            out.push((name.clone(), phase.to_owned(), read(&path)));
        }
    }
    out
}

#[test]
fn every_version_of_a_phase_reads_as_the_same_run() {
    let current = format!("v{CURRENT_VERSION}");
    let fixtures = all_fixtures();
    for (version, phase, fixture) in &fixtures {
        let decode = |fixture: &Value| {
            engine::machine::stored::decode(&fixture["state"].to_string(), context_of(fixture).as_deref())
                .unwrap_or_else(|e| panic!("{version}/{phase}: {e}"))
        };
        let (_, _, now) =
            fixtures.iter().find(|(v, p, _)| *v == current && p == phase).expect("the current version's fixture");
        let (old, new) = (decode(fixture), decode(now));
        assert_eq!(old.version, version.trim_start_matches('v').parse::<u64>().expect("vN"), "{version}/{phase}");
        let (old_run, new_run) = if old.version < 3 {
            (without_provenance(&old.run), without_provenance(&new.run))
        } else {
            (serde_json::to_value(&old.run).expect("json"), serde_json::to_value(&new.run).expect("json"))
        };
        assert_eq!((old_run, old.user), (new_run, new.user), "{version}/{phase} reads as {current}/{phase}");
        assert_eq!(old.run.context, new.run.context, "{version}/{phase}: the context reads as {current}/{phase}'s");
    }
}

/// A run without what version 3 added: its provenance, and the intent seal's `tainted` (a run
/// stored before has none, and is judged from what it reads after the upgrade).
fn without_provenance(run: &Run) -> Value {
    let mut value = serde_json::to_value(run).expect("json");
    if let Some(object) = value.as_object_mut() {
        object.remove("provenance");
    }
    if let Some(payload) = value.pointer_mut("/phase/payload").and_then(Value::as_object_mut) {
        payload.remove("tainted");
    }
    value
}

#[tokio::test]
async fn every_fixture_of_every_version_loads_and_runs_to_the_end() {
    let server = notify_server().await;
    let fixtures = all_fixtures();
    assert!(fixtures.iter().any(|(v, _, _)| *v == format!("v{CURRENT_VERSION}")), "the current version has fixtures");
    for (version, phase, fixture) in fixtures {
        let what = format!("{version}/{phase}");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let db = sqlite().await;
        let agent = approval_agent(Arc::clone(&db.store), &server, Arc::clone(&calls)).await;
        let store = agent.runtime.store();
        let chain = ChainId::parse(fixture["chain_id"].as_str().expect("chain_id")).expect("chain id");
        save_fixture_run(store, &fixture).await;
        if let Some(a) = fixture["approval"].as_object() {
            let text = |k: &str| a[k].as_str().unwrap_or_else(|| panic!("{what}: approval {k}")).to_owned();
            let micros = |k: &str| Timestamp::from_micros(a[k].as_i64().unwrap_or_else(|| panic!("{what}: {k}")));
            store
                .insert_approval(&Approval {
                    id: text("id"),
                    tenant_id: demo(),
                    chain_id: chain.clone(),
                    step: u32::try_from(a["step"].as_u64().expect("step")).expect("step"),
                    tool: text("tool"),
                    params: text("params"),
                    call_digest: text("call_digest"),
                    reason: text("reason"),
                    requested_by: a["requested_by"].as_str().map(str::to_owned),
                    status: text("status").parse().expect("an approval status"),
                    decided_by: None,
                    decided_at: None,
                    note: None,
                    created_at: micros("created_at"),
                    expires_at: micros("expires_at"),
                })
                .await
                .expect("approval");
        }

        agent.runtime.resume_unfinished().await.unwrap_or_else(|e| panic!("{what}: resume: {e}"));
        let mut report = agent.runtime.run_report(&demo(), &chain).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        if report.status == ChainStatus::AwaitingApproval {
            let pending = agent.runtime.approvals(&demo(), Some(ApprovalStatus::Pending)).await.expect("approvals");
            let [approval] = pending.as_slice() else { panic!("{what}: one pending approval, got {pending:?}") };
            report = agent
                .runtime
                .decide(&demo(), &approval.id, true, "bob", "fixture")
                .await
                .unwrap_or_else(|e| panic!("{what}: approve: {e}"));
        }

        // A run stored while its tool ran is failed, never re-run blindly; every other one
        // completes, and the tool runs once unless it had run before the run was stored.
        let interrupted = phase == "executing";
        let expected = if interrupted { ChainStatus::Failed } else { ChainStatus::Completed };
        assert_eq!(report.status, expected, "{what}: {report:?}");
        let tool_ran_before = ["executing", "sealing_result", "answering", "done"].contains(&phase.as_str());
        let expected_calls = if tool_ran_before { Vec::new() } else { vec![json!({"message": "release at 5"})] };
        assert_eq!(*calls.lock().expect("lock"), expected_calls, "{what}");
        if !interrupted {
            assert_eq!(report.answer.as_deref(), Some("The team was told."), "{what}");
        }
        // Whatever version it was stored in, a resumed run is saved in the current one, its
        // context beside it (a finished run is left as it was stored).
        let saved = store.run(&demo(), &chain).await.expect("read").expect("the run is stored");
        let state: Value = serde_json::from_str(&saved.state).expect("JSON");
        if phase != "done" {
            assert_eq!(state["version"], json!(CURRENT_VERSION), "{what}");
            assert!(state["run"].get("context").is_none() && saved.context.is_some(), "{what}: {saved:?}");
        }
        agent.runtime.shutdown().await;
    }
}

/// Stores a fixture's run as left by a process that is gone.
async fn save_fixture_run(store: &Arc<dyn domain::ports::Store>, fixture: &Value) {
    store
        .save_run(&StoredRun {
            tenant_id: demo(),
            chain_id: ChainId::parse(fixture["chain_id"].as_str().expect("chain_id")).expect("chain id"),
            task: fixture["task"].as_str().expect("task").to_owned(),
            status: fixture["status"].as_str().expect("status").parse().expect("a chain status"),
            state: fixture["state"].to_string(),
            created_at: Timestamp::from_micros(AT),
            updated_at: Timestamp::from_micros(AT),
            owner: Some("nexus-gone".into()),
            personas: Vec::new(),
            context: context_of(fixture),
        })
        .await
        .expect("save");
}

#[tokio::test]
async fn a_run_resumed_with_its_intent_already_sealed_fails_the_tool_as_interrupted_and_never_runs_it() {
    // The intent seal is the last save before a tool runs: a process that stopped after it
    // may have started the tool, so a restart never runs it again.
    let server = notify_server().await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let db = sqlite().await;
    let agent = approval_agent(Arc::clone(&db.store), &server, Arc::clone(&calls)).await;
    let mut fixture = read(&fixtures_dir().join(format!("v{CURRENT_VERSION}/sealing_intent.json")));
    // This time the gates let the call through with no approval: once sealed, the tool runs.
    fixture["state"]["run"]["steps"][0]["status"] = json!("pending");
    fixture["state"]["run"]["steps"][0]["error"] = Value::Null;
    let payload = fixture["state"]["run"]["phase"]["payload"].clone();
    assert!(payload.is_object(), "the fixture run holds the payload it seals: {payload}");
    save_fixture_run(agent.runtime.store(), &fixture).await;
    let chain = ChainId::parse(CHAIN).expect("chain");
    let draft = domain::ledger::EntryDraft {
        kind: domain::ledger::EntryKind::SealIntent,
        chain_id: Some(chain.clone()),
        payload,
    };
    agent.runtime.ledger().append(&demo(), draft).await.expect("the seal the stopped process committed");

    agent.runtime.resume_unfinished().await.expect("resume");
    let report = agent.runtime.run_report(&demo(), &chain).await.expect("report");
    assert_eq!(report.status, ChainStatus::Failed, "{report:?}");
    assert!(report.steps[0].error.as_deref().is_some_and(|e| e.contains("interrupted")), "{report:?}");
    assert!(calls.lock().expect("lock").is_empty(), "the tool never runs again");
    agent.runtime.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_stored_run_is_an_error_naming_its_chain_and_holds_up_no_other() {
    let server = notify_server().await;
    let db = sqlite().await;
    let agent = approval_agent(Arc::clone(&db.store), &server, Arc::new(Mutex::new(Vec::new()))).await;
    let store = agent.runtime.store();
    let fixture = read(&fixtures_dir().join(format!("v{CURRENT_VERSION}/new.json")));
    let stored = |chain: &str, state: String| StoredRun {
        tenant_id: demo(),
        chain_id: ChainId::parse(chain).expect("id"),
        task: TASK.into(),
        status: ChainStatus::Planning,
        state,
        created_at: Timestamp::from_micros(AT),
        updated_at: Timestamp::from_micros(AT),
        owner: Some("nexus-gone".into()),
        personas: Vec::new(),
        context: context_of(&fixture),
    };
    let mut newer = fixture["state"].clone();
    newer["version"] = json!(99);
    store.save_run(&stored("from-the-future", newer.to_string())).await.expect("save");
    store.save_run(&stored("garbled", "{\"run\": 7".into())).await.expect("save");
    let mut moved = fixture["state"].clone();
    moved["run"]["chain_id"] = json!("another-chain");
    store.save_run(&stored("moved", moved.to_string())).await.expect("save");
    store.save_run(&stored(CHAIN, fixture["state"].to_string())).await.expect("save");

    let resumed = agent.runtime.resume_unfinished().await.expect("the readable run is resumed");
    assert_eq!(resumed.iter().map(|r| r.chain_id.to_string()).collect::<Vec<_>>(), [CHAIN]);
    for (chain, why) in [
        (
            "from-the-future",
            &*format!("stored by a newer build (format version 99; this build reads versions 1 to {CURRENT_VERSION})"),
        ),
        ("garbled", "not a JSON object"),
        ("moved", "belongs to chain another-chain"),
    ] {
        let error = agent.runtime.run_report(&demo(), &ChainId::parse(chain).expect("id")).await.expect_err(chain);
        assert!(matches!(error, runtime::agent::AgentError::CorruptRun { .. }), "{chain}: {error:?}");
        let message = error.to_string();
        assert!(message.contains(&format!("stored run {chain} cannot be read")) && message.contains(why), "{message}");
    }
    agent.runtime.shutdown().await;
}
