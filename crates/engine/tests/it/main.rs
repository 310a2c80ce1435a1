//! The engine's state machine driven by scripted inputs: what a runtime would see, step by
//! step, with no I/O. These are the acceptance scenarios at the engine's level: a simple
//! question ends with an executed seal and four gate results, a multi-step task gives several
//! seals, an out-of-scope tool is blocked by gate 1, and the failure paths around them.

use std::time::Duration;

use domain::agent::{ActionStatus, ChainStatus, GateVerdict};
use domain::persona::{RiskLevel, default_personas};
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use domain::{ChainId, TenantId, Timestamp};
use engine::gates::DriftHistory;
use engine::machine::{Action, Event, Input, ModelPurpose, ModelTier, Run, RunContext, SealKind, ToolFailure};
use serde_json::{Value, json};

fn tool(name: &str, risk: RiskLevel, approval: bool, args: Vec<ResourceArg>, required: &[&str]) -> ToolDefinition {
    ToolDefinition {
        name: name.into(),
        description: format!("the {name} tool"),
        parameters: json!({"type": "object", "required": required}),
        risk_level: risk,
        resource_pattern: "*".into(),
        resource_args: args,
        timeout_seconds: 5,
        requires_approval: approval,
        state_changing: approval,
        untrusted_output: false,
    }
}

fn arg(param: &str, kind: ResourceKind, default: Option<&str>) -> ResourceArg {
    ResourceArg { param: param.into(), kind, default: default.map(str::to_owned), optional: false }
}

fn context(persona_override: Option<&str>) -> RunContext {
    let tenant = TenantId::parse("demo").expect("id");
    RunContext {
        personas: default_personas(&tenant),
        tools: vec![
            tool(
                "knowledge_search",
                RiskLevel::Low,
                false,
                vec![arg("namespace", ResourceKind::KnowledgeNamespace, Some("default"))],
                &["query"],
            ),
            tool(
                "file_write",
                RiskLevel::Medium,
                false,
                vec![arg("path", ResourceKind::FileWrite, None)],
                &["path", "content"],
            ),
            tool(
                "send_email",
                RiskLevel::High,
                true,
                vec![arg("to", ResourceKind::Email, None)],
                &["to", "subject", "body"],
            ),
        ],
        persona_override: persona_override.map(str::to_owned),
        qa_spec: None,
        max_steps: None,
    }
}

fn reply(text: &str) -> Input {
    Input::ModelReplied {
        text: text.into(),
        input_tokens: 100,
        output_tokens: 20,
        model: "fake-model".into(),
        cost_usd: 0.001,
    }
}

fn measured() -> Input {
    Input::GatesMeasured {
        since_activation: Duration::from_millis(5),
        intent_similarity: None,
        now: Timestamp::from_micros(1),
    }
}

/// Drives a run, answering each action from `respond`, and records actions and events.
struct Driver {
    run: Run,
    actions: Vec<Action>,
    events: Vec<Event>,
    seals: u64,
}

impl Driver {
    fn new(task: &str, ctx: RunContext) -> Self {
        Self {
            run: Run::new(ChainId::parse("chain-1").expect("id"), task, ctx),
            actions: Vec::new(),
            events: Vec::new(),
            seals: 0,
        }
    }

    fn feed(&mut self, input: Input) -> Action {
        let (action, events) = self.run.advance(input);
        self.events.extend(events);
        self.actions.push(action.clone());
        action
    }

    /// Feeds an input, then answers routine actions until one needs the test.
    fn step(&mut self, input: Input) -> Action {
        let action = self.feed(input);
        self.until_interesting(action)
    }

    /// Answers the routine actions (retrieval, activation, gates, seals) and returns the first
    /// action that needs the test's own answer.
    fn until_interesting(&mut self, mut action: Action) -> Action {
        loop {
            action = match action {
                Action::Retrieve { .. } => self.feed(Input::Retrieved {
                    confidence: 0.9,
                    context: "Nexus is a gateway.".into(),
                    untrusted: None,
                }),
                Action::ActivatePersona { .. } => self.feed(Input::PersonaActivated { drift: DriftHistory::default() }),
                Action::MeasureGates { .. } => self.feed(measured()),
                Action::Seal { .. } => {
                    self.seals += 1;
                    let fp = format!("fp{}", self.seals);
                    self.feed(Input::Sealed { fingerprint: fp, index: self.seals })
                }
                other => return other,
            }
        }
    }

