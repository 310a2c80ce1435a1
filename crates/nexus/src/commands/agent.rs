//! `nexus run`, `inspect`, `replay`, `audit`, `tools`: the agent from the command line.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use domain::agent::{ActionStatus, ChainStatus};
use engine::machine::{Event, StepRecord};
use runtime::Runtime;
use runtime::agent::{RunReport, RunRequest};

use super::agent_setup::agent_services;
use super::local_models::Needs;
use super::{Access, runtime_parts, start_runtime};
use crate::cli::{ChainArgs, RunArgs};
use crate::config::Config;

/// Starts the runtime with the in-process models (loaded first) and the agent enabled.
pub async fn agent_runtime(config: &Config, access: Access) -> anyhow::Result<Runtime> {
    Ok(agent_runtime_with_config(config, access, Needs::Everything).await?.0)
}

/// [`agent_runtime`] with the models loaded as `needs` says, and the configuration in force
/// (the database's settings under the file, environment and flags).
pub async fn agent_runtime_with_config(
    config: &Config,
    access: Access,
    needs: Needs,
) -> anyhow::Result<(Runtime, Config)> {
    let (mut parts, chat, config) = runtime_parts(config, access, Some(needs)).await?;
    parts.agent = Some(agent_services(&config, parts.knowledge(), chat, parts.plugins.clone())?);
    let runtime = Runtime::start(parts).await?;
    // Enabled MCP servers are reached now, so their tools serve this process's runs.
    if let Err(error) = runtime.reconcile_plugins().await {
        tracing::warn!(%error, "could not check the plugins");
    }
    Ok((runtime, config))
}

pub async fn run(args: RunArgs, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = agent_runtime(&config, Access::Create).await?;
    if args.tenant.as_str() == runtime::DEMO_TENANT {
        runtime.seed_demo().await.context("preparing the demo tenant")?;
    }
    let qa_spec = match &args.qa_spec {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("QA spec {}", path.display()))?),
        None => None,
    };
    let mut events = runtime.subscribe();
    let printer = runtime::tasks::spawn("cli-progress", async move {
        while let Ok(event) = events.recv().await {
            print_event(&event.event);
        }
    });
    let request = RunRequest {
        tenant: args.tenant,
        task: args.task,
        persona: args.persona,
        qa_spec,
        user: Some(args.user),
        chain_id: None,
        tier: args.tier.map(Into::into),
    };
    let outcome = runtime.execute(request).await;
    runtime.shutdown().await;
    printer.abort();
    let report = outcome?;
    print_report(&report);
    Ok(exit_for(report.status))
}

