//! The agent driver: runs the engine's state machine against real models, the ledger, the
//! tool sandbox and the store. The engine decides; this module does the I/O and saves the
//! run after every durable step, so a restart resumes it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::agent::{ActionStatus, ApprovalStatus, ChainStatus};
use domain::knowledge::AccessLevel;
use domain::ledger::{EntryDraft, EntryKind};
use domain::memory::{MemoryTrust, Provenance};
use domain::ports::{ActionSample, Approval, Companions, StoreError, StoredRun};
use domain::{ChainId, TenantId, Timestamp};
use engine::gates::DriftHistory;
use engine::machine::{
    Action, Event, Input, ModelPurpose, ModelTier, Route, Run, RunContext, SealKind, StepRecord, ToolFailure,
};
use providers::pricing::PriceTable;
use providers::{ChatRequest, Message, ModelProvider};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::run_state::{encode_context, encode_state, parse_state, readable, snapshot, to_save};
use crate::{LedgerError, Runtime};

/// A model and the provider that serves it.
#[derive(Clone)]
pub struct ModelTarget {
    pub provider: Arc<dyn ModelProvider>,
    pub model: String,
}

/// The models runs use, by tier: trivial (direct answers), normal (planning, declaring,
/// answering), complex (what QA escalates to).
#[derive(Clone)]
pub enum Models {
    Configured {
        trivial: ModelTarget,
        normal: ModelTarget,
        complex: ModelTarget,
    },
    /// No provider is configured; the message says how to configure one.
    NotConfigured(String),
}

/// Whose run a model call serves.
#[derive(Clone, Copy)]
struct Asked<'a> {
    tenant: &'a TenantId,
    chain: &'a ChainId,
    /// The run's requester (`user:<id>` or `key:<id>`).
    user: Option<&'a str>,
}

/// A model provider's health as this process sees it ([`Runtime::provider_health`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    pub name: String,
    pub state: BreakerState,
    /// The agent tiers it serves, as `tier: model`.
    pub serves: Vec<String>,
}

/// A provider's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// No breaker guards it (the in-process model).
    Unguarded,
    /// Calls go through; failures in a row so far.
    Closed { consecutive_failures: u32 },
    /// Calls fail fast until the cool-down ends.
    Open { retry_in: Duration },
    /// One probe call is allowed through.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Unguarded => "unguarded",
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What the agent needs beyond the store and the ledger.
pub struct AgentServices {
    pub models: Models,
    /// Every configured provider (for gateway calls that name `provider/model`).
    pub providers: Vec<Arc<dyn ModelProvider>>,
    pub tools: tools::Registry,
    pub sandbox: tools::Sandbox,
    /// Per-tenant workspaces live in `<workspace_root>/<tenant>`.
    pub workspace_root: PathBuf,
    pub prices: PriceTable,
    /// How long an approval request stays open before it counts as denied.
    pub approval_ttl: Duration,
}

/// The knowledge namespace a run's retrieval reads.
const KNOWLEDGE_NAMESPACE: &str = "default";

/// How many remembered items join a run's context.
const RECALLED: usize = 5;

/// A task to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub tenant: TenantId,
    pub task: String,
    pub persona: Option<String>,
    pub qa_spec: Option<String>,
    /// Who asked; they may not approve their own run's actions.
    pub user: Option<String>,
    /// The chain id to use (so a caller can watch events before the run starts); new if `None`.
    pub chain_id: Option<ChainId>,
    /// Forces the tier instead of asking the router: `trivial` answers directly with no plan,
    /// `normal` or `complex` plan on that tier.
    pub tier: Option<ModelTier>,
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub tenant: TenantId,
    pub chain_id: ChainId,
    pub task: String,
    pub status: ChainStatus,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub models: Vec<String>,
    /// How the run was routed (`None` for runs stored before routing).
    pub route: Option<Route>,
    /// What the requester should know about how the answer came about.
    pub notice: Option<String>,
    /// The first untrusted content the run read, if it read any.
    pub taint: Option<engine::provenance::Taint>,
    /// The state-changing tools the task asked for, fixed before any tool output was read.
    pub envelope: Option<Vec<String>>,
}

