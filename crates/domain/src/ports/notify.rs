//! The notification port: small messages published on a topic reach every subscriber of that
//! topic in every process sharing the store (PostgreSQL `LISTEN/NOTIFY`), or in this process
//! only (SQLite).
//!
//! Delivery is at most once and best effort: a listener that lost its connection, or a
//! subscriber that fell behind, is told so with [`Delivery::Gap`] and must re-read what it
//! needs from the store. So a notification is a hint that makes something happen sooner, never
//! the only way it happens: every consumer pairs it with a periodic check of the store (key
//! revocation reads the keys revoked since its last check every half second).

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;

use super::StoreError;

/// Longest topic name: the topic is part of a PostgreSQL channel name (at most 63 bytes).
pub const MAX_TOPIC_LEN: usize = 40;
/// Largest payload, in bytes: PostgreSQL refuses `NOTIFY` payloads from 8000 bytes on. Every
/// backend enforces the same limit so a payload that works on SQLite works on PostgreSQL.
pub const MAX_PAYLOAD_BYTES: usize = 7_900;

/// What a topic name or payload broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("topic {0:?} must be 1 to 40 characters of a-z, 0-9, '_', '-' and '.'")]
    BadTopic(String),
    #[error(
        "a notification payload is at most {MAX_PAYLOAD_BYTES} bytes; this one is {0} (send an id and read the rest from the store)"
    )]
    PayloadTooLarge(usize),
}

/// A topic: `[a-z0-9_.-]{1,40}`, e.g. `api_key.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Cow<'static, str>);

const fn valid_topic(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_TOPIC_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

impl Topic {
    /// A topic known when the program is written; an invalid name fails to compile when used
    /// in a `const`.
    pub const fn from_static(name: &'static str) -> Self {
        assert!(valid_topic(name), "topic names are 1 to 40 characters of a-z, 0-9, '_', '-' and '.'");
        Self(Cow::Borrowed(name))
    }

    /// A topic built at run time (e.g. one per tenant).
    pub fn parse(name: impl Into<String>) -> Result<Self, NotificationError> {
        let name = name.into();
        if !valid_topic(&name) {
            return Err(NotificationError::BadTopic(name));
        }
        Ok(Self(Cow::Owned(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message: a topic and a small text payload (JSON by convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    topic: Topic,
    payload: String,
}

impl Notification {
    pub fn new(topic: Topic, payload: impl Into<String>) -> Result<Self, NotificationError> {
        let payload = payload.into();
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(NotificationError::PayloadTooLarge(payload.len()));
        }
        Ok(Self { topic, payload })
    }

    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    pub fn payload(&self) -> &str {
        &self.payload
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Message(Notification),
    /// Messages may have been lost since the previous delivery (the listener reconnected, or
    /// this subscriber fell behind): re-read from the store whatever the topic was about.
    Gap,
}

/// A live subscription to one or more topics. Dropping it unsubscribes.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery; `None` once the notifier has shut down (the store was closed).
    async fn next(&mut self) -> Option<Delivery>;
}

/// Publish/subscribe between the processes sharing a store.
///
/// Subscribe once per process and fan out in memory: on PostgreSQL each subscription holds a
/// database connection of its own.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// `postgres` (every process on the database) or `memory` (this process only).
    fn backend(&self) -> &'static str;
    /// Whether processes other than this one receive what it publishes.
    fn reaches_other_processes(&self) -> bool;
    /// Sends a notification to every current subscriber of its topic, this process's included.
    async fn publish(&self, notification: &Notification) -> Result<(), StoreError>;
    /// Subscribes to `topics`. Everything published after this returns is delivered, or a
    /// [`Delivery::Gap`] says it may not have been.
    async fn subscribe(&self, topics: &[Topic]) -> Result<Box<dyn Subscription>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_short_lower_case_names() {
        const REVOKED: Topic = Topic::from_static("api_key.revoked");
        assert_eq!(REVOKED.as_str(), "api_key.revoked");
        assert!(Topic::parse("chain-events.acme_2").is_ok());
        for bad in ["", "Upper", "with space", "quote\"", &"x".repeat(41)] {
            assert!(Topic::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payloads_fit_a_postgres_notify() {
        let topic = Topic::from_static("t");
        assert!(Notification::new(topic.clone(), "x".repeat(MAX_PAYLOAD_BYTES)).is_ok());
        assert_eq!(
            Notification::new(topic, "x".repeat(MAX_PAYLOAD_BYTES + 1)),
            Err(NotificationError::PayloadTooLarge(MAX_PAYLOAD_BYTES + 1))
        );
    }
}
