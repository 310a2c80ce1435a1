//! `nexus users create | list | link-code`: the people who sign in to the web console, and
//! the codes that link their chat accounts.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use domain::tenant::{Role, UserLevel};
use runtime::web_users::{MIN_PASSWORD_CHARS, NewWebUser};

use super::{Access, start_runtime};
use crate::cli::UserCommand;
use crate::config::Config;

pub async fn run(command: UserCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Create { tenant, email, role, level, name, password_stdin } => {
            let level = UserLevel::new(level).context("--level")?;
            let role = Role::parse(&role).with_context(|| format!("--role {role:?}: use member or admin"))?;
            let password = if password_stdin { password_from_stdin()? } else { prompt_password()? };
            let runtime = start_runtime(&config, Access::Create).await?;
            let new = NewWebUser { tenant: tenant.clone(), email, name, role, level, password };
            let created = runtime.create_web_user(new).await;
            runtime.shutdown().await;
            let created = created?;
            eprintln!(
                "created {} user {} ({}) in tenant {tenant}; they can sign in to the console now",
                created.user.role.as_str(),
                created.email,
                created.user.id
            );
        }
        UserCommand::List { tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let users = runtime.web_users(&tenant).await;
            runtime.shutdown().await;
            for user in users? {
                println!(
                    "{}\t{}\t{}\tlevel {}\t{}",
                    user.user.id,
                    user.email,
                    user.user.role.as_str(),
                    user.user.level.get(),
                    user.user.name
                );
            }
        }
        UserCommand::LinkCode { tenant, email, user } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let made = link_code(&runtime, &tenant, email.as_deref(), user.as_deref()).await;
            runtime.shutdown().await;
            let (code, expires_at, who) = made?;
            println!("{code}");
            eprintln!(
                "{who} sends /link {code} to the Telegram or Discord bot before {} (single use)",
                expires_at.to_rfc3339()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn link_code(
    runtime: &runtime::Runtime,
    tenant: &domain::TenantId,
    email: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<(String, domain::Timestamp, String)> {
    let (id, who) = match (email, user) {
        (Some(email), _) => {
            let wanted = email.trim().to_lowercase();
            let users = runtime.web_users(tenant).await?;
            let found = users
                .into_iter()
                .find(|u| u.email == wanted)
                .with_context(|| format!("--email {email}: tenant {tenant} has no console user with that email"))?;
            (found.user.id, found.email)
        }
        (None, Some(user)) => {
            let id = domain::UserId::parse(user.to_owned()).map_err(|e| anyhow::anyhow!("--user {user:?}: {e}"))?;
            (id.clone(), format!("user {id}"))
        }
        (None, None) => bail!("give --email or --user"),
    };
    let (code, expires_at) = runtime.create_link_code(tenant, &id, "operator").await?;
    Ok((code, expires_at, who))
}

fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("--password-stdin: stdin was empty; send the password on the first line");
    }
    Ok(password)
}

fn prompt_password() -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt for a password on; pass --password-stdin and send it on stdin");
    }
    let first = rpassword::prompt_password(format!("password (at least {MIN_PASSWORD_CHARS} characters): "))
        .context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ; nothing was created");
    }
    Ok(first)
}
