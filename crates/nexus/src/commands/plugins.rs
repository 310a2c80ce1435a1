//! `nexus plugins`: list plugins, add an MCP server, enable (approve), disable and remove —
//! each change sealed in the ledger and followed by running servers within seconds.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use domain::plugin::McpServerSpec;
use runtime::plugins::PluginView;
use runtime::settings::Actor;

use super::Access;
use super::settings::settings_runtime;
use crate::cli::PluginsCommand;
use crate::config::Config;

pub async fn run(command: PluginsCommand, config: Config) -> anyhow::Result<ExitCode> {
    let access = if matches!(command, PluginsCommand::List { .. }) { Access::Existing } else { Access::Create };
    let runtime = settings_runtime(&config, access).await?;
    let outcome = async {
        match command {
            PluginsCommand::List { json } => {
                let views = runtime.plugins_view().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&views)?);
                } else {
                    for view in &views {
                        print_view(view);
                    }
                }
            }
            PluginsCommand::Add { name, command, args, env, cwd, url, headers, who } => {
                let server = match (command, url) {
                    (Some(command), None) => McpServerSpec::Stdio { command, args, env: pairs("--env", &env)?, cwd },
                    (None, Some(url)) => {
                        if !args.is_empty() || !env.is_empty() || cwd.is_some() {
                            bail!("--arg, --env and --cwd are for a --command server");
                        }
                        McpServerSpec::Http { url, headers: pairs("--header", &headers)? }
                    }
                    _ => bail!("give either --command or --url"),
                };
                let actor = Actor { tenant: who.tenant, by: "cli".to_owned() };
                let view = runtime.add_mcp_plugin(&actor, &name, server).await?;
                print_view(&view);
                println!("enable it with `nexus plugins enable {name}` to approve its tools");
            }
            PluginsCommand::Enable { name, who } => {
                let actor = Actor { tenant: who.tenant, by: "cli".to_owned() };
                let view = runtime.enable_plugin(&actor, &name).await?;
                print_view(&view);
                for pin in &view.approved {
                    println!("  approved {}: {}", pin.name, pin.description);
                }
            }
            PluginsCommand::Disable { name, who } => {
                let actor = Actor { tenant: who.tenant, by: "cli".to_owned() };
                print_view(&runtime.disable_plugin(&actor, &name).await?);
            }
            PluginsCommand::Remove { name, who } => {
                let actor = Actor { tenant: who.tenant, by: "cli".to_owned() };
                runtime.remove_plugin(&actor, &name).await?;
                println!("removed {name}");
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown().await;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// `NAME=VALUE` pairs of a repeated flag.
fn pairs(flag: &str, given: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    given
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => bail!("{flag} {pair:?}: expected NAME=VALUE"),
        })
        .collect()
}

fn print_view(view: &PluginView) {
    let tools = if view.tools.is_empty() { String::new() } else { format!(" tools: {}", view.tools.join(", ")) };
    println!("{:<12} {:<4} {:<10} {}{tools}", view.name, view.kind, view.state.as_str(), view.reason);
    for change in &view.changes {
        match &change.approved {
            Some(approved) => println!("  changed {}: was {approved:?}, now {:?}", change.tool, change.now),
            None => println!("  new {}: {:?}", change.tool, change.now),
        }
    }
}