/// One engine event, for live views.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub tenant: TenantId,
    pub chain_id: ChainId,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("tenant {tenant} has no persona named {name:?}")]
    UnknownPersona { tenant: TenantId, name: String },
    #[error("tenant {0} has no personas; run `nexus seed` or create one")]
    NoPersonas(TenantId),
    #[error("tenant {tenant} has no run {chain}")]
    NoSuchRun { tenant: TenantId, chain: String },
    #[error("tenant {tenant} has no approval {id}")]
    NoSuchApproval { tenant: TenantId, id: String },
    #[error("approval {0} was already decided or has expired")]
    ApprovalClosed(String),
    #[error("approval {0} does not match the call the run is waiting on")]
    ApprovalMismatch(String),
    #[error("{by} requested this run and may not approve its actions")]
    SelfApproval { by: String },
    #[error("run {chain} is being driven by another instance; cancel it there or retry when it parks")]
    DrivenElsewhere { chain: String },
    #[error("{0}")]
    InvalidTask(String),
    #[error(transparent)]
    BudgetExhausted(crate::budget::BudgetExhausted),
    #[error(transparent)]
    RateLimited(#[from] crate::limits::Limited),
    #[error("run {chain} stopped without a report (its task ended early)")]
    Stopped { chain: String },
    #[error("run {chain} is already being driven by this process")]
    AlreadyDriven { chain: String },
    #[error("stored run {chain} cannot be read: {reason}")]
    CorruptRun { chain: String, reason: String },
    #[error("run {chain} cannot be stored: {reason}")]
    UnstorableRun { chain: String, reason: String },
    /// The equipment the router chose failed to run.
    #[error("{0}")]
    Equipment(String),
}

impl From<crate::budget::BudgetCheckError> for AgentError {
    fn from(error: crate::budget::BudgetCheckError) -> Self {
        match error {
            crate::budget::BudgetCheckError::Exhausted(exhausted) => AgentError::BudgetExhausted(exhausted),
            crate::budget::BudgetCheckError::Store(store) => AgentError::Store(store),
        }
    }
}

/// A run this process drives; releases it on drop.
pub(crate) struct Driving<'a> {
    active: &'a std::sync::Mutex<std::collections::HashSet<ChainId>>,
    chain: ChainId,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        crate::auth::lock(self.active).remove(&self.chain);
    }
}

impl Runtime {
    fn agent(&self) -> Result<Arc<AgentServices>, AgentError> {
        self.agent_services()
            .ok_or_else(|| AgentError::NotConfigured("the agent is not enabled in this runtime".into()))
    }

