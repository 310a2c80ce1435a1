//! Response shapes of the native API (`ExecuteResponse`, `SealResponse`, `GateResponse`,
//! `CostSummary`) and the SSE event payloads. Their names and fields are the API's contract
//! with clients.

use std::collections::HashMap;

use domain::ledger::LedgerRecord;
use engine::machine::Event;
use runtime::agent::RunReport;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// What to do, e.g. "Analyze customer churn from Q3 data" (not blank; at most 32000 characters).
    #[schema(min_length = 1, max_length = 32000)]
    pub task: String,
    /// A persona name; when absent the engine picks one per step.
    pub persona: Option<String>,
    /// Forces the tier instead of the router's choice: `trivial` (answered directly, no plan),
    /// `normal` or `complex` (planned on that tier's model).
    pub tier: Option<String>,
    /// Per-request overrides. Supported: `qa_spec` (a JSON QA spec, as `nexus run --qa-spec` reads).
    #[schema(value_type = Option<crate::schema::ExecuteConfig>)]
    pub config: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GateResponse {
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub verdict: String,
    pub score: f64,
    pub threshold: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SealResponse {
    /// The fingerprint of the step's last seal (result, else intent).
    pub id: String,
    pub step_index: usize,
    pub persona: String,
    pub tool: String,
    pub status: String,
    pub gates: Vec<GateResponse>,
    /// The chain-of-thought trace the step recorded.
    pub reasoning: Vec<String>,
    /// When the seal entered the ledger (RFC 3339), if it did.
    pub created_at: Option<String>,
    pub result_preview: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostSummary {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_cost_usd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecuteResponse {
    pub chain_id: String,
    /// A chain status: `planning`, `executing`, `awaiting_approval`, `completed`, `failed`,
    /// `partial`, `escalated` or `cancelled`.
    pub status: String,
    pub task: String,
    pub seals: Vec<SealResponse>,
    /// The final answer, when there is one.
    #[schema(value_type = Option<String>)]
    pub result: Value,
    pub error: Option<String>,
    pub cost: CostSummary,
    pub models: Vec<String>,
    /// How the run was routed before it started (absent for runs older than routing).
    pub route: Option<RouteResponse>,
    /// What the requester should know about how the answer came about (e.g. the plan was
    /// skipped, and why).
    pub notice: Option<String>,
    /// Time the request took (for `GET /v1/chains/{id}`: 0).
    pub duration_ms: u64,
}

/// A run's routing decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteResponse {
    /// `trivial` (answered directly, no plan), `normal` or `complex`.
    pub tier: String,
    /// Who decided: `classifier`, `heuristic` or `forced`.
    pub by: String,
    /// The router's probability for its answer, when it gives one.
    pub confidence: Option<f64>,
}

/// Builds the response of a run; `records` are the chain's ledger entries (for seal times).
pub fn execute_response(report: &RunReport, records: &[LedgerRecord], duration_ms: u64) -> ExecuteResponse {
    let times: HashMap<&str, String> =
        records.iter().map(|r| (r.fingerprint.as_str(), r.timestamp.to_rfc3339())).collect();
    let seals = report
        .steps
        .iter()
        .map(|step| {
            let id = step.result_fingerprint.clone().or_else(|| step.intent_fingerprint.clone()).unwrap_or_default();
            SealResponse {
                created_at: times.get(id.as_str()).cloned(),
                id,
                step_index: step.index,
                persona: step.persona.clone(),
                tool: step.tool.clone(),
                status: step.status.as_str().to_owned(),
                gates: step
                    .gates
                    .iter()
                    .map(|g| GateResponse {
                        name: g.gate_name.clone(),
                        verdict: verdict(&g.verdict),
                        score: g.score,
                        threshold: g.threshold,
                    })
                    .collect(),
                reasoning: step.reasoning.clone(),
                result_preview: step.result_preview.clone(),
                error: step.error.clone(),
            }
        })
        .collect();
    ExecuteResponse {
        chain_id: report.chain_id.to_string(),
        status: report.status.as_str().to_owned(),
        task: report.task.clone(),
        seals,
        result: report.answer.clone().map_or(Value::Null, Value::String),
        error: report.error.clone(),
        cost: CostSummary {
            input_tokens: report.input_tokens,
            output_tokens: report.output_tokens,
            total_cost_usd: report.cost_usd,
        },
        models: report.models.clone(),
        route: report.route.as_ref().map(|r| RouteResponse {
            tier: verdict(&r.tier),
            by: r.by.clone(),
            confidence: r.confidence,
        }),
        notice: report.notice.clone(),
        duration_ms,
    }
}

fn verdict<T: Serialize>(verdict: &T) -> String {
    serde_json::to_value(verdict).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// An engine event as an SSE event name (`chain_started`, `gate_result`, …) and JSON payload.
pub fn sse_event(event: &Event) -> (&'static str, Value) {
    match event {
        Event::ChainStarted { chain_id, steps } => ("chain_started", json!({"chain_id": chain_id, "steps": steps})),
        Event::StepStarted { step, persona, tool } => {
            ("step_started", json!({"step": step, "persona": persona, "tool": tool}))
        }
        Event::GateResult { step, gate, verdict: v, score, threshold } => (
            "gate_result",
            json!({"step": step, "gate": gate, "verdict": verdict(v), "score": score, "threshold": threshold}),
        ),
        Event::SealCreated { step, seal_kind, status, fingerprint, result_preview } => (
            "seal_created",
            json!({"step": step, "seal_id": fingerprint, "kind": seal_kind, "status": status, "result_preview": result_preview}),
        ),
        Event::StepCompleted { step, status } => ("step_completed", json!({"step": step, "status": status})),
        Event::ApprovalRequired { step, tool, reason } => {
            ("approval_required", json!({"step": step, "tool": tool, "reason": reason}))
        }
        Event::Tainted { step, tool, reason } => ("tainted", json!({"step": step, "tool": tool, "reason": reason})),
        Event::ChainCompleted { chain_id, status, input_tokens, output_tokens, cost_usd } => (
            "chain_completed",
            json!({"chain_id": chain_id, "status": status.as_str(), "cost": {
                "input_tokens": input_tokens, "output_tokens": output_tokens, "total_cost_usd": cost_usd,
            }}),
        ),
        Event::Error { message } => ("error", json!({"message": message})),
        Event::Notice { message } => ("notice", json!({"message": message})),
    }
}