    fn seal_payloads(&self) -> Vec<(SealKind, Value)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Seal { kind, payload, .. } => Some((*kind, payload.clone())),
                _ => None,
            })
            .collect()
    }
}

fn expect_model(action: &Action, purpose: ModelPurpose) {
    assert!(
        matches!(action, Action::CallModel { purpose: p, .. } if *p == purpose),
        "expected a {purpose:?} call, got {action:?}"
    );
}

#[test]
fn a_simple_question_completes_with_an_executed_seal_and_four_gates() {
    let mut d = Driver::new("What is NEXUS?", context(None));
    let a = d.feed(Input::Start);
    expect_model(&a, ModelPurpose::Plan);
    let a = d.feed(reply(r#"[{"action": "search the knowledge base", "tool": "knowledge_search", "params": {"query": "NEXUS"}, "persona": "researcher"}]"#));
    let a = d.until_interesting(a);
    expect_model(&a, ModelPurpose::Declare);
    let a = d.feed(reply(r#"{"planned_action": "search for NEXUS", "tool_params": {"query": "NEXUS"}, "resource_targets": ["kb:default"], "reasoning": "the task asks what NEXUS is", "confidence": 0.9}"#));
    let a = d.until_interesting(a);
    let Action::ExecuteTool { tool, params, .. } = a else { panic!("expected execution, got {a:?}") };
    assert_eq!((tool.as_str(), &params), ("knowledge_search", &json!({"query": "NEXUS"})));
    let a = d.feed(Input::ToolFinished { result: Ok(json!([{"text": "NEXUS is a notarized agent framework"}])) });
    let a = d.until_interesting(a);
    expect_model(&a, ModelPurpose::Answer);
    let a = d.feed(reply("NEXUS is a notarized agent framework."));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Completed, .. }), "{a:?}");

    let step = &d.run.steps[0];
    assert_eq!(step.status, ActionStatus::Executed);
    assert_eq!(step.gates.len(), 4);
    assert_eq!(
        step.gates.iter().map(|g| g.verdict).collect::<Vec<_>>(),
        [GateVerdict::Pass, GateVerdict::Skip, GateVerdict::Pass, GateVerdict::Skip]
    );
    assert!(!step.reasoning.is_empty(), "a reasoning trace");
    assert!(d.run.input_tokens + d.run.output_tokens > 0);
    let seals = d.seal_payloads();
    assert_eq!(seals.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [SealKind::Intent, SealKind::Result]);
    assert_eq!(seals[0].1["status"], "pending", "the intent is sealed before the tool runs");
    assert_eq!(seals[1].1["status"], "executed");

    let names: Vec<&str> = d
        .events
        .iter()
        .map(|e| match e {
            Event::ChainStarted { .. } => "chain_started",
            Event::StepStarted { .. } => "step_started",
            Event::GateResult { .. } => "gate_result",
            Event::SealCreated { .. } => "seal_created",
            Event::StepCompleted { .. } => "step_completed",
            Event::ChainCompleted { .. } => "chain_completed",
            Event::ApprovalRequired { .. } => "approval_required",
            Event::Error { .. } => "error",
            Event::Notice { .. } => "notice",
            Event::Tainted { .. } => "tainted",
        })
        .collect();
    assert_eq!(
        names,
        [
            "chain_started",
            "step_started",
            "gate_result",
            "gate_result",
            "gate_result",
            "gate_result",
            "seal_created",
            "seal_created",
            "step_completed",
            "chain_completed"
        ]
    );
}

#[test]
fn a_two_step_task_gives_two_executed_steps() {
    let mut d = Driver::new("Research AI trends and write a summary", context(None));
    d.feed(Input::Start);
    let a = d.feed(reply(r#"[{"action": "research", "tool": "knowledge_search", "params": {"query": "AI trends"}},
                             {"action": "write the summary", "tool": "file_write", "params": {"path": "summary.md", "content": "..."}, "persona": "creator"}]"#));
    let mut a = d.until_interesting(a);
    for declared in [
        r#"{"planned_action": "search", "tool_params": {"query": "AI trends"}}"#,
        r#"{"planned_action": "write", "tool_params": {"path": "summary.md", "content": "AI is trending"}}"#,
    ] {
        expect_model(&a, ModelPurpose::Declare);
        a = d.step(reply(declared));
        assert!(matches!(a, Action::ExecuteTool { .. }), "{a:?}");
        a = d.step(Input::ToolFinished { result: Ok(json!("ok")) });
    }
    expect_model(&a, ModelPurpose::Answer);
    let a = d.feed(reply("Summary written."));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Completed, .. }));
    assert_eq!(d.run.steps.iter().filter(|s| s.status == ActionStatus::Executed).count(), 2);
    assert_eq!(d.run.steps[1].persona, "creator");
    assert_eq!(d.seal_payloads().len(), 4);
}

