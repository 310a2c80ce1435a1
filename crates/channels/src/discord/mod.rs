//! The Discord adapter: our own gateway connection and REST client (Discord API v10).
//!
//! One supervisor per bot runs *sessions*. A session checks the token (`GET /users/@me`),
//! takes the bot's lease in the store (Discord sends every event to every connection of a
//! token, so one replica connects and the others stand by), asks `GET /gateway` where to
//! connect and runs the connection: IDENTIFY once, then RESUME on every reconnect while the
//! session lives, so nothing sent in between is lost. Each dispatched message and interaction
//! is claimed in the store before it is handled, so a replayed event (a resume, another replica
//! taking over) is never answered twice.
//!
//! Failures back off (1 s doubling to 60 s, with jitter) and mark the channel `degraded` after
//! a few in a row; a close code no retry can fix (a refused token, a privileged intent not
//! enabled) stops the channel with a clear error, and nothing here ever stops the rest of Nexus.
//!
//! On configured channels every message also goes through moderation (see `handler`); staff
//! decide the cases it cannot (and override those it did) with buttons in the staff channel.

mod api;
mod gateway;
mod handler;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::TenantId;
use domain::channel::{Admission, Channel};
use runtime::Runtime;
use runtime::channels::ChannelState;
use runtime::moderation::ModerationPolicy;
use tokio::sync::mpsc;

use crate::supervision::{AbortOnDrop, Board, DEGRADED_AFTER, backoff, hold_lease};
use api::{ApiError, RestApi};
use gateway::{Closed, Event, Resume};

/// Discord's default address.
pub const DEFAULT_API_URL: &str = "https://discord.com";
const LEASE_TTL: Duration = Duration::from_secs(20);
/// How often the adapter looks for calls waiting for an approval.
const APPROVALS_EVERY: Duration = Duration::from_secs(2);
/// The least time between two queued posts.
const POST_GAP: Duration = Duration::from_millis(1100);

/// Everything the adapter needs to know, checked by the binary's configuration.
#[derive(Clone)]
pub struct DiscordSettings {
    pub token: String,
    pub api_url: url::Url,
    /// The tenant whose users, budget and ledger the bot serves.
    pub tenant: TenantId,
    pub admission: Admission,
    /// Guilds the bot works in; empty: any (DMs are always answered).
    pub allowed_guilds: Vec<String>,
    /// Channels whose messages go through moderation; empty: none.
    pub moderated_channels: Vec<String>,
    /// Where staff see moderation cases and approvals, with buttons to decide.
    pub staff_channel: Option<String>,
    pub moderation: ModerationPolicy,
    /// Guilds moderated differently from the rest (their own threshold, dry run, actions held
    /// for staff, staff level and staff channel), by guild id.
    pub guilds: std::collections::HashMap<String, GuildModeration>,
    /// How long a `timeout` action lasts.
    pub timeout: Duration,
}

/// One guild's own moderation: its policy (the bot's, with the guild's overrides) and where
/// its staff see cases.
#[derive(Debug, Clone)]
pub struct GuildModeration {
    pub moderation: ModerationPolicy,
    /// `None`: the bot's staff channel.
    pub staff_channel: Option<String>,
}

impl DiscordSettings {
    /// The moderation policy of a guild (the bot's own outside a guild or for guilds without
    /// their own).
    pub fn policy(&self, guild: Option<&str>) -> &ModerationPolicy {
        guild.and_then(|g| self.guilds.get(g)).map_or(&self.moderation, |g| &g.moderation)
    }

