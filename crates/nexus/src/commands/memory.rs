//! `nexus memory`: a person's remembered items — list them, forget one (a tombstone), restore
//! one — each change sealed in the tenant's ledger like the API's.

use std::process::ExitCode;

use domain::memory::{MemoryItem, MemoryTrust};

use super::{Access, start_runtime};
use crate::cli::{MemoryCommand, MemoryOwner};
use crate::config::Config;

/// The owner's subject: a user id becomes `user:<id>`.
fn subject(owner: &MemoryOwner) -> String {
    let user = owner.user.trim();
    if user.starts_with("user:") || user.starts_with("key:") { user.to_owned() } else { format!("user:{user}") }
}

fn print(item: &MemoryItem) {
    let state = if item.deleted { "deleted" } else { item.trust.as_str() };
    println!("{}  v{}  {:<9}  {}", item.id, item.version, state, item.content);
}

pub async fn run(command: MemoryCommand, config: Config) -> anyhow::Result<ExitCode> {
    let access = if matches!(command, MemoryCommand::List { .. }) { Access::Existing } else { Access::Create };
    let runtime = start_runtime(&config, access).await?;
    let outcome = async {
        match command {
            MemoryCommand::List { owner, search, all, json } => {
                let items = runtime.memory_search(&owner.tenant, &subject(&owner), search.as_deref(), all, 500).await?;
                if json {
                    let items: Vec<serde_json::Value> = items
                        .iter()
                        .map(|i| {
                            serde_json::json!({"id": i.id, "version": i.version, "content": i.content,
                                "trust": i.trust.as_str(), "deleted": i.deleted, "provenance": i.provenance,
                                "created_at": i.created_at.to_rfc3339(), "created_by": i.created_by})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&items)?);
                } else {
                    items.iter().for_each(print);
                }
            }
            MemoryCommand::Forget { id, owner } => {
                let item =
                    runtime.forget_memory(&owner.tenant, &id, &subject(&owner), MemoryTrust::Confirmed, "cli").await?;
                print(&item);
            }
            MemoryCommand::Restore { id, owner, version } => {
                let item = runtime.restore_memory(&owner.tenant, &id, &subject(&owner), version, "cli").await?;
                print(&item);
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}