#[test]
fn a_researcher_sending_email_is_blocked_by_gate_1() {
    let mut d = Driver::new("Email the report to the board", context(Some("researcher")));
    d.feed(Input::Start);
    let a = d.feed(reply(r#"[{"action": "send it", "tool": "send_email", "params": {"to": "board@example.com", "subject": "r", "body": "b"}}]"#));
    d.until_interesting(a);
    let a = d.step(reply(
        r#"{"planned_action": "send", "tool_params": {"to": "board@example.com", "subject": "r", "body": "b"}}"#,
    ));
    let Action::Finish { status, error, .. } = a else { panic!("expected the run to stop, got {a:?}") };
    assert_eq!(status, ChainStatus::Failed);
    assert!(error.is_some_and(|e| e.contains("gate scope failed")));
    let step = &d.run.steps[0];
    assert_eq!(step.status, ActionStatus::Blocked);
    assert_eq!(step.gates[0].verdict, GateVerdict::Fail);
    let seals = d.seal_payloads();
    assert_eq!(seals.len(), 1, "the blocked intent is sealed");
    assert_eq!(seals[0].1["status"], "blocked");
    assert!(!d.actions.iter().any(|a| matches!(a, Action::ExecuteTool { .. })), "the tool never ran");
}

fn email_run() -> (Driver, Action) {
    let mut d = Driver::new("Tell Ada the build is green", context(None));
    d.feed(Input::Start);
    let a = d.feed(reply(r#"[{"action": "email Ada", "tool": "send_email", "params": {"to": "ada@example.com", "subject": "build", "body": "green"}, "persona": "communicator"}]"#));
    d.until_interesting(a);
    let a = d.step(reply(
        r#"{"planned_action": "email", "tool_params": {"to": "ada@example.com", "subject": "build", "body": "green"}}"#,
    ));
    (d, a)
}

#[test]
fn approved_calls_run_and_denied_calls_do_not() {
    let (mut d, a) = email_run();
    let Action::AwaitApproval { call_digest, .. } = &a else { panic!("expected approval, got {a:?}") };
    assert_eq!(call_digest.len(), 64);
    assert_eq!(d.run.status, ChainStatus::AwaitingApproval);
    // The run can be stored and resumed while it waits.
    let stored = serde_json::to_string(&d.run).expect("serialize");
    d.run = serde_json::from_str(&stored).expect("deserialize");
    assert_eq!(d.run.resume().0, a, "resuming repeats the wait");
    let a = d.feed(Input::ApprovalDecided { approved: true, by: "alice".into(), note: String::new() });
    assert!(matches!(a, Action::ExecuteTool { .. }), "{a:?}");
    d.step(Input::ToolFinished { result: Ok(json!("sent")) });
    let a = d.feed(reply("Done: Ada was told."));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Completed, .. }));

    let (mut d, _) = email_run();
    let a = d.step(Input::ApprovalDecided { approved: false, by: "bob".into(), note: "not now".into() });
    let Action::Finish { status, error, .. } = a else { panic!("{a:?}") };
    assert_eq!(status, ChainStatus::Failed);
    assert!(error.is_some_and(|e| e.contains("denied by bob")));
    assert!(!d.actions.iter().any(|a| matches!(a, Action::ExecuteTool { .. })));
    assert_eq!(d.seal_payloads().last().map(|(_, p)| p["status"].clone()), Some(json!("blocked")));
}

#[test]
fn malformed_plans_get_one_retry_then_a_clear_failure_when_the_task_needs_a_tool() {
    let mut d = Driver::new("search our docs for the refund policy", context(None));
    d.feed(Input::Start);
    let a = d.feed(reply("I'd love to help!"));
    expect_model(&a, ModelPurpose::Plan);
    let fifty = serde_json::to_string(&vec![json!({"action": "a", "tool": "knowledge_search"}); 50]).expect("json");
    let a = d.feed(reply(&fifty));
    let Action::Finish { status, error, .. } = a else { panic!("{a:?}") };
    assert_eq!(status, ChainStatus::Failed);
    assert!(error.is_some_and(|e| e.contains("50 steps")));

    let mut d = Driver::new("hello", context(None));
    d.feed(Input::Start);
    let a = d.feed(reply("[]"));
    expect_model(&a, ModelPurpose::Answer);
    assert!(matches!(d.feed(reply("Hello!")), Action::Finish { status: ChainStatus::Completed, .. }));
}

#[test]
fn an_unusable_plan_for_a_task_that_needs_no_tool_is_skipped_with_a_notice() {
    let mut d = Driver::new("Explain why the sky is blue", context(None));
    d.feed(Input::Start);
    d.feed(reply("I'd love to help!"));
    let a = d.feed(reply("Sure, here is my plan: think hard."));
    // Answered directly, on the tier the run was planned on (the request is not known to be
    // simple), with a notice that says why there was no plan.
    let Action::CallModel { purpose: ModelPurpose::Answer, tier: ModelTier::Normal, .. } = a else { panic!("{a:?}") };
    let notice = d.run.notice.clone().expect("a notice");
    assert!(notice.contains("plan was skipped") && notice.contains("planner"), "{notice}");
    assert!(d.events.iter().any(|e| matches!(e, Event::Notice { message } if *message == notice)));
    let a = d.feed(reply("Rayleigh scattering."));
    let Action::Finish { status: ChainStatus::Completed, answer, .. } = a else { panic!("{a:?}") };
    assert_eq!(answer.as_deref(), Some("Rayleigh scattering."));
    assert!(d.run.steps.is_empty() && d.seals == 0);
}

#[test]
fn routed_runs_answer_trivial_requests_at_once_and_plan_on_their_tier() {
    let route = |tier| engine::machine::Route { tier, by: "classifier".into(), confidence: Some(0.9) };
    // Trivial: no planner call, the cheap tier answers.
    let mut d = Driver::new("What is the capital of France?", context(None));
    d.run = d.run.clone().routed(route(ModelTier::Trivial));
    let a = d.feed(Input::Start);
    let Action::CallModel { purpose: ModelPurpose::Answer, tier: ModelTier::Trivial, .. } = a else { panic!("{a:?}") };
    assert!(matches!(d.feed(reply("Paris.")), Action::Finish { status: ChainStatus::Completed, .. }));
    assert!(!d.actions.iter().any(|a| matches!(a, Action::CallModel { purpose: ModelPurpose::Plan, .. })));
    assert!(d.run.notice.is_none());

    // Complex: planned, declared and answered on the complex tier, and QA escalation stays there.
    let mut d = Driver::new("Design a migration strategy and compare trade-offs", context(None));
    d.run = d.run.clone().routed(route(ModelTier::Complex));
    let a = d.feed(Input::Start);
    let Action::CallModel { purpose: ModelPurpose::Plan, tier: ModelTier::Complex, .. } = a else { panic!("{a:?}") };
    let a = d.step(reply("[]"));
    let Action::CallModel { purpose: ModelPurpose::Answer, tier: ModelTier::Complex, .. } = a else { panic!("{a:?}") };

    // Normal: an empty plan is answered by the cheap tier, as before routing.
    let mut d = Driver::new("Summarise the plot of Hamlet", context(None));
    d.run = d.run.clone().routed(route(ModelTier::Normal));
    let a = d.feed(Input::Start);
    let Action::CallModel { purpose: ModelPurpose::Plan, tier: ModelTier::Normal, .. } = a else { panic!("{a:?}") };
    let a = d.step(reply("[]"));
    let Action::CallModel { purpose: ModelPurpose::Answer, tier: ModelTier::Trivial, .. } = a else { panic!("{a:?}") };
}

#[test]
fn equipment_answers_end_a_run_before_it_starts() {
    let mut d = Driver::new("run a health check", context(None));
    let (action, events) = d.run.answered_without_model("all healthy".into(), "answered by health_check".into());
    let Action::Finish { status: ChainStatus::Completed, answer, .. } = action else { panic!("{action:?}") };
    assert_eq!(answer.as_deref(), Some("all healthy"));
    assert_eq!(events.len(), 2);
    assert!(d.run.is_finished() && d.run.models.is_empty());
    // A run already going is not ended this way.
    let mut d = Driver::new("hello", context(None));
    d.feed(Input::Start);
    let (action, events) = d.run.answered_without_model("x".into(), "y".into());
    assert!(events.is_empty() && d.run.answer.is_none(), "{action:?}");
}

#[test]
fn unknown_tools_and_missing_parameters_are_blocked_with_a_reason() {
    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "a", "tool": "rm_rf", "params": {}}]"#));
    d.step(reply("not json"));
    let a = d.step(reply("still not json"));
    let Action::Finish { error, .. } = a else { panic!("{a:?}") };
    assert!(error.is_some_and(|e| e.contains("no tool named \"rm_rf\"")));

    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "w", "tool": "file_write", "params": {"path": "a.txt"}, "persona": "creator"}]"#));
    let a = d.step(reply(r#"{"planned_action": "w", "tool_params": {"path": "a.txt"}}"#));
    let Action::Finish { error, .. } = a else { panic!("{a:?}") };
    assert!(error.is_some_and(|e| e.contains("missing parameters: content")));
}

#[test]
fn path_traversal_is_judged_on_the_canonical_path() {
    let mut ctx = context(None);
    for p in &mut ctx.personas {
        if p.name == "creator" {
            p.resource_scopes = vec!["file:write:/workspace/*".into()];
        }
    }
    let mut d = Driver::new("x", ctx);
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "w", "tool": "file_write", "params": {}, "persona": "creator"}]"#));
    let a = d.step(reply(
        r#"{"planned_action": "w", "tool_params": {"path": "/workspace/../etc/cron.d/x", "content": "*"}}"#,
    ));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Failed, .. }), "{a:?}");
    assert!(d.run.steps[0].gates[0].details.contains("file:write:/etc/cron.d/x"), "{:?}", d.run.steps[0].gates[0]);
}

