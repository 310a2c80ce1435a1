//! `nexus serve`: the HTTP server, with graceful shutdown on SIGINT and SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::Access;
use super::agent::agent_runtime_with_config;
use super::local_models::Needs;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    // The in-process models load in the background: `/health` answers at once, `/ready` once
    // they are loaded, and a request that needs one waits for it.
    let (runtime, config) = agent_runtime_with_config(&config, Access::Create, Needs::EverythingInBackground).await?;
    let runtime = Arc::new(runtime);
    // Keys revoked by another replica or by `nexus keys revoke` stop working here within a
    // second.
    runtime.watch_key_revocations();
    // Settings changed by an administrator (here, on another replica, or by `nexus settings`)
    // are in force here within a second.
    import_environment(&runtime, &config).await;
    runtime.watch_settings();
    // Plugins follow their records (enabled, disabled, added elsewhere) and are health-checked.
    runtime.watch_plugins();
    // Runs whose process died continue here (or fail with the reason) once that process has
    // missed its heartbeats; approvals nobody decided in time count as denied.
    let maintained = runtime.clone();
    let maintenance = runtime::tasks::spawn("resume-runs", async move {
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            match maintained.resume_unfinished().await {
                Ok(reports) => tracing::debug!(runs = reports.len(), "checked unfinished runs"),
                Err(error) => tracing::error!(%error, "resuming unfinished runs failed; will retry"),
            }
            match maintained.sweep_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "forgot expired console sessions"),
                Err(error) => tracing::warn!(%error, "could not forget expired console sessions; will retry"),
            }
            if let Err(error) = maintained.auth().flush_last_used().await {
                tracing::warn!(%error, "could not record when API keys were last used; will retry");
            }
            if pruned_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(3600)) {
                // Platforms redeliver within a day: claims older than two days protect nothing.
                match maintained.prune_channel_updates(std::time::Duration::from_secs(2 * 86_400)).await {
                    Ok(n) => tracing::debug!(claims = n, "forgot old channel update claims"),
                    Err(error) => tracing::warn!(%error, "could not forget old channel update claims; will retry"),
                }
                match maintained.prune_feed().await {
                    Ok(n) => {
                        pruned_at = Some(std::time::Instant::now());
                        tracing::debug!(entries = n, "forgot old live feed entries");
                    }
                    Err(error) => tracing::warn!(%error, "could not forget old live feed entries; will retry"),
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
    // Installed before anything reports: a channel's state set at start (unconfigured, a
    // malformed token) is set once and must reach the metrics.
    let metrics = gateway::install_recorder()?;
    // The log filter was set before the database's settings were read.
    crate::logging::set_level(config.log_level.as_deref());
    let channel_supervisor = supervise_channels(runtime.clone(), config.clone());
    // Background jobs: this process's workers and its share of the scheduler's sweep.
    let jobs = runtime.start_jobs();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.listen))?;
    let address = listener.local_addr().context("reading the listening address")?;
    tracing::info!(
        database = %config.database_display,
        data_dir = %config.data_dir.display(),
        "nexus listening on http://{address}"
    );
    match runtime.any_web_user().await {
        Ok(false) => tracing::warn!(
            "no one can sign in to the console at http://{address}/ yet; create the first admin with: \
             nexus users create --tenant demo --email you@example.com --role admin"
        ),
        Ok(true) => {}
        Err(error) => tracing::warn!(%error, "could not check for console users"),
    }
    let settings = gateway::HttpSettings {
        max_body_bytes: config.api.max_body_bytes,
        cors_origins: config.api.cors_origins.clone(),
    };
    let state = gateway::AppState::new(runtime.clone()).with_settings(settings).with_metrics(metrics);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    // One address serves both: the console's pages and the API (whose fallback answers unknown
    // paths). Connection info lets the console throttle sign-in attempts per address.
    let console_settings = console::ConsoleSettings { trusted_proxies: config.api.trusted_proxies.clone() };
    let mut app = console::router_with(runtime.clone(), console_settings).merge(gateway::router(state));
    if let Some(settings) = config.telegram.settings()
        && let Some(webhook) = channels::telegram::webhook_router(runtime.clone(), settings.clone())
    {
        app = app.merge(webhook);
    }
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await;
    maintenance.abort();
    channel_supervisor.abort();
    // A job cut short here is taken over by another process once its lease runs out.
    for handle in jobs {
        handle.abort();
    }
    if let Err(error) = runtime.auth().flush_last_used().await {
        tracing::warn!(%error, "could not record when API keys were last used");
    }
    tracing::info!("shutting down: finishing ledger writes");
    runtime.shutdown().await;
    served.context("serving HTTP")?;
    tracing::info!("shutdown complete");
    Ok(ExitCode::SUCCESS)
}

