//! The live feed: every run's events, from every process on the store, in one ordered stream
//! per tenant that a watcher resumes from the last id it saw without gaps or repeats.
//!
//! Each process appends the events of the runs it drives to the store's feed (one writer task,
//! in batches, off the run's path), then wakes its own watchers and publishes on
//! [`FEED_TOPIC`] so the other processes wake theirs. A watcher reads the store after its
//! cursor whenever it is woken; the store orders appends across processes, so reading after an
//! id can never miss a row committed later. Notifications carry no data: one that is lost (a
//! listener reconnecting, SQLite files shared by processes that cannot notify each other) only
//! delays a watcher until the next check of the feed's head, every [`CHECK_EVERY`].
//!
//! The feed is a view: the stored run and the ledger are the record. An append that fails is
//! logged and dropped; the run goes on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::ports::{Delivery, FeedEntry, FeedRecord, Notification, Notifier, Store, Topic};
use domain::{ChainId, TenantId, Timestamp};
use engine::machine::Event;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::lock;
use crate::chain_events::ChainEvent;

/// The topic appends are announced on (no payload: watchers read the store).
pub const FEED_TOPIC: Topic = Topic::from_static("live.feed");
/// How often the feed's head is read while anyone watches, for appends nobody announced.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long entries are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// Entries a new watcher is shown first (the most recent).
const BACKFILL: u32 = 30;
/// Entries read from the store at once.
const PAGE: u32 = 200;
/// Events written in one append at most.
const BATCH: usize = 256;
/// The longest stored preview of a step's result, in characters.
const PREVIEW_CHARS: usize = 500;

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    /// The entry's place in the feed; a watcher resumes after it.
    pub id: u64,
    pub chain_id: ChainId,
    /// The event's number within its run.
    pub seq: u64,
    pub at: Timestamp,
    pub event: Event,
}

enum Write {
    Events(Vec<ChainEvent>),
    Flush(oneshot::Sender<()>),
}

