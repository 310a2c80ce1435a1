//! The four anomaly gates every tool call passes, as pure functions over what the runtime measured:
//! (1) scope, on resources derived from the actual arguments; (2) intent similarity, `skip`
//! until embeddings exist; (3) TTL, on a monotonic duration; (4) behavioural drift per
//! (tenant, persona, tool), `skip` below a minimum sample count.

use std::time::Duration;

use domain::Timestamp;
use domain::agent::{AnomalyResult, GateResult, GateVerdict};
use domain::persona::{LowIntent, PersonaContract, RiskLevel};
use domain::tool::ToolDefinition;
use sha2::{Digest, Sha256};

use crate::glob::in_scope;
use crate::resources::ResourceError;

/// Samples needed before drift is judged; with fewer, gate 4 reports `skip`.
pub const DRIFT_MIN_SAMPLES: u64 = 10;
/// How many standard deviations below the usual frequency counts as drift.
pub const DRIFT_SIGMA: f64 = 2.5;

/// What the runtime knows about a persona's past use of a tool: how often each action
/// fingerprint occurred.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriftHistory {
    /// Occurrences per fingerprint seen before.
    pub counts: Vec<(String, u64)>,
}

impl DriftHistory {
    pub fn samples(&self) -> u64 {
        self.counts.iter().map(|(_, c)| c).sum()
    }

    pub fn count_of(&self, fingerprint: &str) -> u64 {
        self.counts.iter().find(|(f, _)| f == fingerprint).map_or(0, |(_, c)| *c)
    }
}

/// Everything the gates judge.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    pub persona: &'a PersonaContract,
    pub tool: &'a ToolDefinition,
    /// Resources derived from the actual arguments, or why they could not be.
    pub resources: Result<&'a [String], &'a ResourceError>,
    /// Time since the persona was activated, from a monotonic clock.
    pub since_activation: Duration,
    /// Cosine similarity of task and call against the persona's intent patterns, when an
    /// embedding model is available.
    pub intent_similarity: Option<f64>,
    pub drift: &'a DriftHistory,
    pub now: Timestamp,
}

/// The gates' combined judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct GateOutcome {
    pub anomaly: AnomalyResult,
    /// Set when the action may run only after a human approves it.
    pub approval_reason: Option<String>,
}

/// Runs all four gates (all of them, even after a failure, for diagnostics).
pub fn evaluate(input: &GateInput<'_>) -> GateOutcome {
    let gates = vec![scope(input), intent(input), ttl(input), drift(input)];
    // Gate 2 is a risk signal: below the threshold it holds the call for a human (or blocks, if
    // the persona says so); it never allows what another gate denies.
    let low_intent = gates[1].verdict == GateVerdict::Fail;
    let others_pass = gates.iter().enumerate().all(|(i, g)| i == 1 || g.verdict != GateVerdict::Fail);
    let overall_verdict = if low_intent && others_pass && input.persona.on_low_intent == LowIntent::Approve {
        GateVerdict::Pass
    } else {
        AnomalyResult::overall(&gates)
    };
    let approval_reason = if low_intent && overall_verdict == GateVerdict::Pass {
        Some(format!(
            "intent similarity {:.2} is below persona {}'s threshold {:.2}",
            gates[1].score, input.persona.name, gates[1].threshold
        ))
    } else if input.tool.requires_approval {
        Some(format!("tool {} requires human approval", input.tool.name))
    } else if input.tool.risk_level >= RiskLevel::High && input.tool.risk_level > input.persona.risk_tolerance {
        // Approval is for high-risk actions; a medium-risk (reversible) write above a persona's
        // tolerance is recorded in the seal but not held.
        Some(format!(
            "tool {} is {} risk, above persona {}'s {} tolerance",
            input.tool.name, input.tool.risk_level, input.persona.name, input.persona.risk_tolerance
        ))
    } else {
        None
    };
    GateOutcome {
        anomaly: AnomalyResult {
            gates,
            overall_verdict,
            risk_level: input.tool.risk_level,
            persona_id: input.persona.id.clone(),
            action_fingerprint: action_fingerprint(&input.tool.name, input.resources.unwrap_or(&[])),
        },
        approval_reason,
    }
}

fn result(
    input: &GateInput<'_>,
    name: &str,
    verdict: GateVerdict,
    score: f64,
    threshold: f64,
    details: String,
) -> GateResult {
    GateResult { gate_name: name.to_owned(), verdict, score, threshold, details, timestamp: input.now }
}

