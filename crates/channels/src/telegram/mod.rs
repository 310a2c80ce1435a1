//! The Telegram adapter: our own supervised long-polling loop over the Bot API.
//!
//! One supervisor per bot runs *sessions*. A session builds a fresh HTTP client, checks the
//! token (`getMe`), takes the bot's lease in the store (one poller per token across replicas;
//! the others stand by), turns webhook delivery off, registers the command menu (English and
//! Italian) and then polls `getUpdates` from the stored cursor. Each update is claimed in the
//! store before it is handled (its `update_id` is handled once across restarts and replicas),
//! the cursor moves after the claims, and updates go to one worker per chat so a chat's
//! messages are answered in order while other chats go on.
//!
//! The watchdog counts only *completed* `getUpdates` calls: sends never keep it fresh. A session
//! with no completed poll for `stall_after` (including its first, so a session that never
//! starts is caught too) is aborted and a new one built with a new client, within bounded time.
//! Sessions that fail in a row back off (1 s doubling to 60 s, with jitter) and mark the
//! channel `degraded`; a refused token stops the channel (`failed`, naming the setting) and a
//! 409 (another program polling the token) is `conflict`, retried slowly. Nothing here ever
//! stops the rest of Nexus.
//!
//! With a webhook configured, Telegram posts updates to the webhook route instead (on any
//! replica: claims keep each update handled once), and the session on the lease holder sets the
//! webhook and watches `getWebhookInfo` instead of polling.
//!
//! While it polls, a session also announces calls waiting for an approval to the tenant's
//! admins (each approval once, claimed in the store) with Approve and Deny buttons, and sends
//! queued broadcasts (~25 messages a second, each recipient taken in the store before it is
//! sent, so a restart resumes without a second copy).

mod api;
mod handler;
mod webhook;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::TenantId;
use domain::channel::{Admission, Channel};
use runtime::Runtime;
use runtime::channels::ChannelState;
use tokio::sync::oneshot;

use crate::i18n::{self, Locale};
use crate::supervision::{AbortOnDrop, Board, DEGRADED_AFTER, LEASE_RENEW, backoff, hold_lease};
use api::{ApiError, BotApi};

/// Telegram's default Bot API address.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// How long one `getUpdates` waits for updates by default.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(25);
/// How long without a completed `getUpdates` counts as a stall by default.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(120);
/// How long a poller's lease on its bot lasts unless renewed.
const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often the poller looks for calls waiting for an approval.
const APPROVALS_EVERY: Duration = Duration::from_secs(2);
/// The gap between two broadcast messages: ~25 a second, under Telegram's ~30/s for bots.
const BROADCAST_GAP: Duration = Duration::from_millis(40);

/// Everything the adapter needs to know, checked by the binary's configuration.
#[derive(Clone)]
pub struct TelegramSettings {
    pub token: String,
    pub api_url: url::Url,
    /// The tenant whose users, budget and ledger the bot serves.
    pub tenant: TenantId,
    pub admission: Admission,
    /// Group chats the bot answers in; empty: any (private chats are always answered).
    pub allowed_chats: Vec<i64>,
    pub poll_timeout: Duration,
    pub stall_after: Duration,
    /// Delivery by webhook instead of long polling, when set.
    pub webhook: Option<WebhookSettings>,
}

/// Where Telegram delivers updates in webhook mode: `url` (public, HTTPS) reaches this server's
/// route at the same path, and every delivery carries `secret`.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub secret: String,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("token", &"…")
            .field("api_url", &self.api_url.as_str())
            .field("tenant", &self.tenant)
            .field("admission", &self.admission)
            .field("allowed_chats", &self.allowed_chats)
            .field("poll_timeout", &self.poll_timeout)
            .field("stall_after", &self.stall_after)
            .field("webhook", &self.webhook.as_ref().map(|w| w.url.as_str()))
            .finish()
    }
}

/// Starts the adapter; it runs until the process ends (or the token is refused).
pub fn start(runtime: Arc<Runtime>, settings: TelegramSettings) -> tokio::task::JoinHandle<()> {
    let board = Arc::new(Board::new(runtime.clone(), Channel::Telegram));
    board.set(ChannelState::Starting, None);
    runtime::tasks::spawn("telegram", supervise(runtime, Arc::new(settings), board))
}

/// When the current session's `getUpdates` calls last completed.
struct Liveness {
    started: Instant,
    last_ok: Mutex<Option<Instant>>,
}

impl Liveness {
    fn new() -> Self {
        Liveness { started: Instant::now(), last_ok: Mutex::new(None) }
    }