#[test]
fn transient_tool_failures_are_retried_twice() {
    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "s", "tool": "knowledge_search", "params": {"query": "q"}}]"#));
    let mut a = d.step(reply(r#"{"planned_action": "s", "tool_params": {"query": "q"}}"#));
    for _ in 0..2 {
        assert!(matches!(a, Action::ExecuteTool { .. }), "{a:?}");
        a = d.feed(Input::ToolFinished { result: Err(ToolFailure { message: "timed out".into(), transient: true }) });
    }
    assert!(matches!(a, Action::ExecuteTool { .. }), "third attempt");
    let a = d.step(Input::ToolFinished { result: Err(ToolFailure { message: "timed out".into(), transient: true }) });
    assert!(matches!(a, Action::Finish { status: ChainStatus::Failed, .. }), "{a:?}");
    assert_eq!(d.run.steps[0].attempts, 3);
}

#[test]
fn tool_output_with_secrets_is_redacted_before_sealing() {
    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "s", "tool": "knowledge_search", "params": {"query": "q"}}]"#));
    let a = d.step(reply(r#"{"planned_action": "s", "tool_params": {"query": "q"}}"#));
    assert!(matches!(a, Action::ExecuteTool { .. }));
    d.step(Input::ToolFinished {
        result: Ok(json!("customer SSN 123-45-6789, key sk-ant-api03-abcdefghijklmnopqrstuv")),
    });
    let result = &d.seal_payloads()[1].1;
    let preview = result["result_preview"].as_str().expect("preview");
    assert!(!preview.contains("123-45-6789") && !preview.contains("sk-ant"), "{preview}");
    assert!(preview.contains("[redacted: US social security number]"));
}

#[test]
fn answers_failing_qa_are_retried_then_escalated() {
    let mut ctx = context(None);
    ctx.qa_spec = Some(r#"{"name": "has status", "completeness": {"required_substrings": ["STATUS:"]}}"#.into());
    let mut d = Driver::new("report", ctx);
    d.feed(Input::Start);
    let a = d.feed(reply("[]"));
    expect_model(&a, ModelPurpose::Answer);
    let a = d.feed(reply("no status"));
    assert!(
        matches!(a, Action::CallModel { purpose: ModelPurpose::Answer, tier_bump: 0, .. }),
        "retry on the same tier: {a:?}"
    );
    let a = d.feed(reply("still none"));
    assert!(
        matches!(a, Action::CallModel { purpose: ModelPurpose::Answer, tier_bump: 1, .. }),
        "escalate a tier: {a:?}"
    );
    let a = d.feed(reply("STATUS: ok"));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Completed, .. }), "{a:?}");

    let mut ctx = context(None);
    ctx.qa_spec = Some(r#"{"name": "has status", "completeness": {"required_substrings": ["STATUS:"]}}"#.into());
    let mut d = Driver::new("report", ctx);
    d.feed(Input::Start);
    d.feed(reply("[]"));
    for _ in 0..2 {
        d.feed(reply("nope"));
    }
    let a = d.feed(reply("nope"));
    assert!(matches!(a, Action::Finish { status: ChainStatus::Escalated, .. }), "{a:?}");
}