/// Gate 1: the tool is allowed and every resource is inside the persona's scopes.
pub fn scope(input: &GateInput<'_>) -> GateResult {
    let persona = input.persona;
    let tool = &input.tool.name;
    if !persona.allowed_tools.iter().any(|t| t == tool) {
        let details =
            format!("persona {} may not use {tool} (allowed: {})", persona.name, persona.allowed_tools.join(", "));
        return result(input, "scope", GateVerdict::Fail, 0.0, 1.0, details);
    }
    match input.resources {
        Err(error) => result(input, "scope", GateVerdict::Fail, 0.0, 1.0, format!("resources unknown: {error}")),
        Ok(resources) => {
            let outside: Vec<&String> = resources.iter().filter(|r| !in_scope(&persona.resource_scopes, r)).collect();
            if outside.is_empty() {
                let details = if resources.is_empty() {
                    format!("{tool} allowed; it names no resources")
                } else {
                    format!("{tool} allowed; {} within scope", resources.join(", "))
                };
                result(input, "scope", GateVerdict::Pass, 1.0, 1.0, details)
            } else {
                let list: Vec<&str> = outside.iter().map(|s| s.as_str()).collect();
                let details = format!(
                    "outside persona {}'s scopes ({}): {}",
                    persona.name,
                    persona.resource_scopes.join(", "),
                    list.join(", ")
                );
                result(input, "scope", GateVerdict::Fail, 0.0, 1.0, details)
            }
        }
    }
}

/// Gate 2: intent similarity. Without an embedding model it reports `skip`.
pub fn intent(input: &GateInput<'_>) -> GateResult {
    let threshold = input.persona.intent_threshold;
    match input.intent_similarity {
        None => result(input, "intent", GateVerdict::Skip, 0.0, threshold, "no embedding model loaded".to_owned()),
        Some(score) if score >= threshold => {
            result(input, "intent", GateVerdict::Pass, score, threshold, format!("similarity {score:.3} ≥ {threshold}"))
        }
        Some(score) => {
            result(input, "intent", GateVerdict::Fail, score, threshold, format!("similarity {score:.3} < {threshold}"))
        }
    }
}

/// Gate 3: the persona's time-to-live, measured on a monotonic clock.
pub fn ttl(input: &GateInput<'_>) -> GateResult {
    let max = Duration::from_secs(u64::from(input.persona.max_ttl_seconds));
    let remaining = max.saturating_sub(input.since_activation);
    let score = if max.is_zero() { 0.0 } else { remaining.as_secs_f64() / max.as_secs_f64() };
    if remaining.is_zero() {
        let details =
            format!("persona active {:.1}s, past its {}s TTL", input.since_activation.as_secs_f64(), max.as_secs());
        result(input, "ttl", GateVerdict::Fail, 0.0, 0.0, details)
    } else {
        result(
            input,
            "ttl",
            GateVerdict::Pass,
            score,
            0.0,
            format!("{:.1}s of {}s left", remaining.as_secs_f64(), max.as_secs()),
        )
    }
}

/// Gate 4: how unusual this action is for this persona and tool. The score is how many
/// standard deviations this fingerprint's frequency lies below the mean frequency.
pub fn drift(input: &GateInput<'_>) -> GateResult {
    let history = input.drift;
    let samples = history.samples();
    let this_count = history.count_of(&action_fingerprint(&input.tool.name, input.resources.unwrap_or(&[])));
    if samples < DRIFT_MIN_SAMPLES {
        let details = format!("{samples} earlier actions; need {DRIFT_MIN_SAMPLES} for a baseline");
        return result(input, "drift", GateVerdict::Skip, 0.0, DRIFT_SIGMA, details);
    }
    let n = history.counts.len().max(1) as f64;
    let mean = samples as f64 / n;
    let variance = history.counts.iter().map(|(_, c)| (*c as f64 - mean).powi(2)).sum::<f64>() / n;
    // Counts are Poisson-like: never trust a spread below √mean (or 1), or every new but
    // ordinary action in a uniform history would look infinitely unusual.
    let spread = variance.sqrt().max(mean.sqrt()).max(1.0);
    let sigma = ((mean - this_count as f64) / spread).max(0.0);
    let details =
        format!("fingerprint seen {this_count} times; mean {mean:.1}, spread {spread:.1} over {samples} actions");
    let verdict = if sigma > DRIFT_SIGMA { GateVerdict::Fail } else { GateVerdict::Pass };
    result(input, "drift", verdict, sigma, DRIFT_SIGMA, details)
}

