//! Notifications inside one process: the SQLite backend's notifier (a SQLite file has no
//! channel between the processes that open it, so their consumers rely on their periodic check
//! of the store).

use std::sync::Arc;

use async_trait::async_trait;
use domain::ports::{Delivery, Notification, Notifier, StoreError, Subscription, Topic};
use tokio::sync::{broadcast, watch};

/// Messages a slow subscriber may fall behind by before it is told of a gap.
const BACKLOG: usize = 1024;

/// Publish/subscribe in memory, between the subscribers of this process.
pub struct MemoryNotifier {
    sender: broadcast::Sender<Notification>,
    closed: watch::Sender<bool>,
}

impl Default for MemoryNotifier {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(BACKLOG);
        let (closed, _) = watch::channel(false);
        Self { sender, closed }
    }
}

impl MemoryNotifier {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Ends every subscription (their `next` returns `None`).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn reaches_other_processes(&self) -> bool {
        false
    }

    async fn publish(&self, notification: &Notification) -> Result<(), StoreError> {
        // No subscriber is not an error: nobody was listening.
        let _ = self.sender.send(notification.clone());
        Ok(())
    }

    async fn subscribe(&self, topics: &[Topic]) -> Result<Box<dyn Subscription>, StoreError> {
        Ok(Box::new(MemorySubscription {
            receiver: self.sender.subscribe(),
            closed: self.closed.subscribe(),
            topics: topics.to_vec(),
        }))
    }
}

struct MemorySubscription {
    receiver: broadcast::Receiver<Notification>,
    closed: watch::Receiver<bool>,
    topics: Vec<Topic>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            let received = tokio::select! {
                received = self.receiver.recv() => received,
                _ = self.closed.changed() => return None,
            };
            match received {
                Ok(notification) if self.topics.contains(notification.topic()) => {
                    return Some(Delivery::Message(notification));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(Delivery::Gap),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
