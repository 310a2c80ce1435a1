//! Rate-limit counters in Redis, so several `nexus serve` replicas enforce one limit. The
//! GCRA step runs as one Lua script on the server, with the server's clock, so replicas never
//! disagree on time or race on a read-modify-write.

use std::time::Duration;

use async_trait::async_trait;
use domain::limits::{RateCounter, RateDecision};
use domain::ports::StoreError;
use redis::aio::ConnectionManager;

/// KEYS[1] = counter; ARGV = limit, window (µs). Returns {allowed, remaining, retry_after_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = math.max(1, math.floor(window / limit))
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((window - (new_tat - now)) / interval), 0}
";

pub struct RedisRateCounter {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

fn unavailable(url: &str, error: redis::RedisError) -> StoreError {
    StoreError::Unavailable { target: crate::redact(url), reason: error.to_string() }
}

impl RedisRateCounter {
    /// Connects (and checks the connection with a PING).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, "nexus:").await
    }

    /// As [`Self::connect`], with every key under `prefix` (tests use their own).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| unavailable(url, e))?;
        let connect = ConnectionManager::new(client);
        let mut connection = tokio_timeout(connect)
            .await
            .map_err(|reason| StoreError::Unavailable { target: crate::redact(url), reason })?
            .map_err(|e| unavailable(url, e))?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await.map_err(|e| unavailable(url, e))?;
        Ok(Self { connection, script: redis::Script::new(GCRA), prefix: prefix.to_owned() })
    }
}

async fn tokio_timeout<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    tokio::time::timeout(Duration::from_secs(5), future).await.map_err(|_| "no answer within 5 s".to_owned())
}

#[async_trait]
impl RateCounter for RedisRateCounter {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let target = "redis";
        let answer = tokio_timeout(redis::cmd("PING").query_async::<String>(&mut connection))
            .await
            .map_err(|reason| StoreError::Unavailable { target: target.into(), reason })?;
        answer.map(drop).map_err(|e| StoreError::Unavailable { target: target.into(), reason: e.to_string() })
    }

    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<RateDecision, StoreError> {
        let mut connection = self.connection.clone();
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        let limit = limit.max(1);
        let (allowed, remaining, wait_us): (i64, i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(limit)
            .arg(window_us)
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError::Backend(format!("redis rate counter: {e}")))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            limit,
            remaining: u64::try_from(remaining).unwrap_or(0),
            retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        })
    }
}