/// This process's side of the feed: the writer and the wake-up signal its watchers wait on.
pub(crate) struct Feed {
    store: Arc<dyn Store>,
    writes: mpsc::UnboundedSender<Write>,
    /// Bumped whenever the feed may have grown.
    wake: Arc<watch::Sender<u64>>,
    writer: JoinHandle<()>,
    /// Listens for other processes' appends; started by the first watcher.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Feed {
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let wake = Arc::new(watch::Sender::new(0));
        let writer = crate::tasks::spawn("live-feed-writer", write(store.clone(), queue, wake.clone()));
        Self { store, writes, wake, writer, listener: Mutex::default() }
    }

    /// Queues a run's events for the feed.
    pub(crate) fn push(&self, events: Vec<ChainEvent>) {
        if !events.is_empty() {
            // Fails only once the writer stopped at shutdown.
            let _ = self.writes.send(Write::Events(events));
        }
    }

    /// Waits (at most two seconds) until everything queued so far is written.
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.writes.send(Write::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), written).await;
        }
    }

    pub(crate) fn stop(&self) {
        self.writer.abort();
        if let Some(listener) = lock(&self.listener).take() {
            listener.abort();
        }
    }

    /// A watch over the tenant's feed after `after`, or from its most recent entries.
    pub(crate) fn watch(&self, tenant: TenantId, after: Option<u64>) -> FeedEvents {
        {
            let mut listener = lock(&self.listener);
            if listener.is_none() {
                *listener =
                    Some(crate::tasks::spawn("live-feed-listener", listen(self.store.clone(), self.wake.clone())));
            }
        }
        FeedEvents {
            store: self.store.clone(),
            tenant,
            cursor: after,
            queue: VecDeque::new(),
            wake: self.wake.subscribe(),
            failing: false,
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bump(wake: &watch::Sender<u64>) {
    wake.send_modify(|n| *n = n.wrapping_add(1));
}

/// Writes queued events in batches; announces each append.
async fn write(store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Write>, wake: Arc<watch::Sender<u64>>) {
    let notifier = store.notifier();
    let mut failing = false;
    while let Some(first) = queue.recv().await {
        let mut records = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(write) = next.take() {
            match write {
                Write::Events(events) => records.extend(events.into_iter().filter_map(record)),
                Write::Flush(done) => flushes.push(done),
            }
            if records.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !records.is_empty() {
            match store.append_feed(&records).await {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("the live feed is written again");
                    }
                    bump(&wake);
                    announce(notifier.as_ref()).await;
                }
                Err(error) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, events = records.len(), "could not write run events to the live feed; they are not shown live (the runs and the ledger are unaffected)");
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn announce(notifier: &dyn Notifier) {
    match Notification::new(FEED_TOPIC, "") {
        Ok(notice) => {
            if let Err(error) = notifier.publish(&notice).await {
                tracing::debug!(%error, "could not announce live feed entries; other processes see them within a second");
            }
        }
        Err(error) => tracing::debug!(%error, "live feed notice"),
    }
}

/// The stored form of one event; previews are shortened (the stored run keeps them whole).
fn record(event: ChainEvent) -> Option<FeedRecord> {
    let ChainEvent { tenant, chain_id, seq, mut event } = event;
    if let Event::SealCreated { result_preview, .. } = &mut event
        && let Some((cut, _)) = result_preview.char_indices().nth(PREVIEW_CHARS)
    {
        result_preview.truncate(cut);
        result_preview.push('…');
    }
    match serde_json::to_string(&event) {
        Ok(event) => Some(FeedRecord { tenant_id: tenant, chain_id, seq, created_at: Timestamp::now(), event }),
        Err(error) => {
            tracing::warn!(%error, "a run event could not be serialized for the live feed");
            None
        }
    }
}

/// Wakes watchers when another process announces an append, and when the feed's head moved
/// without an announcement (checked every [`CHECK_EVERY`] while anyone watches).
async fn listen(store: Arc<dyn Store>, wake: Arc<watch::Sender<u64>>) {
    let notifier = store.notifier();
    tokio::join!(hear(notifier.as_ref(), &wake), check_head(store.as_ref(), &wake));
}

async fn hear(notifier: &dyn Notifier, wake: &watch::Sender<u64>) {
    let mut failing = false;
    loop {
        let mut subscription = match notifier.subscribe(std::slice::from_ref(&FEED_TOPIC)).await {
            Ok(subscription) => subscription,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "could not listen for other processes' live feed entries; checking every second meanwhile");
                }
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("listening for other processes' live feed entries again");
        }
        bump(wake);
        loop {
            match subscription.next().await {
                Some(Delivery::Message(_) | Delivery::Gap) => bump(wake),
                None => return,
            }
        }
    }
}

async fn check_head(store: &dyn Store, wake: &watch::Sender<u64>) {
    let mut seen = 0;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if wake.receiver_count() == 0 {
            continue;
        }
        if let Ok(head) = store.feed_head().await
            && head != std::mem::replace(&mut seen, head)
        {
            bump(wake);
        }
    }
}

/// A watch over one tenant's feed ([`crate::Runtime::watch_feed`]). It never ends while the
/// runtime runs: a store that fails is retried every [`CHECK_EVERY`].
pub struct FeedEvents {
    store: Arc<dyn Store>,
    tenant: TenantId,
    /// The last id seen; `None` until the first read.
    cursor: Option<u64>,
    queue: VecDeque<FeedItem>,
    wake: watch::Receiver<u64>,
    failing: bool,
}

impl FeedEvents {
    /// The next event, or `None` once the runtime stops.
    pub async fn next(&mut self) -> Option<FeedItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            // Marked seen before reading, so an append during the read wakes the next wait.
            self.wake.borrow_and_update();
            let read = match self.cursor {
                None => self.store.feed_latest(&self.tenant, BACKFILL).await,
                Some(after) => self.store.feed_after(&self.tenant, after, PAGE).await,
            };
            match read {
                Ok(entries) => {
                    if std::mem::take(&mut self.failing) {
                        tracing::info!(tenant = %self.tenant, "the live feed is read again");
                    }
                    let first_read = self.cursor.is_none();
                    if let Some(last) = entries.last() {
                        self.cursor = Some(last.id);
                    } else if first_read {
                        self.cursor = Some(0);
                    }
                    self.queue.extend(entries.into_iter().filter_map(item));
                    if !self.queue.is_empty() || first_read {
                        continue;
                    }
                }
                Err(error) => {
                    if !std::mem::replace(&mut self.failing, true) {
                        tracing::warn!(%error, tenant = %self.tenant, "could not read the live feed; retrying every second");
                    }
                    tokio::time::sleep(CHECK_EVERY).await;
                    continue;
                }
            }
            if self.wake.changed().await.is_err() {
                return None;
            }
        }
    }
}

fn item(entry: FeedEntry) -> Option<FeedItem> {
    let FeedEntry { id, record } = entry;
    match serde_json::from_str::<Event>(&record.event) {
        Ok(event) => Some(FeedItem { id, chain_id: record.chain_id, seq: record.seq, at: record.created_at, event }),
        Err(error) => {
            tracing::debug!(%error, id, "skipped a live feed entry this version cannot read");
            None
        }
    }
}
