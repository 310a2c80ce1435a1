//! Rate limits per API key and per tenant (requests per minute) and per tenant for chains
//! (agent runs per hour), over a [`RateCounter`]: in process by default, Redis when replicas
//! must share one limit. A counter that cannot be reached lets the request through and says
//! so in the log: limits protect capacity, they are not what keeps data safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::TenantId;
use domain::limits::{RateCounter, RateDecision, gcra};
use domain::ports::StoreError;

use crate::auth::lock;

/// Limits as configured (defaults: 60 requests a minute, 100 chains an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    pub key_requests_per_minute: u64,
    pub tenant_requests_per_minute: u64,
    pub tenant_chains_per_hour: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self { key_requests_per_minute: 60, tenant_requests_per_minute: 60, tenant_chains_per_hour: 100 }
    }
}

/// A refused event: which limit, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: {what} ({limit} per {per}); retry after {retry_after_secs} s")]
pub struct Limited {
    pub what: &'static str,
    pub limit: u64,
    pub per: &'static str,
    pub retry_after_secs: u64,
}

/// The tightest decision that let a request through, for `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub limit: u64,
    pub remaining: u64,
}

pub struct RateLimits {
    counter: Arc<dyn RateCounter>,
    /// Changed live by the settings (the next request counts against the new limits).
    settings: std::sync::RwLock<LimitSettings>,
}

impl RateLimits {
    pub fn new(counter: Arc<dyn RateCounter>, settings: LimitSettings) -> Self {
        Self { counter, settings: std::sync::RwLock::new(settings) }
    }

    /// Applies new limits from the next request on.
    pub fn set_settings(&self, settings: LimitSettings) {
        *self.settings.write().unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
    }

    pub fn backend(&self) -> &'static str {
        self.counter.backend()
    }

    /// Whether the counter answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.counter.ping().await
    }

    pub fn settings(&self) -> LimitSettings {
        *self.settings.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request of a caller (an API key, or a person in the console) and its tenant.
    /// The per-key limit applies to each caller.
    pub async fn request(&self, principal: &crate::auth::Principal) -> Result<Allowed, Limited> {
        let tenant = &principal.tenant;
        let settings = self.settings();
        let minute = Duration::from_secs(60);
        let per_key = self
            .hit(
                "requests per key",
                &format!("rl:{}", principal.subject()),
                settings.key_requests_per_minute,
                minute,
                "minute",
            )
            .await?;
        let per_tenant = self
            .hit(
                "requests per tenant",
                &format!("rl:tenant:{tenant}"),
                settings.tenant_requests_per_minute,
                minute,
                "minute",
            )
            .await?;
        Ok(tightest(per_key, per_tenant))
    }

    /// Counts one chain (agent run) started by a tenant.
    pub async fn chain(&self, tenant: &TenantId) -> Result<Allowed, Limited> {
        let hour = Duration::from_secs(3600);
        self.hit(
            "chains per tenant",
            &format!("rl:chains:{tenant}"),
            self.settings().tenant_chains_per_hour,
            hour,
            "hour",
        )
        .await
    }

    /// Counts one sign-in attempt for an account and for the address it came from (10 per
    /// account and 30 per address every 15 minutes), so guessing passwords is slow from one
    /// machine and for one account from many.
    pub async fn sign_in(&self, email: &str, address: &str) -> Result<(), Limited> {
        let window = Duration::from_secs(15 * 60);
        self.hit("sign-in attempts per account", &format!("rl:login:{email}"), 10, window, "15 minutes").await?;
        self.hit("sign-in attempts per address", &format!("rl:login-ip:{address}"), 30, window, "15 minutes").await?;
        Ok(())
    }

    async fn hit(
        &self,
        what: &'static str,
        key: &str,
        limit: u64,
        window: Duration,
        per: &'static str,
    ) -> Result<Allowed, Limited> {
        match self.counter.hit(key, limit, window).await {
            Ok(RateDecision { allowed: true, limit, remaining, .. }) => Ok(Allowed { limit, remaining }),
            Ok(decision) => {
                metrics::counter!("nexus_rate_limited_total", "limit" => what).increment(1);
                Err(Limited {
                    what,
                    limit,
                    per,
                    retry_after_secs: decision.retry_after.as_secs()
                        + u64::from(decision.retry_after.subsec_nanos() > 0),
                })
            }
            Err(error) => {
                tracing::warn!(%error, backend = self.counter.backend(), "rate limit counter unavailable; request let through");
                Ok(Allowed { limit, remaining: limit })
            }
        }
    }
}

fn tightest(a: Allowed, b: Allowed) -> Allowed {
    if a.remaining <= b.remaining { a } else { b }
}

/// GCRA counters in this process's memory: exact on one node.
#[derive(Default)]
pub struct MemoryRateCounter {
    tats: Mutex<HashMap<String, i64>>,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl MemoryRateCounter {
    fn now_us(&self) -> i64 {
        let started = self.started.get_or_init(std::time::Instant::now);
        // Offset by an hour so a fresh counter never sees "time 0" as a stored value.
        i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX).saturating_add(3_600_000_000)
    }
}

#[async_trait]
impl RateCounter for MemoryRateCounter {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<RateDecision, StoreError> {
        let now = self.now_us();
        let mut tats = lock(&self.tats);
        if tats.len() > 100_000 {
            // Forget counters that are back to a full allowance.
            tats.retain(|_, tat| *tat > now);
        }
        let tat = tats.get(key).copied().unwrap_or(0);
        let (decision, next) = gcra(now, tat, limit, window);
        if let Some(next) = next {
            tats.insert(key.to_owned(), next);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_and_tenant_limits_refuse_with_retry_after() {
        let settings =
            LimitSettings { key_requests_per_minute: 3, tenant_requests_per_minute: 5, tenant_chains_per_hour: 1 };
        let limits = RateLimits::new(Arc::new(MemoryRateCounter::default()), settings);
        let tenant = TenantId::parse("t").expect("tenant");
        let caller = |name: &str| crate::auth::Principal {
            tenant: tenant.clone(),
            credential: crate::auth::Credential::ApiKey { id: domain::ApiKeyId::generate(), name: name.into() },
            role: domain::tenant::Role::Member,
            level: domain::tenant::UserLevel::NEWCOMER,
            method: crate::auth::AuthMethod::ApiKey,
        };
        let (k1, k2) = (caller("one"), caller("two"));
        for _ in 0..3 {
            limits.request(&k1).await.expect("within the key limit");
        }
        let refused = limits.request(&k1).await.expect_err("key limit");
        assert_eq!((refused.what, refused.retry_after_secs), ("requests per key", 20));
        limits.request(&k2).await.expect("other key");
        limits.request(&k2).await.expect("fifth for the tenant");
        let refused = limits.request(&k2).await.expect_err("tenant limit");
        assert_eq!(refused.what, "requests per tenant");
        limits.chain(&tenant).await.expect("first chain");
        assert_eq!(limits.chain(&tenant).await.expect_err("second chain").per, "hour");
    }
}