/// Which chat channel a piece of [`start_channel`] concerns.
#[derive(Clone, Copy)]
enum Bot {
    Telegram,
    Discord,
}

impl Bot {
    /// The name of the channel's plugin.
    fn plugin(self) -> &'static str {
        match self {
            Bot::Telegram => "telegram",
            Bot::Discord => "discord",
        }
    }

    /// The prefix of the channel's settings.
    fn prefix(self) -> &'static str {
        match self {
            Bot::Telegram => "channels.telegram.",
            Bot::Discord => "channels.discord.",
        }
    }
}

/// Starts a chat channel if it has a token; otherwise it reads `unconfigured` in `/ready`,
/// naming the setting. A channel that fails never stops the server.
fn start_channel(runtime: &Arc<runtime::Runtime>, config: &Config, bot: Bot) -> Option<tokio::task::JoinHandle<()>> {
    use crate::config::ChannelConfig;
    use domain::channel::Channel;
    use runtime::channels::{ChannelHealth, ChannelState};
    let unconfigured = |channel: Channel, detail: &str| {
        tracing::info!("{channel}: unconfigured; {detail}");
        runtime.report_channel(ChannelHealth::new(channel, ChannelState::Unconfigured, Some(detail.into())));
        None
    };
    let invalid = |channel: Channel, error: &str| {
        tracing::error!("{channel}: not started: {error}");
        runtime.report_channel(ChannelHealth::new(channel, ChannelState::Failed, Some(error.into())));
        None
    };
    match bot {
        Bot::Telegram => match &config.telegram {
            ChannelConfig::Invalid(error) => invalid(Channel::Telegram, error),
            ChannelConfig::On(settings) => {
                tracing::info!(tenant = %settings.tenant, admission = settings.admission.as_str(), "starting the Telegram bot");
                Some(channels::telegram::start(runtime.clone(), settings.clone()))
            }
            ChannelConfig::Off => unconfigured(
                Channel::Telegram,
                "set NEXUS_TELEGRAM_BOT_TOKEN (or channels.telegram.bot_token) to start the Telegram bot",
            ),
        },
        Bot::Discord => match &config.discord {
            ChannelConfig::Invalid(error) => invalid(Channel::Discord, error),
            ChannelConfig::On(settings) => {
                tracing::info!(
                    tenant = %settings.tenant, admission = settings.admission.as_str(),
                    moderated_channels = settings.moderated_channels.len(), dry_run = settings.moderation.dry_run,
                    "starting the Discord bot"
                );
                Some(channels::discord::start(runtime.clone(), settings.clone()))
            }
            ChannelConfig::Off => unconfigured(
                Channel::Discord,
                "set NEXUS_DISCORD_BOT_TOKEN (or channels.discord.bot_token) to start the Discord bot",
            ),
        },
    }
}

