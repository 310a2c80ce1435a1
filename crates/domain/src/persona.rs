//! Personas: behavioral contracts that bound what the agent may do — the tools it may call, the
//! resources those calls may touch, what it may intend, for how long and at what risk.

use serde::{Deserialize, Serialize};

use crate::{PersonaId, TenantId, Timestamp};

/// How much harm an action can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Read-only operations.
    Low,
    /// Reversible writes.
    Medium,
    /// Irreversible writes (send email, delete data).
    High,
    /// Infrastructure changes, financial transactions.
    Critical,
}

/// How much history a persona has earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustTier {
    ColdStart,
    Established,
    Trusted,
}

macro_rules! str_enum {
    ($name:ident : $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this value (as stored, sent and accepted).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value spelled `value`, if any.
            pub fn parse(value: &str) -> Option<Self> {
                match value { $($text => Some($name::$variant),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $name {
            type Err = $crate::UnknownValue;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value).ok_or_else(|| $crate::UnknownValue {
                    kind: $kind,
                    value: value.to_owned(),
                    expected: Self::ALL.iter().map(|v| v.as_str()).collect(),
                })
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(RiskLevel: "risk level" { Low => "low", Medium => "medium", High => "high", Critical => "critical" });
str_enum!(TrustTier: "trust tier" { ColdStart => "cold_start", Established => "established", Trusted => "trusted" });

/// What gate 2 does when a call's intent similarity is below the persona's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LowIntent {
    /// Hold the call for a human (the default).
    #[default]
    Approve,
    /// Refuse the call.
    Block,
}

str_enum!(LowIntent: "low-intent action" { Approve => "approve", Block => "block" });

/// Default persona lifetime, checked by gate 3.
pub const DEFAULT_TTL_SECONDS: u32 = 120;
/// Default intent-similarity threshold for gate 2 (cosine similarity).
pub const DEFAULT_INTENT_THRESHOLD: f64 = 0.75;

/// A behavioral contract: allowed tools, resource scopes, intent patterns, TTL and risk tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonaContract {
    pub id: PersonaId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: String,
    pub allowed_tools: Vec<String>,
    /// Glob patterns such as `kb:*` or `file:read:*`.
    pub resource_scopes: Vec<String>,
    /// Natural-language descriptions matched against a declared intent (gate 2).
    pub intent_patterns: Vec<String>,
    pub max_ttl_seconds: u32,
    pub risk_tolerance: RiskLevel,
    pub trust_tier: TrustTier,
    pub intent_threshold: f64,
    /// Below the intent threshold: ask a human, or block.
    #[serde(default)]
    pub on_low_intent: LowIntent,
    pub version: u32,
    pub is_active: bool,
    pub created_at: Timestamp,
}

/// Why a persona was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonaError {
    #[error("persona name must be 1-64 lowercase letters, digits, '-' or '_', got {0:?}")]
    BadName(String),
    #[error("persona {name:?}: max_ttl_seconds must be between 1 and 86400, got {value}")]
    BadTtl { name: String, value: u32 },
    #[error("persona {name:?}: intent_threshold must be between 0 and 1, got {value}")]
    BadThreshold { name: String, value: String },
    #[error("persona {name:?}: {field} must not contain empty entries")]
    EmptyEntry { name: String, field: &'static str },
}

impl PersonaContract {
    /// Checks the invariants a stored persona must hold.
    pub fn validate(&self) -> Result<(), PersonaError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(PersonaError::BadName(self.name.clone()));
        }
        if self.max_ttl_seconds == 0 || self.max_ttl_seconds > 86_400 {
            return Err(PersonaError::BadTtl { name: self.name.clone(), value: self.max_ttl_seconds });
        }
        if !(0.0..=1.0).contains(&self.intent_threshold) {
            return Err(PersonaError::BadThreshold {
                name: self.name.clone(),
                value: self.intent_threshold.to_string(),
            });
        }
        for (field, list) in [
            ("allowed_tools", &self.allowed_tools),
            ("resource_scopes", &self.resource_scopes),
            ("intent_patterns", &self.intent_patterns),
        ] {
            if list.iter().any(|entry| entry.trim().is_empty()) {
                return Err(PersonaError::EmptyEntry { name: self.name.clone(), field });
            }
        }
        Ok(())
    }
}

struct DefaultPersona {
    name: &'static str,
    description: &'static str,
    allowed_tools: &'static [&'static str],
    resource_scopes: &'static [&'static str],
    intent_patterns: &'static [&'static str],
    risk_tolerance: RiskLevel,
    max_ttl_seconds: u32,
}

