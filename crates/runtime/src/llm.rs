//! The governed model gateway: one chat call from an API client, routed to a provider by model
//! name or tier, checked against the tenant's budget, priced by the (provider, model) it was
//! routed to — whatever model name the upstream echoes; a model without a price is refused
//! before the upstream is called — and recorded — a ledger entry (request digest, model,
//! provider, tokens, cost, latency) with its cost record.
//!
//! How a call's entry is acknowledged is the [`LedgerAck`]: `queued` (the default of
//! `nexus serve`) answers once the entry is with the ledger writer, which commits it within a few
//! milliseconds and before a clean shutdown ends (a killed process loses what is still queued;
//! see [`crate::ledger_service`]); `durable` (the server's setting, or the
//! caller's `x-nexus-ledger-ack: durable`) answers a blocking call only once its entry is
//! durable and holds a stream's clean end back until then, so it survives even `kill -9`. Either
//! way, when the ledger cannot record (store failing, queue full) calls are refused with
//! [`GatewayError::LedgerUnavailable`] before anything is spent upstream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::Companions;
use domain::{ApiKeyId, TenantId, Timestamp};
use engine::machine::ModelTier;
use futures_util::Stream;
use providers::pricing::ModelPrice;
use providers::{EventStream, ModelProvider};
use serde::Serialize;
use serde_json::json;

use crate::Runtime;
use crate::agent::{ModelTarget, Models};
use crate::budget::{BudgetCheckError, BudgetExhausted, BudgetState, BudgetStatus};

pub use providers::types::{FinishReason, Message, Role, ToolCall, ToolSpec};
pub use providers::{ChatRequest, ChatResponse, ProviderError, StreamEvent, Usage};

/// Where a request goes: the tier that does its work, or a piece of equipment, and how sure the
/// router is.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub tier: ModelTier,
    /// The equipment that would answer it (`health_check`, `cost_report`, …), if any.
    pub equipment: Option<String>,
    /// The router's probability for its answer, when it gives one (a rule gives none).
    pub confidence: Option<f64>,
}

/// Routes requests (agent runs and `nexus/auto`) from the user's latest turn alone.
pub trait TierRouter: Send + Sync {
    fn name(&self) -> &str;
    fn route(&self, latest_user_turn: &str) -> Routing;
    fn tier(&self, latest_user_turn: &str) -> ModelTier {
        self.route(latest_user_turn).tier
    }
}

/// The rule-based router of [`engine::routing`], used when no classifier model is loaded.
pub struct HeuristicRouter;

impl TierRouter for HeuristicRouter {
    fn name(&self) -> &str {
        "heuristic"
    }

    fn route(&self, latest_user_turn: &str) -> Routing {
        Routing { tier: engine::routing::heuristic_tier(latest_user_turn), equipment: None, confidence: None }
    }
}

/// When a gateway call is answered relative to its ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAck {
    /// Once the entry is with the ledger writer: committed within milliseconds and before a
    /// clean shutdown ends; a process killed outright loses what is still queued (normally the
    /// last few milliseconds' calls), as does a shutdown whose store still fails after 30 s.
    Queued,
    /// Once the entry is durable in the store: nothing answered is lost, even on `kill -9`.
    Durable,
}

impl LedgerAck {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerAck::Queued => "queued",
            LedgerAck::Durable => "durable",
        }
    }

    /// Reads `queued` or `durable`.
    pub fn parse(text: &str) -> Option<LedgerAck> {
        match text.trim().to_ascii_lowercase().as_str() {
            "queued" => Some(LedgerAck::Queued),
            "durable" => Some(LedgerAck::Durable),
            _ => None,
        }
    }
}

/// Who pays for a call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub key_id: Option<ApiKeyId>,
    /// Who asks (`user:<id>` or `key:<id>`), recorded with the call's cost.
    pub subject: Option<String>,
    /// The caller asked to be answered only once the call's entry is durable, whatever the
    /// server's [`LedgerAck`] (a caller can ask for more than the server's default, never less).
    pub durable: bool,
}

impl Caller {
    /// The caller a principal is.
    pub fn of(principal: &crate::auth::Principal) -> Caller {
        Caller {
            tenant: principal.tenant.clone(),
            key_id: principal.key_id().cloned(),
            subject: Some(principal.subject()),
            durable: false,
        }
    }
}

/// A model a client may ask for.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub owned_by: String,
}

