//! The agent loop as a state machine. [`Run::advance`] takes what just happened ([`Input`]) and
//! returns what to do next ([`Action`]) plus the events to publish. A `Run` is plain data
//! (serde), so the runtime stores it after every step and resumes it after a crash.
//!
//! plan → per step: retrieve (think/act, ≤ 3 loops) → activate persona → declare intent →
//! gates → seal intent (durable before the tool runs) → [approval] → execute → validate →
//! seal result → continue / retry (transient, ≤ 2) / complete / escalate → answer.

use std::time::Duration;

use domain::agent::{ActionStatus, ChainStatus, GateResult, GateVerdict};
use domain::persona::PersonaContract;
use domain::tool::ToolDefinition;
use domain::{ChainId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gates::DriftHistory;
use crate::parse::{self, PlannedStep};
use crate::provenance::Provenance;

mod steps;
pub mod stored;
use crate::validate::{QaSpec, redact, scan};

/// Retrieval confidence needed to act without another retrieval loop.
pub const THINK_ACT_THRESHOLD: f64 = 0.80;
pub const MAX_THINK_LOOPS: u32 = 3;
/// Retries of a transiently failed tool call.
pub const MAX_TOOL_RETRIES: u32 = 2;
/// Characters of a tool result kept in seals and events.
const PREVIEW_CHARS: usize = 500;

/// Why the engine wants a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelPurpose {
    Plan,
    Declare,
    Answer,
}

/// What the runtime should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call a model of `tier`. `tier_bump` > 0 says the tier was raised after a QA failure.
    CallModel { purpose: ModelPurpose, system: String, prompt: String, tier: ModelTier, tier_bump: u8 },
    /// Retrieve context for a step; answer with [`Input::Retrieved`].
    Retrieve { step: usize, query: String },
    /// Start the persona's TTL clock and load its drift history for the tool.
    ActivatePersona { step: usize, persona: String, tool: String },
    /// Report the monotonic time since activation (and intent similarity, when available).
    MeasureGates { step: usize },
    /// Append a ledger entry and answer with [`Input::Sealed`] once it is durable.
    Seal { step: usize, kind: SealKind, payload: Value },
    /// Park the run until a human decides; the approval binds to `call_digest`.
    AwaitApproval { step: usize, tool: String, params: Value, call_digest: String, reason: String },
    /// Run the tool in the sandbox with exactly these parameters.
    ExecuteTool { step: usize, tool: String, params: Value, timeout: Duration },
    /// The run is over.
    Finish { status: ChainStatus, answer: Option<String>, error: Option<String> },
}

/// Model tiers, like an intern, a director and a CEO: cheap, ordinary, strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelTier {
    Trivial,
    Normal,
    Complex,
}

