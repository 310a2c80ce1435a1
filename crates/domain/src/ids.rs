//! Typed identifiers. Each is a validated string so ids of different kinds cannot be mixed up.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong { kind: &'static str, len: usize, max: usize },
    #[error("{kind} {value:?} may contain only ASCII letters, digits, '-', '_' and '.'")]
    BadCharacter { kind: &'static str, value: String },
}

const MAX_ID_LEN: usize = 128;

fn check_id(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, len: value.len(), max: MAX_ID_LEN });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(IdError::BadCharacter { kind, value: value.to_owned() });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered random id (UUIDv7).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Parses and validates an id.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: the unit of isolation. Every stored row belongs to exactly one.
    TenantId, "tenant id"
);
id_type!(/// A user inside a tenant.
    UserId, "user id");
id_type!(/// An API key's public identifier (never the secret).
    ApiKeyId, "api key id");
id_type!(/// A persona contract.
    PersonaId, "persona id");
id_type!(/// An execution chain (one task, planned into steps).
    ChainId, "chain id");
id_type!(/// A seal: one notarized action.
    SealId, "seal id");
id_type!(/// A knowledge document.
    DocumentId, "document id");
id_type!(/// A chat conversation.
    ConversationId, "conversation id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_odd_characters() {
        assert_eq!(TenantId::parse(""), Err(IdError::Empty { kind: "tenant id" }));
        assert!(matches!(TenantId::parse("a".repeat(129)), Err(IdError::TooLong { .. })));
        assert!(matches!(TenantId::parse("a/b"), Err(IdError::BadCharacter { .. })));
        assert!(matches!(TenantId::parse("a\nb"), Err(IdError::BadCharacter { .. })));
        assert_eq!(TenantId::parse("demo").map(|t| t.to_string()), Ok("demo".to_owned()));
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = ChainId::generate();
        let b = ChainId::generate();
        assert_ne!(a, b);
        assert!(ChainId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn ids_validate_when_deserialized() {
        let bad: Result<TenantId, _> = serde_json::from_str("\"has space\"");
        assert!(bad.is_err());
        let good: TenantId = serde_json::from_str("\"t-1\"").expect("valid id");
        assert_eq!(good.as_str(), "t-1");
    }
}
