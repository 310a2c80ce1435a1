//! The agent's vocabulary: intents, gate results, seals and chains.

use serde::{Deserialize, Serialize};

use crate::persona::{RiskLevel, str_enum};
use crate::{ChainId, PersonaId, SealId, TenantId, Timestamp};

/// A gate's verdict. `Skip` means the gate had nothing to judge (no embeddings, no baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Pending,
    Declared,
    Executing,
    Executed,
    Failed,
    Blocked,
    Compensated,
    AwaitingApproval,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    Planning,
    Executing,
    AwaitingApproval,
    Completed,
    Failed,
    /// Some steps completed, then the chain was aborted.
    Partial,
    Escalated,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningDecision {
    Think,
    Act,
    Continue,
    Complete,
    Escalate,
    Retry,
}

str_enum!(GateVerdict { Pass => "pass", Fail => "fail", Skip => "skip" });
str_enum!(ActionStatus {
    Pending => "pending", Declared => "declared", Executing => "executing", Executed => "executed",
    Failed => "failed", Blocked => "blocked", Compensated => "compensated",
    AwaitingApproval => "awaiting_approval",
});
str_enum!(ChainStatus {
    Planning => "planning", Executing => "executing", AwaitingApproval => "awaiting_approval",
    Completed => "completed", Failed => "failed", Partial => "partial", Escalated => "escalated",
    Cancelled => "cancelled",
});

impl ChainStatus {
    /// A terminal chain never changes status again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChainStatus::Completed
                | ChainStatus::Failed
                | ChainStatus::Partial
                | ChainStatus::Escalated
                | ChainStatus::Cancelled
        )
    }
}

/// The result of one anomaly gate, stored inside the seal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// `scope`, `intent`, `ttl` or `drift`.
    pub gate_name: String,
    pub verdict: GateVerdict,
    pub score: f64,
    pub threshold: f64,
    /// Human-readable explanation.
    pub details: String,
    pub timestamp: Timestamp,
}

/// The combined verdict of all gates: `Fail` if any gate failed; skipped gates do not fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyResult {
    pub gates: Vec<GateResult>,
    pub overall_verdict: GateVerdict,
    pub risk_level: RiskLevel,
    pub persona_id: PersonaId,
    /// Hash of the action, for drift comparison.
    pub action_fingerprint: String,
}

impl AnomalyResult {
    /// Combines gate results: any failure fails; otherwise pass (skips do not fail).
    pub fn overall(gates: &[GateResult]) -> GateVerdict {
        if gates.iter().any(|g| g.verdict == GateVerdict::Fail) { GateVerdict::Fail } else { GateVerdict::Pass }
    }
}

/// What the agent declares it will do, before it does it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentDeclaration {
    pub task_description: String,
    pub planned_action: String,
    pub tool_name: String,
    pub tool_params: serde_json::Value,
    pub resource_targets: Vec<String>,
    /// Why the agent chose this action.
    pub reasoning: String,
    /// 0.0–1.0.
    pub confidence: f64,
}

/// The notarized record of one action. The hash-chain fields are filled by the ledger when the
/// seal is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    pub id: SealId,
    pub chain_id: ChainId,
    pub step_index: u32,
    pub tenant_id: TenantId,
    pub persona_id: PersonaId,
    pub intent: IntentDeclaration,
    pub anomaly_result: AnomalyResult,
    pub tool_name: String,
    pub tool_params: serde_json::Value,
    pub tool_result: Option<serde_json::Value>,
    pub status: ActionStatus,
    pub cot_trace: Vec<String>,
    pub fingerprint: String,
    pub parent_fingerprint: String,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub error: Option<String>,
}

/// An immutable plan for a multi-step task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainPlan {
    pub id: ChainId,
    pub tenant_id: TenantId,
    pub task: String,
    pub steps: Vec<serde_json::Value>,
    pub status: ChainStatus,
    pub seals: Vec<SealId>,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub error: Option<String>,
}

/// Context assembled by retrieval for a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedContext {
    pub query: String,
    pub documents: Vec<serde_json::Value>,
    pub confidence: f64,
    pub sources: Vec<String>,
    pub namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(verdict: GateVerdict) -> GateResult {
        GateResult {
            gate_name: "scope".into(),
            verdict,
            score: 1.0,
            threshold: 1.0,
            details: String::new(),
            timestamp: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn any_failure_fails_and_skips_do_not() {
        assert_eq!(AnomalyResult::overall(&[gate(GateVerdict::Pass), gate(GateVerdict::Skip)]), GateVerdict::Pass);
        assert_eq!(AnomalyResult::overall(&[gate(GateVerdict::Skip), gate(GateVerdict::Fail)]), GateVerdict::Fail);
    }

    #[test]
    fn statuses_serialize_as_seed_004_strings() {
        assert_eq!(serde_json::to_string(&ChainStatus::Partial).expect("serializes"), "\"partial\"");
        assert_eq!(ActionStatus::parse("executed"), Some(ActionStatus::Executed));
        assert!(ChainStatus::Escalated.is_terminal());
        assert!(!ChainStatus::Executing.is_terminal());
    }
}
