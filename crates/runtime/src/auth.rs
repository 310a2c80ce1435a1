//! Who is calling: API keys (`nxs_…`, looked up by hash) and the short-lived JWTs traded for
//! them. A verified caller is a typed [`Principal`] that every handler scopes its work by.
//!
//! Keys are cached by hash for [`KEY_CACHE_TTL`] so the hot path does no database read. A key
//! revoked through this process is dropped from the cache at once; one revoked by another
//! process is dropped when the revocation is heard (`crate::revocations`: a notification, or
//! the store read every half second). A revoked key is remembered for a while, so a lookup that
//! raced the revocation cannot put it back in the cache. `last_used` is gathered in memory and
//! written in batches by [`Authenticator::flush_last_used`], never on the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::ports::{Store, StoreError};
use domain::tenant::{API_KEY_PREFIX, ApiKey, Role, UserLevel};
use domain::{ApiKeyId, TenantId, Timestamp, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::key_hash;

/// How long a key looked up by hash is trusted without asking the database again (unless its
/// revocation is heard first).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a revoked key's id is remembered: far longer than any lookup that may have read the
/// key before it was revoked.
const REVOKED_MEMORY: Duration = Duration::from_secs(600);
/// Default lifetime of a token from `POST /v1/auth/token`.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest lifetime a caller may ask for.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
const ISSUER: &str = "nexus";

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ApiKey,
    Jwt,
    /// A console session cookie (a person who signed in with a password).
    Session,
    /// A chat platform account linked to the user (Telegram, Discord).
    Channel,
}

/// What a caller's credential names: an API key (a JWT names the key it was traded for) or a
/// person signed in to the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    ApiKey { id: ApiKeyId, name: String },
    User { id: UserId, email: String },
}

/// An authenticated caller: always one tenant, one role and level, one credential. The API
/// and the console scope their work by the same type, so a person and a key with the same
/// role can do the same things.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub tenant: TenantId,
    pub credential: Credential,
    pub role: Role,
    pub level: UserLevel,
    pub method: AuthMethod,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The most sensitive knowledge the caller may read: level 3 and 4 read restricted
    /// documents, level 5 confidential ones, everyone else internal and public ones.
    pub fn max_access(&self) -> domain::knowledge::AccessLevel {
        use domain::knowledge::AccessLevel;
        match self.level.get() {
            5.. => AccessLevel::Confidential,
            3 | 4 => AccessLevel::Restricted,
            _ => AccessLevel::Internal,
        }
    }

    /// The API key the caller used, if it used one.
    pub fn key_id(&self) -> Option<&ApiKeyId> {
        match &self.credential {
            Credential::ApiKey { id, .. } => Some(id),
            Credential::User { .. } => None,
        }
    }

    /// The key's name or the person's email, for display.
    pub fn name(&self) -> &str {
        match &self.credential {
            Credential::ApiKey { name, .. } => name,
            Credential::User { email, .. } => email,
        }
    }

    /// The identity recorded as a run's requester or an approval's decider: `key:<id>` or
    /// `user:<id>`.
    pub fn subject(&self) -> String {
        match &self.credential {
            Credential::ApiKey { id, .. } => format!("key:{id}"),
            Credential::User { id, .. } => format!("user:{id}"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send `Authorization: Bearer nxs_…` (an API key) or a token from POST /v1/auth/token")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown or revoked API key")]
    UnknownKey,
    #[error("the token has expired; trade your API key for a new one at POST /v1/auth/token")]
    Expired,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the API key this token was issued for has been revoked")]
    RevokedKey,
    #[error("could not check credentials: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// Whether the failure is the server's, not the caller's.
    pub fn is_server_error(&self) -> bool {
        matches!(self, AuthError::Store(_))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    tenant: String,
    name: String,
    role: String,
    level: u8,
    iat: u64,
    exp: u64,
}

/// A token and when it expires (seconds since the epoch).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
    pub expires_in: u64,
}

struct CachedKey {
    key: ApiKey,
    fetched: Instant,
}

/// Everything known about keys, under one lock so a revocation and a lookup's insertion are
/// ordered.
#[derive(Default)]
struct KeyCache {
    by_hash: HashMap<String, CachedKey>,
    /// Key id → whether it was active when last checked (for JWTs).
    by_id: HashMap<ApiKeyId, (bool, Instant)>,
    /// Keys known to be revoked, and when this process learnt it.
    revoked: HashMap<ApiKeyId, Instant>,
}

pub struct Authenticator {
    store: Arc<dyn Store>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    cache: Mutex<KeyCache>,
    last_used: Mutex<HashMap<ApiKeyId, (TenantId, Timestamp)>>,
}

impl Authenticator {
    /// `secret` signs tokens (HS256); at least 32 bytes.
    pub fn new(store: Arc<dyn Store>, secret: &[u8]) -> Self {
        Self {
            store,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            cache: Mutex::default(),
            last_used: Mutex::default(),
        }
    }

    /// Checks the value of an `Authorization` header.
    pub async fn authenticate_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let (scheme, credential) =
            value.trim().split_once(' ').ok_or(AuthError::Malformed("expected `Bearer <key or token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed("only the Bearer scheme is accepted"));
        }
        self.authenticate(credential.trim()).await
    }

