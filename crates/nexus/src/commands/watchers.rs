//! `nexus watchers`: feeds and web pages watched on a schedule — list, add, remove, poll now —
//! through the same runtime calls as `/v1/watchers`, each change sealed in the tenant's ledger.

use std::process::ExitCode;

use domain::watcher::{PostTarget, SourceKind, Watcher};
use runtime::watchers::NewWatcher;

use super::{Access, start_runtime};
use crate::cli::WatchersCommand;
use crate::config::Config;

fn print(watcher: &Watcher) {
    let target = match &watcher.target {
        PostTarget::Telegram { chat_id } => format!("telegram:{chat_id}"),
        PostTarget::Discord { channel_id } => format!("discord:{channel_id}"),
        PostTarget::Webhook { .. } => "webhook".to_owned(),
    };
    let last = match (&watcher.last_polled_at, &watcher.last_error) {
        (None, _) => "never polled".to_owned(),
        (Some(at), None) => format!("polled {}", at.to_rfc3339()),
        (Some(at), Some(error)) => format!("failed {}: {error}", at.to_rfc3339()),
    };
    println!("{}  {:<20}  {:<4}  {}  -> {target}  ({last})", watcher.id, watcher.name, watcher.kind, watcher.url);
}

pub async fn run(command: WatchersCommand, config: Config) -> anyhow::Result<ExitCode> {
    let access = if matches!(command, WatchersCommand::List { .. }) { Access::Existing } else { Access::Create };
    let runtime = start_runtime(&config, access).await?;
    let outcome = async {
        match command {
            WatchersCommand::List { tenant, json } => {
                let watchers = runtime.watchers(&tenant).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&watchers)?);
                } else if watchers.is_empty() {
                    println!("no watchers in {tenant}; add one with `nexus watchers add NAME URL --webhook URL`");
                } else {
                    watchers.iter().for_each(print);
                }
            }
            WatchersCommand::Add {
                name,
                url,
                tenant,
                page,
                selector,
                telegram,
                discord,
                webhook,
                summarise,
                max_posts,
                schedule,
                timezone,
            } => {
                let target = match (telegram, discord, webhook) {
                    (Some(chat_id), _, _) => PostTarget::Telegram { chat_id },
                    (_, Some(channel_id), _) => PostTarget::Discord { channel_id },
                    (_, _, Some(url)) => PostTarget::Webhook { url },
                    _ => anyhow::bail!("say where new items go: --telegram CHAT, --discord CHANNEL or --webhook URL"),
                };
                let new = NewWatcher {
                    name,
                    kind: if page { SourceKind::Page } else { SourceKind::Feed },
                    url,
                    selector,
                    target,
                    summarise,
                    max_posts,
                    cron: schedule,
                    timezone,
                };
                let watcher = runtime.add_watcher(&tenant, new, "cli").await?;
                print(&watcher);
            }
            WatchersCommand::Remove { watcher, tenant } => {
                let removed = runtime.remove_watcher(&tenant, &watcher, "cli").await?;
                println!("removed {} ({})", removed.name, removed.id);
            }
            WatchersCommand::Poll { watcher, tenant } => {
                let report = runtime.poll_watcher(&tenant, &watcher).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}
