//! Key revocations reach every process: the revoking process publishes the key id on
//! [`KEY_REVOKED`]; every serving process listens (`Runtime::watch_key_revocations`) and drops
//! the key from its caches when it hears it. Because a notification can be lost (a listener
//! reconnecting, or SQLite, whose notifier stays inside one process), the watcher also reads the
//! keys revoked lately from the store every [`CHECK_EVERY`], and at once after a gap.

use std::sync::Arc;
use std::time::Duration;

use domain::ports::{Delivery, Notification, NotificationError, Notifier, Store, Topic};
use domain::{ApiKeyId, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::auth::Authenticator;

/// The topic revocations are published on.
pub const KEY_REVOKED: Topic = Topic::from_static("api_key.revoked");
/// How often the store is read for keys revoked by processes that could not be heard.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How far back each read looks before the previous one started: revocation times come from
/// the revoking process's clock, which may run behind this one.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Revoked {
    key_id: ApiKeyId,
}

/// The notification that tells other processes `id` was revoked.
pub(crate) fn revoked_notification(id: &ApiKeyId) -> Result<Notification, NotificationError> {
    let payload = serde_json::to_string(&Revoked { key_id: id.clone() }).unwrap_or_default();
    Notification::new(KEY_REVOKED, payload)
}

/// Listens for revocations and reads the store's, until the store closes. Listening and
/// reading run side by side, so a listener waiting to reconnect is never interrupted by a read.
pub(crate) async fn watch(auth: Arc<Authenticator>, store: Arc<dyn Store>, notifier: Arc<dyn Notifier>) {
    let read_now = Notify::new();
    let watcher = Watcher { auth: auth.clone(), store, since: before(Timestamp::now(), CLOCK_SKEW), failing: false };
    tokio::select! {
        () = listen(&auth, notifier.as_ref(), &read_now) => {
            tracing::debug!("the store closed; no longer watching key revocations");
        }
        () = read(watcher, &read_now) => {}
    }
}

/// Forgets every key it hears of; asks for a read of the store after a gap or a (re)subscription.
async fn listen(auth: &Authenticator, notifier: &dyn Notifier, read_now: &Notify) {
    let mut failing = false;
    loop {
        let mut subscription = match notifier.subscribe(std::slice::from_ref(&KEY_REVOKED)).await {
            Ok(subscription) => subscription,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "could not listen for key revocations; reading them from the store meanwhile");
                }
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("listening for key revocations again");
        }
        // Anything revoked while nobody listened is read now.
        read_now.notify_one();
        loop {
            match subscription.next().await {
                Some(Delivery::Message(notification)) => heard(auth, notification.payload()),
                Some(Delivery::Gap) => read_now.notify_one(),
                None => return,
            }
        }
    }
}

fn heard(auth: &Authenticator, payload: &str) {
    match serde_json::from_str::<Revoked>(payload) {
        Ok(revoked) => {
            if auth.forget_key(&revoked.key_id) {
                tracing::info!(key_id = %revoked.key_id, "API key revoked elsewhere; no longer accepted here");
            }
        }
        Err(error) => tracing::warn!(%error, payload, "ignored a malformed key revocation notice"),
    }
}

/// Reads the keys revoked lately every [`CHECK_EVERY`], and whenever the listener asks.
async fn read(mut watcher: Watcher, read_now: &Notify) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = read_now.notified() => {}
        }
        watcher.check().await;
    }
}

struct Watcher {
    auth: Arc<Authenticator>,
    store: Arc<dyn Store>,
    /// Where the next read of the store starts.
    since: Timestamp,
    /// Whether the last read failed (so failures are logged once, not twice a second).
    failing: bool,
}

impl Watcher {
    async fn check(&mut self) {
        let started = Timestamp::now();
        let read = self.store.api_keys_revoked_since(self.since).await;
        if let Ok(revoked) = &read {
            for (id, _) in revoked {
                if self.auth.forget_key(id) {
                    tracing::info!(key_id = %id, "API key revoked elsewhere; no longer accepted here");
                }
            }
            self.since = before(started, CLOCK_SKEW);
            self.auth.prune();
        }
        match &read {
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(%error, "could not read revoked API keys; will retry");
            }
            Ok(_) if self.failing => {
                self.failing = false;
                tracing::info!("revoked API keys are read again");
            }
            _ => {}
        }
    }
}

fn before(at: Timestamp, by: Duration) -> Timestamp {
    Timestamp::from_micros(at.as_micros().saturating_sub(i64::try_from(by.as_micros()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_names_the_key() {
        let id = ApiKeyId::parse("k-1").expect("id");
        let notice = revoked_notification(&id).expect("small");
        assert_eq!(notice.topic(), &KEY_REVOKED);
        let parsed: Revoked = serde_json::from_str(notice.payload()).expect("json");
        assert_eq!(parsed.key_id, id);
    }
}
