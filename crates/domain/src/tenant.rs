//! Tenants, their users and their API keys.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, TenantId, Timestamp, UserId};

/// The default monthly budget of a tenant, in USD.
pub const DEFAULT_BUDGET_USD: f64 = 50.0;
/// The fraction of the budget at which a tenant is warned.
pub const DEFAULT_BUDGET_ALERT_FRACTION: f64 = 0.8;
/// The prefix every Nexus API key carries.
pub const API_KEY_PREFIX: &str = "nxs_";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Monthly budget in USD.
    pub budget_usd: f64,
    /// Free-form per-tenant settings (validated by whoever reads them).
    pub settings: serde_json::Value,
    pub created_at: Timestamp,
    pub is_active: bool,
}

impl Tenant {
    pub fn new(id: TenantId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            budget_usd: DEFAULT_BUDGET_USD,
            settings: serde_json::Value::Object(serde_json::Map::new()),
            created_at: Timestamp::now(),
            is_active: true,
        }
    }
}

/// A user's level: 0 is a new user; 3 ("architect") and above may broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct UserLevel(u8);

impl UserLevel {
    pub const MAX: u8 = 5;
    pub const NEWCOMER: UserLevel = UserLevel(0);
    pub const ARCHITECT: UserLevel = UserLevel(3);

    pub fn new(level: u8) -> Result<Self, LevelError> {
        if level > Self::MAX {
            return Err(LevelError { level });
        }
        Ok(Self(level))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    pub fn may_broadcast(self) -> bool {
        self >= Self::ARCHITECT
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user level {level} is out of range; levels go from 0 to {max}", max = UserLevel::MAX)]
pub struct LevelError {
    pub level: u8,
}

impl TryFrom<u8> for UserLevel {
    type Error = LevelError;
    fn try_from(level: u8) -> Result<Self, LevelError> {
        Self::new(level)
    }
}

impl From<UserLevel> for u8 {
    fn from(level: UserLevel) -> u8 {
        level.0
    }
}

/// What a user may administer inside their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub name: String,
    pub level: UserLevel,
    pub role: Role,
    pub created_at: Timestamp,
}

/// A stored API key. The secret itself is never stored: only its SHA-256 hash and a short
/// display prefix (`nxs_ab12…`) so a person can tell keys apart.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    pub name: String,
    /// Hex SHA-256 of the full secret.
    pub key_hash: String,
    /// The first characters of the secret, for display.
    pub display_prefix: String,
    pub access_level: UserLevel,
    /// `admin` keys may change personas, decide approvals and read every key's usage.
    pub role: Role,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("display_prefix", &self.display_prefix)
            .field("key_hash", &"<redacted>")
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_bounded_and_architects_broadcast() {
        assert!(UserLevel::new(6).is_err());
        assert!(!UserLevel::new(2).expect("valid").may_broadcast());
        assert!(UserLevel::new(3).expect("valid").may_broadcast());
        let parsed: Result<UserLevel, _> = serde_json::from_str("9");
        assert!(parsed.is_err());
    }

    #[test]
    fn api_key_debug_hides_the_hash() {
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: TenantId::parse("demo").expect("valid"),
            user_id: None,
            name: "ci".into(),
            key_hash: "deadbeef".into(),
            display_prefix: "nxs_ab".into(),
            access_level: UserLevel::NEWCOMER,
            role: Role::Member,
            created_at: Timestamp::from_micros(0),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(!format!("{key:?}").contains("deadbeef"));
    }
}
