//! People who sign in to the console: a tenant's [`User`] with an email and a password hash,
//! and their sessions. The secrets themselves (the password, the session token) are never
//! stored: only an argon2id hash of the password and a SHA-256 hash of the token.

use serde::{Deserialize, Serialize};

use crate::tenant::User;
use crate::{TenantId, Timestamp, UserId};

/// A user who can sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebUser {
    pub user: User,
    /// Lower-cased; unique across all tenants (it is what a person signs in with).
    pub email: String,
    /// PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// UI language the user chose (`en`, `it`), if any.
    pub locale: Option<String>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    /// SHA-256 (hex) of the cookie's token.
    pub token_hash: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The synchronizer token every state-changing request must carry.
    pub csrf: String,
    pub created_at: Timestamp,
    /// The session ends at this time unless it is used again before (sliding expiry).
    pub expires_at: Timestamp,
}

/// An email in its stored form, or why it is not one.
pub fn normalize_email(email: &str) -> Result<String, &'static str> {
    let email = email.trim().to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("an email address needs an @");
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("an email address is local@domain");
    }
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an email address has no spaces and at most 254 characters");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ada@Example.COM "), Ok("ada@example.com".into()));
        assert!(normalize_email("ada").is_err());
        assert!(normalize_email("@example.com").is_err());
        assert!(normalize_email("a@b@c").is_err());
        assert!(normalize_email("a b@c").is_err());
    }
}
