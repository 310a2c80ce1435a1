//! The step-level work of [`Run`](super::Run): building model calls, choosing personas,
//! running the gates and building seal payloads.

use std::time::Duration;

use domain::Timestamp;
use domain::agent::{ActionStatus, ChainStatus, GateVerdict};
use domain::persona::PersonaContract;
use domain::tool::ToolDefinition;
use serde_json::json;

use super::{Action, Event, ModelPurpose, ModelTier, Phase, Run, SealKind, StepRecord, call_digest, unknown_tool};
use crate::gates::{self, DriftHistory, GateInput};
use crate::parse::{self, PlannedStep};
use crate::validate::redact_json;
use crate::{prompts, resources};

impl Run {
    pub(super) fn plan_call(&self, attempts: u32) -> Action {
        let personas: Vec<&PersonaContract> = match &self.context.persona_override {
            Some(name) => self.context.personas.iter().filter(|p| &p.name == name).collect(),
            None => self.context.personas.iter().collect(),
        };
        // The model only ever sees tools that one of the offered personas may use.
        let tools: Vec<&ToolDefinition> =
            self.context.tools.iter().filter(|t| personas.iter().any(|p| p.allowed_tools.contains(&t.name))).collect();
        let mut prompt = prompts::plan(&self.task, &tools, &personas);
        if attempts > 0 {
            prompt.push_str("\n\nYour previous answer was not a valid JSON plan. Answer with the JSON array only.");
        }
        Action::CallModel {
            purpose: ModelPurpose::Plan,
            system: prompts::PLANNER_SYSTEM.to_owned(),
            prompt,
            tier: self.work_tier(),
            tier_bump: 0,
        }
    }

    /// Whether the task clearly needs a tool: one is offered and the request is tool-shaped
    /// (it names a place to fetch, something to search, send, read or write).
    pub(super) fn needs_tool(&self) -> bool {
        !self.context.tools.is_empty() && crate::routing::tool_shaped(&self.task)
    }

    pub(super) fn start_plan(&mut self, plan: Vec<PlannedStep>, events: &mut Vec<Event>) -> Action {
        self.status = ChainStatus::Executing;
        events.push(Event::ChainStarted { chain_id: self.chain_id.to_string(), steps: plan.len() });
        self.steps = plan
            .iter()
            .enumerate()
            .map(|(index, p)| StepRecord {
                index,
                action: p.action.clone(),
                persona: self.persona_for(p),
                tool: p.tool.clone(),
                params: p.params.clone(),
                gates: Vec::new(),
                status: ActionStatus::Pending,
                intent_fingerprint: None,
                result_fingerprint: None,
                result_preview: None,
                error: None,
                reasoning: Vec::new(),
                attempts: 0,
                action_fingerprint: None,
                gate_micros: None,
            })
            .collect();
        self.plan = plan;
        // The capabilities the task asks for, fixed before any tool output is read.
        self.provenance.fix_envelope(&self.task, &self.context.tools);
        if self.steps.is_empty() {
            self.phase = Phase::Answering { attempts: 0, tier_bump: 0 };
            return self.answer_call(0, 0, &[]);
        }
        self.begin_step(0, events)
    }

    /// The persona for a step: the override, else the planned one if it exists, else the first
    /// persona allowed to use the tool, else the planned name (and the scope gate will say no).
    pub(super) fn persona_for(&self, step: &PlannedStep) -> String {
        if let Some(name) = &self.context.persona_override {
            return name.clone();
        }
        let personas = &self.context.personas;
        if let Some(name) = step.persona.as_ref().filter(|n| personas.iter().any(|p| &p.name == *n)) {
            return name.clone();
        }
        personas
            .iter()
            .find(|p| p.allowed_tools.contains(&step.tool))
            .map(|p| p.name.clone())
            .or_else(|| step.persona.clone())
            .unwrap_or_else(|| "unassigned".to_owned())
    }

    pub(super) fn begin_step(&mut self, step: usize, events: &mut Vec<Event>) -> Action {
        let s = &self.steps[step];
        events.push(Event::StepStarted { step, persona: s.persona.clone(), tool: s.tool.clone() });
        self.phase = Phase::Retrieving { step, loops: 0 };
        Action::Retrieve { step, query: self.retrieval_query(step, 0) }
    }

    /// The query of retrieval loop `loops`: the step's own action first, then broadened with
    /// the task it serves.
    pub(super) fn retrieval_query(&self, step: usize, loops: u32) -> String {
        let action = &self.steps[step].action;
        if loops == 0 { action.clone() } else { format!("{action} {}", self.task) }
    }

