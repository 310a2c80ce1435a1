//! Tier routing without a model: what `nexus/auto` uses when the in-process classifier is not
//! loaded. It looks only at the user's latest turn (never the system prompt or tool list) and
//! sorts by signals a person would use: greetings and one-liners are trivial; requests to
//! design, prove, refactor or analyse at length are complex; the rest is normal.

use crate::machine::ModelTier;

const COMPLEX_WORDS: &[&str] = &[
    "analyze",
    "analyse",
    "architecture",
    "design",
    "prove",
    "proof",
    "refactor",
    "optimize",
    "optimise",
    "trade-off",
    "tradeoffs",
    "trade-offs",
    "compare",
    "strategy",
    "derive",
    "step by step",
    "in depth",
    "comprehensive",
    "debug",
    "migrate",
    "implement",
    "algorithm",
    "evaluate",
    "critique",
];
const TRIVIAL_OPENERS: &[&str] =
    &["hi", "hello", "hey", "thanks", "thank you", "ok", "okay", "good morning", "good night", "bye", "ciao"];

/// The tier a request needs, from its latest user turn alone.
pub fn heuristic_tier(latest_user_turn: &str) -> ModelTier {
    let text = latest_user_turn.trim().to_lowercase();
    let words = text.split_whitespace().count();
    let complex_hits = COMPLEX_WORDS.iter().filter(|w| text.contains(*w)).count();
    if complex_hits >= 2 || words > 150 || (complex_hits == 1 && words > 25) || text.contains("```") {
        return ModelTier::Complex;
    }
    if small_talk(&text) || (words <= 4 && complex_hits == 0 && !text.contains('?')) {
        return ModelTier::Trivial;
    }
    ModelTier::Normal
}

/// Whether a turn is small talk: a greeting, thanks or goodbye of a few words. A rule can be
/// sure of this much; it is what an agent run answers directly when no classifier is loaded.
pub fn small_talk(latest_user_turn: &str) -> bool {
    let text = latest_user_turn.trim().to_lowercase();
    let opener = TRIVIAL_OPENERS
        .iter()
        .any(|o| text == *o || text.strip_prefix(o).is_some_and(|rest| rest.starts_with([' ', '!', ',', '.'])));
    opener && text.split_whitespace().count() <= 6
}

/// Words that ask for something only a tool can do: fetch a page, search, send, read or write
/// a file, look up live data.
const TOOL_WORDS: &[&str] = &[
    "http://",
    "https://",
    "www.",
    "search",
    "look up",
    "lookup",
    "browse",
    "fetch",
    "download",
    "send",
    "email",
    "e-mail",
    "mail to",
    "file",
    "folder",
    "directory",
    "save",
    "write to",
    "weather",
    "forecast",
    "knowledge base",
    "our docs",
    "statistics",
    "latest news",
    "today's",
];

/// Whether a request clearly asks for a tool's work (so a failed plan cannot be replaced by a
/// direct answer).
pub fn tool_shaped(request: &str) -> bool {
    let text = request.to_lowercase();
    TOOL_WORDS.iter().any(|w| text.contains(w))
}

/// One tier cheaper (the cheapest stays): what a tenant near its budget gets.
pub fn cheaper(tier: ModelTier) -> ModelTier {
    match tier {
        ModelTier::Complex => ModelTier::Normal,
        ModelTier::Normal | ModelTier::Trivial => ModelTier::Trivial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_requests_by_their_latest_turn() {
        assert_eq!(heuristic_tier("hi!"), ModelTier::Trivial);
        assert_eq!(heuristic_tier("Thanks, that works"), ModelTier::Trivial);
        assert_eq!(heuristic_tier("What is the capital of France?"), ModelTier::Normal);
        assert_eq!(heuristic_tier("Summarize this email for me please, keep it short."), ModelTier::Normal);
        assert_eq!(
            heuristic_tier("Design an architecture for a multi-region queue and compare the trade-offs"),
            ModelTier::Complex
        );
        assert_eq!(heuristic_tier("fix this:\n```rust\nfn main() {}\n```"), ModelTier::Complex);
        assert_eq!(cheaper(ModelTier::Complex), ModelTier::Normal);
        assert!(small_talk("Hello! How are you?") && small_talk("thanks"));
        assert!(!small_talk("read passwd") && !small_talk("hint: use the docs"));
        assert!(tool_shaped("Search the web for Rust 1.95 release notes"));
        assert!(tool_shaped("fetch https://example.com and summarise it"));
        assert!(tool_shaped("What's the weather in Rome?"));
        assert!(!tool_shaped("What is the capital of France? Answer in one word."));
        assert!(!tool_shaped("Explain the difference between TCP and UDP"));
        assert_eq!(cheaper(ModelTier::Trivial), ModelTier::Trivial);
    }
}