    /// The agent's services now in force (settings may replace them at any time).
    pub(crate) fn agent_services(&self) -> Option<Arc<AgentServices>> {
        self.agent.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts new services in force; runs already going keep theirs.
    pub(crate) fn replace_agent(&self, services: Option<AgentServices>) {
        *self.agent.write().unwrap_or_else(std::sync::PoisonError::into_inner) = services.map(Arc::new);
    }

    /// Each model provider with its circuit breaker's state as this process sees it, and the
    /// agent tiers (with their models) it serves. Empty when the agent is not configured.
    pub fn provider_health(&self) -> Vec<ProviderHealth> {
        let Ok(agent) = self.agent() else { return Vec::new() };
        let tiers: Vec<(&'static str, &ModelTarget)> = match &agent.models {
            Models::Configured { trivial, normal, complex } => {
                vec![("trivial", trivial), ("normal", normal), ("complex", complex)]
            }
            Models::NotConfigured(_) => Vec::new(),
        };
        agent
            .providers
            .iter()
            .map(|provider| {
                let state = match provider.circuit() {
                    None => BreakerState::Unguarded,
                    Some(providers::resilience::CircuitState::Closed { consecutive_failures }) => {
                        BreakerState::Closed { consecutive_failures }
                    }
                    Some(providers::resilience::CircuitState::Open { until }) => {
                        BreakerState::Open { retry_in: until.saturating_duration_since(Instant::now()) }
                    }
                    Some(providers::resilience::CircuitState::HalfOpen { .. }) => BreakerState::HalfOpen,
                };
                let serves = tiers
                    .iter()
                    .filter(|(_, target)| target.provider.name() == provider.name())
                    .map(|(tier, target)| format!("{tier}: {}", target.model))
                    .collect();
                ProviderHealth { name: provider.name().to_owned(), state, serves }
            })
            .collect()
    }

    /// Every registered tool with its availability.
    pub fn tool_list(&self) -> Result<Vec<(domain::tool::ToolDefinition, tools::Availability)>, AgentError> {
        Ok(self.agent()?.tools.all())
    }

    /// Every tool `tenant` may use, with its availability.
    pub fn tool_list_for(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(domain::tool::ToolDefinition, tools::Availability)>, AgentError> {
        Ok(self.agent()?.tools.all_for(tenant))
    }

    /// The tenant knowledge base (ingest and hybrid search).
    pub fn knowledge(&self) -> crate::knowledge::KnowledgeService {
        self.knowledge.clone()
    }

    /// Live engine events of every run.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// Plans and runs a task until it finishes or waits for an approval.
    pub async fn execute(&self, request: RunRequest) -> Result<RunReport, AgentError> {
        let agent = self.agent()?;
        if let Models::NotConfigured(message) = &agent.models {
            return Err(AgentError::NotConfigured(message.clone()));
        }
        let personas = self.store.personas(&request.tenant).await?;
        if personas.is_empty() {
            return Err(AgentError::NoPersonas(request.tenant));
        }
        if let Some(name) = &request.persona
            && !personas.iter().any(|p| &p.name == name)
        {
            return Err(AgentError::UnknownPersona { tenant: request.tenant, name: name.clone() });
        }
        let context = RunContext {
            personas: personas.into_iter().filter(|p| p.is_active).collect(),
            tools: agent.tools.definitions_for(&request.tenant),
            persona_override: request.persona.clone(),
            qa_spec: request.qa_spec.clone(),
            max_steps: self.config.max_plan_steps,
        };
        let (route, equipment) = self.route_for(&request);
        let mut run =
            Run::new(request.chain_id.clone().unwrap_or_else(ChainId::generate), request.task.clone(), context)
                .routed(route.clone());
        let created = Timestamp::now();
        let mut record = StoredRun {
            tenant_id: request.tenant.clone(),
            chain_id: run.chain_id.clone(),
            task: request.task.clone(),
            status: run.status,
            state: encode_state(&run, request.user.as_deref())?,
            created_at: created,
            updated_at: created,
            owner: Some(self.instance.clone()),
            personas: Vec::new(),
            context: Some(encode_context(&run)?),
        };
        let Some(_driving) = self.begin_driving(&run.chain_id) else {
            return Err(AgentError::AlreadyDriven { chain: run.chain_id.to_string() });
        };
        // The routing decision is sealed with the run's first save.
        let draft = EntryDraft {
            kind: EntryKind::Route,
            chain_id: Some(run.chain_id.clone()),
            payload: route_payload(&agent.models, &run, &request),
        };
        self.ledger
            .append_with(&request.tenant, draft, Companions { runs: vec![record.clone()], ..Companions::default() })
            .await?;
        // The context is stored now; the saves after every step leave it as it is.
        record.context = None;
        if let Some(name) = equipment
            && let Some(answer) = self.answer_with_equipment(&request, &mut run, &mut record, name).await?
        {
            return Ok(answer);
        }
        let first = run.advance(Input::Start);
        self.drive(&request.tenant, &mut run, first, &mut record, request.user.as_deref(), false).await?;
        Ok(report(&request.tenant, &run))
    }

    /// Answers a run with a piece of equipment and no model, when it can run here for the
    /// tenant; `None` (the run goes on to a model) when it is switched off or unavailable.
    async fn answer_with_equipment(
        &self,
        request: &RunRequest,
        run: &mut Run,
        record: &mut StoredRun,
        name: &str,
    ) -> Result<Option<RunReport>, AgentError> {
        let by = request.user.clone().unwrap_or_else(|| "router".to_owned());
        let outcome = self.run_equipment(&request.tenant, name, &Value::Null, &by, Some(run.chain_id.clone())).await;
        let done = match outcome {
            Ok(done) => done,
            Err(
                error @ (crate::equipment::EquipmentError::Disabled { .. }
                | crate::equipment::EquipmentError::Unavailable { .. }),
            ) => {
                tracing::info!(%error, equipment = name, "the equipment cannot answer; a model will");
                return Ok(None);
            }
            Err(error) => return Err(AgentError::Equipment(error.to_string())),
        };
        let notice = format!("answered by the {name} equipment, with no model call");
        let (action, events) = run.answered_without_model(done.summary.clone(), notice);
        self.drive(&request.tenant, run, (action, events), record, request.user.as_deref(), false).await?;
        Ok(Some(report(&request.tenant, run)))
    }

    /// How a run is routed: the forced tier, else [`crate::routing::decide`] on the router's
    /// answer for the task.
    fn route_for(&self, request: &RunRequest) -> (Route, Option<&'static str>) {
        if let Some(tier) = request.tier {
            return (Route { tier, by: "forced".into(), confidence: None }, None);
        }
        let thresholds = crate::routing::Thresholds {
            direct_answer: self.config.direct_answer_confidence,
            equipment: self.config.equipment_confidence,
        };
        let routing = self.router.route(&request.task);
        crate::routing::decide(&routing, self.router.name(), &request.task, request.persona.as_deref(), thresholds)
    }

    /// The stored state of a run.
    pub async fn run_report(&self, tenant: &TenantId, chain: &ChainId) -> Result<RunReport, AgentError> {
        let (run, _, _) = self.load_run(tenant, chain).await?;
        Ok(report(tenant, &run))
    }

    /// A tenant's most recent runs (of `status` only, when given), at most `limit`, newest first.
    pub async fn run_reports(
        &self,
        tenant: &TenantId,
        status: Option<ChainStatus>,
        limit: u32,
    ) -> Result<Vec<RunReport>, AgentError> {
        let filter = domain::ports::RunFilter { status, ..Default::default() };
        Ok(self.run_page(tenant, &filter, limit).await?.into_iter().map(|(report, _)| report).collect())
    }

    /// A page of a tenant's runs matching `filter`, newest first, each with its creation time
    /// (with the chain id, the cursor of the page after it).
    pub async fn run_page(
        &self,
        tenant: &TenantId,
        filter: &domain::ports::RunFilter,
        limit: u32,
    ) -> Result<Vec<(RunReport, Timestamp)>, AgentError> {
        let mut out = Vec::new();
        for stored in self.store.runs(tenant, filter, limit).await? {
            // One unreadable run (logged by `readable`) does not hide the others.
            let Some((run, _)) = readable(&stored) else { continue };
            out.push((report(tenant, &run), stored.created_at));
        }
        Ok(out)
    }

    /// Resumes every unfinished run after a restart. Runs waiting for an approval keep waiting
    /// unless it expired (then they continue as denied); a run interrupted during a tool call
    /// is failed with that reason rather than re-running the tool.
    pub async fn resume_unfinished(&self) -> Result<Vec<RunReport>, AgentError> {
        let mut reports = Vec::new();
        for stored in self.store.runs_with_status(ChainStatus::OPEN).await? {
            let tenant = stored.tenant_id.clone();
            // A run this build cannot read stays as it is (said in the log); the others go on.
            let Some((mut run, user)) = readable(&stored) else { continue };
            if !self.claim(&stored).await? {
                continue;
            }
            let mut record = StoredRun { owner: Some(self.instance.clone()), ..to_save(stored, &run)? };
            let Some(_driving) = self.begin_driving(&run.chain_id) else { continue };
            if run.awaiting_approval().is_some() {
                self.expire_if_due(&tenant, &mut run, &mut record, user.as_deref()).await?;
            } else {
                tracing::info!(tenant = %tenant, chain = %run.chain_id, "resuming an unfinished run");
                let next = run.resume();
                self.drive(&tenant, &mut run, next, &mut record, user.as_deref(), true).await?;
            }
            reports.push(report(&tenant, &run));
        }
        Ok(reports)
    }

    /// Marks a run as driven by this process until the returned guard drops (also when the
    /// driving future is dropped or fails); `None` if it already is.
    pub(crate) fn begin_driving(&self, chain: &ChainId) -> Option<Driving<'_>> {
        crate::auth::lock(&self.active)
            .insert(chain.clone())
            .then(|| Driving { active: &self.active, chain: chain.clone() })
    }

    /// Takes a run over unless another live process drives it. Runs parked on an approval
    /// belong to nobody in particular: whoever holds them may move them on.
    pub(crate) async fn claim(&self, stored: &StoredRun) -> Result<bool, AgentError> {
        let owner = stored.owner.as_deref();
        if owner == Some(self.instance.as_str()) {
            // Ours: resumable unless this process is driving it right now.
            return Ok(!self.active.lock().unwrap_or_else(|p| p.into_inner()).contains(&stored.chain_id));
        }
        if let Some(owner) = owner
            && stored.status != ChainStatus::AwaitingApproval
            && let Some(seen) = self.store.last_heartbeat(owner).await?
        {
            let stale_after = i64::try_from(crate::OWNER_STALE_AFTER.as_micros()).unwrap_or(i64::MAX);
            if Timestamp::now().as_micros().saturating_sub(seen.as_micros()) < stale_after {
                return Ok(false);
            }
        }
        Ok(self.store.claim_run(&stored.tenant_id, &stored.chain_id, owner, &self.instance).await?)
    }

    /// Who asked for a run (`user:<id>`, `key:<id>`), if recorded.
    pub async fn run_requester(&self, tenant: &TenantId, chain: &ChainId) -> Result<Option<String>, AgentError> {
        Ok(self.load_run(tenant, chain).await?.2)
    }

    /// A stored run, read: the row as stored (a caller that saves it again passes it through
    /// [`to_save`] first).
    pub(crate) async fn load_run(
        &self,
        tenant: &TenantId,
        chain: &ChainId,
    ) -> Result<(Run, StoredRun, Option<String>), AgentError> {
        let stored = self
            .store
            .run(tenant, chain)
            .await?
            .ok_or_else(|| AgentError::NoSuchRun { tenant: tenant.clone(), chain: chain.to_string() })?;
        let (run, user) = parse_state(&stored)?;
        Ok((run, stored, user))
    }

    pub(crate) async fn save(&self, run: &Run, record: &mut StoredRun, user: Option<&str>) -> Result<(), AgentError> {
        self.store.save_run(&snapshot(run, record, user)?).await?;
        Ok(())
    }

    /// Saves the run through the ledger's group commit (shared with other runs' writes).
    async fn save_grouped(&self, run: &Run, record: &mut StoredRun, user: Option<&str>) -> Result<(), AgentError> {
        let companions = Companions { runs: vec![snapshot(run, record, user)?], ..Companions::default() };
        self.ledger.write(companions).await?;
        Ok(())
    }

    pub(crate) fn publish(&self, tenant: &TenantId, chain: &ChainId, events: Vec<Event>) {
        for event in &events {
            if let Event::GateResult { gate, verdict, .. } = event {
                let verdict =
                    serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                metrics::counter!("nexus_gate_verdicts_total", "gate" => gate.clone(), "verdict" => verdict)
                    .increment(1);
            }
            // No subscribers is normal; a send error only means nobody is watching.
            let _ =
                self.events.send(RunEvent { tenant: tenant.clone(), chain_id: chain.clone(), event: event.clone() });
        }
        let numbered = self.chain_events.record(tenant, chain, events);
        self.feed.push(numbered);
    }

    /// Carries out actions until the run finishes or parks for an approval.
    pub(crate) async fn drive(
        &self,
        tenant: &TenantId,
        run: &mut Run,
        mut next: (Action, Vec<Event>),
        record: &mut StoredRun,
        user: Option<&str>,
        resumed: bool,
    ) -> Result<(), AgentError> {
        let agent = self.agent()?;
        let mut activated: HashMap<usize, Instant> = HashMap::new();
        // Only the first seal after a restart can already be in the ledger.
        let mut check_existing_seal = resumed;
        // The step whose intent seal the last action committed (its state went with it), and
        // the step whose intent seal a restart found already committed.
        let mut intent_sealed: Option<usize> = None;
        let mut intent_found: Option<usize> = None;
        loop {
            let (action, events) = next;
            let just_sealed = intent_sealed.take();
            // The gate decision (the four gates and provenance) is timed where it is made.
            let gated = match &action {
                Action::MeasureGates { step } => Some(*step),
                _ => None,
            };
            let notices: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Notice { message } => Some(message.clone()),
                    _ => None,
                })
                .collect();
            self.publish(tenant, &run.chain_id, events);
            for notice in notices {
                // Why the run went another way than planned is sealed with the run as it is now.
                let payload = json!({ "notice": notice, "tier": run.work_tier() });
                let draft = EntryDraft { kind: EntryKind::Route, chain_id: Some(run.chain_id.clone()), payload };
                let state = snapshot(run, record, user)?;
                self.ledger
                    .append_with(tenant, draft, Companions { runs: vec![state], ..Companions::default() })
                    .await?;
            }
            if !matches!(action, Action::Finish { .. }) && self.cancel_requested(&run.chain_id) {
                next = run.cancel("cancelled on request");
                continue;
            }
            let input = match action {
                Action::CallModel { purpose, system, prompt, tier, .. } => {
                    let asked = Asked { tenant, chain: &run.chain_id, user };
                    let call = self.call_model(&agent, asked, purpose, system, prompt, tier);
                    // A cancel stops the run mid-call: the answer is not waited for.
                    match self.unless_cancelled(&run.chain_id, call).await {
                        Some(input) => input?,
                        None => {
                            next = run.cancel("cancelled on request");
                            continue;
                        }
                    }
                }
                Action::Retrieve { query, .. } => {
                    let found =
                        self.knowledge().search(tenant, KNOWLEDGE_NAMESPACE, &query, 3, AccessLevel::Internal).await?;
                    let mut context: Vec<String> =
                        found.hits.iter().map(|h| format!("[{}] {}", h.source, h.text)).collect();
                    // What is remembered of the requester joins the context (a failure to read
                    // it costs the run its memory, not its answer).
                    let mut untrusted = (!found.hits.is_empty()
                        && self.config.untrusted_namespaces.iter().any(|n| n == KNOWLEDGE_NAMESPACE))
                    .then(|| format!("passages of the untrusted knowledge namespace {KNOWLEDGE_NAMESPACE}"));
                    if let Some(owner) = user {
                        match self.recall_marked(tenant, owner, &format!("{} {query}", run.task), RECALLED).await {
                            Ok(remembered) if !remembered.text.is_empty() => {
                                if remembered.untrusted > 0 {
                                    let memories = format!(
                                        "{} memory item(s) learned from untrusted content",
                                        remembered.untrusted
                                    );
                                    untrusted = Some(match untrusted {
                                        Some(passages) => format!("{passages}; {memories}"),
                                        None => memories,
                                    });
                                }
                                context.push(remembered.text);
                            }
                            Ok(_) => {}
                            Err(error) => tracing::warn!(%error, "could not read the requester's memory"),
                        }
                    }
                    Input::Retrieved { confidence: found.confidence, context: context.join("\n"), untrusted }
                }
                Action::ActivatePersona { step, persona, tool } => {
                    activated.insert(step, Instant::now());
                    let counts = self.store.action_counts(tenant, &persona, &tool).await?;
                    Input::PersonaActivated { drift: DriftHistory { counts } }
                }
                Action::MeasureGates { step } => Input::GatesMeasured {
                    since_activation: activated.get(&step).map_or(Duration::ZERO, Instant::elapsed),
                    intent_similarity: self.intent_similarity(run, step).await,
                    now: Timestamp::now(),
                },
                Action::Seal { step, kind, payload } => {
                    // The run is saved in the seal's own transaction, still holding the payload
                    // it sealed: after a crash the same seal is found and reused, never written
                    // twice.
                    let state = snapshot(run, record, user)?;
                    let check = std::mem::take(&mut check_existing_seal);
                    let (input, found) = self.seal(tenant, run, step, kind, payload, check, state).await?;
                    if kind == SealKind::Intent {
                        *(if found { &mut intent_found } else { &mut intent_sealed }) = Some(step);
                    }
                    input
                }
                Action::AwaitApproval { step, tool, params, call_digest, reason } => {
                    let now = Timestamp::now();
                    let ttl = i64::try_from(agent.approval_ttl.as_micros()).unwrap_or(i64::MAX);
                    let approval = Approval {
                        id: format!("ap_{}", uuid_like(&call_digest, now)),
                        tenant_id: tenant.clone(),
                        chain_id: run.chain_id.clone(),
                        step: u32::try_from(step).unwrap_or(u32::MAX),
                        tool,
                        params: params.to_string(),
                        call_digest,
                        reason,
                        requested_by: user.map(str::to_owned),
                        status: ApprovalStatus::Pending,
                        decided_by: None,
                        decided_at: None,
                        note: None,
                        created_at: now,
                        expires_at: Timestamp::from_micros(now.as_micros().saturating_add(ttl)),
                    };
                    self.store.insert_approval(&approval).await?;
                    self.seal_approval(tenant, &approval, "requested", user.unwrap_or("agent"), &approval.reason)
                        .await?;
                    self.save(run, record, user).await?;
                    return Ok(());
                }
                Action::ExecuteTool { step, tool, params, timeout } => {
                    // Saved before the call: a crash now is known to have interrupted a tool.
                    // Right after its intent seal the save is that seal's: a run resumed with its
                    // intent sealed treats the tool as interrupted (below).
                    if just_sealed != Some(step) {
                        self.save_grouped(run, record, user).await?;
                    } else if let Err(LedgerError::WriterStopped) = self.ledger.accepting() {
                        // Shutting down: the tool does not start, since its result could not be
                        // sealed. A restart finds the intent sealed and fails it as interrupted.
                        return Err(LedgerError::WriterStopped.into());
                    }
                    let notes = user.map(|_| Arc::new(tools::MemoryNotes::default()));
                    let mut result = self.run_tool(&agent, tenant, &tool, params, timeout, notes.clone()).await;
                    if let (Some(owner), Some(notes), Ok(value)) = (user, notes, result.as_mut()) {
                        self.write_proposals(tenant, run, owner, notes.take(), value).await;
                    }
                    Input::ToolFinished { result }
                }
                Action::Finish { .. } => {
                    self.save_grouped(run, record, user).await?;
                    return Ok(());
                }
            };
            let started = Instant::now();
            next = run.advance(input);
            // An intent found sealed after a restart may have had its tool started (the seal is
            // the last save before the tool runs): the tool is failed as interrupted, never run
            // again. A call that needs an approval first goes on to it.
            if let (Some(step), Action::ExecuteTool { step: next_step, .. }) = (intent_found.take(), &next.0)
                && step == *next_step
            {
                let (action, events) = run.resume();
                next.1.extend(events);
                next.0 = action;
            }
            if let Some(step) = gated {
                let took = started.elapsed();
                metrics::histogram!("nexus_gate_decision_seconds").record(took.as_secs_f64());
                if let Some(record) = run.steps.get_mut(step) {
                    record.gate_micros = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                }
            }
        }
    }

    async fn call_model(
        &self,
        agent: &AgentServices,
        asked: Asked<'_>,
        purpose: ModelPurpose,
        system: String,
        prompt: String,
        tier: ModelTier,
    ) -> Result<Input, AgentError> {
        let Asked { tenant, chain, user } = asked;
        let Models::Configured { trivial, normal, complex } = &agent.models else {
            return Ok(Input::ModelFailed { error: "no model provider is configured".into() });
        };
        let target = match tier {
            ModelTier::Trivial => trivial,
            ModelTier::Normal => normal,
            ModelTier::Complex => complex,
        };
        let request = ChatRequest {
            model: target.model.clone(),
            system: Some(system),
            messages: vec![Message::user(prompt)],
            tools: Vec::new(),
            max_tokens: 2048,
            temperature: Some(0.1),
            stop: Vec::new(),
        };
        if let Err(error) = self.budgets.check(tenant).await {
            return Ok(Input::ModelFailed { error: error.to_string() });
        }
        // Priced by the target the call is routed to, whatever model name the answer echoes;
        // a model without a price is refused before it is called.
        let price = match agent.prices.price_for(target.provider.name(), &target.model) {
            Ok(price) => price,
            Err(unknown) => return Ok(Input::ModelFailed { error: unknown.to_string() }),
        };
        let started = Instant::now();
        let response = match target.provider.complete(&request).await {
            Ok(response) => response,
            Err(error) => return Ok(Input::ModelFailed { error: error.to_string() }),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        metrics::histogram!("nexus_provider_seconds", "provider" => response.provider.clone())
            .record(started.elapsed().as_secs_f64());
        let cost = price.cost_usd(&response.usage);
        let cost_record = domain::cost::CostRecord {
            tenant_id: tenant.clone(),
            chain_id: Some(chain.clone()),
            seal_id: None,
            // A run started with an API key is paid by it, like the key's gateway calls.
            api_key_id: user.and_then(|u| u.strip_prefix("key:")).and_then(|k| domain::ApiKeyId::parse(k).ok()),
            subject: user.map(str::to_owned),
            provider: Some(response.provider.clone()),
            model: target.model.clone(),
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            cost_usd: cost,
            timestamp: Timestamp::now(),
        };
        let payload = json!({
            "purpose": purpose, "tier": tier, "provider": response.provider, "model": target.model,
            "input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens,
            "cost_usd": cost, "latency_ms": latency_ms,
            "prompt_sha256": hex::encode(ledger::hash::sha256(request.messages[0].content.as_bytes())),
        });
        // The cost record commits with the ledger entry that accounts for it. Under the queued
        // acknowledgement the run goes on without waiting: the writer commits in order, so the
        // entry is durable with the run's next save at the latest (a seal, or its finish) —
        // before the run answers anyone. `durable` waits for it here.
        let companions = Companions { costs: vec![cost_record], ..Companions::default() };
        let draft = EntryDraft { kind: EntryKind::ModelCall, chain_id: Some(chain.clone()), payload };
        match self.config.gateway_ack {
            crate::llm::LedgerAck::Queued => self.ledger.append_behind(tenant, draft, companions).await?,
            crate::llm::LedgerAck::Durable => {
                self.ledger.append_with(tenant, draft, companions).await?;
            }
        }
        self.note_spend(tenant, cost);
        Ok(Input::ModelReplied {
            text: response.content,
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
            model: response.model,
            cost_usd: cost,
        })
    }

    /// Appends a seal, with the run's state in the same transaction, unless a restart left the
    /// identical seal already appended (then reuses that entry). Says whether it was found.
    #[allow(clippy::too_many_arguments)] // the seal, its place in the run, and the state it commits with
    async fn seal(
        &self,
        tenant: &TenantId,
        run: &Run,
        step: usize,
        kind: SealKind,
        payload: Value,
        check_existing: bool,
        state: StoredRun,
    ) -> Result<(Input, bool), AgentError> {
        let entry_kind = match kind {
            SealKind::Intent => EntryKind::SealIntent,
            SealKind::Result => EntryKind::SealResult,
        };
        if check_existing {
            // Only an entry with exactly this payload is the same seal: a re-planned call after
            // a crash is a new intent and gets its own seal.
            let canonical = domain::canonical::canonical_json(&payload);
            let existing = self.store.chain_records(tenant, &run.chain_id).await?;
            if let Some(record) = existing.iter().rev().find(|r| r.kind == entry_kind && r.payload == canonical) {
                return Ok((Input::Sealed { fingerprint: record.fingerprint.clone(), index: record.index }, true));
            }
        }
        let executed = kind == SealKind::Result && payload["status"] == ActionStatus::Executed.as_str();
        let mut companions = Companions { runs: vec![state], ..Companions::default() };
        if executed
            && let Some(s) = run.steps.get(step)
            && let Some(fp) = &s.action_fingerprint
        {
            companions.actions.push(ActionSample {
                tenant_id: tenant.clone(),
                persona: s.persona.clone(),
                tool: s.tool.clone(),
                fingerprint: fp.clone(),
            });
        }
        let draft = EntryDraft { kind: entry_kind, chain_id: Some(run.chain_id.clone()), payload };
        let appended = self.ledger.append_with(tenant, draft, companions).await?;
        Ok((Input::Sealed { fingerprint: appended.fingerprint, index: appended.index }, false))
    }

    async fn run_tool(
        &self,
        agent: &AgentServices,
        tenant: &TenantId,
        tool: &str,
        params: Value,
        timeout: Duration,
        memory: Option<Arc<tools::MemoryNotes>>,
    ) -> Result<Value, ToolFailure> {
        let Some(handler) = agent.tools.get_for(tenant, tool) else {
            return Err(ToolFailure { message: format!("no tool named {tool:?}"), transient: false });
        };
        let context = tools::ToolContext {
            tenant: tenant.clone(),
            workspace: agent.workspace_root.join(tenant.as_str()),
            memory,
        };
        let (_cancel, cancelled) = watch::channel(false);
        agent
            .sandbox
            .run(handler.as_ref(), &context, params, timeout, cancelled)
            .await
            .map_err(|e| ToolFailure { transient: e.is_transient(), message: e.to_string() })
    }
}

