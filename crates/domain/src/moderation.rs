//! Community moderation: the deterministic pre-screen, the model's decision as strict JSON,
//! the confidence gate, and the cases staff review.
//!
//! A message goes through three steps. The **pre-screen** is cheap and deterministic (word and
//! pattern lists, link and mention spam, a per-author message rate); a message it does not
//! flag is left alone. A flagged message goes to a **model decision** asked for as one JSON
//! object; an answer that is not exactly that counts as *unsure*. The **gate** then acts only
//! when the model is sure enough — its confidence at or above the category's threshold (the
//! base threshold moved by what staff taught it, within bounds) — and the guild lets that
//! action run without a person; everything else goes to the staff review queue, never to an
//! automatic punishment. Staff decide a case once (uphold, overturn, dismiss); the human
//! decision always wins.
//!
//! Everything here is pure: the runtime feeds it messages and the time, stores the cases and
//! seals each decision.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::persona::str_enum;
use crate::{TenantId, Timestamp};

/// What moderation may do to a message or its author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ModAction {
    None,
    Delete,
    Warn,
    Timeout,
    Kick,
    Ban,
}

str_enum!(ModAction: "moderation action" {
    None => "none", Delete => "delete", Warn => "warn", Timeout => "timeout", Kick => "kick", Ban => "ban",
});

impl ModAction {
    /// Actions that remove a person from the community.
    pub fn is_destructive(self) -> bool {
        matches!(self, ModAction::Kick | ModAction::Ban)
    }
}

/// Where a case stands. Stored as its name; a value may be added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// The action ran without a person (the model was sure and the guild allows it).
    Acted,
    /// Decided and recorded, but not carried out: the channel is in dry-run mode.
    DryRun,
    /// Waiting for staff: the model was unsure, down, or the action needs a person's approval.
    Review,
    /// Staff agreed with the decision (and carried out a held action).
    Upheld,
    /// Staff found no violation; an action taken is undone where the platform allows.
    Overturned,
    /// Staff closed the case without a verdict either way.
    Dismissed,
}

str_enum!(CaseStatus: "moderation case status" {
    Acted => "acted", DryRun => "dry_run", Review => "review", Upheld => "upheld",
    Overturned => "overturned", Dismissed => "dismissed",
});

impl CaseStatus {
    /// A case staff may still decide.
    pub fn is_open(self) -> bool {
        matches!(self, CaseStatus::Acted | CaseStatus::DryRun | CaseStatus::Review)
    }
}

/// A staff member's verdict on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Uphold,
    Overturn,
    Dismiss,
}

str_enum!(Verdict: "verdict" { Uphold => "uphold", Overturn => "overturn", Dismiss => "dismiss" });

impl Verdict {
    pub fn status(self) -> CaseStatus {
        match self {
            Verdict::Uphold => CaseStatus::Upheld,
            Verdict::Overturn => CaseStatus::Overturned,
            Verdict::Dismiss => CaseStatus::Dismissed,
        }
    }
}

/// One flagged message and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationCase {
    pub id: String,
    pub tenant_id: TenantId,
    /// The platform (`discord`).
    pub channel: String,
    /// The community (a Discord guild) the rules and strictness belong to.
    pub scope: String,
    /// Where the message was (a Discord channel).
    pub place: String,
    pub message_id: String,
    pub author_id: String,
    pub author: String,
    /// Hex SHA-256 of the message text: the case proves what was judged without keeping it.
    pub digest: String,
    /// A short excerpt shown to staff.
    pub excerpt: String,
    /// The pre-screen rules that flagged it (`word`, `links`, `rate`, …).
    pub flags: Vec<String>,
    pub category: String,
    pub severity: String,
    pub action: ModAction,
    /// The model's confidence, if it answered.
    pub confidence: Option<f64>,
    /// The threshold it was held to.
    pub threshold: f64,
    pub reason: String,
    /// Who or what decided: `model:<provider>/<model>`, `prescreen`, `staff:<user>`.
    pub decided_by: String,
    pub status: CaseStatus,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The pre-screen's rules, per guild.
#[derive(Debug, Clone)]
pub struct ScreenRules {
    /// Words (matched as whole words, case-insensitively).
    pub words: Vec<String>,
    /// Regular expressions, checked as given.
    pub patterns: Vec<regex::Regex>,
    /// More links than this in one message is spam.
    pub max_links: usize,
    /// More mentions than this in one message is spam.
    pub max_mentions: usize,
    /// More messages than this from one author within a minute is flooding.
    pub max_per_minute: usize,
}