fn exit_for(status: ChainStatus) -> ExitCode {
    match status {
        ChainStatus::Completed | ChainStatus::AwaitingApproval => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn print_event(event: &Event) {
    let line = match event {
        Event::ChainStarted { chain_id, steps } => format!("chain {chain_id}: {steps} step(s) planned"),
        Event::StepStarted { step, persona, tool } => format!("step {step}: {persona} → {tool}"),
        Event::GateResult { step, gate, verdict, score, .. } => {
            format!("  step {step} gate {gate}: {verdict} ({score:.2})")
        }
        Event::SealCreated { step, seal_kind, status, fingerprint, .. } => {
            format!("  step {step} sealed {seal_kind:?} ({status}) {}", short(fingerprint))
        }
        Event::StepCompleted { step, status } => format!("step {step}: {status}"),
        Event::ApprovalRequired { step, tool, reason } => format!("step {step}: {tool} waits for approval: {reason}"),
        Event::Tainted { step, reason, .. } => format!("step {step}: the run is tainted: {reason}"),
        Event::ChainCompleted { status, .. } => format!("chain {status}"),
        Event::Error { message } => format!("  note: {message}"),
        Event::Notice { message } => format!("  notice: {message}"),
    };
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{line}");
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

fn gate_summary(step: &StepRecord) -> String {
    if step.gates.is_empty() {
        return "(not gated)".to_owned();
    }
    step.gates.iter().map(|g| format!("{}={}({:.2})", g.gate_name, g.verdict, g.score)).collect::<Vec<_>>().join(" ")
}

pub fn print_report(report: &RunReport) {
    println!("chain {} [{}] tenant {}", report.chain_id, report.status, report.tenant);
    println!("task: {}", report.task);
    let envelope = match &report.envelope {
        None => "not fixed yet".to_owned(),
        Some(tools) if tools.is_empty() => "no state-changing tool".to_owned(),
        Some(tools) => tools.join(", "),
    };
    match &report.taint {
        Some(taint) => println!("provenance: tainted by {}; the task asked for: {envelope}", taint.origin.describe()),
        None => println!("provenance: untainted; the task asked for: {envelope}"),
    }
    for s in &report.steps {
        let fp = s.result_fingerprint.as_deref().or(s.intent_fingerprint.as_deref()).map_or("-", short);
        println!("  step {} | {} | {} | {} | {} | {}", s.index, s.persona, s.tool, gate_summary(s), s.status, fp);
        if let Some(error) = &s.error {
            println!("           reason: {error}");
        }
    }
    println!(
        "tokens: {} in / {} out, cost ${:.6}, models: {}",
        report.input_tokens,
        report.output_tokens,
        report.cost_usd,
        if report.models.is_empty() { "-".to_owned() } else { report.models.join(", ") }
    );
    if let Some(error) = &report.error {
        println!("error: {error}");
    }
    if let Some(answer) = &report.answer {
        println!("\n{answer}");
    }
}

pub async fn inspect(args: ChainArgs, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = start_runtime(&config, Access::Existing).await?;
    let report = runtime.run_report(&args.tenant, &args.chain).await;
    runtime.shutdown().await;
    print_report(&report?);
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(args: ChainArgs, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = start_runtime(&config, Access::Existing).await?;
    let report = runtime.run_report(&args.tenant, &args.chain).await;
    let verified = runtime.verifier().chain(&args.tenant, &args.chain).await;
    runtime.shutdown().await;
    print_report(&report?);
    match verified {
        Ok(chain) => {
            println!(
                "\nverified: {} ledger entries, {} proven included in the signed checkpoint{}",
                chain.entries,
                chain.proven,
                chain.checkpoint_size.map(|s| format!(" of size {s}")).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(runtime::VerifyError::Store(e)) => Err(e.into()),
        Err(failure) => {
            eprintln!("error: chain verification FAILED: {failure}");
            Ok(ExitCode::from(1))
        }
    }
}

pub async fn audit(tenant: Option<domain::TenantId>, config: Config) -> anyhow::Result<ExitCode> {
    let runtime = start_runtime(&config, Access::Existing).await?;
    let tenants = match tenant {
        Some(t) => vec![t],
        None => runtime.tenants().await?.into_iter().map(|t| t.id).collect(),
    };
    let mut result = Ok(());
    println!("tenant | runs | actions executed | blocked | failed | escalated | awaiting approval | cost USD");
    for tenant in tenants {
        match runtime.run_reports(&tenant, None, 10_000).await {
            Ok(reports) => {
                let steps = || reports.iter().flat_map(|r| r.steps.iter());
                let count = |status: ChainStatus| reports.iter().filter(|r| r.status == status).count();
                println!(
                    "{tenant} | {} | {} | {} | {} | {} | {} | {:.6}",
                    reports.len(),
                    steps().filter(|s| s.status == ActionStatus::Executed).count(),
                    steps().filter(|s| s.status == ActionStatus::Blocked).count(),
                    count(ChainStatus::Failed) + count(ChainStatus::Partial),
                    count(ChainStatus::Escalated),
                    count(ChainStatus::AwaitingApproval),
                    reports.iter().map(|r| r.cost_usd).sum::<f64>(),
                );
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    runtime.shutdown().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

pub async fn tools(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = agent_runtime(&config, Access::Create).await?;
    let listed = runtime.tool_list();
    runtime.shutdown().await;
    for (definition, availability) in listed? {
        let state = match availability {
            tools::Availability::Available => "available".to_owned(),
            tools::Availability::Unconfigured { missing } => format!("unconfigured (set {missing})"),
        };
        println!(
            "{:<18} risk {:<8} approval {:<3} {:<40} {}",
            definition.name,
            definition.risk_level.as_str(),
            if definition.requires_approval { "yes" } else { "no" },
            state,
            definition.description.lines().next().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
