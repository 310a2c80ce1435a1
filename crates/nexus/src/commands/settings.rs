//! `nexus settings list | get | set | unset | export | import | rekey`: the settings kept in the
//! database, from the command line. Changes go through the runtime exactly as the API's do
//! (checked whole, sealed in the ledger); running servers apply them within a second.

use std::io::{BufRead as _, Read as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use runtime::Runtime;
use runtime::settings::{Actor, MasterKey, SettingView, SettingsExport};

use super::{Access, runtime_parts_with};
use crate::cli::SettingsCommand;
use crate::config::Config;

/// A runtime that manages settings: stored values the configuration refuses do not stop it
/// (so they can be repaired), and changes are checked as a server with the agent would check
/// them, without loading the in-process models.
pub(super) async fn settings_runtime(config: &Config, access: Access) -> anyhow::Result<Runtime> {
    let (mut parts, _, config) = runtime_parts_with(config, access, None, true).await?;
    let knowledge = parts.knowledge();
    let plugins = parts.plugins.clone();
    let Some(settings) = parts.settings.as_mut() else {
        bail!(
            "no master key: {} does not exist and NEXUS_MASTER_KEY is not set; run `nexus serve` once, or set it",
            config.master_key_file.display()
        );
    };
    settings.host = Arc::new(crate::settings::Host {
        layers: config.layers.clone(),
        knowledge,
        local_chat: None,
        agent: true,
        plugins,
    });
    Ok(Runtime::start(parts).await?)
}

pub async fn run(command: SettingsCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        SettingsCommand::List { json } => {
            let runtime = settings_runtime(&config, Access::Existing).await?;
            let views = runtime.settings_view().await;
            runtime.shutdown().await;
            let views = views?;
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in &views {
                    println!("{}", line(view));
                }
            }
        }
        SettingsCommand::Get { key } => {
            let runtime = settings_runtime(&config, Access::Existing).await?;
            let view = runtime.setting_view(&key).await;
            runtime.shutdown().await;
            let view = view?;
            println!("{}", line(&view));
            println!("  type: {}{}", view.kind, choices(&view));
            println!("  default: {}", view.default.unwrap_or("(none)"));
            if let Some(env) = view.env {
                println!("  variable: {env}");
            }
            println!("  applies: {}", applies(&view));
            println!("  {}", view.doc);
        }
        SettingsCommand::Set { key, value, who } => {
            let value = match value {
                Some(value) => value,
                None => {
                    eprintln!("reading the value of {key} from standard input");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).context("reading standard input")?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            let change = vec![(key, Some(serde_json::Value::String(value)))];
            change_settings(&config, who.tenant, change).await?;
        }
        SettingsCommand::Unset { key, who } => {
            change_settings(&config, who.tenant, vec![(key, None)]).await?;
        }
        SettingsCommand::Export => {
            let runtime = settings_runtime(&config, Access::Existing).await?;
            let export = runtime.export_settings().await;
            runtime.shutdown().await;
            println!("{}", serde_json::to_string_pretty(&export?)?);
        }
        SettingsCommand::Import { file, replace, who } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
                text
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let export: SettingsExport =
                serde_json::from_str(&text).with_context(|| format!("{} is not a settings export", file.display()))?;
            let runtime = settings_runtime(&config, Access::Create).await?;
            let actor = Actor { tenant: who.tenant, by: "cli".into() };
            let report = runtime.import_settings(&actor, &export, replace).await;
            runtime.shutdown().await;
            print_changes(&report?);
        }
        SettingsCommand::Rekey { new_key_file } => rekey(&config, new_key_file.as_deref()).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn change_settings(
    config: &Config,
    tenant: domain::TenantId,
    changes: Vec<(String, Option<serde_json::Value>)>,
) -> anyhow::Result<()> {
    let runtime = settings_runtime(config, Access::Create).await?;
    let actor = Actor { tenant, by: "cli".into() };
    let report = runtime.change_settings(&actor, &changes).await;
    runtime.shutdown().await;
    print_changes(&report?);
    Ok(())
}

fn print_changes(report: &runtime::settings::ChangeReport) {
    if report.changed.is_empty() {
        eprintln!("nothing changed");
    }
    for change in &report.changed {
        let when = if change.live { "in force within a second on every server" } else { "applies at the next start" };
        eprintln!("{} {} (revision {}; {when})", change.action, change.key, report.revision);
    }
}

fn line(view: &SettingView) -> String {
    let value = view.value.as_deref().unwrap_or("(unset)");
    let source = match (&view.source, &view.pinned_by) {
        (_, Some(by)) => format!("{:?} {by}", view.source).to_lowercase(),
        (source, None) => format!("{source:?}").to_lowercase(),
    };
    format!("{} = {value}  [{source}]", view.key)
}

fn choices(view: &SettingView) -> String {
    if view.choices.is_empty() { String::new() } else { format!(" ({})", view.choices.join(", ")) }
}

fn applies(view: &SettingView) -> &'static str {
    match view.applies {
        runtime::settings::Applies::Live => "at once",
        runtime::settings::Applies::Restart => "at the next start",
        runtime::settings::Applies::Bootstrap => "file, environment or flag only",
    }
}

/// Re-seals every secret under a new key. The new key file is written beside the old one
/// first, the database changed next, and only then the files swapped: a failure at any step
/// leaves a key that opens the database.
async fn rekey(config: &Config, new_key_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    if config.master_key.is_some() {
        bail!(
            "the master key comes from NEXUS_MASTER_KEY; rekey with NEXUS_MASTER_KEY_FILE (or the default key file) \
             instead, then put the new key where the variable is set"
        );
    }
    let new = match new_key_file {
        Some(path) => crate::settings::read_key_file(path)?,
        None => MasterKey::generate(),
    };
    let store = super::open_store(config, Access::Existing).await?;
    let path = &config.master_key_file;
    let old = crate::settings::read_key_file(path)?;
    if old.id() == new.id() {
        bail!("the new key is the key in use");
    }
    let staged = path.with_extension("key.new");
    let _ = std::fs::remove_file(&staged);
    crate::settings::write_key_file(&staged, &new)?;
    let resealed = runtime::settings::rekey(store.as_ref(), &old, &new).await;
    store.close().await;
    let resealed = match resealed {
        Ok(n) => n,
        Err(error) => {
            let _ = std::fs::remove_file(&staged);
            return Err(error).context("re-sealing the secrets (nothing changed)");
        }
    };
    let kept = path.with_extension("key.old");
    std::fs::rename(path, &kept).with_context(|| format!("keeping the old key as {}", kept.display()))?;
    std::fs::rename(&staged, path).with_context(|| format!("putting the new key at {}", path.display()))?;
    eprintln!(
        "re-sealed {resealed} secret(s) under key {} (was {}); the old key is kept as {} — restart every server, \
         then delete it once they run",
        new.id(),
        old.id(),
        kept.display()
    );
    Ok(())
}