impl ModelTier {
    /// The next stronger tier (the strongest stays).
    pub fn raised(self, by: u8) -> Self {
        let mut tier = self;
        for _ in 0..by {
            tier = match tier {
                ModelTier::Trivial => ModelTier::Normal,
                ModelTier::Normal | ModelTier::Complex => ModelTier::Complex,
            };
        }
        tier
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealKind {
    Intent,
    Result,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start,
    ModelReplied {
        text: String,
        input_tokens: u64,
        output_tokens: u64,
        model: String,
        cost_usd: f64,
    },
    ModelFailed {
        error: String,
    },
    /// What retrieval found for a step; `untrusted` names what in it came from outside the
    /// principal's control (e.g. memories learned from a fetched page), which taints the run.
    Retrieved {
        confidence: f64,
        context: String,
        untrusted: Option<String>,
    },
    PersonaActivated {
        drift: DriftHistory,
    },
    GatesMeasured {
        since_activation: Duration,
        intent_similarity: Option<f64>,
        now: Timestamp,
    },
    Sealed {
        fingerprint: String,
        index: u64,
    },
    ApprovalDecided {
        approved: bool,
        by: String,
        note: String,
    },
    ToolFinished {
        result: Result<Value, ToolFailure>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolFailure {
    pub message: String,
    /// Timeouts and unreachable services: worth retrying.
    pub transient: bool,
}

/// Events for live views; their snake_case names are the SSE event names clients see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    ChainStarted {
        chain_id: String,
        steps: usize,
    },
    StepStarted {
        step: usize,
        persona: String,
        tool: String,
    },
    GateResult {
        step: usize,
        gate: String,
        verdict: GateVerdict,
        score: f64,
        threshold: f64,
    },
    SealCreated {
        step: usize,
        seal_kind: SealKind,
        status: ActionStatus,
        fingerprint: String,
        result_preview: String,
    },
    StepCompleted {
        step: usize,
        status: ActionStatus,
    },
    ApprovalRequired {
        step: usize,
        tool: String,
        reason: String,
    },
    /// Untrusted content entered the run (the output of this step's tool): from now on its
    /// state-changing calls must stay inside what the task asked for, on trusted targets.
    Tainted {
        step: usize,
        tool: String,
        reason: String,
    },
    ChainCompleted {
        chain_id: String,
        status: ChainStatus,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: f64,
    },
    Error {
        message: String,
    },
    /// Something about how the answer came about that the requester should know (the plan was
    /// skipped, and why).
    Notice {
        message: String,
    },
}

/// What the run looks like from outside, per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub action: String,
    pub persona: String,
    pub tool: String,
    pub params: Value,
    pub gates: Vec<GateResult>,
    pub status: ActionStatus,
    pub intent_fingerprint: Option<String>,
    pub result_fingerprint: Option<String>,
    pub result_preview: Option<String>,
    pub error: Option<String>,
    pub reasoning: Vec<String>,
    pub attempts: u32,
    /// The drift fingerprint of the call, once gated.
    pub action_fingerprint: Option<String>,
    /// How long the gate decision (the four gates and provenance) took, in microseconds, as
    /// the runtime measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_micros: Option<u64>,
}

/// Where the run is, with the working data only that phase needs. Stored with the run (as
/// `{"name": "sealing_intent", "step": 0, "payload": …}`): the stored format is versioned in
/// [`stored`], so a change here needs a new version there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
enum Phase {
    New,
    Planning {
        attempts: u32,
    },
    Retrieving {
        step: usize,
        loops: u32,
    },
    Activating {
        step: usize,
    },
    /// The persona's drift history, loaded at activation, waits here for the gates.
    Declaring {
        step: usize,
        attempts: u32,
        drift: DriftHistory,
    },
    Gating {
        step: usize,
        drift: DriftHistory,
    },
    /// The payload being sealed: after a crash the same seal is found (or made) again.
    SealingIntent {
        step: usize,
        payload: Value,
    },
    AwaitingApproval {
        step: usize,
    },
    Executing {
        step: usize,
    },
    SealingResult {
        step: usize,
        payload: Value,
    },
    Answering {
        attempts: u32,
        tier_bump: u8,
    },
    Done,
}

impl Phase {
    /// The phase's stored name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Phase::New => "new",
            Phase::Planning { .. } => "planning",
            Phase::Retrieving { .. } => "retrieving",
            Phase::Activating { .. } => "activating",
            Phase::Declaring { .. } => "declaring",
            Phase::Gating { .. } => "gating",
            Phase::SealingIntent { .. } => "sealing_intent",
            Phase::AwaitingApproval { .. } => "awaiting_approval",
            Phase::Executing { .. } => "executing",
            Phase::SealingResult { .. } => "sealing_result",
            Phase::Answering { .. } => "answering",
            Phase::Done => "done",
        }
    }
}

/// Everything a run needs that does not change while it runs. Stored once per run, apart from
/// the state saved after every step (see [`stored`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    pub personas: Vec<PersonaContract>,
    pub tools: Vec<ToolDefinition>,
    /// Forces every step onto this persona (e.g. `nexus run --persona researcher`).
    pub persona_override: Option<String>,
    /// Checked against the final answer, with one retry and then one escalation.
    pub qa_spec: Option<String>,
    /// The most steps a plan may have (`None`: [`parse::MAX_STEPS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
}

/// How a run was routed before it started: the tier that does its work (trivial: answered
/// directly with no plan; normal or complex: planned, declared and answered on that tier), who
/// decided and how sure they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub tier: ModelTier,
    /// `classifier`, `heuristic`, or `forced` (the request named its tier).
    pub by: String,
    /// The router's probability for its answer, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// One run of the agent loop. Its serde form (without its [`RunContext`]) is the current layout