#[test]
fn secrets_in_the_task_and_parameters_never_reach_a_seal() {
    let mut d = Driver::new("look up card 4111 1111 1111 1111", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "s", "tool": "knowledge_search", "params": {"query": "4111 1111 1111 1111"}}]"#));
    d.step(reply(r#"{"planned_action": "s", "tool_params": {"query": "4111 1111 1111 1111"}}"#));
    let (_, intent) = &d.seal_payloads()[0];
    let text = intent.to_string();
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    let Action::ExecuteTool { params, .. } = d.actions.last().expect("action").clone() else {
        panic!("expected the call")
    };
    assert_eq!(params["query"], "4111 1111 1111 1111", "the tool still gets the real parameters");
}

#[test]
fn a_run_interrupted_during_a_tool_call_does_not_rerun_it() {
    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "s", "tool": "knowledge_search", "params": {"query": "q"}}]"#));
    let a = d.step(reply(r#"{"planned_action": "s", "tool_params": {"query": "q"}}"#));
    assert!(matches!(a, Action::ExecuteTool { .. }));
    let mut restored: Run = serde_json::from_str(&serde_json::to_string(&d.run).expect("ser")).expect("de");
    let (a, _) = restored.resume();
    let Action::Seal { kind: SealKind::Result, payload, .. } = a else {
        panic!("expected a failed result seal, got {a:?}")
    };
    assert_eq!(payload["status"], "failed");
    assert!(payload["error"].as_str().is_some_and(|e| e.contains("interrupted by a restart")));
}

#[test]
fn model_failures_end_the_run_with_the_reason() {
    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    let a = d.feed(Input::ModelFailed { error: "anthropic answered 500: overloaded".into() });
    let Action::Finish { status, error, .. } = a else { panic!("{a:?}") };
    assert_eq!(status, ChainStatus::Failed);
    assert!(error.is_some_and(|e| e.contains("overloaded")));
}

#[test]
fn direct_answers_use_the_cheap_tier_and_qa_escalates_a_tier() {
    let tier_of = |a: &Action| match a {
        Action::CallModel { tier, .. } => Some(*tier),
        _ => None,
    };
    let mut ctx = context(None);
    ctx.qa_spec = Some(r#"{"name": "s", "completeness": {"required_substrings": ["OK"]}}"#.into());
    let mut d = Driver::new("hello", ctx);
    assert_eq!(tier_of(&d.feed(Input::Start)), Some(ModelTier::Normal), "planning");
    assert_eq!(tier_of(&d.feed(reply("[]"))), Some(ModelTier::Trivial), "a direct answer");
    assert_eq!(tier_of(&d.feed(reply("no"))), Some(ModelTier::Trivial), "one retry on the same tier");
    assert_eq!(tier_of(&d.feed(reply("no"))), Some(ModelTier::Normal), "then the next tier");
    assert!(matches!(d.feed(reply("no")), Action::Finish { status: ChainStatus::Escalated, .. }));

    let mut d = Driver::new("x", context(None));
    d.feed(Input::Start);
    d.step(reply(r#"[{"action": "s", "tool": "knowledge_search", "params": {"query": "q"}}]"#));
    let a = d.step(reply(r#"{"planned_action": "s", "tool_params": {"query": "q"}}"#));
    let a = d.step(match a {
        Action::ExecuteTool { .. } => Input::ToolFinished { result: Ok(json!("r")) },
        other => panic!("{other:?}"),
    });
    assert_eq!(tier_of(&a), Some(ModelTier::Normal), "answers after tool work use the normal tier");
}