impl Default for ScreenRules {
    fn default() -> Self {
        ScreenRules { words: Vec::new(), patterns: Vec::new(), max_links: 3, max_mentions: 5, max_per_minute: 10 }
    }
}

/// Why the pre-screen flagged a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub rule: &'static str,
    pub detail: String,
}

/// A message as moderation sees it.
#[derive(Debug, Clone)]
pub struct Inspected<'a> {
    pub author_id: &'a str,
    pub text: &'a str,
    /// Mentions the platform resolved (users and roles), counted with `@everyone`.
    pub mentions: usize,
}

/// The deterministic pre-screen, with its per-author rate window.
#[derive(Debug, Default)]
pub struct Prescreen {
    recent: HashMap<String, VecDeque<Timestamp>>,
}

const MINUTE_MICROS: i64 = 60_000_000;

impl Prescreen {
    pub fn new() -> Self {
        Prescreen::default()
    }

    /// The rules `message` breaks (none: leave it alone). Counts it towards its author's rate.
    pub fn check(&mut self, rules: &ScreenRules, message: &Inspected<'_>, now: Timestamp) -> Vec<Flag> {
        let mut flags = Vec::new();
        let lower = message.text.to_lowercase();
        if let Some(word) = rules.words.iter().find(|w| contains_word(&lower, &w.to_lowercase())) {
            flags.push(Flag { rule: "word", detail: format!("contains \"{word}\"") });
        }
        if let Some(pattern) = rules.patterns.iter().find(|p| p.is_match(message.text)) {
            flags.push(Flag { rule: "pattern", detail: format!("matches /{}/", pattern.as_str()) });
        }
        let links = count_links(&lower);
        if links > rules.max_links {
            flags.push(Flag { rule: "links", detail: format!("{links} links (more than {})", rules.max_links) });
        }
        let mentions = message.mentions + lower.matches("@everyone").count() + lower.matches("@here").count();
        if mentions > rules.max_mentions {
            flags.push(Flag {
                rule: "mentions",
                detail: format!("{mentions} mentions (more than {})", rules.max_mentions),
            });
        }
        let window = self.recent.entry(message.author_id.to_owned()).or_default();
        let since = now.as_micros() - MINUTE_MICROS;
        while window.front().is_some_and(|t| t.as_micros() <= since) {
            window.pop_front();
        }
        window.push_back(now);
        if window.len() > rules.max_per_minute {
            flags.push(Flag {
                rule: "rate",
                detail: format!("{} messages in a minute (more than {})", window.len(), rules.max_per_minute),
            });
        }
        // Keep the window map small: authors quiet for a minute are forgotten.
        if self.recent.len() > 10_000 {
            self.recent.retain(|_, w| w.back().is_some_and(|t| t.as_micros() > since));
        }
        flags
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Links: each `http://` or `https://`, and each bare `discord.gg/` invite (one inside a URL
/// is that URL, counted once).
fn count_links(lower: &str) -> usize {
    let urls = lower.matches("http://").count() + lower.matches("https://").count();
    let bare_invites = lower.match_indices("discord.gg/").filter(|(at, _)| !lower[..*at].ends_with("://")).count();
    urls + bare_invites
}

/// The model's decision, exactly as asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub violation: bool,
    pub category: String,
    pub severity: String,
    pub action: ModAction,
    pub confidence: f64,
    pub reason: String,
}

/// The instruction the model gets: what to judge and the one JSON shape to answer with.
pub const DECISION_PROMPT: &str = "You moderate a community chat. Judge the user's message, \
which an automatic filter flagged for the reasons given. Answer with one JSON object and nothing \
else, with exactly these fields: \"violation\" (true or false), \"category\" (one of \"spam\", \
\"harassment\", \"hate\", \"sexual\", \"violence\", \"self_harm\", \"scam\", \"other\", \"none\"), \
\"severity\" (\"low\", \"medium\" or \"high\"), \"action\" (\"none\", \"delete\", \"warn\", \
\"timeout\", \"kick\" or \"ban\"), \"confidence\" (a number from 0 to 1) and \"reason\" (one short \
sentence). Flagged is not guilty: decide on the message itself.";

/// Reads the model's answer: one JSON object with exactly the asked-for fields (a ```json
/// fence around it is tolerated). Anything else is an error: the caller treats it as unsure.
pub fn parse_decision(answer: &str) -> Result<Decision, String> {
    let text = answer.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .map_or(text, str::trim);
    let decision: Decision = serde_json::from_str(text).map_err(|e| format!("not the decision object: {e}"))?;
    if !(0.0..=1.0).contains(&decision.confidence) || decision.confidence.is_nan() {
        return Err(format!("confidence {} is outside 0..1", decision.confidence));
    }
    if !["low", "medium", "high"].contains(&decision.severity.as_str()) {
        return Err(format!("severity \"{}\" is not low, medium or high", decision.severity));
    }
    if decision.category.trim().is_empty() {
        return Err("category is empty".into());
    }
    Ok(decision)
}

/// How far staff verdicts may move a category's threshold either way.
pub const STRICTNESS_BOUND: f64 = 0.2;
/// How far one verdict moves it.
pub const STRICTNESS_STEP: f64 = 0.05;

/// What staff teach a category's threshold: an overturn (the model was wrong to flag) makes
/// acting without a person harder; upholding a case held because the model was below its
/// threshold makes it easier (a case held only because its action needs approval teaches
/// nothing: the model was sure already); a dismissal teaches nothing.
pub fn strictness_step(verdict: Verdict, case: &ModerationCase) -> f64 {
    let was_unsure = case.confidence.is_none_or(|c| c < case.threshold);
    match (verdict, case.status) {
        (Verdict::Overturn, _) => STRICTNESS_STEP,
        (Verdict::Uphold, CaseStatus::Review) if was_unsure => -STRICTNESS_STEP,
        _ => 0.0,
    }
}

/// The threshold a category's decisions are held to: the base moved by the (bounded)
/// adjustment, kept within 0.5..=0.99 so the gate never acts on a coin toss nor never acts.
pub fn effective_threshold(base: f64, adjustment: f64) -> f64 {
    (base + adjustment.clamp(-STRICTNESS_BOUND, STRICTNESS_BOUND)).clamp(0.5, 0.99)
}

/// What the gate makes of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No violation, sure enough: nothing to do, no case.
    Clear,
    /// Act without a person.
    Act(ModAction),
    /// Staff decide (and carry out the proposed action, if they uphold it).
    Review(ModAction),
}

/// The confidence gate. `decision` is `None` when the model was down or its answer malformed.
pub fn gate(decision: Option<&Decision>, threshold: f64, needs_approval: &[ModAction]) -> Gate {
    let Some(decision) = decision else { return Gate::Review(ModAction::None) };
    let sure = decision.confidence >= threshold;
    if !decision.violation {
        // Only a sure "no" closes the matter; an unsure one is for staff.
        return if sure { Gate::Clear } else { Gate::Review(ModAction::None) };
    }
    if decision.action == ModAction::None || !sure || needs_approval.contains(&decision.action) {
        // A violation the model would not act on is still for staff to see.
        return Gate::Review(decision.action);
    }
    Gate::Act(decision.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + seconds * 1_000_000)
    }

