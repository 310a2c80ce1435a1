//! Each run's events, kept in order so a client can watch a run live and re-attach after a
//! disconnect without missing or repeating anything. Events carry a per-chain sequence number;
//! recording and broadcasting happen under one lock, so a history snapshot plus the live feed
//! from the same moment has no gap.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use domain::{ChainId, TenantId};
use engine::machine::Event;
use tokio::sync::broadcast;

use crate::auth::lock;

/// Runs whose events are kept in memory; the oldest are forgotten first.
const KEPT_CHAINS: usize = 2048;

/// One engine event of one run, numbered from 0 within the run.
#[derive(Debug, Clone)]
pub struct ChainEvent {
    pub tenant: TenantId,
    pub chain_id: ChainId,
    pub seq: u64,
    pub event: Event,
}

#[derive(Default)]
struct Logs {
    by_chain: HashMap<ChainId, (TenantId, Vec<Event>)>,
    order: VecDeque<ChainId>,
}

pub(crate) struct EventLog {
    logs: Mutex<Logs>,
    live: broadcast::Sender<ChainEvent>,
}

impl EventLog {
    pub(crate) fn new() -> Self {
        Self { logs: Mutex::default(), live: broadcast::channel(4096).0 }
    }

    /// Starts an empty history for a run about to be driven here, so a watch attached before
    /// its first event waits for it instead of finding nothing.
    pub(crate) fn open(&self, tenant: &TenantId, chain: &ChainId) {
        let mut logs = lock(&self.logs);
        history(&mut logs, tenant, chain);
    }

    /// Numbers the events, keeps them and sends them to this process's watchers; returns them
    /// numbered (for the live feed).
    pub(crate) fn record(&self, tenant: &TenantId, chain: &ChainId, events: Vec<Event>) -> Vec<ChainEvent> {
        if events.is_empty() {
            return Vec::new();
        }
        let mut logs = lock(&self.logs);
        let history = history(&mut logs, tenant, chain);
        let mut numbered = Vec::with_capacity(events.len());
        for event in events {
            let seq = history.len() as u64;
            history.push(event.clone());
            let event = ChainEvent { tenant: tenant.clone(), chain_id: chain.clone(), seq, event };
            // No subscribers is normal.
            let _ = self.live.send(event.clone());
            numbered.push(event);
        }
        numbered
    }

    /// The events of a run so far (if this process has them) and the live feed from the same
    /// moment on.
    pub(crate) fn attach(
        &self,
        tenant: &TenantId,
        chain: &ChainId,
    ) -> (Option<Vec<Event>>, broadcast::Receiver<ChainEvent>) {
        let logs = lock(&self.logs);
        let history = logs.by_chain.get(chain).filter(|(t, _)| t == tenant).map(|(_, events)| events.clone());
        (history, self.live.subscribe())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.live.subscribe()
    }
}

/// A run's history, made (forgetting the oldest run when full) if this is its first event.
fn history<'a>(logs: &'a mut Logs, tenant: &TenantId, chain: &ChainId) -> &'a mut Vec<Event> {
    if !logs.by_chain.contains_key(chain) {
        if logs.order.len() >= KEPT_CHAINS
            && let Some(oldest) = logs.order.pop_front()
        {
            logs.by_chain.remove(&oldest);
        }
        logs.order.push_back(chain.clone());
    }
    &mut logs.by_chain.entry(chain.clone()).or_insert_with(|| (tenant.clone(), Vec::new())).1
}
