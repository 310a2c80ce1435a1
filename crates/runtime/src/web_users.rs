//! People who sign in to the console: creating them, checking passwords, and sessions.
//!
//! Passwords are hashed with argon2id (its default parameters: 19 MiB, two passes) on the
//! blocking pool, never on the async threads. An unknown email costs the same hash as a wrong
//! password, so timing does not tell which emails exist. Attempts are throttled per account
//! and per address through the shared rate counter, so replicas on Redis share the count.
//!
//! A session is a random token in an HttpOnly cookie; the store keeps its SHA-256 only. Each
//! session carries its own CSRF token. A signed-in person is the same [`Principal`] as an API
//! key with the same role and level: the console has no permission system of its own.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoreError;
use domain::tenant::{Role, Tenant, User, UserLevel};
use domain::web::{WebSession, WebUser, normalize_email};
use domain::{TenantId, Timestamp, UserId};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Runtime;
use crate::auth::{AuthMethod, Credential, Principal};
use crate::error::LedgerError;
use crate::limits::Limited;

/// A session ends after this long without a request.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// A session's expiry is moved forward at most this often (one write per this many minutes).
const TOUCH_EVERY_MICROS: i64 = 5 * 60 * 1_000_000;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Why creating a user or signing in failed.
#[derive(Debug, thiserror::Error)]
pub enum WebAuthError {
    #[error("email: {0}")]
    BadEmail(&'static str),
    #[error("password: {0}")]
    BadPassword(String),
    #[error("name: {0}")]
    BadName(&'static str),
    #[error("{0} needs an admin")]
    NotAdmin(&'static str),
    #[error("level {asked} is above your own level ({own})")]
    LevelAbove { asked: u8, own: u8 },
    #[error("someone already signs in with {0}")]
    EmailTaken(String),
    /// Wrong email or password (never says which).
    #[error("wrong email or password")]
    WrongCredentials,
    #[error("too many sign-in attempts; {0}")]
    Throttled(Limited),
    #[error("could not hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<StoreError> for WebAuthError {
    fn from(error: StoreError) -> Self {
        WebAuthError::Ledger(LedgerError::Store(error))
    }
}

impl WebAuthError {
    /// Whether the failure is the server's, not the person's.
    pub fn is_server_error(&self) -> bool {
        matches!(self, WebAuthError::Hash(_) | WebAuthError::Ledger(_))
    }
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewWebUser {
    pub tenant: TenantId,
    pub email: String,
    /// Display name; the email when empty.
    pub name: String,
    pub role: Role,
    pub level: UserLevel,
    pub password: String,
}

/// A new session: the token goes into the cookie and is never stored.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub session: WebSession,
}

/// The person behind a session cookie.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub principal: Principal,
    pub csrf: String,
    pub locale: Option<String>,
    pub name: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The stored form of a session token.
pub fn session_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_password(password: &str) -> Result<(), WebAuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WebAuthError::BadPassword(format!("needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(WebAuthError::BadPassword(format!("is longer than {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// argon2id of `password` with a fresh salt, as a PHC string (on the blocking pool).
pub async fn hash_password(password: String) -> Result<String, WebAuthError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| WebAuthError::Hash(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| WebAuthError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| WebAuthError::Hash(e.to_string()))?
}

/// Whether `password` matches `hash` (on the blocking pool); with no hash, a decoy is checked
/// and the answer is false. A malformed hash never matches.
async fn verify_password(password: String, hash: Option<String>) -> Result<bool, WebAuthError> {
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(decoy_hash);
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        if !real {
            let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
            return false;
        }
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .map_err(|e| WebAuthError::Hash(e.to_string()))
}

/// Verified against when the email is unknown, so both answers take as long.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn decoy_hash() -> String {
    DECOY_HASH
        .get_or_init(|| {
            let Ok(salt) = SaltString::encode_b64(b"nexus-decoy-salt") else { return String::new() };
            Argon2::default().hash_password(b"not a password", &salt).map(|h| h.to_string()).unwrap_or_default()
        })
        .clone()
}

fn principal_of(user: &WebUser) -> Principal {
    Principal {
        tenant: user.user.tenant_id.clone(),
        credential: Credential::User { id: user.user.id.clone(), email: user.email.clone() },
        role: user.user.role,
        level: user.user.level,
        method: AuthMethod::Session,
    }
}

impl Runtime {
    /// Creates a user who can sign in, as the operator (the CLI); creates the tenant if needed.
    pub async fn create_web_user(&self, new: NewWebUser) -> Result<WebUser, WebAuthError> {
        self.insert_web_user(new, "operator").await
    }

    /// Creates a user in the caller's tenant: admins only, never above the caller's level.
    pub async fn create_web_user_as(&self, caller: &Principal, mut new: NewWebUser) -> Result<WebUser, WebAuthError> {
        if !caller.is_admin() {
            return Err(WebAuthError::NotAdmin("adding a user"));
        }
        if new.level > caller.level {
            return Err(WebAuthError::LevelAbove { asked: new.level.get(), own: caller.level.get() });
        }
        new.tenant = caller.tenant.clone();
        self.insert_web_user(new, &caller.subject()).await
    }

    async fn insert_web_user(&self, new: NewWebUser, by: &str) -> Result<WebUser, WebAuthError> {
        let email = normalize_email(&new.email).map_err(WebAuthError::BadEmail)?;
        check_password(&new.password)?;
        let name = match new.name.trim() {
            "" => email.clone(),
            name if name.chars().count() > 100 => return Err(WebAuthError::BadName("is longer than 100 characters")),
            name if name.chars().any(char::is_control) => {
                return Err(WebAuthError::BadName("must not contain control characters"));
            }
            name => name.to_owned(),
        };
        let password_hash = hash_password(new.password).await?;
        let user = WebUser {
            user: User {
                id: UserId::generate(),
                tenant_id: new.tenant.clone(),
                name,
                level: new.level,
                role: new.role,
                created_at: Timestamp::now(),
            },
            email: email.clone(),
            password_hash,
            locale: None,
        };
        self.store().insert_tenant_if_missing(&Tenant::new(new.tenant.clone(), new.tenant.as_str())).await?;
        match self.store().insert_web_user(&user).await {
            Err(StoreError::Conflict { .. }) => return Err(WebAuthError::EmailTaken(email)),
            other => other?,
        }
        let payload = json!({"action": "web_user.created", "user_id": user.user.id.as_str(), "email": email,
            "role": new.role.as_str(), "level": new.level.get(), "by": by});
        self.ledger().append(&new.tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(user)
    }

    /// A tenant's users who can sign in, as the operator.
    pub async fn web_users(&self, tenant: &TenantId) -> Result<Vec<WebUser>, StoreError> {
        self.store().web_users(tenant).await
    }

    /// The caller's tenant's users who can sign in (admins only).
    pub async fn web_users_as(&self, caller: &Principal) -> Result<Vec<WebUser>, WebAuthError> {
        if !caller.is_admin() {
            return Err(WebAuthError::NotAdmin("listing users"));
        }
        Ok(self.store().web_users(&caller.tenant).await?)
    }

    /// Whether anyone can sign in yet (a fresh install prints how to create the first admin).
    pub async fn any_web_user(&self) -> Result<bool, StoreError> {
        self.store().any_web_user().await
    }

    /// Checks an email and password and opens a session. `address` is where the attempt came
    /// from, for throttling.
    pub async fn sign_in(&self, email: &str, password: &str, address: &str) -> Result<SignedIn, WebAuthError> {
        let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.limits().sign_in(&email, address).await.map_err(WebAuthError::Throttled)?;
        let user = self.store().web_user_by_email(&email).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.chars().take(MAX_PASSWORD_BYTES).collect::<String>();
        let matches = verify_password(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            tracing::info!(email = %email, address, "console sign-in refused");
            return Err(WebAuthError::WrongCredentials);
        };
        let token = random_hex(32);
        let now = Timestamp::now();
        let session = WebSession {
            token_hash: session_hash(&token),
            tenant_id: user.user.tenant_id.clone(),
            user_id: user.user.id.clone(),
            csrf: random_hex(32),
            created_at: now,
            expires_at: after(now, SESSION_IDLE),
        };
        self.store().insert_session(&session).await?;
        tracing::info!(user_id = %user.user.id, tenant = %user.user.tenant_id, "console sign-in");
        Ok(SignedIn { token, session })
    }

    /// The person a session token belongs to, if the session is live; moves its expiry.
    pub async fn session_user(&self, token: &str) -> Result<Option<SessionUser>, StoreError> {
        let hash = session_hash(token);
        let now = Timestamp::now();
        // One query: every console request asks. A session whose person is gone finds nothing
        // (and is swept when it expires).
        let Some((session, user)) = self.store().session_user(&hash, now).await? else { return Ok(None) };
        let fresh = after(now, SESSION_IDLE);
        if fresh.as_micros() - session.expires_at.as_micros() > TOUCH_EVERY_MICROS {
            self.store().touch_session(&hash, fresh).await?;
        }
        Ok(Some(SessionUser {
            principal: principal_of(&user),
            csrf: session.csrf,
            locale: user.locale.clone(),
            name: user.user.name.clone(),
        }))
    }

    /// Ends one session.
    pub async fn sign_out(&self, token: &str) -> Result<(), StoreError> {
        self.store().delete_session(&session_hash(token)).await
    }

    /// Ends every session of the signed-in caller; how many ended.
    pub async fn sign_out_everywhere(&self, caller: &Principal) -> Result<u64, StoreError> {
        match &caller.credential {
            Credential::User { id, .. } => self.store().delete_sessions_of(&caller.tenant, id).await,
            Credential::ApiKey { .. } => Ok(0),
        }
    }

    /// Remembers the caller's interface language (`None`: follow the browser).
    pub async fn set_locale(&self, caller: &Principal, locale: Option<&str>) -> Result<(), StoreError> {
        match &caller.credential {
            Credential::User { id, .. } => self.store().set_web_locale(&caller.tenant, id, locale).await,
            Credential::ApiKey { .. } => Ok(()),
        }
    }

    /// Forgets expired sessions; how many.
    pub async fn sweep_sessions(&self) -> Result<u64, StoreError> {
        self.store().delete_expired_sessions(Timestamp::now()).await
    }
}

fn after(t: Timestamp, d: std::time::Duration) -> Timestamp {
    Timestamp::from_micros(t.as_micros().saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
}
