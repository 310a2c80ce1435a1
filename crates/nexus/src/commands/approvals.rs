//! `nexus approvals list | show | approve | deny`, and `nexus persona list | add`.

use std::process::ExitCode;

use anyhow::bail;
use domain::persona::{PersonaContract, RiskLevel, TrustTier};
use domain::{PersonaId, Timestamp};

use super::agent::{agent_runtime, print_report};
use super::{Access, start_runtime};
use crate::cli::{ApprovalCommand, PersonaCommand};
use crate::config::Config;

pub async fn approvals(command: ApprovalCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        ApprovalCommand::List { tenant, status } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let listed = runtime.approvals(&tenant, status.status()).await;
            runtime.shutdown().await;
            for a in listed? {
                println!(
                    "{} | {} | chain {} step {} | {} | {}",
                    a.id,
                    a.status,
                    a.chain_id,
                    a.step,
                    a.tool,
                    escape(&a.reason)
                );
            }
        }
        ApprovalCommand::Show { id, tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let found = runtime.approval(&tenant, &id).await;
            runtime.shutdown().await;
            let a = found?;
            println!("approval {} ({})", a.id, a.status);
            println!("chain {} step {}: {}", a.chain_id, a.step, a.tool);
            println!("parameters: {}", escape(&a.params));
            println!("call digest: {}", a.call_digest);
            println!("reason: {}", escape(&a.reason));
            println!("requested by: {}", a.requested_by.as_deref().unwrap_or("-"));
            println!("expires: {}", a.expires_at);
            if let Some(by) = &a.decided_by {
                println!(
                    "decided by {by} at {}: {}",
                    a.decided_at.map(|t| t.to_string()).unwrap_or_default(),
                    a.note.as_deref().unwrap_or("")
                );
            }
        }
        ApprovalCommand::Approve(d) | ApprovalCommand::Deny(d) if d.by.trim().is_empty() => {
            bail!("--by must name who decides");
        }
        ApprovalCommand::Approve(d) => return decide(d, true, config).await,
        ApprovalCommand::Deny(d) => return decide(d, false, config).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn decide(d: crate::cli::DecisionArgs, approve: bool, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = agent_runtime(&config, Access::Existing).await?;
    let outcome = runtime.decide(&d.tenant, &d.id, approve, &d.by, &d.note).await;
    runtime.shutdown().await;
    print_report(&outcome?);
    Ok(ExitCode::SUCCESS)
}

/// Shows control and invisible characters escaped, so what a person approves is what runs.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let invisible = c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}');
            if invisible { c.escape_unicode().collect::<Vec<_>>() } else { vec![c] }
        })
        .collect()
}

pub async fn persona(command: PersonaCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        PersonaCommand::List { tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let listed = runtime.personas(&tenant).await;
            runtime.shutdown().await;
            for p in listed? {
                println!(
                    "{:<14} v{} risk {:<8} ttl {:>4}s tools [{}] scopes [{}]",
                    p.name,
                    p.version,
                    p.risk_tolerance.as_str(),
                    p.max_ttl_seconds,
                    p.allowed_tools.join(", "),
                    p.resource_scopes.join(", ")
                );
            }
        }
        PersonaCommand::Add { tenant, name, description, tools, scopes, intents, ttl, risk } => {
            let Some(risk_tolerance) = RiskLevel::parse(&risk) else {
                bail!("--risk {risk:?} is not low, medium, high or critical");
            };
            let persona = PersonaContract {
                id: PersonaId::generate(),
                tenant_id: tenant.clone(),
                name,
                description,
                allowed_tools: tools,
                resource_scopes: scopes,
                intent_patterns: intents,
                max_ttl_seconds: ttl,
                risk_tolerance,
                trust_tier: TrustTier::ColdStart,
                intent_threshold: domain::persona::DEFAULT_INTENT_THRESHOLD,
                on_low_intent: domain::persona::LowIntent::Approve,
                version: 1,
                is_active: true,
                created_at: Timestamp::now(),
            };
            persona.validate()?;
            let runtime = start_runtime(&config, Access::Create).await?;
            let added = runtime.add_persona(&persona).await;
            runtime.shutdown().await;
            added?;
            println!("added persona {} to tenant {tenant}", persona.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