    /// Checks a bearer credential: an `nxs_` API key or a JWT.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthError> {
        if credential.is_empty() {
            return Err(AuthError::Missing);
        }
        if credential.starts_with(API_KEY_PREFIX) {
            let key = self.key_by_secret(credential).await?;
            self.note_use(&key);
            return Ok(principal(&key, AuthMethod::ApiKey));
        }
        self.verify_token(credential).await
    }

    async fn key_by_secret(&self, secret: &str) -> Result<ApiKey, AuthError> {
        let hash = key_hash(secret);
        if let Some(cached) = lock(&self.cache).by_hash.get(&hash)
            && cached.fetched.elapsed() < KEY_CACHE_TTL
        {
            return Ok(cached.key.clone());
        }
        let key = self.store.api_key_by_hash(&hash).await?.filter(ApiKey::is_active);
        let mut cache = lock(&self.cache);
        match key {
            // Revoked while it was being read: the revocation wins.
            Some(key) if !cache.revoked.contains_key(&key.id) => {
                cache.by_hash.insert(hash, CachedKey { key: key.clone(), fetched: Instant::now() });
                Ok(key)
            }
            _ => {
                cache.by_hash.remove(&hash);
                Err(AuthError::UnknownKey)
            }
        }
    }

    fn note_use(&self, key: &ApiKey) {
        lock(&self.last_used).insert(key.id.clone(), (key.tenant_id.clone(), Timestamp::now()));
    }

    /// Trades an API key for a signed token valid for `ttl` (capped at [`MAX_TOKEN_TTL`]).
    pub async fn issue_token(&self, secret: &str, ttl: Duration) -> Result<IssuedToken, AuthError> {
        if !secret.starts_with(API_KEY_PREFIX) {
            return Err(AuthError::Malformed("a token can only be issued for an API key (nxs_…)"));
        }
        let key = self.key_by_secret(secret).await?;
        self.note_use(&key);
        let ttl = ttl.min(MAX_TOKEN_TTL).max(Duration::from_secs(1));
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: key.id.to_string(),
            tenant: key.tenant_id.to_string(),
            name: key.name.clone(),
            role: key.role.as_str().into(),
            level: key.access_level.get(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        Ok(IssuedToken { token, expires_at: claims.exp, expires_in: ttl.as_secs() })
    }

    async fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidToken => {
                AuthError::InvalidToken("not an API key (nxs_…) and not a JWT".into())
            }
            _ => AuthError::InvalidToken(e.to_string()),
        })?;
        let claims = data.claims;
        let bad = |what: &str| AuthError::InvalidToken(format!("bad {what} claim"));
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| bad("tenant"))?;
        let key_id = ApiKeyId::parse(&claims.sub).map_err(|_| bad("sub"))?;
        let role = Role::parse(&claims.role).ok_or_else(|| bad("role"))?;
        let level = UserLevel::new(claims.level).map_err(|_| bad("level"))?;
        if !self.key_active(&tenant, &key_id).await? {
            return Err(AuthError::RevokedKey);
        }
        lock(&self.last_used).insert(key_id.clone(), (tenant.clone(), Timestamp::now()));
        let credential = Credential::ApiKey { id: key_id, name: claims.name };
        Ok(Principal { tenant, credential, role, level, method: AuthMethod::Jwt })
    }

    async fn key_active(&self, tenant: &TenantId, id: &ApiKeyId) -> Result<bool, AuthError> {
        if let Some((active, at)) = lock(&self.cache).by_id.get(id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(*active);
        }
        let keys = self.store.api_keys(tenant).await?;
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        for key in &keys {
            let active = key.is_active() && !cache.revoked.contains_key(&key.id);
            cache.by_id.insert(key.id.clone(), (active, now));
        }
        let active = keys.iter().any(|k| &k.id == id && k.is_active()) && !cache.revoked.contains_key(id);
        cache.by_id.insert(id.clone(), (active, now));
        Ok(active)
    }

    /// Stops trusting a revoked key at once: its cached entries go, and it is remembered as
    /// revoked so no lookup that raced the revocation can cache it again. Returns false if the
    /// revocation was already known.
    pub fn forget_key(&self, id: &ApiKeyId) -> bool {
        let mut cache = lock(&self.cache);
        let now = Instant::now();
        if cache.revoked.insert(id.clone(), now).is_some() {
            return false;
        }
        cache.by_hash.retain(|_, cached| &cached.key.id != id);
        cache.by_id.insert(id.clone(), (false, now));
        true
    }

    /// Forgets revocations older than any lookup could still be racing, and expired entries.
    pub(crate) fn prune(&self) {
        let mut cache = lock(&self.cache);
        cache.revoked.retain(|_, at| at.elapsed() < REVOKED_MEMORY);
        cache.by_hash.retain(|_, cached| cached.fetched.elapsed() < KEY_CACHE_TTL);
        cache.by_id.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
    }

    /// Writes the gathered `last_used` times in one batch. Returns how many keys were touched.
    pub async fn flush_last_used(&self) -> Result<usize, StoreError> {
        let uses: Vec<(TenantId, ApiKeyId, Timestamp)> = std::mem::take(&mut *lock(&self.last_used))
            .into_iter()
            .map(|(id, (tenant, at))| (tenant, id, at))
            .collect();
        if uses.is_empty() {
            return Ok(0);
        }
        self.store.touch_api_keys(&uses).await?;
        Ok(uses.len())
    }
}

fn principal(key: &ApiKey, method: AuthMethod) -> Principal {
    Principal {
        tenant: key.tenant_id.clone(),
        credential: Credential::ApiKey { id: key.id.clone(), name: key.name.clone() },
        role: key.role,
        level: key.access_level,
        method,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the maps stay valid).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
