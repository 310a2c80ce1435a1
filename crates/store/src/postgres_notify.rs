//! Notifications between every process on one PostgreSQL database: `pg_notify` to publish,
//! `LISTEN` on a connection of its own per subscription, reconnecting when it drops.
//!
//! A topic's channel is `nexus.<16 hex digits>.<topic>`: the digits are a hash of the schema the
//! store lives in, so deployments sharing a database in separate schemas never hear each other.
//! A lost connection is reported as [`Delivery::Gap`] once the listener is back.

use std::time::Duration;

use async_trait::async_trait;
use domain::ports::{Delivery, Notification, Notifier, StoreError, Subscription, Topic};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::error::classify;

/// Longest wait between two attempts to get a lost listener back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub struct PgNotifier {
    pool: PgPool,
    options: PgConnectOptions,
    /// `nexus.<schema hash>.`
    prefix: String,
    target: String,
}

impl PgNotifier {
    /// A notifier over the store's pool; `schema` scopes its channels.
    pub(crate) fn new(pool: PgPool, options: PgConnectOptions, schema: &str, target: String) -> Self {
        Self { pool, options, prefix: format!("nexus.{:016x}.", fnv1a(schema.as_bytes())), target }
    }

    pub(crate) fn channel(&self, topic: &Topic) -> String {
        format!("{}{}", self.prefix, topic.as_str())
    }

    async fn listen(&self, pool: &PgPool, channels: &[String]) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen_all(channels.iter().map(String::as_str)).await?;
        Ok(listener)
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for channel names (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[async_trait]
impl Notifier for PgNotifier {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn reaches_other_processes(&self) -> bool {
        true
    }

    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.channel(notification.topic()))
            .bind(notification.payload())
            .execute(&self.pool)
            .await
            .map_err(|e| classify(&self.target, e))?;
        Ok(())
    }

    async fn subscribe(&self, topics: &[Topic]) -> Result<Box<dyn Subscription>, StoreError> {
        // A pool of one connection of its own: the listener never takes one of the store's,
        // and closing the store never waits for it.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(self.options.clone());
        let channels: Vec<String> = topics.iter().map(|t| self.channel(t)).collect();
        let listener = self.listen(&own, &channels).await.map_err(|e| classify(&self.target, e))?;
        tracing::debug!(?channels, "listening for notifications");
        Ok(Box::new(PgSubscription {
            listener: Some(listener),
            own,
            store: self.pool.clone(),
            topics: topics.iter().map(|t| (self.channel(t), t.clone())).collect(),
            channels,
            backoff: FIRST_BACKOFF,
        }))
    }
}

struct PgSubscription {
    /// `None` while the connection is being re-established.
    listener: Option<PgListener>,
    own: PgPool,
    /// The store's pool: once it is closed, the subscription ends.
    store: PgPool,
    topics: Vec<(String, Topic)>,
    channels: Vec<String>,
    backoff: Duration,
}

impl PgSubscription {
    fn message(&self, channel: &str, payload: &str) -> Option<Delivery> {
        let topic = self.topics.iter().find(|(c, _)| c == channel).map(|(_, t)| t.clone())?;
        match Notification::new(topic, payload) {
            Ok(notification) => Some(Delivery::Message(notification)),
            Err(error) => {
                tracing::warn!(%error, channel, "dropped a notification");
                None
            }
        }
    }

    /// Waits, then tries to listen again. Returns whether the listener is back.
    async fn reconnect(&mut self) -> bool {
        tokio::time::sleep(self.backoff).await;
        let mut listener = match PgListener::connect_with(&self.own).await {
            Ok(listener) => listener,
            Err(error) => return self.failed(&error),
        };
        if let Err(error) = listener.listen_all(self.channels.iter().map(String::as_str)).await {
            return self.failed(&error);
        }
        tracing::info!("notification listener reconnected");
        self.listener = Some(listener);
        self.backoff = FIRST_BACKOFF;
        true
    }

    fn failed(&mut self, error: &sqlx::Error) -> bool {
        tracing::warn!(%error, retry_in_ms = self.backoff.as_millis(), "notification listener cannot reconnect");
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        false
    }
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if self.store.is_closed() {
                return None;
            }
            let Some(listener) = self.listener.as_mut() else {
                if self.reconnect().await {
                    return Some(Delivery::Gap);
                }
                continue;
            };
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = self.store.close_event() => return None,
            };
            match received {
                Ok(Some(notification)) => {
                    if let Some(delivery) = self.message(notification.channel(), notification.payload()) {
                        return Some(delivery);
                    }
                }
                // The connection dropped and sqlx listened again on a new one (or will on the
                // next call): what was sent in between is lost.
                Ok(None) => return Some(Delivery::Gap),
                Err(error) => {
                    tracing::warn!(%error, "notification listener lost its connection");
                    self.listener = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_postgres_and_differ_by_schema() {
        let longest = format!("nexus.{:016x}.{}", fnv1a(b"public"), "x".repeat(domain::ports::MAX_TOPIC_LEN));
        assert!(longest.len() <= 63, "{}", longest.len());
        assert_ne!(fnv1a(b"public"), fnv1a(b"t_0123"));
    }
}