/// The drift fingerprint of an action: the tool and the coarse shape of its resources
/// (directory, host, mail domain), so ordinary variation does not look new.
pub fn action_fingerprint(tool: &str, resources: &[String]) -> String {
    let mut shapes: Vec<String> = resources.iter().map(|r| resource_shape(r)).collect();
    shapes.sort();
    shapes.dedup();
    let mut hasher = Sha256::new();
    hasher.update(tool.as_bytes());
    for shape in &shapes {
        hasher.update([0u8]);
        hasher.update(shape.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

fn resource_shape(resource: &str) -> String {
    if let Some(path) = resource.strip_prefix("file:read:").or_else(|| resource.strip_prefix("file:write:")) {
        let kind = &resource[..resource.len() - path.len()];
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        return format!("{kind}{dir}");
    }
    if let Some(rest) = resource.strip_prefix("web:") {
        return format!("web:{}", rest.split('/').next().unwrap_or_default());
    }
    if let Some(address) = resource.strip_prefix("email:") {
        return format!("email:{}", address.rsplit_once('@').map_or(address, |(_, d)| d));
    }
    resource.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::TenantId;
    use domain::persona::default_personas;
    use domain::tool::{ResourceArg, ResourceKind};
    use serde_json::json;

    fn persona(name: &str) -> PersonaContract {
        let tenant = TenantId::parse("t").expect("id");
        default_personas(&tenant).into_iter().find(|p| p.name == name).expect("persona")
    }

    fn tool(name: &str, risk: RiskLevel, approval: bool) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: String::new(),
            parameters: json!({}),
            risk_level: risk,
            resource_pattern: "*".into(),
            resource_args: vec![ResourceArg {
                param: "path".into(),
                kind: ResourceKind::FileRead,
                default: None,
                optional: false,
            }],
            timeout_seconds: 30,
            requires_approval: approval,
            state_changing: false,
            untrusted_output: false,
        }
    }

    fn input<'a>(
        persona: &'a PersonaContract,
        tool: &'a ToolDefinition,
        resources: &'a [String],
        drift: &'a DriftHistory,
    ) -> GateInput<'a> {
        GateInput {
            persona,
            tool,
            resources: Ok(resources),
            since_activation: Duration::from_secs(1),
            intent_similarity: None,
            drift,
            now: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn all_four_gates_report_and_the_first_two_judge_scope_and_intent() {
        let researcher = persona("researcher");
        let read = tool("file_read", RiskLevel::Low, false);
        let resources = vec!["file:read:/workspace/a.txt".to_owned()];
        let history = DriftHistory::default();
        let outcome = evaluate(&input(&researcher, &read, &resources, &history));
        let names: Vec<_> = outcome.anomaly.gates.iter().map(|g| g.gate_name.as_str()).collect();
        assert_eq!(names, ["scope", "intent", "ttl", "drift"]);
        let verdicts: Vec<_> = outcome.anomaly.gates.iter().map(|g| g.verdict).collect();
        assert_eq!(verdicts, [GateVerdict::Pass, GateVerdict::Skip, GateVerdict::Pass, GateVerdict::Skip]);
        assert_eq!(outcome.anomaly.overall_verdict, GateVerdict::Pass);
        assert_eq!(outcome.approval_reason, None);
    }

    #[test]
    fn low_intent_holds_for_approval_or_blocks_and_never_overrides_another_gate() {
        let mut researcher = persona("researcher");
        researcher.allowed_tools = vec!["file_read".into()];
        researcher.resource_scopes = vec!["file:read:/workspace/*".into()];
        let read = tool("file_read", RiskLevel::Low, false);
        let resources = vec!["file:read:/workspace/a.txt".to_owned()];
        let history = DriftHistory::default();
        let mut low = input(&researcher, &read, &resources, &history);
        low.intent_similarity = Some(0.40);
        let outcome = evaluate(&low);
        assert_eq!(outcome.anomaly.gates[1].verdict, GateVerdict::Fail);
        assert_eq!(outcome.anomaly.overall_verdict, GateVerdict::Pass, "held, not blocked");
        assert!(outcome.approval_reason.as_deref().is_some_and(|r| r.contains("0.40")), "{outcome:?}");

        researcher.on_low_intent = LowIntent::Block;
        let mut low = input(&researcher, &read, &resources, &history);
        low.intent_similarity = Some(0.40);
        let outcome = evaluate(&low);
        assert_eq!((outcome.anomaly.overall_verdict, outcome.approval_reason), (GateVerdict::Fail, None));

        // High similarity passes; it cannot rescue a scope failure.
        researcher.on_low_intent = LowIntent::Approve;
        let mut high = input(&researcher, &read, &resources, &history);
        high.intent_similarity = Some(0.95);
        assert_eq!(evaluate(&high).approval_reason, None);
        let outside = vec!["file:read:/etc/passwd".to_owned()];
        let mut outside_scope = input(&researcher, &read, &outside, &history);
        outside_scope.intent_similarity = Some(0.40);
        let outcome = evaluate(&outside_scope);
        assert_eq!(outcome.anomaly.gates[0].verdict, GateVerdict::Fail, "{:?}", outcome.anomaly.gates[0]);
        assert_eq!(outcome.anomaly.overall_verdict, GateVerdict::Fail);
        assert_eq!(outcome.approval_reason, None, "a denied call is never merely held");
    }

    #[test]
    fn a_researcher_sending_email_fails_scope() {
        let researcher = persona("researcher");
        let send = tool("send_email", RiskLevel::High, true);
        let history = DriftHistory::default();
        let outcome = evaluate(&input(&researcher, &send, &[], &history));
        assert_eq!(outcome.anomaly.gates[0].verdict, GateVerdict::Fail);
        assert!(outcome.anomaly.gates[0].details.contains("may not use send_email"));
        assert_eq!(outcome.anomaly.overall_verdict, GateVerdict::Fail);
    }

    #[test]
    fn resources_outside_scope_fail_and_are_named() {
        let mut p = persona("analyst");
        p.resource_scopes = vec!["file:read:/workspace/*".into()];
        let read = tool("file_read", RiskLevel::Low, false);
        let resources = vec!["file:read:/etc/passwd".to_owned()];
        let history = DriftHistory::default();
        let gate = scope(&input(&p, &read, &resources, &history));
        assert_eq!(gate.verdict, GateVerdict::Fail);
        assert!(gate.details.contains("/etc/passwd"));
    }

    #[test]
    fn ttl_expires_on_the_monotonic_duration() {
        let p = persona("researcher"); // 60 s
        let read = tool("file_read", RiskLevel::Low, false);
        let history = DriftHistory::default();
        let mut i = input(&p, &read, &[], &history);
        i.since_activation = Duration::from_secs(45);
        let gate = ttl(&i);
        assert_eq!(gate.verdict, GateVerdict::Pass);
        assert!((gate.score - 0.25).abs() < 1e-9);
        i.since_activation = Duration::from_secs(61);
        assert_eq!(ttl(&i).verdict, GateVerdict::Fail);
    }

    #[test]
    fn drift_skips_without_a_baseline_and_flags_rare_actions() {
        let p = persona("analyst");
        let read = tool("file_read", RiskLevel::Low, false);
        let usual = vec!["file:read:/workspace/reports/a.txt".to_owned()];
        let rare = vec!["file:read:/etc/passwd".to_owned()];
        let fp = |r: &[String]| action_fingerprint("file_read", r);
        let few = DriftHistory { counts: vec![(fp(&usual), 3), ("other".into(), 2)] };
        assert_eq!(drift(&input(&p, &read, &rare, &few)).verdict, GateVerdict::Skip);
        let uniform = DriftHistory { counts: (0..30).map(|i| (format!("f{i}"), 1)).collect() };
        assert_eq!(drift(&input(&p, &read, &rare, &uniform)).verdict, GateVerdict::Pass, "new but ordinary");
        let habitual = DriftHistory { counts: vec![(fp(&usual), 60), ("other".into(), 40)] };
        let gate = drift(&input(&p, &read, &rare, &habitual));
        assert_eq!(gate.verdict, GateVerdict::Fail, "{gate:?}");
        assert_eq!(drift(&input(&p, &read, &usual, &habitual)).verdict, GateVerdict::Pass);
    }

    #[test]
    fn risky_or_flagged_tools_need_approval() {
        let researcher = persona("researcher"); // low tolerance
        let history = DriftHistory::default();
        let reversible = tool("file_write", RiskLevel::Medium, false);
        assert!(evaluate(&input(&researcher, &reversible, &[], &history)).approval_reason.is_none());
        let irreversible = tool("delete_records", RiskLevel::High, false);
        assert!(evaluate(&input(&researcher, &irreversible, &[], &history)).approval_reason.is_some());
        let communicator = persona("communicator"); // high tolerance
        let send = tool("send_email", RiskLevel::High, true);
        assert!(evaluate(&input(&communicator, &send, &[], &history)).approval_reason.is_some());
    }

    #[test]
    fn fingerprints_follow_the_shape_not_the_details() {
        let a = action_fingerprint("file_read", &["file:read:/workspace/reports/q1.txt".into()]);
        let b = action_fingerprint("file_read", &["file:read:/workspace/reports/q2.txt".into()]);
        let c = action_fingerprint("file_read", &["file:read:/etc/passwd".into()]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