/// Facts about a call, for response headers and logs.
#[derive(Debug, Clone)]
pub struct CallMeta {
    pub provider: String,
    pub model: String,
    /// The tier served when the client asked for one (or `nexus/auto`).
    pub tier: Option<ModelTier>,
    pub cost_usd: f64,
    pub budget: BudgetStatus,
    /// Time spent waiting for the upstream: the whole provider call for a blocking answer,
    /// until the stream opened for a streamed one. The front-end subtracts it from the request's
    /// time to report Nexus's own share (`x-nexus-overhead-us`).
    pub upstream: Duration,
    /// Index of the call's `model_call` entry in the tenant's ledger, once it is durable (a
    /// blocking answer acknowledged `durable`; a stream's entry is written when it ends).
    pub ledger_index: Option<u64>,
    /// How the call's entry is acknowledged.
    pub ledger_ack: LedgerAck,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("unknown model {model:?}; GET /v1/models lists the models this gateway serves")]
    UnknownModel { model: String },
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Budget(BudgetExhausted),
    /// The routed model has no price and no default price is configured.
    #[error(transparent)]
    Unpriced(providers::pricing::UnknownPrice),
    #[error(transparent)]
    Provider(ProviderError),
    /// The ledger cannot record the call now: the call is refused (fail closed), not served
    /// unrecorded.
    #[error("the call cannot be recorded right now ({0}); try again shortly")]
    LedgerUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// How long a gateway answer waits for its ledger entry to be durable before failing closed.
const LEDGER_ACK_WAIT: Duration = Duration::from_secs(5);

impl GatewayError {
    fn ledger(error: crate::LedgerError) -> Self {
        match error {
            crate::LedgerError::Unavailable(reason) => GatewayError::LedgerUnavailable(reason),
            crate::LedgerError::WriterStopped => GatewayError::LedgerUnavailable("the server is shutting down".into()),
            other => GatewayError::Internal(format!("the ledger refused the call record: {other}")),
        }
    }
}

impl From<BudgetCheckError> for GatewayError {
    fn from(error: BudgetCheckError) -> Self {
        match error {
            BudgetCheckError::Exhausted(e) => GatewayError::Budget(e),
            BudgetCheckError::Store(e) => GatewayError::Internal(e.to_string()),
        }
    }
}

/// Where a request goes, and what it costs there.
struct Route {
    provider: Arc<dyn ModelProvider>,
    model: String,
    tier: Option<ModelTier>,
    price: ModelPrice,
}

/// Where a request goes, before it is priced.
struct Target {
    provider: Arc<dyn ModelProvider>,
    model: String,
    tier: Option<ModelTier>,
}

/// Default vendor for a bare model name, by the vendors' naming.
fn vendor_of(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if m.starts_with("claude") {
        Some("anthropic")
    } else if ["gpt-", "o1", "o3", "o4", "chatgpt", "text-embedding"].iter().any(|p| m.starts_with(p)) {
        Some("openai")
    } else if ["mistral", "codestral", "ministral", "open-mistral", "pixtral"].iter().any(|p| m.starts_with(p)) {
        Some("mistral")
    } else {
        None
    }
}

impl Runtime {
    fn gateway_models_config(&self) -> Result<std::sync::Arc<crate::agent::AgentServices>, GatewayError> {
        self.agent_services().ok_or_else(|| GatewayError::NotConfigured("the model gateway is not enabled".into()))
    }

    /// The models clients may name: the tiers, `nexus/auto`, each tier's model, and
    /// `provider/model` for every configured provider's defaults.
    pub fn gateway_models(&self) -> Vec<ModelInfo> {
        let Ok(agent) = self.gateway_models_config() else { return Vec::new() };
        let (providers, models) = (&agent.providers, &agent.models);
        let Models::Configured { trivial, normal, complex } = models else { return Vec::new() };
        let mut out: Vec<ModelInfo> = ["nexus/auto", "nexus/trivial", "nexus/normal", "nexus/complex"]
            .iter()
            .map(|id| ModelInfo { id: (*id).into(), owned_by: "nexus".into() })
            .collect();
        for target in [trivial, normal, complex] {
            if !out.iter().any(|m| m.id == target.model) {
                out.push(ModelInfo { id: target.model.clone(), owned_by: first_provider(target) });
            }
        }
        for provider in providers {
            out.push(ModelInfo { id: format!("{}/*", provider.name()), owned_by: provider.name().to_owned() });
        }
        out
    }

