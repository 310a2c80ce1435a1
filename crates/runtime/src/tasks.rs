//! Named background tasks. Every long-lived task in Nexus is started here, so each one is
//! named in logs and can be found when reading the code.

use std::future::Future;

use tokio::task::JoinHandle;

/// Starts a background task. The name appears in logs when it ends abnormally.
pub fn spawn<F>(name: &'static str, future: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    #[allow(clippy::disallowed_methods)] // the one sanctioned place to spawn
    tokio::task::spawn(async move {
        future.await;
        tracing::debug!(task = name, "background task finished");
    })
}