/// of the stored run; store and load it through [`stored::encode`], [`stored::encode_context`]
/// and [`stored::decode`], which add the version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub chain_id: ChainId,
    pub task: String,
    /// Not part of the serde form: stored once per run, beside it ([`stored::encode_context`]).
    #[serde(skip)]
    pub context: RunContext,
    pub status: ChainStatus,
    pub plan: Vec<PlannedStep>,
    pub steps: Vec<StepRecord>,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub models: Vec<String>,
    /// How the run was routed (`None`: stored before runs were routed; planned on the normal
    /// tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// Something the requester should know about how the answer came about (e.g. the plan was
    /// skipped, and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Where the run's content came from, whether it is tainted, and the envelope its
    /// state-changing calls must stay in once it is.
    #[serde(default, skip_serializing_if = "Provenance::is_empty")]
    pub provenance: Provenance,
    phase: Phase,
    /// What retrieval and earlier steps found, for the next declarations (not part of the
    /// public record).
    retrieved: String,
}

impl Run {
    pub fn new(chain_id: ChainId, task: impl Into<String>, context: RunContext) -> Self {
        Self {
            chain_id,
            task: task.into(),
            context,
            status: ChainStatus::Planning,
            plan: Vec::new(),
            steps: Vec::new(),
            answer: None,
            error: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            models: Vec::new(),
            route: None,
            notice: None,
            provenance: Provenance::default(),
            phase: Phase::New,
            retrieved: String::new(),
        }
    }

    /// The run routed by `route` (before it starts).
    pub fn routed(mut self, route: Route) -> Self {
        self.route = Some(route);
        self
    }

    /// The tier that plans, declares and answers a planned run.
    pub fn work_tier(&self) -> ModelTier {
        self.route.as_ref().map_or(ModelTier::Normal, |r| r.tier.max(ModelTier::Normal))
    }

