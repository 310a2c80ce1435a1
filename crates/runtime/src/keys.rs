//! API keys: created with the `nxs_` prefix and shown once, stored only as a SHA-256 hash,
//! listed without secrets, revoked. Every change is an admin entry in the tenant's ledger.

use domain::ledger::{EntryDraft, EntryKind};
use domain::tenant::{API_KEY_PREFIX, ApiKey, Role, Tenant, UserLevel};
use domain::{ApiKeyId, TenantId, Timestamp};
use rand::Rng as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{LedgerError, Runtime};

/// Random characters after the prefix (base62: ~190 bits).
const SECRET_CHARS: usize = 32;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A newly created key: the only time its secret exists outside the caller.
#[derive(Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    /// `nxs_…`; never stored.
    pub secret: String,
}

/// Hex SHA-256 of a key's secret, as stored.
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Runtime {
    /// Creates a key for a tenant (creating the tenant if needed).
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        name: &str,
        level: UserLevel,
        role: Role,
    ) -> Result<CreatedKey, LedgerError> {
        let mut rng = rand::thread_rng();
        let random: String =
            (0..SECRET_CHARS).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
        let secret = format!("{API_KEY_PREFIX}{random}");
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
        let payload = json!({"action": "api_key.created", "key_id": key.id.as_str(), "name": name, "prefix": key.display_prefix, "level": level.get(), "role": role.as_str()});
        self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(CreatedKey { key, secret })
    }

    /// Revokes a key. Returns false if the tenant has no such active key.
    pub async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<bool, LedgerError> {
        let revoked = self.store().revoke_api_key(tenant, id, Timestamp::now()).await?;
        if revoked {
            self.auth().forget_key(id);
            let payload = json!({"action": "api_key.revoked", "key_id": id.as_str()});
            self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(key_hash("nxs_x").len(), 64);
        assert_ne!(key_hash("nxs_x"), key_hash("nxs_y"));
    }
}