    /// Where a guild's staff see cases and notices.
    pub fn staff_channel_of(&self, guild: Option<&str>) -> Option<&str> {
        guild
            .and_then(|g| self.guilds.get(g))
            .and_then(|g| g.staff_channel.as_deref())
            .or(self.staff_channel.as_deref())
    }
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("token", &"…")
            .field("api_url", &self.api_url.as_str())
            .field("tenant", &self.tenant)
            .field("admission", &self.admission)
            .field("allowed_guilds", &self.allowed_guilds)
            .field("moderated_channels", &self.moderated_channels)
            .field("staff_channel", &self.staff_channel)
            .field("moderation", &self.moderation)
            .field("guilds", &self.guilds)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Starts the adapter; it runs until the process ends (or the channel fails for good).
pub fn start(runtime: Arc<Runtime>, settings: DiscordSettings) -> tokio::task::JoinHandle<()> {
    let board = Arc::new(Board::new(runtime.clone(), Channel::Discord));
    board.set(ChannelState::Starting, None);
    runtime::tasks::spawn("discord", supervise(runtime, Arc::new(settings), board))
}

/// How a session ended.
#[derive(Debug)]
enum Ended {
    Fatal(String),
    Standby(String),
    /// Anything else; `healthy` when the session had connected.
    Failed {
        reason: String,
        healthy: bool,
    },
}

/// What survives from one session to the next: the gateway session to resume, and the
/// prescreen's memory of who posted how often.
struct Carry {
    resume: Option<Resume>,
    prescreen: Arc<Mutex<domain::moderation::Prescreen>>,
    /// Each person's message worker: a reconnect must not start a second one beside it.
    authors: Arc<handler::Authors>,
}

async fn supervise(runtime: Arc<Runtime>, settings: Arc<DiscordSettings>, board: Arc<Board>) {
    let mut failures: u32 = 0;
    let mut carry = Carry {
        resume: None,
        prescreen: Arc::new(Mutex::new(domain::moderation::Prescreen::new())),
        authors: Arc::new(handler::Authors::default()),
    };
    loop {
        let ended = session(&runtime, &settings, &board, &mut carry).await;
        let wait = match ended {
            Ended::Fatal(reason) => {
                tracing::error!(%reason, "the Discord channel stopped; the rest of Nexus keeps serving");
                board.set(ChannelState::Failed, Some(reason));
                return;
            }
            Ended::Standby(holder) => {
                if board.state() != ChannelState::Standby {
                    tracing::info!(%holder, "another replica runs this Discord bot; standing by");
                }
                board.set(ChannelState::Standby, Some(format!("run by {holder}")));
                carry.resume = None;
                failures = 0;
                crate::supervision::LEASE_RENEW
            }
            Ended::Failed { reason, healthy } => {
                failures = if healthy { 1 } else { failures.saturating_add(1) };
                board.update(|h| h.restarts += 1);
                if failures >= DEGRADED_AFTER {
                    tracing::error!(%reason, failures, "the Discord channel keeps failing; degraded, still retrying");
                    board.set(ChannelState::Degraded, Some(reason));
                } else {
                    tracing::warn!(%reason, "the Discord connection ended; reconnecting");
                }
                backoff(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn api_ended(error: ApiError) -> Ended {
    match error {
        ApiError::Unauthorized(reason) => {
            Ended::Fatal(format!("Discord refused the bot token in NEXUS_DISCORD_BOT_TOKEN ({reason})"))
        }
        other => Ended::Failed { reason: other.to_string(), healthy: false },
    }
}

async fn session(
    runtime: &Arc<Runtime>,
    settings: &Arc<DiscordSettings>,
    board: &Arc<Board>,
    carry: &mut Carry,
) -> Ended {
    let api = match RestApi::new(&settings.api_url, &settings.token) {
        Ok(api) => api,
        Err(error) => return Ended::Failed { reason: error.to_string(), healthy: false },
    };
    let me = match api.me().await {
        Ok(me) => me,
        Err(error) => return api_ended(error),
    };
    match runtime.tenant(&settings.tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Ended::Fatal(format!(
                "tenant {} (channels.discord.tenant) does not exist; create it (nexus seed makes `demo`)",
                settings.tenant
            ));
        }
        Err(error) => return Ended::Failed { reason: error.to_string(), healthy: false },
    }
    let bot = format!("discord:{}", me.id);
    match runtime.lease_channel(&bot, LEASE_TTL).await {
        Ok(None) => {}
        Ok(Some(holder)) => return Ended::Standby(holder),
        Err(error) => return Ended::Failed { reason: error.to_string(), healthy: false },
    }
    let url = match api.gateway_url().await {
        Ok(url) => url,
        Err(error) => return api_ended(error),
    };
    let (_keeper, mut lost) = hold_lease(runtime, &bot, LEASE_TTL);
    let (events_tx, events) = mpsc::unbounded_channel();
    let context = handler::Context {
        runtime: runtime.clone(),
        settings: settings.clone(),
        api: api.clone(),
        bot: Arc::new(Mutex::new(handler::Bot { user_id: me.id.clone(), application_id: String::new() })),
        prescreen: carry.prescreen.clone(),
        authors: carry.authors.clone(),
    };
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dispatcher =
        runtime::tasks::spawn("discord-dispatch", dispatch(context.clone(), events, board.clone(), connected.clone()));
    let _posts = AbortOnDrop(runtime::tasks::spawn("discord-posts", send_posts(context.clone())));
    let _approvals = AbortOnDrop(runtime::tasks::spawn("discord-approvals", announce(context)));
    let ended = tokio::select! {
        closed = gateway::connect(&url, &settings.token, &mut carry.resume, &events_tx) => match closed {
            Closed::Fatal(reason) => Ended::Fatal(reason),
            Closed::Lost(reason) => {
                Ended::Failed { reason, healthy: connected.load(std::sync::atomic::Ordering::Relaxed) }
            }
        },
        holder = &mut lost => Ended::Standby(holder.unwrap_or_else(|_| "another replica".into())),
    };
    // Events already read from the socket (their sequence numbers acknowledged) are claimed and
    // handed on before the next connection: a resume does not send them again.
    drop(events_tx);
    if tokio::time::timeout(Duration::from_secs(10), dispatcher).await.is_err() {
        tracing::warn!("the Discord dispatcher did not finish its queue within 10 s");
    }
    ended
}

fn mark(board: &Board, connected_as: Option<String>) {
    board.update(|h| {
        if let Some(name) = connected_as {
            h.state = ChannelState::Connected;
            h.detail = Some(format!("connected as {name}"));
        }
        h.last_inbound_at = Some(domain::Timestamp::now());
    });
}

/// Claims each event in the store (once across resumes and replicas) and hands it on.
async fn dispatch(
    context: handler::Context,
    mut events: mpsc::UnboundedReceiver<Event>,
    board: Arc<Board>,
    connected: Arc<std::sync::atomic::AtomicBool>,
) {
    let tenant = context.settings.tenant.clone();
    while let Some(event) = events.recv().await {
        let (key, work) = match event {
            Event::Ready { user, application_id } => {
                tracing::info!(bot = %user.display(), tenant = %tenant, "connected to the Discord gateway");
                connected.store(true, std::sync::atomic::Ordering::Relaxed);
                mark(&board, Some(user.display()));
                handler::ready(&context, &application_id).await;
                continue;
            }
            Event::Resumed => {
                tracing::info!("resumed the Discord gateway session");
                connected.store(true, std::sync::atomic::Ordering::Relaxed);
                mark(&board, Some("the resumed session".into()));
                continue;
            }
            // Messages the bot has nothing to do with are not even recorded.
            Event::Message(message) if !handler::wanted(&context, &message, false) => continue,
            Event::Edited(message) if !handler::wanted(&context, &message, true) => continue,
            Event::Message(message) => (format!("m:{}", message.id), handler::Work::Message(message)),
            Event::Edited(message) => {
                let at = message.edited_timestamp.clone().unwrap_or_default();
                (format!("e:{}:{at}", message.id), handler::Work::Edited(message))
            }
            Event::Interaction(interaction) => {
                (format!("i:{}", interaction.id), handler::Work::Interaction(interaction))
            }
        };
        mark(&board, None);
        match context.runtime.claim_channel_update(&tenant, Channel::Discord, &key).await {
            Ok(true) => handler::handle(&context, work),
            Ok(false) => tracing::debug!(%key, "Discord event already handled"),
            Err(error) => tracing::error!(%error, %key, "could not record a Discord event; it is not handled"),
        }
    }
}

/// Asks staff about held calls every [`APPROVALS_EVERY`] while this process is connected.
/// Sends the queued posts (watchers' posts to a channel) while this process holds the bot:
/// about one message a second, under Discord's per-channel limit.
async fn send_posts(context: handler::Context) {
    let deliver_cx = context.clone();
    crate::outbox::send_queue(
        context.runtime.clone(),
        context.settings.tenant.clone(),
        Channel::Discord,
        POST_GAP,
        move |delivery| {
            let cx = deliver_cx.clone();
            async move { handler::deliver(&cx, &delivery).await }
        },
        |broadcast, progress| async move {
            tracing::info!(broadcast = %broadcast.id, delivered = progress.delivered, failed = progress.failed,
                "a queued Discord post finished");
        },
    )
    .await;
}

async fn announce(context: handler::Context) {
    loop {
        tokio::time::sleep(APPROVALS_EVERY).await;
        if let Err(error) = handler::announce_approvals(&context).await {
            tracing::warn!(%error, "could not check for approvals to announce on Discord; will retry");
        }
    }
}
