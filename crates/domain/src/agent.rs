//! The agent's vocabulary: gate results and the statuses of steps, chains and approvals.

use serde::{Deserialize, Serialize};

use crate::persona::{RiskLevel, str_enum};
use crate::{PersonaId, Timestamp};

/// A gate's verdict. `Skip` means the gate had nothing to judge (no embeddings, no baseline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateVerdict {
    Pass,
    Fail,
    Skip,
}

/// Where one step of a chain stands. The serialised spellings are stored (run state, seals)
/// and sent (HTTP, SSE): never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Planned, or gated and about to run.
    Pending,
    /// Held by the gates until a human decides.
    AwaitingApproval,
    /// The tool is running.
    Executing,
    Executed,
    Failed,
    /// Refused by a gate or by a human.
    Blocked,
}

/// Where a chain stands. The serialised spellings are stored (the `runs.status` column, run
/// state) and sent (HTTP, SSE): never rename one.
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

/// Where a request for a human decision stands. The spellings are stored (`approvals.status`)
/// and sent (HTTP): never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a decision (until it expires).
    Pending,
    Approved,
    Denied,
    /// Nobody decided in time; counts as a denial.
    Expired,
}

str_enum!(GateVerdict: "gate verdict" { Pass => "pass", Fail => "fail", Skip => "skip" });
str_enum!(ActionStatus: "step status" {
    Pending => "pending", AwaitingApproval => "awaiting_approval", Executing => "executing",
    Executed => "executed", Failed => "failed", Blocked => "blocked",
});
str_enum!(ChainStatus: "chain status" {
    Planning => "planning", Executing => "executing", AwaitingApproval => "awaiting_approval",
    Completed => "completed", Failed => "failed", Partial => "partial", Escalated => "escalated",
    Cancelled => "cancelled",
});
str_enum!(ApprovalStatus: "approval status" {
    Pending => "pending", Approved => "approved", Denied => "denied", Expired => "expired",
});

impl ActionStatus {
    /// Whether the step is over (executed, failed or blocked): nothing more happens to it.
    pub fn is_settled(self) -> bool {
        matches!(self, ActionStatus::Executed | ActionStatus::Failed | ActionStatus::Blocked)
    }
}

impl ChainStatus {
    /// The statuses of chains that are not over (a process may still move them on).
    pub const OPEN: &'static [ChainStatus] =
        &[ChainStatus::Planning, ChainStatus::Executing, ChainStatus::AwaitingApproval];

    /// A terminal chain never changes status again.
    pub fn is_terminal(self) -> bool {
        !self.is_open()
    }

    /// Whether the chain is not over yet: one of [`ChainStatus::OPEN`].
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
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
    fn statuses_keep_their_stored_spellings() {
        assert_eq!(serde_json::to_string(&ChainStatus::Partial).expect("serializes"), "\"partial\"");
        assert_eq!(ActionStatus::parse("executed"), Some(ActionStatus::Executed));
        // One spelling each: serde, `as_str`, `Display` and `FromStr` agree for every value.
        fn agree<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + Serialize + std::str::FromStr,
        {
            for value in all {
                let text = value.to_string();
                assert_eq!(serde_json::to_value(value).expect("serializes"), serde_json::Value::String(text.clone()));
                assert_eq!(text.parse::<T>().ok(), Some(*value));
            }
        }
        agree(ChainStatus::ALL);
        agree(ActionStatus::ALL);
        agree(ApprovalStatus::ALL);
        agree(GateVerdict::ALL);
        let spellings = |all: &[&str]| all.join(",");
        assert_eq!(
            spellings(&ChainStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "planning,executing,awaiting_approval,completed,failed,partial,escalated,cancelled"
        );
        assert_eq!(
            spellings(&ActionStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "pending,awaiting_approval,executing,executed,failed,blocked"
        );
        assert_eq!(
            spellings(&ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "pending,approved,denied,expired"
        );
    }

    #[test]
    fn open_and_terminal_chains_and_settled_steps() {
        assert!(ChainStatus::Escalated.is_terminal());
        assert!(!ChainStatus::Executing.is_terminal());
        let open: Vec<ChainStatus> = ChainStatus::ALL.iter().copied().filter(|s| s.is_open()).collect();
        assert_eq!(open, ChainStatus::OPEN);
        assert!(ChainStatus::ALL.iter().all(|s| s.is_open() != s.is_terminal()));
        let settled: Vec<ActionStatus> = ActionStatus::ALL.iter().copied().filter(|s| s.is_settled()).collect();
        assert_eq!(settled, [ActionStatus::Executed, ActionStatus::Failed, ActionStatus::Blocked]);
    }

    #[test]
    fn a_typo_is_refused_with_every_spelling_named() {
        let error = "complete".parse::<ChainStatus>().expect_err("typo");
        assert_eq!(
            error.to_string(),
            "chain status \"complete\" is not one of planning, executing, awaiting_approval, completed, failed, \
             partial, escalated, cancelled"
        );
    }
}
