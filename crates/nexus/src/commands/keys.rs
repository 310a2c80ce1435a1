//! `nexus keys create | list | revoke`.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use domain::ApiKeyId;
use domain::tenant::{Role, UserLevel};

use super::{Access, start_runtime};
use crate::cli::KeyCommand;
use crate::config::Config;

pub async fn run(command: KeyCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Create { tenant, name, level, role } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let level = UserLevel::new(level).context("--level")?;
            let role = Role::parse(&role).with_context(|| format!("--role {role:?}: use member or admin"))?;
            let runtime = start_runtime(&config, Access::Create).await?;
            let created = runtime.create_api_key(&tenant, name.trim(), level, role).await;
            runtime.shutdown().await;
            let created = created?;
            println!("{}", created.secret);
            eprintln!(
                "created key {} ({}) for tenant {tenant}; the secret above is shown once and stored only as a hash",
                created.key.id, created.key.name
            );
        }
        KeyCommand::List { tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let keys = runtime.api_keys(&tenant).await;
            runtime.shutdown().await;
            for key in keys? {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                let used = key.last_used_at.map_or("never used".to_owned(), |at| format!("last used {at}"));
                println!(
                    "{} | {}… | {} | level {} | {} | {state} | {used}",
                    key.id,
                    key.display_prefix,
                    key.name,
                    key.access_level.get(),
                    key.role
                );
            }
        }
        KeyCommand::Revoke { id, tenant } => {
            let id = ApiKeyId::parse(id).context("key id")?;
            let runtime = start_runtime(&config, Access::Existing).await?;
            let revoked = runtime.revoke_api_key(&tenant, &id).await;
            runtime.shutdown().await;
            if !revoked? {
                bail!("tenant {tenant} has no active key {id}");
            }
            println!("revoked key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