    fn completed(&self) {
        *self.last_ok.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    fn ever_completed(&self) -> bool {
        self.last_ok.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// Time since the last completed poll, or since the session started if none completed.
    fn quiet_for(&self) -> Duration {
        let last = *self.last_ok.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.unwrap_or(self.started).elapsed()
    }
}

/// How a session ended.
#[derive(Debug)]
enum Ended {
    /// The token was refused: stop.
    Fatal(String),
    /// Another program polls this token.
    Conflict(String),
    /// Another replica holds the bot's lease.
    Standby(String),
    /// Anything else; the supervisor backs off and builds a new session.
    Failed(String),
}

async fn supervise(runtime: Arc<Runtime>, settings: Arc<TelegramSettings>, board: Arc<Board>) {
    let mut failures: u32 = 0;
    loop {
        let live = Arc::new(Liveness::new());
        let (done, outcome) = oneshot::channel();
        let task = runtime::tasks::spawn(
            "telegram-session",
            session(runtime.clone(), settings.clone(), live.clone(), board.clone(), done),
        );
        let ended = watch(AbortOnDrop(task), outcome, &live, settings.stall_after).await;
        let healthy_session = live.ever_completed();
        let wait = match ended {
            Ended::Fatal(reason) => {
                tracing::error!(%reason, "the Telegram channel stopped; the rest of Nexus keeps serving");
                board.set(ChannelState::Failed, Some(reason));
                return;
            }
            Ended::Standby(holder) => {
                if board.state() != ChannelState::Standby {
                    tracing::info!(%holder, "another replica reads this Telegram bot; standing by");
                }
                board.set(ChannelState::Standby, Some(format!("read by {holder}")));
                failures = 0;
                LEASE_RENEW
            }
            Ended::Conflict(reason) => {
                tracing::error!(%reason, "another program reads updates with this Telegram token (409); \
                    stop it or give this one its own bot; retrying slowly");
                board.set(ChannelState::Conflict, Some(reason));
                failures = failures.saturating_add(1);
                Duration::from_secs(30)
            }
            Ended::Failed(reason) => {
                failures = if healthy_session { 1 } else { failures.saturating_add(1) };
                board.update(|h| h.restarts += 1);
                if failures >= DEGRADED_AFTER {
                    tracing::error!(%reason, failures, "the Telegram channel keeps failing; degraded, still retrying");
                    board.set(ChannelState::Degraded, Some(reason));
                } else {
                    tracing::warn!(%reason, "the Telegram session ended; building a new one");
                }
                backoff(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Waits for the session to end, or aborts it when its polls stall.
async fn watch(
    mut task: AbortOnDrop,
    mut outcome: oneshot::Receiver<Ended>,
    live: &Liveness,
    stall_after: Duration,
) -> Ended {
    let tick = (stall_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            ended = &mut outcome => {
                return ended.unwrap_or_else(|_| Ended::Failed("the session ended unexpectedly".into()));
            }
            () = tokio::time::sleep(tick) => {
                let quiet = live.quiet_for();
                if quiet > stall_after {
                    task.0.abort();
                    // Aborting is immediate at the next await; never wait on it for long.
                    let _ = tokio::time::timeout(Duration::from_secs(15), &mut task.0).await;
                    let what = if live.ever_completed() { "getUpdates stalled" } else { "the first getUpdates never completed" };
                    return Ended::Failed(format!("{what}: nothing for {}s; rebuilt the connection", quiet.as_secs()));
                }
            }
        }
    }
}

async fn session(
    runtime: Arc<Runtime>,
    settings: Arc<TelegramSettings>,
    live: Arc<Liveness>,
    board: Arc<Board>,
    done: oneshot::Sender<Ended>,
) {
    let ended = poll(&runtime, &settings, &live, &board).await;
    let _ = done.send(ended);
}

fn api_ended(error: ApiError) -> Ended {
    match error {
        ApiError::Unauthorized(reason) => {
            Ended::Fatal(format!("Telegram refused the bot token in NEXUS_TELEGRAM_BOT_TOKEN ({reason})"))
        }
        ApiError::Conflict(reason) => Ended::Conflict(reason),
        other => Ended::Failed(other.to_string()),
    }
}

async fn poll(runtime: &Arc<Runtime>, settings: &Arc<TelegramSettings>, live: &Arc<Liveness>, board: &Board) -> Ended {
    let api = match BotApi::new(&settings.api_url, &settings.token, settings.poll_timeout) {
        Ok(api) => api,
        Err(error) => return Ended::Failed(error.to_string()),
    };
    let me = match api.get_me().await {
        Ok(me) => me,
        Err(error) => return api_ended(error),
    };
    match runtime.tenant(&settings.tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Ended::Fatal(format!(
                "tenant {} (channels.telegram.tenant) does not exist; create it (nexus seed makes `demo`)",
                settings.tenant
            ));
        }
        Err(error) => return Ended::Failed(error.to_string()),
    }
    let bot = format!("telegram:{}", me.id);
    match runtime.lease_channel(&bot, LEASE_TTL).await {
        Ok(None) => {}
        Ok(Some(holder)) => return Ended::Standby(holder),
        Err(error) => return Ended::Failed(error.to_string()),
    }
    if me.can_read_all_group_messages == Some(false) {
        tracing::info!(
            bot = %me.display(),
            "Telegram group privacy is on: in groups the bot sees only commands and replies to it \
             (turn it off with BotFather, or make the bot a group admin)"
        );
    }
    for (locale, language) in [(Locale::En, None), (Locale::It, Some("it"))] {
        if let Err(error) = api.set_my_commands(i18n::commands(locale), language).await {
            tracing::warn!(%error, language = locale.code(), "could not register the Telegram command menu");
        }
    }
    if let Some(webhook) = &settings.webhook {
        return deliver_by_webhook(runtime, settings, live, board, &api, &me, &bot, webhook).await;
    }
    if let Err(error) = api.delete_webhook().await {
        tracing::warn!(%error, "could not turn Telegram webhook delivery off; getUpdates may be refused");
    }
    let cursor_prefix = format!("{}:", me.id);
    let mut offset: i64 = match runtime.channel_cursor(&settings.tenant, Channel::Telegram).await {
        Ok(cursor) => cursor.and_then(|c| c.strip_prefix(&cursor_prefix).and_then(|o| o.parse().ok())).unwrap_or(0),
        Err(error) => return Ended::Failed(error.to_string()),
    };
    tracing::info!(bot = %me.display(), offset, tenant = %settings.tenant, "reading Telegram updates");
    let context = handler::Context::new(runtime, settings, &api, &me);
    let _background = background(&context);
    let workers = handler::Workers::new(context);
    // The lease is renewed on its own task, every few seconds whatever a long poll is doing;
    // losing it ends the session at once (the other replica polls from then on).
    let (_keeper, mut lost) = hold_lease(runtime, &bot, LEASE_TTL);
    loop {
        let polled = tokio::select! {
            polled = api.get_updates(offset, settings.poll_timeout) => polled,
            holder = &mut lost => return Ended::Standby(holder.unwrap_or_else(|_| "another replica".into())),
        };
        let updates = match polled {
            Ok(updates) => updates,
            Err(ApiError::RetryAfter(wait)) => {
                tracing::warn!(?wait, "Telegram asked to slow down getUpdates");
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(error) => return api_ended(error),
        };
        live.completed();
        board.update(|h| {
            h.state = ChannelState::Connected;
            h.detail = Some(format!("polling as {}", me.display()));
            h.last_inbound_at = Some(domain::Timestamp::now());
        });
        let before = offset;
        for update in updates {
            let id = update.update_id;
            let key = format!("{}:{id}", me.id);
            match runtime.claim_channel_update(&settings.tenant, Channel::Telegram, &key).await {
                Ok(true) => workers.dispatch(update),
                Ok(false) => tracing::debug!(update = id, "Telegram update already handled"),
                // Not claimed: stop here so it is read again.
                Err(error) => return Ended::Failed(format!("could not record a Telegram update: {error}")),
            }
            offset = offset.max(id + 1);
        }
        if offset != before
            && let Err(error) = runtime
                .set_channel_cursor(&settings.tenant, Channel::Telegram, &format!("{cursor_prefix}{offset}"))
                .await
        {
            tracing::warn!(%error, "could not save the Telegram cursor; claimed updates are never handled twice");
        }
    }
}

/// Webhook mode: Telegram posts updates to [`webhook_router`] on any replica; this session
/// (on the replica holding the lease) registers the webhook, announces approvals, sends
/// broadcasts and checks `getWebhookInfo` (delivery errors Telegram reports read `degraded`).
#[allow(clippy::too_many_arguments)]
async fn deliver_by_webhook(
    runtime: &Arc<Runtime>,
    settings: &Arc<TelegramSettings>,
    live: &Arc<Liveness>,
    board: &Board,
    api: &BotApi,
    me: &api::User,
    bot: &str,
    webhook: &WebhookSettings,
) -> Ended {
    if let Err(error) = api.set_webhook(webhook.url.as_str(), &webhook.secret).await {
        // A refused webhook may be passing (DNS or TLS not ready on a first deploy): it reads
        // `degraded` with the reason and is tried again with backoff, never a stop.
        return match error {
            ApiError::BadRequest(reason) => Ended::Failed(format!(
                "Telegram refused the webhook {} (channels.telegram.webhook_url): {reason}",
                webhook.url
            )),
            other => api_ended(other),
        };
    }
    live.completed();
    tracing::info!(bot = %me.display(), url = %webhook.url, "Telegram delivers updates by webhook");
    let context = handler::Context::new(runtime, settings, api, me);
    let _background = background(&context);
    let (_keeper, mut lost) = hold_lease(runtime, bot, LEASE_TTL);
    let every = (settings.stall_after / 3).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let info = match api.webhook_info().await {
            Ok(info) => info,
            Err(error) => return api_ended(error),
        };
        live.completed();
        if info.url != webhook.url.as_str() {
            // Someone changed or removed it (another program, BotFather): set it again.
            return Ended::Failed(format!("the webhook was changed to {:?}; setting it again", info.url));
        }
        let recent_error = info
            .last_error_date
            .filter(|at| domain::Timestamp::now().as_micros() / 1_000_000 - at < 600)
            .and(info.last_error_message.clone());
        board.update(|h| match recent_error {
            Some(error) => {
                h.state = ChannelState::Degraded;
                h.detail = Some(format!("Telegram could not deliver to the webhook: {error}"));
            }
            None => {
                h.state = ChannelState::Connected;
                h.detail = Some(format!("webhook at {} ({} pending)", webhook.url, info.pending_update_count));
            }
        });
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            holder = &mut lost => return Ended::Standby(holder.unwrap_or_else(|_| "another replica".into())),
        }
    }
}

/// The route Telegram delivers webhook updates to (the webhook URL's path), for the binary to
/// serve next to the API; `None` in polling mode. Deliveries without the secret are refused;
/// each update is claimed in the store (the same keys as polling) and handled once, on any
/// replica.
pub fn webhook_router(runtime: Arc<Runtime>, settings: TelegramSettings) -> Option<axum::Router> {
    let path = settings.webhook.as_ref()?.url.path().to_owned();
    let api = match BotApi::new(&settings.api_url, &settings.token, settings.poll_timeout) {
        Ok(api) => api,
        Err(error) => {
            tracing::error!(%error, "could not build the Telegram client for the webhook");
            return None;
        }
    };
    let receiver = Arc::new(webhook::Receiver::new(runtime, Arc::new(settings), api));
    Some(axum::Router::new().route(&path, axum::routing::post(webhook::receive)).with_state(receiver))
}

/// What the lease holder does besides reading updates: announcing approvals and sending
/// broadcasts; both stop when the returned guards drop.
fn background(context: &handler::Context) -> [AbortOnDrop; 2] {
    [
        AbortOnDrop(runtime::tasks::spawn("telegram-approvals", announce(context.clone()))),
        AbortOnDrop(runtime::tasks::spawn("telegram-broadcasts", send_broadcasts(context.clone()))),
    ]
}

/// Asks the admins about held calls every [`APPROVALS_EVERY`] while this process polls.
async fn announce(context: handler::Context) {
    loop {
        if let Err(error) = handler::announce_approvals(&context).await {
            tracing::warn!(%error, "could not check for approvals to announce on Telegram; will retry");
        }
        tokio::time::sleep(APPROVALS_EVERY).await;
    }
}

/// Sends queued broadcasts and watchers' posts while this process polls: ~25 messages a
/// second overall (under Telegram's ~30/s), one recipient at a time; the sender hears of the end.
async fn send_broadcasts(context: handler::Context) {
    let (deliver_cx, report_cx) = (context.clone(), context.clone());
    crate::outbox::send_queue(
        context.runtime.clone(),
        context.settings.tenant.clone(),
        Channel::Telegram,
        BROADCAST_GAP,
        move |delivery| {
            let cx = deliver_cx.clone();
            async move { handler::deliver(&cx, &delivery).await }
        },
        move |broadcast, progress| {
            let cx = report_cx.clone();
            async move { handler::report_broadcast(&cx, &broadcast, &progress).await }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_counts_only_completed_polls() {
        let mut live = Liveness::new();
        assert!(!live.ever_completed());
        live.started = Instant::now().checked_sub(Duration::from_millis(20)).expect("a past instant");
        assert!(live.quiet_for() >= Duration::from_millis(20));
        live.completed();
        assert!(live.ever_completed());
        assert!(live.quiet_for() < Duration::from_millis(20));
    }
}