    /// Routes a request and prices its target: a target with no known price (and no configured
    /// default) is refused here, before anything is sent upstream.
    fn route(&self, requested: &str, request: &ChatRequest, budget: &BudgetStatus) -> Result<Route, GatewayError> {
        let Target { provider, model, tier } = self.target(requested, request, budget)?;
        let prices = &self.gateway_models_config()?.prices;
        let price = prices.price_for(provider.name(), &model).map_err(GatewayError::Unpriced)?;
        Ok(Route { provider, model, tier, price })
    }

    fn target(&self, requested: &str, request: &ChatRequest, budget: &BudgetStatus) -> Result<Target, GatewayError> {
        let agent = self.gateway_models_config()?;
        let (providers, models) = (&agent.providers, &agent.models);
        let (trivial, normal, complex) = match models {
            Models::Configured { trivial, normal, complex } => (trivial, normal, complex),
            Models::NotConfigured(message) => return Err(GatewayError::NotConfigured(message.clone())),
        };
        let by_tier = |tier: ModelTier| -> Target {
            let target = match tier {
                ModelTier::Trivial => trivial,
                ModelTier::Normal => normal,
                ModelTier::Complex => complex,
            };
            Target { provider: target.provider.clone(), model: target.model.clone(), tier: Some(tier) }
        };
        let tier = match requested {
            "nexus/auto" => {
                let latest = request.messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| &m.content);
                let tier = self.router.tier(latest);
                let tier = if budget.state >= BudgetState::Degraded { engine::routing::cheaper(tier) } else { tier };
                Some(tier)
            }
            "nexus/trivial" => Some(ModelTier::Trivial),
            "nexus/normal" => Some(ModelTier::Normal),
            "nexus/complex" => Some(ModelTier::Complex),
            _ => None,
        };
        if let Some(tier) = tier {
            return Ok(by_tier(tier));
        }
        if let Some((name, model)) = requested.split_once('/')
            && let Some(provider) = providers.iter().find(|p| p.name() == name)
            && !model.is_empty()
        {
            return Ok(Target { provider: provider.clone(), model: model.to_owned(), tier: None });
        }
        for (tier, target) in
            [(ModelTier::Trivial, trivial), (ModelTier::Normal, normal), (ModelTier::Complex, complex)]
        {
            if target.model == requested {
                return Ok(Target { tier: Some(tier), ..by_tier(tier) });
            }
        }
        let vendor = vendor_of(requested);
        let provider = providers.iter().find(|p| Some(p.name()) == vendor).or_else(|| {
            vendor
                .is_none()
                .then(|| providers.iter().find(|p| matches!(p.name(), "openai-compatible" | "ollama")))
                .flatten()
        });
        match provider {
            Some(provider) => Ok(Target { provider: provider.clone(), model: requested.to_owned(), tier: None }),
            None => Err(GatewayError::UnknownModel { model: requested.to_owned() }),
        }
    }

    /// One whole answer, governed.
    pub async fn gateway_complete(
        &self,
        caller: &Caller,
        requested_model: &str,
        mut request: ChatRequest,
    ) -> Result<(ChatResponse, CallMeta), GatewayError> {
        // Refuse before spending anything upstream if the call could not be recorded.
        self.ledger.accepting().map_err(GatewayError::ledger)?;
        let budget = self.budgets.check(&caller.tenant).await?;
        let route = self.route(requested_model, &request, &budget)?;
        request.model = route.model.clone();
        let digest = request_digest(requested_model, &request);
        let called = Instant::now();
        let outcome = route.provider.complete(&request).await;
        let provider_latency = called.elapsed();
        metrics::histogram!("nexus_provider_seconds", "provider" => route.provider.name().to_owned())
            .record(provider_latency.as_secs_f64());
        let response = outcome.map_err(GatewayError::Provider)?;
        let (cost, ledger_index) = self
            .record_call(
                caller,
                &route,
                &digest,
                &response.provider,
                &route.model,
                response.usage,
                provider_latency,
                false,
            )
            .await?;
        let meta = CallMeta {
            provider: response.provider.clone(),
            model: route.model.clone(),
            tier: route.tier,
            cost_usd: cost,
            budget,
            upstream: provider_latency,
            ledger_index,
            // An entry the answer waited for is durable, whatever was asked.
            ledger_ack: if ledger_index.is_some() { LedgerAck::Durable } else { LedgerAck::Queued },
        };
        Ok((response, meta))
    }

    /// A streamed answer, governed: usage is recorded when the stream ends, or with what was
    /// seen when the client goes away first.
    pub async fn gateway_stream(
        self: &Arc<Self>,
        caller: &Caller,
        requested_model: &str,
        mut request: ChatRequest,
    ) -> Result<(MeteredStream, CallMeta), GatewayError> {
        self.ledger.accepting().map_err(GatewayError::ledger)?;
        let budget = self.budgets.check(&caller.tenant).await?;
        let route = self.route(requested_model, &request, &budget)?;
        request.model = route.model.clone();
        let digest = request_digest(requested_model, &request);
        let called = Instant::now();
        let inner = route.provider.stream(&request).await.map_err(GatewayError::Provider)?;
        let upstream = called.elapsed();
        let meta = CallMeta {
            provider: route.provider.name().to_owned(),
            model: route.model.clone(),
            tier: route.tier,
            cost_usd: 0.0,
            budget,
            upstream,
            ledger_index: None,
            ledger_ack: self.ledger_ack_for(caller),
        };
        let finish = Finish { runtime: self.clone(), caller: caller.clone(), route, digest, called };
        Ok((MeteredStream { inner, usage: Usage::default(), finish: Some(finish), recording: None, done: false }, meta))
    }

    /// How a caller's calls are acknowledged: durable if the server or the caller asks for it.
    fn ledger_ack_for(&self, caller: &Caller) -> LedgerAck {
        if caller.durable { LedgerAck::Durable } else { self.config.gateway_ack }
    }

    /// Prices a call at its route's price (never by the model name the upstream echoes) and
    /// hands its ledger entry, with the cost record, to the ledger: waits for it to be durable
    /// when the call is acknowledged `durable` (returning its index), queues it otherwise.
    #[allow(clippy::too_many_arguments)]
    async fn record_call(
        &self,
        caller: &Caller,
        route: &Route,
        digest: &str,
        provider: &str,
        model: &str,
        usage: Usage,
        latency: Duration,
        interrupted: bool,
    ) -> Result<(f64, Option<u64>), GatewayError> {
        let cost = route.price.cost_usd(&usage);
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let mut payload = json!({
            "route": "gateway", "request_sha256": digest, "provider": provider, "model": model,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cost_usd": cost, "latency_ms": latency_ms,
            "api_key_id": caller.key_id.as_ref().map(ApiKeyId::as_str),
        });
        if let Some(tier) = route.tier {
            payload["tier"] = json!(tier);
        }
        if interrupted {
            payload["interrupted"] = json!(true);
        }
        let cost_record = domain::cost::CostRecord {
            tenant_id: caller.tenant.clone(),
            chain_id: None,
            seal_id: None,
            api_key_id: caller.key_id.clone(),
            subject: caller.subject.clone(),
            provider: Some(provider.to_owned()),
            model: model.to_owned(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd: cost,
            timestamp: Timestamp::now(),
        };
        let companions = Companions { costs: vec![cost_record], ..Companions::default() };
        let draft = EntryDraft { kind: EntryKind::ModelCall, chain_id: None, payload };
        let index = match self.ledger_ack_for(caller) {
            // The answer waits for the entry to be durable. A store that cannot record it in
            // time fails the call closed (503).
            LedgerAck::Durable => Some(
                self.ledger
                    .append_within(&caller.tenant, draft, companions, LEDGER_ACK_WAIT)
                    .await
                    .map_err(GatewayError::ledger)?
                    .index,
            ),
            // The writer has it (or, when it lags, the entry is durable: back-pressure); a
            // writer that cannot take it fails the call closed (503).
            LedgerAck::Queued => self
                .ledger
                .enqueue(&caller.tenant, draft, companions, LEDGER_ACK_WAIT)
                .await
                .map_err(GatewayError::ledger)?
                .map(|appended| appended.index),
        };
        self.note_spend(&caller.tenant, cost);
        metrics::counter!("nexus_tokens_total", "direction" => "input").increment(usage.input_tokens);
        metrics::counter!("nexus_tokens_total", "direction" => "output").increment(usage.output_tokens);
        metrics::counter!("nexus_cost_usd_micros_total").increment((cost * 1e6) as u64);
        Ok((cost, index))
    }

    /// Adds spend to the tenant's budget and publishes the alert the first time it crosses it.
    pub(crate) fn note_spend(&self, tenant: &TenantId, cost: f64) {
        if self.budgets.record(tenant, cost) {
            tracing::warn!(%tenant, "tenant crossed its budget alert threshold");
            let _ = self.notices.send(Notice::BudgetAlert { tenant: tenant.clone() });
        }
    }
}