/// Starts the chat channels, then keeps them and the log filter in step with the stored
/// settings: when a channel's settings change (here, on another replica, or by
/// `nexus settings`), that channel is stopped and started again with the new ones — a token set
/// from the console starts the bot — and a new `log.level` is put in force. A switch to or from
/// webhook mode applies at the next start (the webhook's route is mounted at start).
fn supervise_channels(runtime: Arc<runtime::Runtime>, config: Config) -> tokio::task::JoinHandle<()> {
    runtime::tasks::spawn("channel-settings", async move {
        let mut current = config.clone();
        let mut running = [Bot::Telegram, Bot::Discord].map(|bot| (bot, start_unless_off(&runtime, &current, bot)));
        let mut in_force = runtime.settings_in_force();
        let mut plugin_changes = runtime.plugin_changes();
        let mut previous = match runtime.settings_values().await {
            Ok((_, values)) => values,
            Err(error) => {
                tracing::warn!(%error, "the chat channels will not follow settings changes");
                in_force = None;
                Default::default()
            }
        };
        loop {
            tokio::select! {
                changed = changed(in_force.as_mut()) => {
                    if !changed {
                        in_force = None;
                        continue;
                    }
                    let values = match runtime.settings_values().await {
                        Ok((_, values)) => values,
                        Err(error) => {
                            tracing::warn!(%error, "could not read the settings for the chat channels");
                            continue;
                        }
                    };
                    let next = match crate::config::resolve_layers(&config.layers, &values) {
                        Ok(next) => next,
                        Err(error) => {
                            tracing::warn!(%error, "the chat channels keep their settings");
                            continue;
                        }
                    };
                    if crate::logging::set_level(next.log_level.as_deref()) {
                        tracing::info!(level = next.log_level.as_deref().unwrap_or("info"), "log.level changed");
                    }
                    for (bot, handle) in &mut running {
                        let of = |values: &runtime::settings::Values| {
                            values
                                .iter()
                                .filter(|(k, _)| k.starts_with(bot.prefix()))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<Vec<_>>()
                        };
                        if of(&previous) == of(&values) {
                            continue;
                        }
                        let webhook = matches!(bot, Bot::Telegram)
                            && (next.telegram.settings().is_some_and(|s| s.webhook.is_some())
                                || config.telegram.settings().is_some_and(|s| s.webhook.is_some()));
                        if webhook {
                            tracing::warn!("the Telegram bot's settings changed; webhook mode applies at the next start");
                            continue;
                        }
                        if let Some(old) = handle.take() {
                            old.abort();
                        }
                        tracing::info!(channel = bot.plugin(), "settings changed: restarting the channel");
                        *handle = start_unless_off(&runtime, &next, *bot);
                    }
                    previous = values;
                    current = next;
                }
                changed = changed(plugin_changes.as_mut()) => {
                    if !changed {
                        plugin_changes = None;
                        continue;
                    }
                    // A channel plugin switched off stops its channel; switched on, starts it.
                    for (bot, handle) in &mut running {
                        match (runtime.plugin_switched_off(bot.plugin()), handle.is_some()) {
                            (Some(reason), true) => {
                                if let Some(old) = handle.take() {
                                    old.abort();
                                }
                                tracing::info!(channel = bot.plugin(), "plugin disabled: the channel stops");
                                report_off(&runtime, *bot, reason);
                            }
                            (None, false) => *handle = start_channel(&runtime, &current, *bot),
                            _ => {}
                        }
                    }
                }
                else => return,
            }
        }
    })
}

/// Waits for a watched value to change: `false` when its sender is gone; never without one.
async fn changed<T>(receiver: Option<&mut tokio::sync::watch::Receiver<T>>) -> bool {
    match receiver {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Starts a channel unless its plugin is switched off (then says so in its health).
fn start_unless_off(runtime: &Arc<runtime::Runtime>, config: &Config, bot: Bot) -> Option<tokio::task::JoinHandle<()>> {
    match runtime.plugin_switched_off(bot.plugin()) {
        Some(reason) => {
            report_off(runtime, bot, reason);
            None
        }
        None => start_channel(runtime, config, bot),
    }
}

fn report_off(runtime: &runtime::Runtime, bot: Bot, reason: String) {
    use runtime::channels::{ChannelHealth, ChannelState};
    let channel = match bot {
        Bot::Telegram => domain::channel::Channel::Telegram,
        Bot::Discord => domain::channel::Channel::Discord,
    };
    runtime.report_channel(ChannelHealth::new(channel, ChannelState::Unconfigured, Some(reason)));
}

/// On the first start against a database, copies the settings the environment and `./.env` give
/// into it (once; said in the log), so they can be managed from then on.
async fn import_environment(runtime: &runtime::Runtime, config: &Config) {
    if !runtime.settings_enabled() {
        return;
    }
    let dotenv = match crate::settings::read_dotenv(std::path::Path::new(".env")) {
        Ok(pairs) => pairs,
        Err(error) => {
            tracing::warn!("{error:#}; .env is not imported");
            Vec::new()
        }
    };
    let values = runtime::settings::importable(crate::settings::REGISTRY, |name| {
        config
            .layers
            .env(name)
            .map(str::to_owned)
            .or_else(|| dotenv.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    });
    let Ok(tenant) = domain::TenantId::parse(runtime::DEMO_TENANT) else { return };
    let actor = runtime::settings::Actor { tenant, by: "import".into() };
    match runtime.import_environment(&actor, &values).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            settings = n,
            "imported settings from the environment and .env into the database (first start); \
             manage them with `nexus settings` or the console from now on — variables still set keep pinning theirs"
        ),
        Err(error) => {
            tracing::warn!(%error, "could not import the environment's settings; they still apply from the environment")
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