    fn message(text: &str) -> Inspected<'_> {
        Inspected { author_id: "42", text, mentions: 0 }
    }

    #[test]
    fn the_prescreen_flags_words_patterns_links_mentions_and_floods() {
        let rules = ScreenRules {
            words: vec!["scam".into()],
            patterns: vec![regex::Regex::new(r"(?i)free\s+nitro").expect("regex")],
            max_links: 2,
            max_mentions: 3,
            max_per_minute: 3,
        };
        let mut screen = Prescreen::new();
        assert!(screen.check(&rules, &message("a scampi recipe"), at(0)).is_empty(), "whole words only");
        let rules_of = |flags: Vec<Flag>| flags.into_iter().map(|f| f.rule).collect::<Vec<_>>();
        assert_eq!(rules_of(screen.check(&rules, &message("This is a SCAM."), at(1))), ["word"]);
        let mut other = Prescreen::new();
        assert_eq!(count_links("see https://discord.gg/abc and discord.gg/xyz"), 2, "an invite in a URL counts once");
        let spam = "FREE  Nitro https://a.example https://b.example discord.gg/x @everyone";
        let flagged = rules_of(other.check(&rules, &Inspected { author_id: "7", text: spam, mentions: 3 }, at(0)));
        assert_eq!(flagged, ["pattern", "links", "mentions"]);
        assert!(screen.check(&rules, &message("hey"), at(2)).is_empty(), "the third in a minute");
        assert_eq!(rules_of(screen.check(&rules, &message("hi"), at(3))), ["rate"], "the fourth in a minute");
        assert!(screen.check(&rules, &message("hi"), at(200)).is_empty(), "the window slides");
    }

    #[test]
    fn only_the_exact_decision_object_is_read() {
        let good = r#"{"violation": true, "category": "spam", "severity": "high", "action": "delete", "confidence": 0.93, "reason": "link spam"}"#;
        let decision = parse_decision(good).expect("valid");
        assert_eq!(decision.action, ModAction::Delete);
        assert!(parse_decision(&format!("```json\n{good}\n```")).is_ok());
        for bad in [
            "I think it is spam.",
            r#"{"violation": true}"#,
            &good.replace("0.93", "1.5"),
            &good.replace("\"high\"", "\"extreme\""),
            &good.replace("\"delete\"", "\"nuke\""),
            &good.replace('}', r#", "extra": 1}"#),
        ] {
            assert!(parse_decision(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_gate_never_punishes_when_unsure_or_held() {
        let decision = |action, confidence| Decision {
            violation: true,
            category: "spam".into(),
            severity: "medium".into(),
            action,
            confidence,
            reason: String::new(),
        };
        assert_eq!(gate(None, 0.8, &[]), Gate::Review(ModAction::None));
        assert_eq!(gate(Some(&decision(ModAction::Delete, 0.9)), 0.8, &[]), Gate::Act(ModAction::Delete));
        assert_eq!(gate(Some(&decision(ModAction::Delete, 0.7)), 0.8, &[]), Gate::Review(ModAction::Delete));
        assert_eq!(
            gate(Some(&decision(ModAction::Ban, 0.99)), 0.8, &[ModAction::Kick, ModAction::Ban]),
            Gate::Review(ModAction::Ban)
        );
        let innocent = Decision { violation: false, action: ModAction::None, ..decision(ModAction::None, 0.9) };
        assert_eq!(gate(Some(&innocent), 0.8, &[]), Gate::Clear);
        let unsure = Decision { confidence: 0.4, ..innocent };
        assert_eq!(gate(Some(&unsure), 0.8, &[]), Gate::Review(ModAction::None), "an unsure no is for staff");
        assert_eq!(
            gate(Some(&decision(ModAction::None, 0.95)), 0.8, &[]),
            Gate::Review(ModAction::None),
            "a violation without an action is still shown"
        );
    }

    fn case(status: CaseStatus, confidence: Option<f64>) -> ModerationCase {
        ModerationCase {
            id: "mod_1".into(),
            tenant_id: TenantId::parse("t").expect("tenant"),
            channel: "discord".into(),
            scope: "g".into(),
            place: "c".into(),
            message_id: "m".into(),
            author_id: "a".into(),
            author: "a".into(),
            digest: String::new(),
            excerpt: String::new(),
            flags: Vec::new(),
            category: "spam".into(),
            severity: "high".into(),
            action: ModAction::Ban,
            confidence,
            threshold: 0.8,
            reason: String::new(),
            decided_by: "model:x/y".into(),
            status,
            reviewed_by: None,
            reviewed_at: None,
            created_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn strictness_moves_in_bounded_steps() {
        assert_eq!(strictness_step(Verdict::Overturn, &case(CaseStatus::Acted, Some(0.9))), STRICTNESS_STEP);
        assert_eq!(strictness_step(Verdict::Uphold, &case(CaseStatus::Review, Some(0.6))), -STRICTNESS_STEP);
        assert_eq!(strictness_step(Verdict::Uphold, &case(CaseStatus::Review, None)), -STRICTNESS_STEP);
        assert_eq!(
            strictness_step(Verdict::Uphold, &case(CaseStatus::Review, Some(0.95))),
            0.0,
            "held only because a ban needs a person: the model was sure already"
        );
        assert_eq!(strictness_step(Verdict::Uphold, &case(CaseStatus::Acted, Some(0.9))), 0.0);
        assert_eq!(strictness_step(Verdict::Dismiss, &case(CaseStatus::Review, Some(0.6))), 0.0);
        assert!((effective_threshold(0.8, 5.0) - 0.99).abs() < 1e-9);
        assert!((effective_threshold(0.8, -5.0) - 0.6).abs() < 1e-9);
        assert!((effective_threshold(0.55, -0.2) - 0.5).abs() < 1e-9);
    }
}