/// Operator-facing notices (not tied to a run).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The tenant's monthly spend crossed the alert fraction.
    BudgetAlert { tenant: TenantId },
}

fn first_provider(target: &ModelTarget) -> String {
    target.provider.name().to_owned()
}

/// Hex SHA-256 of the request as the client shaped it (model asked for, system, messages,
/// tools, limits), so the ledger binds each call to its exact input without storing it.
fn request_digest(requested: &str, request: &ChatRequest) -> String {
    let messages: Vec<serde_json::Value> = request
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content, "tool_calls": m.tool_calls, "tool_call_id": m.tool_call_id}))
        .collect();
    let canonical = domain::canonical::canonical_json(&json!({
        "model": requested, "system": request.system, "messages": messages, "tools": request.tools,
        "max_tokens": request.max_tokens, "temperature": request.temperature, "stop": request.stop,
    }));
    hex::encode(ledger::hash::sha256(canonical.as_bytes()))
}

struct Finish {
    runtime: Arc<Runtime>,
    caller: Caller,
    route: Route,
    digest: String,
    called: Instant,
}

type Recording = Pin<Box<dyn Future<Output = Result<(f64, Option<u64>), GatewayError>> + Send>>;

impl Finish {
    /// Records the call (provider latency, ledger entry, cost).
    fn record(self, usage: Usage, interrupted: bool) -> Recording {
        Box::pin(async move {
            let latency = self.called.elapsed();
            metrics::histogram!("nexus_provider_seconds", "provider" => self.route.provider.name().to_owned())
                .record(latency.as_secs_f64());
            let provider = self.route.provider.name().to_owned();
            let model = self.route.model.clone();
            self.runtime
                .record_call(&self.caller, &self.route, &self.digest, &provider, &model, usage, latency, interrupted)
                .await
        })
    }