impl Runtime {
    /// Writes what a call proposed to remember of the run's requester: as the agent's when the
    /// run has read nothing from outside so far, else as untrusted (which never changes what the
    /// person confirmed). The call's result says what became of each proposal; a refusal (memory
    /// full, say) is told to the run, never dropped silently.
    async fn write_proposals(
        &self,
        tenant: &TenantId,
        run: &Run,
        owner: &str,
        proposals: Vec<String>,
        result: &mut Value,
    ) {
        if proposals.is_empty() {
            return;
        }
        let tainted_by: Vec<&str> = run
            .steps
            .iter()
            .filter(|s| s.status == ActionStatus::Executed)
            .filter(|s| run.context.tools.iter().any(|d| d.name == s.tool && d.untrusted_output))
            .map(|s| s.tool.as_str())
            .collect();
        let trust = if tainted_by.is_empty() { MemoryTrust::Agent } else { MemoryTrust::Untrusted };
        let mut outcomes = Vec::new();
        for content in proposals {
            let write = crate::memory::MemoryWrite {
                owner: owner.to_owned(),
                content,
                trust,
                provenance: Provenance {
                    run: Some(run.chain_id.clone()),
                    message: None,
                    source: tainted_by.first().map(|t| format!("after the output of {t}")),
                },
                by: format!("run:{}", run.chain_id),
            };
            outcomes.push(match self.remember(tenant, write).await {
                Ok((item, duplicate)) => {
                    json!({"remembered": true, "id": item.id, "trust": item.trust.as_str(), "duplicate": duplicate})
                }
                Err(error) => {
                    tracing::warn!(%error, chain = %run.chain_id, "a run's proposal to remember was refused");
                    json!({"remembered": false, "reason": error.to_string()})
                }
            });
        }
        if let Value::Object(map) = result {
            map.insert("memory".into(), Value::Array(outcomes));
        }
    }
}

