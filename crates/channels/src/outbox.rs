//! The send loop every adapter runs while it holds its bot's lease: the tenant's queued
//! messages on its channel (broadcasts, watchers' posts), each taken in the store before it is
//! sent so a restart or another replica never sends one twice, paced under the platform's
//! limits; a queue entry with nobody left to send to is closed and its sender hears of it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::TenantId;
use domain::channel::{Broadcast, BroadcastProgress, Channel, Delivery, DeliveryStatus};
use runtime::Runtime;

/// Sends `channel`'s queue for `tenant` forever, one message every `gap` at most; `deliver`
/// sends one and says how it went, `report` hears of each finished queue entry.
pub(crate) async fn send_queue<D, DF, R, RF>(
    runtime: Arc<Runtime>,
    tenant: TenantId,
    channel: Channel,
    gap: Duration,
    deliver: D,
    report: R,
) where
    D: Fn(Delivery) -> DF,
    DF: Future<Output = (DeliveryStatus, Option<String>)>,
    R: Fn(Broadcast, BroadcastProgress) -> RF,
    RF: Future<Output = ()>,
{
    let mut pace = tokio::time::interval(gap);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = match runtime.pending_deliveries(&tenant, channel, 100).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, %channel, "could not read the send queue; will retry");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let mut touched = std::collections::BTreeSet::new();
        for delivery in batch {
            touched.insert(delivery.broadcast_id.clone());
            match runtime.take_delivery(&tenant, &delivery).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, %channel, "could not take a queued message; will retry");
                    break;
                }
            }
            pace.tick().await;
            let (status, detail) = deliver(delivery.clone()).await;
            if let Err(error) = runtime.finish_delivery(&tenant, &delivery, status, detail.as_deref()).await {
                tracing::warn!(%error, broadcast = %delivery.broadcast_id, "could not record a send's outcome");
            }
        }
        for id in touched {
            match runtime.finish_broadcast(&tenant, &id).await {
                Ok(Some((broadcast, progress))) => report(broadcast, progress).await,
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, broadcast = %id, "could not close a queue entry; will retry"),
            }
        }
    }
}