/// The five default personas (researcher, analyst, creator, communicator, operator), kept exactly
/// as the product's requirements define them.
const DEFAULT_PERSONAS: [DefaultPersona; 5] = [
    DefaultPersona {
        name: "researcher",
        description: "Searches and retrieves information from knowledge bases and the web",
        allowed_tools: &["knowledge_search", "web_search", "web_fetch", "file_read"],
        resource_scopes: &["kb:*", "web:*", "file:read:*"],
        intent_patterns: &["search for information", "find data about", "look up", "research"],
        risk_tolerance: RiskLevel::Low,
        max_ttl_seconds: 60,
    },
    DefaultPersona {
        name: "analyst",
        description: "Analyzes data and computes statistics",
        allowed_tools: &["knowledge_search", "compute_stats", "file_read", "file_write"],
        resource_scopes: &["kb:*", "file:*", "data:*"],
        intent_patterns: &["analyze data", "compute statistics", "calculate", "summarize findings"],
        risk_tolerance: RiskLevel::Medium,
        max_ttl_seconds: 120,
    },
    DefaultPersona {
        name: "creator",
        description: "Creates content: documents, reports, summaries",
        allowed_tools: &["knowledge_search", "file_write"],
        resource_scopes: &["kb:*", "file:write:*"],
        intent_patterns: &["write", "create", "draft", "generate content", "compose"],
        risk_tolerance: RiskLevel::Low,
        max_ttl_seconds: 90,
    },
    DefaultPersona {
        name: "communicator",
        description: "Sends emails and messages",
        allowed_tools: &["knowledge_search", "send_email", "file_read"],
        resource_scopes: &["kb:*", "email:*", "file:read:*"],
        intent_patterns: &["send email", "notify", "communicate", "message"],
        risk_tolerance: RiskLevel::High,
        max_ttl_seconds: 60,
    },
    DefaultPersona {
        name: "operator",
        description: "Executes code and system operations",
        allowed_tools: &["knowledge_search", "file_read", "file_write", "compute_stats"],
        resource_scopes: &["kb:*", "file:*", "system:*"],
        intent_patterns: &["execute", "run", "deploy", "configure", "operate"],
        risk_tolerance: RiskLevel::High,
        max_ttl_seconds: 180,
    },
];

/// The five default personas, instantiated for one tenant.
pub fn default_personas(tenant_id: &TenantId) -> Vec<PersonaContract> {
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    DEFAULT_PERSONAS
        .iter()
        .map(|p| PersonaContract {
            id: PersonaId::generate(),
            tenant_id: tenant_id.clone(),
            name: p.name.to_owned(),
            description: p.description.to_owned(),
            allowed_tools: owned(p.allowed_tools),
            resource_scopes: owned(p.resource_scopes),
            intent_patterns: owned(p.intent_patterns),
            max_ttl_seconds: p.max_ttl_seconds,
            risk_tolerance: p.risk_tolerance,
            trust_tier: TrustTier::ColdStart,
            intent_threshold: DEFAULT_INTENT_THRESHOLD,
            on_low_intent: LowIntent::Approve,
            version: 1,
            is_active: true,
            created_at: Timestamp::now(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_default_personas_match_seed_004() {
        let tenant = TenantId::parse("demo").expect("valid");
        let personas = default_personas(&tenant);
        let names: Vec<_> = personas.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["researcher", "analyst", "creator", "communicator", "operator"]);
        let communicator = &personas[3];
        assert_eq!(communicator.allowed_tools, ["knowledge_search", "send_email", "file_read"]);
        assert_eq!(communicator.risk_tolerance, RiskLevel::High);
        assert_eq!(personas[4].max_ttl_seconds, 180);
        for persona in &personas {
            assert_eq!(persona.validate(), Ok(()));
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let tenant = TenantId::parse("demo").expect("valid");
        let mut p = default_personas(&tenant).remove(0);
        p.max_ttl_seconds = 0;
        assert!(matches!(p.validate(), Err(PersonaError::BadTtl { value: 0, .. })));
        p.max_ttl_seconds = 60;
        p.name = "Bad Name".into();
        assert!(matches!(p.validate(), Err(PersonaError::BadName(_))));
        p.name = "ok".into();
        p.intent_patterns.push(" ".into());
        assert!(matches!(p.validate(), Err(PersonaError::EmptyEntry { field: "intent_patterns", .. })));
    }

    #[test]
    fn enums_round_trip_through_text() {
        for level in [RiskLevel::Low, RiskLevel::Medium, RiskLevel::High, RiskLevel::Critical] {
            assert_eq!(RiskLevel::parse(level.as_str()), Some(level));
        }
        assert_eq!(TrustTier::parse("cold_start"), Some(TrustTier::ColdStart));
        assert_eq!(RiskLevel::parse("extreme"), None);
    }
}