    /// Ends a run that has not started with an answer made without any model (equipment
    /// answered it). Returns the finishing action and its events.
    pub fn answered_without_model(&mut self, answer: String, notice: String) -> (Action, Vec<Event>) {
        if !matches!(self.phase, Phase::New) {
            return (self.finish_action(), Vec::new());
        }
        self.answer = Some(answer);
        self.notice = Some(notice);
        self.status = ChainStatus::Completed;
        self.phase = Phase::Done;
        let events = vec![
            Event::ChainStarted { chain_id: self.chain_id.to_string(), steps: 0 },
            Event::ChainCompleted {
                chain_id: self.chain_id.to_string(),
                status: self.status,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
            },
        ];
        (self.finish_action(), events)
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether the run is parked waiting for a human.
    pub fn awaiting_approval(&self) -> Option<usize> {
        match self.phase {
            Phase::AwaitingApproval { step } => Some(step),
            _ => None,
        }
    }

    /// The action to repeat after a restart: the one the run was waiting on when it was stored.
    pub fn resume(&mut self) -> (Action, Vec<Event>) {
        match self.phase.clone() {
            Phase::New => self.advance(Input::Start),
            Phase::Planning { attempts } => (self.plan_call(attempts), Vec::new()),
            Phase::Retrieving { step, loops } => {
                (Action::Retrieve { step, query: self.retrieval_query(step, loops) }, Vec::new())
            }
            Phase::Activating { step } => (self.activate_action(step), Vec::new()),
            Phase::Declaring { step, .. } => (self.declare_call(step), Vec::new()),
            Phase::Gating { step, .. } => (Action::MeasureGates { step }, Vec::new()),
            // A seal may or may not have reached the ledger before the crash; the runtime
            // checks the chain's last entry before re-sealing.
            Phase::SealingIntent { step, payload } => {
                (Action::Seal { step, kind: SealKind::Intent, payload }, Vec::new())
            }
            Phase::SealingResult { step, payload } => {
                (Action::Seal { step, kind: SealKind::Result, payload }, Vec::new())
            }
            Phase::AwaitingApproval { step } => {
                let s = &self.steps[step];
                let action = Action::AwaitApproval {
                    step,
                    tool: s.tool.clone(),
                    params: s.params.clone(),
                    call_digest: call_digest(&self.chain_id, step, &s.tool, &s.params),
                    reason: s.error.clone().unwrap_or_default(),
                };
                (action, Vec::new())
            }
            // A tool interrupted mid-run is not re-run blindly: its intent is sealed, its
            // effect unknown. The run fails with that reason.
            Phase::Executing { step } => {
                let failure =
                    ToolFailure { message: "interrupted by a restart while the tool ran".into(), transient: false };
                self.steps[step].attempts = MAX_TOOL_RETRIES + 1;
                self.advance(Input::ToolFinished { result: Err(failure) })
            }
            Phase::Answering { attempts, tier_bump } => (self.answer_call(attempts, tier_bump, &[]), Vec::new()),
            Phase::Done => (self.finish_action(), Vec::new()),
        }
    }

    /// Stops the run at once with status `cancelled` (a finished run stays as it is).
    pub fn cancel(&mut self, reason: impl Into<String>) -> (Action, Vec<Event>) {
        if matches!(self.phase, Phase::Done) {
            return (self.finish_action(), Vec::new());
        }
        self.status = ChainStatus::Cancelled;
        self.error = Some(reason.into());
        self.phase = Phase::Done;
        let events = vec![Event::ChainCompleted {
            chain_id: self.chain_id.to_string(),
            status: self.status,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
        }];
        (self.finish_action(), events)
    }

    /// Feeds what happened and returns what to do next.
    pub fn advance(&mut self, input: Input) -> (Action, Vec<Event>) {
        let mut events = Vec::new();
        let action = self.transition(input, &mut events);
        if let Action::Finish { status, .. } = &action {
            events.push(Event::ChainCompleted {
                chain_id: self.chain_id.to_string(),
                status: *status,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                cost_usd: self.cost_usd,
            });
        }
        (action, events)
    }

    fn transition(&mut self, input: Input, events: &mut Vec<Event>) -> Action {
        if let Input::ModelReplied { input_tokens, output_tokens, model, cost_usd, .. } = &input {
            self.input_tokens += input_tokens;
            self.output_tokens += output_tokens;
            self.cost_usd += cost_usd;
            if !self.models.contains(model) {
                self.models.push(model.clone());
            }
        }
        match (self.phase.clone(), input) {
            (Phase::New, Input::Start) => {
                // The intern's work: a trivial request is answered at once, with no plan.
                if self.route.as_ref().is_some_and(|r| r.tier == ModelTier::Trivial) {
                    return self.start_plan(Vec::new(), events);
                }
                self.phase = Phase::Planning { attempts: 0 };
                self.plan_call(0)
            }
            (_, Input::ModelFailed { error }) => {
                events.push(Event::Error { message: error.clone() });
                self.fail(format!("model call failed: {error}"))
            }
            (Phase::Planning { attempts }, Input::ModelReplied { text, .. }) => {
                match parse::plan_at_most(&text, self.context.max_steps.unwrap_or(parse::MAX_STEPS)) {
                    Ok(plan) => self.start_plan(plan, events),
                    Err(error) if attempts == 0 => {
                        events
                            .push(Event::Error { message: format!("planner output rejected: {error}; asking again") });
                        self.phase = Phase::Planning { attempts: 1 };
                        self.plan_call(1)
                    }
                    Err(error) if self.needs_tool() => {
                        self.fail(format!("the planner did not produce a usable plan: {error}"))
                    }
                    Err(error) => {
                        // A task that may need no tool is still answered: directly, saying so.
                        let notice = format!(
                            "the plan was skipped: the planner did not produce a usable plan twice ({error}); \
                         answered directly without tools"
                        );
                        events.push(Event::Notice { message: notice.clone() });
                        self.notice = Some(notice);
                        self.start_plan(Vec::new(), events)
                    }
                }
            }
            (Phase::Retrieving { step, loops }, Input::Retrieved { confidence, context, untrusted }) => {
                if !context.is_empty() {
                    if let Some(taint) = self.provenance.record_retrieved(step, untrusted, &context) {
                        let reason = format!("the run read {}", taint.origin.describe());
                        self.steps[step].reasoning.push(format!("tainted: {reason}"));
                        events.push(Event::Tainted { step, tool: self.steps[step].tool.clone(), reason });
                    }
                    self.retrieved = context;
                }
                self.steps[step].reasoning.push(format!("retrieval {}: confidence {confidence:.2}", loops + 1));
                // Think again only with a query that can find something new: the same query
                // would return the same passages.
                let next_query = self.retrieval_query(step, loops + 1);
                let broader = next_query != self.retrieval_query(step, loops);
                if confidence < THINK_ACT_THRESHOLD && loops + 1 < MAX_THINK_LOOPS && broader {
                    self.phase = Phase::Retrieving { step, loops: loops + 1 };
                    Action::Retrieve { step, query: next_query }
                } else {
                    self.phase = Phase::Activating { step };
                    self.activate_action(step)
                }
            }
            (Phase::Activating { step }, Input::PersonaActivated { drift }) => {
                self.phase = Phase::Declaring { step, attempts: 0, drift };
                self.declare_call(step)
            }
            (Phase::Declaring { step, attempts, drift }, Input::ModelReplied { text, .. }) => {
                match parse::declaration(&text) {
                    Ok(declared) => {
                        let s = &mut self.steps[step];
                        s.params = declared.tool_params;
                        s.reasoning.push(format!(
                            "intent: {} (confidence {:.2})",
                            declared.planned_action, declared.confidence
                        ));
                        if !declared.reasoning.is_empty() {
                            s.reasoning.push(declared.reasoning);
                        }
                        self.phase = Phase::Gating { step, drift };
                        Action::MeasureGates { step }
                    }
                    Err(error) if attempts == 0 => {
                        self.steps[step].reasoning.push(format!("declaration rejected: {error}"));
                        self.phase = Phase::Declaring { step, attempts: 1, drift };
                        self.declare_call(step)
                    }
                    Err(error) => {
                        // Fall back to the planned parameters: the gates judge the call either way.
                        self.steps[step]
                            .reasoning
                            .push(format!("declaration rejected again ({error}); using the planned call"));
                        self.phase = Phase::Gating { step, drift };
                        Action::MeasureGates { step }
                    }
                }
            }
            (Phase::Gating { step, drift }, Input::GatesMeasured { since_activation, intent_similarity, now }) => {
                self.gate(step, &drift, since_activation, intent_similarity, now, events)
            }
            (Phase::SealingIntent { step, .. }, Input::Sealed { fingerprint, .. }) => {
                let s = &mut self.steps[step];
                s.intent_fingerprint = Some(fingerprint.clone());
                events.push(Event::SealCreated {
                    step,
                    seal_kind: SealKind::Intent,
                    status: s.status,
                    fingerprint,
                    result_preview: String::new(),
                });
                match s.status {
                    ActionStatus::Blocked => {
                        let error = s.error.clone().unwrap_or_default();
                        events.push(Event::StepCompleted { step, status: ActionStatus::Blocked });
                        self.stop(format!("step {step} blocked: {error}"))
                    }
                    ActionStatus::AwaitingApproval => {
                        self.status = ChainStatus::AwaitingApproval;
                        self.phase = Phase::AwaitingApproval { step };
                        let reason = s.error.clone().unwrap_or_default();
                        events.push(Event::ApprovalRequired { step, tool: s.tool.clone(), reason: reason.clone() });
                        Action::AwaitApproval {
                            step,
                            tool: s.tool.clone(),
                            params: s.params.clone(),
                            call_digest: call_digest(&self.chain_id, step, &s.tool, &s.params),
                            reason,
                        }
                    }
                    _ => self.execute(step),
                }
            }
            (Phase::AwaitingApproval { step }, Input::ApprovalDecided { approved, by, note }) => {
                self.status = ChainStatus::Executing;
                let s = &mut self.steps[step];
                s.reasoning.push(format!(
                    "{} by {by}{}",
                    if approved { "approved" } else { "denied" },
                    if note.is_empty() { String::new() } else { format!(": {note}") }
                ));
                if approved {
                    s.error = None;
                    self.execute(step)
                } else {
                    s.status = ActionStatus::Blocked;
                    s.error = Some(format!("denied by {by}"));
                    self.seal_result(step)
                }
            }
            (Phase::Executing { step }, Input::ToolFinished { result }) => match result {
                Ok(value) => {
                    let text = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    // The raw output is what later calls' targets are traced to.
                    if let Some(tool) = self.tool(&self.steps[step].tool).cloned()
                        && let Some(taint) = self.provenance.record_output(step, &tool, &text)
                    {
                        let reason = format!("the run read {}", taint.origin.describe());
                        self.steps[step].reasoning.push(format!("tainted: {reason}"));
                        events.push(Event::Tainted { step, tool: tool.name, reason });
                    }
                    let emails_expected = self.steps[step].tool == "send_email";
                    let findings = scan(&text, emails_expected);
                    let s = &mut self.steps[step];
                    if !findings.is_empty() {
                        let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
                        s.reasoning.push(format!("output validation redacted: {}", kinds.join(", ")));
                    }
                    // Sensitive matches never reach the seal, the events or the next prompt.
                    let preview: String = redact(&text, &findings).chars().take(PREVIEW_CHARS).collect();
                    s.status = ActionStatus::Executed;
                    s.result_preview = Some(preview);
                    self.retrieved = format!(
                        "{}\n[step {step} {}] {}",
                        self.retrieved,
                        s.tool,
                        s.result_preview.clone().unwrap_or_default()
                    );
                    self.seal_result(step)
                }
                Err(failure) => {
                    let s = &mut self.steps[step];
                    s.reasoning.push(format!("attempt {} failed: {}", s.attempts, failure.message));
                    if failure.transient && s.attempts <= MAX_TOOL_RETRIES {
                        self.execute(step)
                    } else {
                        s.status = ActionStatus::Failed;
                        s.error = Some(failure.message);
                        self.seal_result(step)
                    }
                }
            },
            (Phase::SealingResult { step, .. }, Input::Sealed { fingerprint, .. }) => {
                let s = &mut self.steps[step];
                s.result_fingerprint = Some(fingerprint.clone());
                events.push(Event::SealCreated {
                    step,
                    seal_kind: SealKind::Result,
                    status: s.status,
                    fingerprint,
                    result_preview: s.result_preview.clone().unwrap_or_default(),
                });
                events.push(Event::StepCompleted { step, status: s.status });
                let status = s.status;
                let error = s.error.clone().unwrap_or_default();
                match status {
                    ActionStatus::Executed if step + 1 < self.steps.len() => self.begin_step(step + 1, events),
                    ActionStatus::Executed => {
                        self.phase = Phase::Answering { attempts: 0, tier_bump: 0 };
                        self.answer_call(0, 0, &[])
                    }
                    _ => self.stop(format!("step {step} {status}: {error}")),
                }
            }
            (Phase::Answering { attempts, tier_bump }, Input::ModelReplied { text, .. }) => {
                let qa = self.context.qa_spec.as_deref().map(QaSpec::parse);
                let failures = match qa {
                    None => Vec::new(),
                    Some(Err(error)) => return self.fail(format!("QA spec: {error}")),
                    Some(Ok(spec)) => spec.check(&text).failures,
                };
                let leaks = scan(&text, true);
                let mut failures = failures;
                failures.extend(
                    leaks
                        .iter()
                        .filter(|f| f.kind != crate::validate::FindingKind::Email)
                        .map(|f| format!("answer contains a {} ({})", f.kind.as_str(), f.masked)),
                );
                if failures.is_empty() {
                    self.answer = Some(text);
                    self.status = ChainStatus::Completed;
                    self.phase = Phase::Done;
                    return self.finish_action();
                }
                events.push(Event::Error { message: format!("answer failed QA: {}", failures.join("; ")) });
                // One retry on the same tier, then one try on the stronger tier, then a human.
                match (attempts, tier_bump) {
                    (0, 0) => {
                        self.phase = Phase::Answering { attempts: 1, tier_bump: 0 };
                        self.answer_call(1, 0, &failures)
                    }
                    (_, 0) => {
                        self.phase = Phase::Answering { attempts: 0, tier_bump: 1 };
                        self.answer_call(0, 1, &failures)
                    }
                    _ => {
                        self.status = ChainStatus::Escalated;
                        self.error = Some(format!(
                            "the answer failed QA after a retry and a stronger model: {}",
                            failures.join("; ")
                        ));
                        self.phase = Phase::Done;
                        self.finish_action()
                    }
                }
            }
            (phase, input) => {
                let message = format!("unexpected input {} in phase {}", input_name(&input), phase.name());
                events.push(Event::Error { message: message.clone() });
                self.fail(message)
            }
        }
    }
}

/// The digest an approval binds to: chain, step, tool and canonical parameters.
pub fn call_digest(chain: &ChainId, step: usize, tool: &str, params: &Value) -> String {
    let mut hasher = Sha256::new();
    for part in [
        chain.as_str().as_bytes(),
        &step.to_be_bytes(),
        tool.as_bytes(),
        domain::canonical::canonical_json(params).as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

fn unknown_tool(name: &str) -> ToolDefinition {
    ToolDefinition {
        name: name.to_owned(),
        description: "(not a registered tool)".into(),
        parameters: json!({}),
        risk_level: domain::persona::RiskLevel::Critical,
        resource_pattern: String::new(),
        resource_args: Vec::new(),
        timeout_seconds: 1,
        requires_approval: true,
        state_changing: true,
        untrusted_output: false,
    }
}

fn input_name(input: &Input) -> &'static str {
    match input {
        Input::Start => "start",
        Input::ModelReplied { .. } => "model reply",
        Input::ModelFailed { .. } => "model failure",
        Input::Retrieved { .. } => "retrieval",
        Input::PersonaActivated { .. } => "persona activation",
        Input::GatesMeasured { .. } => "gate measurements",
        Input::Sealed { .. } => "seal",
        Input::ApprovalDecided { .. } => "approval decision",
        Input::ToolFinished { .. } => "tool result",
    }
}