    /// Records the call in the background (the client is gone; nobody waits for it).
    fn detach(self, usage: Usage) {
        let tenant = self.caller.tenant.clone();
        let recording = self.record(usage, true);
        crate::tasks::spawn("gateway-record", async move {
            if let Err(error) = recording.await {
                tracing::error!(%error, %tenant, "could not record an interrupted gateway stream");
            }
        });
    }
}

type StreamItem = Result<StreamEvent, ProviderError>;

/// A provider stream that records the call's usage when it ends or is dropped. The stream's
/// last item (its clean end) is held back until the record is durable; if it cannot be
/// recorded, the client gets an error instead of a clean end.
pub struct MeteredStream {
    inner: EventStream,
    usage: Usage,
    finish: Option<Finish>,
    /// The record being written, and the item held back until it is durable (`None`: the
    /// stream's end).
    recording: Option<(Recording, Option<StreamItem>)>,
    done: bool,
}

impl Stream for MeteredStream {
    type Item = StreamItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some((recording, _)) = self.recording.as_mut() {
            let outcome = std::task::ready!(recording.as_mut().poll(cx));
            let held = self.recording.take().and_then(|(_, held)| held);
            return Poll::Ready(match outcome {
                Ok(_) => {
                    if held.is_none() {
                        self.done = true;
                    }
                    held
                }
                Err(error) => {
                    self.done = true;
                    Some(Err(ProviderError::Status {
                        provider: "nexus".into(),
                        status: 503,
                        message: error.to_string(),
                        retry_after: Some(Duration::from_secs(1)),
                    }))
                }
            });
        }
        let polled = self.inner.as_mut().poll_next(cx);
        match polled {
            Poll::Ready(Some(Ok(StreamEvent::Usage(usage)))) => {
                self.usage = usage;
                Poll::Ready(Some(Ok(StreamEvent::Usage(usage))))
            }
            Poll::Ready(end @ (Some(Ok(StreamEvent::Done { .. })) | Some(Err(_)) | None)) => {
                let usage = self.usage;
                match self.finish.take() {
                    Some(finish) => {
                        self.recording = Some((finish.record(usage, false), end));
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    None => Poll::Ready(end),
                }
            }
            other => other,
        }
    }
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish.detach(self.usage);
        }
        if let Some((recording, _)) = self.recording.take() {
            // The client left while its record was being written: finish writing it.
            crate::tasks::spawn("gateway-record", async move {
                if let Err(error) = recording.await {
                    tracing::error!(%error, "could not record a gateway stream");
                }
            });
        }
    }
}