    pub(super) fn activate_action(&self, step: usize) -> Action {
        let s = &self.steps[step];
        Action::ActivatePersona { step, persona: s.persona.clone(), tool: s.tool.clone() }
    }

    pub(super) fn declare_call(&self, step: usize) -> Action {
        let s = &self.steps[step];
        let prompt = match self.tool(&s.tool) {
            Some(tool) => prompts::declare(&self.task, &s.action, tool, &s.params.to_string(), &self.retrieved),
            None => {
                prompts::declare(&self.task, &s.action, &unknown_tool(&s.tool), &s.params.to_string(), &self.retrieved)
            }
        };
        Action::CallModel {
            purpose: ModelPurpose::Declare,
            system: prompts::PLANNER_SYSTEM.to_owned(),
            prompt,
            tier: self.work_tier(),
            tier_bump: 0,
        }
    }

    pub(super) fn tool(&self, name: &str) -> Option<&ToolDefinition> {
        self.context.tools.iter().find(|t| t.name == name)
    }

    pub(super) fn gate(
        &mut self,
        step: usize,
        drift: &DriftHistory,
        since_activation: Duration,
        intent_similarity: Option<f64>,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> Action {
        let s = self.steps[step].clone();
        let persona = self.context.personas.iter().find(|p| p.name == s.persona).cloned();
        let tool = self.tool(&s.tool).cloned();
        let mut held = None;
        let (gates, overall_fail, approval, error) = match (&persona, &tool) {
            (Some(persona), Some(tool)) => {
                let derived = resources::derive(tool, &s.params);
                let missing = parse::missing_required(&tool.parameters, &s.params);
                let outcome = gates::evaluate(&GateInput {
                    persona,
                    tool,
                    resources: derived.as_deref(),
                    since_activation,
                    intent_similarity,
                    drift,
                    now,
                });
                let failed: Vec<String> = outcome
                    .anomaly
                    .gates
                    .iter()
                    .filter(|g| g.verdict == GateVerdict::Fail)
                    .map(|g| format!("gate {} failed: {}", g.gate_name, g.details))
                    .collect();
                let mut error = failed.join("; ");
                if !missing.is_empty() {
                    error = if error.is_empty() { String::new() } else { format!("{error}; ") };
                    error.push_str(&format!("missing parameters: {}", missing.join(", ")));
                }
                let fail = outcome.anomaly.overall_verdict == GateVerdict::Fail || !missing.is_empty();
                self.steps[step].action_fingerprint = Some(outcome.anomaly.action_fingerprint.clone());
                // A tainted run's state-changing call waits for a human unless it stays inside
                // the task's envelope, on targets from trusted origins.
                let earlier = self.steps[..step].iter().filter(|e| e.tool == s.tool).count();
                held = self.provenance.check(&self.task, tool, &s.params, earlier);
                let provenance = held.as_ref().map(|h| h.reason(self.provenance.taint.as_ref()));
                let approval = match (outcome.approval_reason, provenance) {
                    (Some(gates), Some(provenance)) => Some(format!("{gates}; {provenance}")),
                    (gates, provenance) => gates.or(provenance),
                };
                (outcome.anomaly.gates, fail, approval, error)
            }
            _ => {
                let why = if tool.is_none() {
                    format!("no tool named {:?} is registered", s.tool)
                } else {
                    format!("no persona named {:?} exists", s.persona)
                };
                let skip = |name: &str| domain::agent::GateResult {
                    gate_name: name.to_owned(),
                    verdict: GateVerdict::Skip,
                    score: 0.0,
                    threshold: 0.0,
                    details: "not evaluated: the call names no known tool or persona".into(),
                    timestamp: now,
                };
                let scope = domain::agent::GateResult {
                    gate_name: "scope".into(),
                    verdict: GateVerdict::Fail,
                    score: 0.0,
                    threshold: 1.0,
                    details: why.clone(),
                    timestamp: now,
                };
                (
                    vec![scope, skip("intent"), skip("ttl"), skip("drift")],
                    true,
                    None,
                    format!("gate scope failed: {why}"),
                )
            }
        };
        for g in &gates {
            events.push(Event::GateResult {
                step,
                gate: g.gate_name.clone(),
                verdict: g.verdict,
                score: g.score,
                threshold: g.threshold,
            });
        }
        let status = if overall_fail {
            ActionStatus::Blocked
        } else if approval.is_some() {
            ActionStatus::AwaitingApproval
        } else {
            ActionStatus::Pending
        };
        let st = &mut self.steps[step];
        st.gates = gates.clone();
        st.status = status;
        st.error = if overall_fail { Some(error) } else { approval.clone() };
        let payload = json!({
            "chain_id": self.chain_id.as_str(),
            "step_index": step,
            "task": self.task,
            "action": st.action,
            "persona": st.persona,
            "persona_id": persona.as_ref().map(|p| p.id.as_str().to_owned()),
            "persona_version": persona.as_ref().map(|p| p.version),
            "tool": st.tool,
            "tool_params": st.params,
            "call_digest": call_digest(&self.chain_id, step, &st.tool, &st.params),
            "action_fingerprint": st.action_fingerprint,
            "gates": gates,
            "status": status,
            "reason": st.error,
            "reasoning": st.reasoning,
            "tainted": self.provenance.taint.is_some(),
        });
        let mut payload = payload;
        if let Some(taint) = &self.provenance.taint {
            payload["provenance"] = json!({
                "taint": taint.origin,
                "envelope": self.provenance.envelope,
                "hold": held,
            });
        }
        // The ledger is append-only: secrets and PII never enter it. The call digest above was
        // taken over the raw parameters, so the seal still binds the exact call.
        let payload = redact_json(payload);
        self.phase = Phase::SealingIntent { step, payload: payload.clone() };
        Action::Seal { step, kind: SealKind::Intent, payload }
    }

    pub(super) fn execute(&mut self, step: usize) -> Action {
        let timeout = self.tool(&self.steps[step].tool).map_or(30, |t| t.timeout_seconds);
        let s = &mut self.steps[step];
        s.status = ActionStatus::Executing;
        s.attempts += 1;
        self.phase = Phase::Executing { step };
        Action::ExecuteTool {
            step,
            tool: s.tool.clone(),
            params: s.params.clone(),
            timeout: Duration::from_secs(u64::from(timeout)),
        }
    }

    pub(super) fn seal_result(&mut self, step: usize) -> Action {
        let s = &self.steps[step];
        let payload = json!({
            "chain_id": self.chain_id.as_str(),
            "step_index": step,
            "tool": s.tool,
            "status": s.status,
            "result_preview": s.result_preview,
            "error": s.error,
            "attempts": s.attempts,
            "intent_fingerprint": s.intent_fingerprint,
            "reasoning": s.reasoning,
        });
        let payload = redact_json(payload);
        self.phase = Phase::SealingResult { step, payload: payload.clone() };
        Action::Seal { step, kind: SealKind::Result, payload }
    }

    pub(super) fn answer_call(&self, attempts: u32, tier_bump: u8, failures: &[String]) -> Action {
        let results: String = self
            .steps
            .iter()
            .filter_map(|s| s.result_preview.as_ref().map(|r| format!("[{} {}] {r}\n", s.index, s.tool)))
            .collect();
        let mut prompt = prompts::answer(&self.task, &results);
        if !failures.is_empty() {
            prompt.push_str(&format!(
                "\n\nYour previous answer was rejected by quality checks: {}. Fix these problems.",
                failures.join("; ")
            ));
        }
        let _ = attempts;
        Action::CallModel {
            purpose: ModelPurpose::Answer,
            system: prompts::ANSWER_SYSTEM.to_owned(),
            prompt,
            tier: self.answer_tier().raised(tier_bump),
            tier_bump,
        }
    }

    /// The tier that answers: a task the planner found needs no tool is simple, so the cheap
    /// tier answers it — unless the request was routed to the strongest tier, or the plan was
    /// skipped (the planner failed; the request is not known to be simple).
    fn answer_tier(&self) -> ModelTier {
        let routed_complex = self.route.as_ref().is_some_and(|r| r.tier == ModelTier::Complex);
        if self.steps.is_empty() && self.notice.is_none() && !routed_complex {
            ModelTier::Trivial
        } else {
            self.work_tier()
        }
    }

    /// Ends the run after a step was blocked or failed: `partial` if earlier steps completed.
    pub(super) fn stop(&mut self, error: String) -> Action {
        let completed = self.steps.iter().any(|s| s.status == ActionStatus::Executed);
        self.status = if completed { ChainStatus::Partial } else { ChainStatus::Failed };
        self.error = Some(error);
        self.phase = Phase::Done;
        self.finish_action()
    }

    pub(super) fn fail(&mut self, error: String) -> Action {
        self.status = ChainStatus::Failed;
        self.error = Some(error);
        self.phase = Phase::Done;
        self.finish_action()
    }

    pub(super) fn finish_action(&self) -> Action {
        Action::Finish { status: self.status, answer: self.answer.clone(), error: self.error.clone() }
    }
}
