//! What every adapter's supervisor shares: the channel's health board (pushed to the runtime
//! on every change, read by `/ready`), the backoff between failing sessions, and session tasks
//! that stop with their supervisor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::channel::Channel;
use rand::Rng as _;
use runtime::Runtime;
use runtime::channels::{ChannelHealth, ChannelState};
use tokio::sync::oneshot;

/// Sessions failing in a row before the channel reads `degraded`.
pub(crate) const DEGRADED_AFTER: u32 = 3;

/// The channel's health as this adapter keeps it, pushed to the runtime on every change.
pub(crate) struct Board {
    runtime: Arc<Runtime>,
    health: Mutex<ChannelHealth>,
}

impl Board {
    pub fn new(runtime: Arc<Runtime>, channel: Channel) -> Self {
        Board { runtime, health: Mutex::new(ChannelHealth::new(channel, ChannelState::Starting, None)) }
    }

    pub fn update(&self, change: impl FnOnce(&mut ChannelHealth)) {
        let mut health = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut health);
        self.runtime.report_channel(health.clone());
    }

    pub fn set(&self, state: ChannelState, detail: Option<String>) {
        self.update(|h| {
            h.state = state;
            h.detail = detail;
        });
    }

    pub fn state(&self) -> ChannelState {
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner).state
    }
}

/// 1 s doubling to 60 s, plus up to 25 % jitter.
pub(crate) fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

/// A session task stopped when its supervisor stops (an aborted adapter polls no more).
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a bot's lease is renewed.
pub(crate) const LEASE_RENEW: Duration = Duration::from_secs(5);

/// Keeps the lease this process took on `bot` for as long as the returned guard lives; the
/// receiver hears who took it if it is lost.
pub(crate) fn hold_lease(runtime: &Arc<Runtime>, bot: &str, ttl: Duration) -> (AbortOnDrop, oneshot::Receiver<String>) {
    let (lost_tx, lost) = oneshot::channel();
    let keeper = runtime::tasks::spawn("channel-lease", keep_lease(runtime.clone(), bot.to_owned(), ttl, lost_tx));
    (AbortOnDrop(keeper), lost)
}

/// Renews this process's lease on the bot every [`LEASE_RENEW`]; says who took it if it is
/// lost. A store that does not answer is retried: the lease outlives a few missed renewals.
async fn keep_lease(runtime: Arc<Runtime>, bot: String, ttl: Duration, lost: oneshot::Sender<String>) {
    loop {
        tokio::time::sleep(LEASE_RENEW).await;
        match runtime.lease_channel(&bot, ttl).await {
            Ok(None) => {}
            Ok(Some(holder)) => {
                let _ = lost.send(holder);
                return;
            }
            Err(error) => tracing::warn!(%error, %bot, "could not renew a channel lease; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_bounded_jitter() {
        for failures in 1..12 {
            let wait = backoff(failures);
            let base = Duration::from_secs(1u64 << (failures - 1).min(6)).min(Duration::from_secs(60));
            assert!(wait >= base && wait <= base + base / 4, "{failures}: {wait:?}");
        }
    }
}
