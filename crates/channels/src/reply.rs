//! What both adapters do with a turn's reply: wait for it to be stored, tell whether its run
//! parked on an approval, and find the run's seal (its last ledger entry) for the answer's foot.

use domain::chat::ChatMessage;
use domain::{ChainId, TenantId};
use runtime::Runtime;
use runtime::chat::ReplyEvent;
use tokio::sync::broadcast;

/// The stored reply, or why there is none.
pub(crate) async fn wait_reply(mut watch: broadcast::Receiver<ReplyEvent>) -> Result<ChatMessage, String> {
    loop {
        match watch.recv().await {
            Ok(ReplyEvent::Done(message)) => return Ok(message),
            Ok(ReplyEvent::Failed(reason)) => return Err(reason),
            Ok(ReplyEvent::Text(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return Err("the reply stopped before it was written".into()),
        }
    }
}

/// Whether the reply's run is parked on an approval (its answer follows the decision).
pub(crate) async fn awaits_approval(runtime: &Runtime, tenant: &TenantId, message: &ChatMessage) -> bool {
    match &message.chain_id {
        Some(chain) => runtime
            .run_report(tenant, chain)
            .await
            .is_ok_and(|r| r.status == domain::agent::ChainStatus::AwaitingApproval),
        None => false,
    }
}

/// The run's seal: the first 16 hex digits of its last entry's fingerprint, and the entry's
/// index; `None` when it cannot be read.
pub(crate) async fn seal(runtime: &Runtime, tenant: &TenantId, chain: &ChainId) -> Option<(String, u64)> {
    match runtime.ledger().chain_records(tenant, chain).await {
        Ok(records) => records.last().map(|r| (r.fingerprint.get(..16).unwrap_or(&r.fingerprint).to_owned(), r.index)),
        Err(error) => {
            tracing::warn!(%error, %chain, "could not read a run's seal for its answer");
            None
        }
    }
}
