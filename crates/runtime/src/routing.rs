//! Where a run goes before it starts, decided from the router's answer on its task alone.
//!
//! - **Equipment** answers a request the router is sure of (at least the equipment threshold),
//!   that names no persona, and only with equipment that changes nothing: words alone never
//!   start a state change.
//! - **Directly** (the trivial tier, no plan): small talk a rule recognises, or a request the
//!   router rates trivial at least as surely as the direct-answer threshold — never one that
//!   names a persona or asks for a tool's work (URLs, search, send, files …).
//! - Otherwise **planned** on the router's tier, at least normal.
//!
//! A forced tier skips all of this. The decision is a pure function so the benchmark measures
//! the very rule runs follow.

use engine::machine::{ModelTier, Route};

use crate::llm::Routing;

/// How sure the router must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// For a direct answer with no plan.
    pub direct_answer: f64,
    /// For equipment to answer with no model.
    pub equipment: f64,
}

/// The route of a run on `task` (naming `persona`, if any) given the router's answer; the
/// equipment that answers it, if any.
pub fn decide(
    routing: &Routing,
    router: &str,
    task: &str,
    persona: Option<&str>,
    thresholds: Thresholds,
) -> (Route, Option<&'static str>) {
    let sure = |threshold: f64| routing.confidence.is_some_and(|c| c >= threshold);
    let equipment = routing
        .equipment
        .as_deref()
        .and_then(crate::equipment::spec)
        .filter(|spec| !spec.changes_state && persona.is_none() && sure(thresholds.equipment))
        .map(|spec| spec.name);
    let direct = (engine::routing::small_talk(task)
        || (routing.tier == ModelTier::Trivial && sure(thresholds.direct_answer)))
        && persona.is_none()
        && !engine::routing::tool_shaped(task);
    let tier = if direct { ModelTier::Trivial } else { routing.tier.max(ModelTier::Normal) };
    (Route { tier, by: router.to_owned(), confidence: routing.confidence }, equipment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Thresholds = Thresholds { direct_answer: 0.5, equipment: 0.75 };

    fn routing(tier: ModelTier, equipment: Option<&str>, confidence: f64) -> Routing {
        Routing { tier, equipment: equipment.map(str::to_owned), confidence: Some(confidence) }
    }

    #[test]
    fn equipment_needs_a_sure_router_no_persona_and_a_piece_that_changes_nothing() {
        let sure = routing(ModelTier::Trivial, Some("health_check"), 0.9);
        assert_eq!(decide(&sure, "classifier", "run a health check", None, DEFAULTS).1, Some("health_check"));
        assert_eq!(decide(&sure, "classifier", "run a health check", Some("ops"), DEFAULTS).1, None);
        let unsure = routing(ModelTier::Trivial, Some("health_check"), 0.7);
        assert_eq!(decide(&unsure, "classifier", "run a health check", None, DEFAULTS).1, None);
        let rotate = routing(ModelTier::Trivial, Some("log_rotate"), 0.99);
        assert_eq!(decide(&rotate, "classifier", "rotate the logs", None, DEFAULTS).1, None, "changes state");
    }

    #[test]
    fn direct_answers_need_a_sure_trivial_rating_and_no_tool_or_persona() {
        let trivial = routing(ModelTier::Trivial, None, 0.6);
        let (route, _) = decide(&trivial, "classifier", "What is the capital of France?", None, DEFAULTS);
        assert_eq!((route.tier, route.by.as_str(), route.confidence), (ModelTier::Trivial, "classifier", Some(0.6)));
        let (route, _) = decide(&trivial, "classifier", "search the web for the capital of France", None, DEFAULTS);
        assert_eq!(route.tier, ModelTier::Normal, "tool-shaped");
        let (route, _) = decide(&trivial, "classifier", "What is the capital of France?", Some("researcher"), DEFAULTS);
        assert_eq!(route.tier, ModelTier::Normal, "a persona is planned work");
        let unsure = routing(ModelTier::Trivial, None, 0.4);
        assert_eq!(decide(&unsure, "classifier", "What is 2+2?", None, DEFAULTS).0.tier, ModelTier::Normal);
        assert_eq!(decide(&unsure, "classifier", "hello!", None, DEFAULTS).0.tier, ModelTier::Trivial, "small talk");
        let complex = routing(ModelTier::Complex, None, 0.9);
        assert_eq!(
            decide(&complex, "classifier", "Design a migration plan", None, DEFAULTS).0.tier,
            ModelTier::Complex
        );
    }
}