/// What the `route` entry that opens a run's chain says: the tier, who decided and how sure,
/// and the model that serves the tier.
fn route_payload(models: &Models, run: &Run, request: &RunRequest) -> Value {
    let route = run.route.as_ref();
    let tier = route.map_or(ModelTier::Normal, |r| r.tier);
    let model = match models {
        Models::Configured { trivial, normal, complex } => {
            let target = match tier {
                ModelTier::Trivial => trivial,
                ModelTier::Normal => normal,
                ModelTier::Complex => complex,
            };
            Some(format!("{}/{}", target.provider.name(), target.model))
        }
        Models::NotConfigured(_) => None,
    };
    json!({
        "tier": tier,
        "by": route.map(|r| r.by.clone()),
        "confidence": route.and_then(|r| r.confidence),
        "model": model,
        "planned": tier != ModelTier::Trivial,
        "persona": request.persona,
    })
}

pub(crate) fn report(tenant: &TenantId, run: &Run) -> RunReport {
    RunReport {
        tenant: tenant.clone(),
        chain_id: run.chain_id.clone(),
        task: run.task.clone(),
        status: run.status,
        answer: run.answer.clone(),
        error: run.error.clone(),
        steps: run.steps.clone(),
        input_tokens: run.input_tokens,
        output_tokens: run.output_tokens,
        cost_usd: run.cost_usd,
        models: run.models.clone(),
        route: run.route.clone(),
        notice: run.notice.clone(),
        taint: run.provenance.taint.clone(),
        envelope: run.provenance.envelope.clone(),
    }
}

/// A short unique id for an approval, from its call digest and time.
fn uuid_like(digest: &str, at: Timestamp) -> String {
    let hash = ledger::hash::sha256(format!("{digest}{}", at.as_micros()).as_bytes());
    hex::encode(&hash[..10])
}
