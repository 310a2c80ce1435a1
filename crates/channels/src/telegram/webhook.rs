//! The webhook receiver: `POST {webhook path}` as Telegram delivers updates. A delivery must
//! carry the configured secret in `X-Telegram-Bot-Api-Secret-Token` (else 401); its update is
//! claimed in the store under the same key polling uses, then handed to the chat's worker, and
//! the answer to Telegram is immediate (200), so a slow run never makes Telegram retry. When
//! the update cannot be recorded the answer is 503 and Telegram delivers it again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::channel::Channel;
use runtime::Runtime;
use tokio::sync::OnceCell;

use super::TelegramSettings;
use super::api::{BotApi, Update};
use super::handler::{Context, Workers};

pub(super) struct Receiver {
    runtime: Arc<Runtime>,
    settings: Arc<TelegramSettings>,
    api: BotApi,
    /// The bot's id and the workers, once `getMe` answered.
    ready: OnceCell<(i64, Workers)>,
}

impl Receiver {
    pub fn new(runtime: Arc<Runtime>, settings: Arc<TelegramSettings>, api: BotApi) -> Self {
        Receiver { runtime, settings, api, ready: OnceCell::new() }
    }

    async fn ready(&self) -> Result<&(i64, Workers), super::api::ApiError> {
        self.ready
            .get_or_try_init(|| async {
                let me = self.api.get_me().await?;
                Ok((me.id, Workers::new(Context::new(&self.runtime, &self.settings, &self.api, &me))))
            })
            .await
    }
}

/// Compares without stopping at the first difference, so timing tells nothing about the secret.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

pub(super) async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(webhook) = receiver.settings.webhook.as_ref() else { return StatusCode::NOT_FOUND };
    let given = headers.get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes()).unwrap_or_default();
    if !same_secret(given, webhook.secret.as_bytes()) {
        tracing::warn!("a Telegram webhook delivery without the right secret token was refused");
        return StatusCode::UNAUTHORIZED;
    }
    if let Some(reason) = receiver.runtime.plugin_switched_off("telegram") {
        // Telegram keeps the delivery and retries it; it is answered once the plugin is on.
        tracing::debug!("a Telegram webhook delivery while the channel is off: {reason}");
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            tracing::warn!(%error, "a Telegram webhook delivery that is not an update");
            return StatusCode::BAD_REQUEST;
        }
    };
    let (bot, workers) = match receiver.ready().await {
        Ok(ready) => ready,
        Err(error) => {
            tracing::warn!(%error, "cannot handle Telegram webhook deliveries yet (getMe failed); Telegram will retry");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    };
    let key = format!("{bot}:{}", update.update_id);
    match receiver.runtime.claim_channel_update(&receiver.settings.tenant, Channel::Telegram, &key).await {
        Ok(true) => workers.dispatch(update),
        Ok(false) => tracing::debug!(update = update.update_id, "Telegram update already handled"),
        Err(error) => {
            tracing::error!(%error, "could not record a Telegram update; Telegram will deliver it again");
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_compared_whole() {
        assert!(same_secret(b"s3cret-token", b"s3cret-token"));
        assert!(!same_secret(b"s3cret-tokeN", b"s3cret-token"));
        assert!(!same_secret(b"s3cret", b"s3cret-token"));
        assert!(!same_secret(b"", b"s3cret-token"));
    }
}
