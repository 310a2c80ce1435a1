//! API keys: created with the `nxs_` prefix and shown once, stored only as a SHA-256 hash,
//! listed without secrets, revoked. Every change is an admin entry in the tenant's ledger that
//! says who made it: `operator` (the CLI, run by whoever holds the data directory) or the
//! admin key that asked over an API (`key:<id>`).
//!
//! A revocation takes effect in this process at once and is published to every other process
//! (`crate::revocations`). An admin may revoke the key it is calling with: that is how a key is
//! rotated (create the new one, switch, revoke the old one).

use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoreError;
use domain::tenant::{API_KEY_PREFIX, ApiKey, Role, Tenant, UserLevel};
use domain::{ApiKeyId, TenantId, Timestamp};
use rand::Rng as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::{LedgerError, Runtime};

/// Random characters after the prefix (base62: ~190 bits).
const SECRET_CHARS: usize = 32;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;
/// The actor recorded for changes made from the command line.
const OPERATOR: &str = "operator";

/// A newly created key: the only time its secret exists outside the caller.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    /// `nxs_…`; never stored.
    pub secret: String,
}

/// Why a key could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key name {0}")]
    BadName(&'static str),
    #[error("{0} needs an admin key (nexus keys create --role admin)")]
    NotAdmin(&'static str),
    #[error("level {asked} is above the level of the key asking ({own}); a key can only make keys up to its own level")]
    LevelAbove { asked: u8, own: u8 },
    #[error("tenant {tenant} has no key {id}")]
    NoSuchKey { tenant: TenantId, id: String },
    #[error("key {id} was already revoked at {at}")]
    AlreadyRevoked { id: ApiKeyId, at: Timestamp },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<StoreError> for KeyError {
    fn from(error: StoreError) -> Self {
        KeyError::Ledger(LedgerError::Store(error))
    }
}

/// `nxs_` and random base62 characters.
fn new_secret() -> String {
    let mut rng = rand::thread_rng();
    let random: String = (0..SECRET_CHARS).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    format!("{API_KEY_PREFIX}{random}")
}

/// Hex SHA-256 of a key's secret, as stored.
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A key name: trimmed, 1 to [`MAX_KEY_NAME_CHARS`] characters, no control characters.
pub fn check_key_name(name: &str) -> Result<&str, KeyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(KeyError::BadName("must not be empty"));
    }
    if name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(KeyError::BadName("is longer than 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(KeyError::BadName("must not contain control characters"));
    }
    Ok(name)
}

impl Runtime {
    /// Creates a key for a tenant (creating the tenant if needed), as the operator.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        name: &str,
        level: UserLevel,
        role: Role,
    ) -> Result<CreatedKey, KeyError> {
        self.create_key(tenant, name, level, role, OPERATOR).await
    }

    /// Creates a key in the caller's tenant: admins only, and never above the caller's level.
    pub async fn create_api_key_as(
        &self,
        caller: &Principal,
        name: &str,
        level: UserLevel,
        role: Role,
    ) -> Result<CreatedKey, KeyError> {
        if !caller.is_admin() {
            return Err(KeyError::NotAdmin("creating a key"));
        }
        if level > caller.level {
            return Err(KeyError::LevelAbove { asked: level.get(), own: caller.level.get() });
        }
        self.create_key(&caller.tenant, name, level, role, &caller.subject()).await
    }

    /// The tenant's keys, active and revoked, oldest first (hashes stay inside; never secrets).
    pub async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        self.store().api_keys(tenant).await
    }

    /// Revokes a key as the operator. Returns false if the tenant has no such active key.
    pub async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<bool, LedgerError> {
        self.revoke_key(tenant, id, OPERATOR).await
    }

    /// Revokes a key of the caller's tenant (admins only; the caller's own key included) and
    /// returns it as revoked. Another tenant's key is `NoSuchKey`.
    pub async fn revoke_api_key_as(&self, caller: &Principal, id: &str) -> Result<ApiKey, KeyError> {
        if !caller.is_admin() {
            return Err(KeyError::NotAdmin("revoking a key"));
        }
        let no_such = || KeyError::NoSuchKey { tenant: caller.tenant.clone(), id: id.to_owned() };
        let key_id = ApiKeyId::parse(id).map_err(|_| no_such())?;
        let find = |keys: Vec<ApiKey>| keys.into_iter().find(|k| k.id == key_id);
        let key = find(self.api_keys(&caller.tenant).await?).ok_or_else(no_such)?;
        if let Some(at) = key.revoked_at {
            return Err(KeyError::AlreadyRevoked { id: key.id, at });
        }
        let revoked = self.revoke_key(&caller.tenant, &key_id, &caller.subject()).await?;
        let key = find(self.api_keys(&caller.tenant).await?).ok_or_else(no_such)?;
        match (revoked, key.revoked_at) {
            (true, _) => Ok(key),
            // Revoked by someone else in between.
            (false, Some(at)) => Err(KeyError::AlreadyRevoked { id: key.id, at }),
            (false, None) => Err(no_such()),
        }
    }

    async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
        level: UserLevel,
        role: Role,
        by: &str,
    ) -> Result<CreatedKey, KeyError> {
        let name = check_key_name(name)?;
        let secret = new_secret();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: tenant.clone(),
            user_id: None,
            name: name.to_owned(),
            key_hash: key_hash(&secret),
            display_prefix: secret.chars().take(API_KEY_PREFIX.len() + 6).collect(),
            access_level: level,
            role,
            created_at: Timestamp::now(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store().insert_tenant_if_missing(&Tenant::new(tenant.clone(), tenant.as_str())).await?;
        self.store().insert_api_key(&key).await?;
        let payload = json!({"action": "api_key.created", "key_id": key.id.as_str(), "name": name, "prefix": key.display_prefix, "level": level.get(), "role": role.as_str(), "by": by});
        self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(CreatedKey { key, secret })
    }

    /// The one revocation path: store, this process's caches, every other process, the ledger.
    async fn revoke_key(&self, tenant: &TenantId, id: &ApiKeyId, by: &str) -> Result<bool, LedgerError> {
        let revoked = self.store().revoke_api_key(tenant, id, Timestamp::now()).await?;
        if revoked {
            self.auth().forget_key(id);
            // Other processes also read revocations from the store every half second, so a
            // notification that cannot be sent only makes them slower.
            match crate::revocations::revoked_notification(id) {
                Ok(notice) => {
                    if let Err(error) = self.store().notifier().publish(&notice).await {
                        tracing::warn!(%error, key_id = %id, "could not announce a key revocation; other processes will read it from the store");
                    }
                }
                Err(error) => tracing::warn!(%error, "could not build a key revocation notice"),
            }
            let payload = json!({"action": "api_key.revoked", "key_id": id.as_str(), "by": by});
            self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_trimmed_bounded_and_printable() {
        assert_eq!(check_key_name("  ci  ").expect("valid"), "ci");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(101)] {
            assert!(matches!(check_key_name(bad), Err(KeyError::BadName(_))), "{bad:?}");
        }
        assert!(check_key_name(&"é".repeat(100)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(key_hash("nxs_x").len(), 64);
        assert_ne!(key_hash("nxs_x"), key_hash("nxs_y"));
    }
}
