//! `nexus jobs list | run | cancel | retry` and `nexus schedule list | add | remove`: the job
//! queue and its schedules from the command line, on the same database a server uses (a
//! running server's workers pick up what is enqueued here).

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use domain::job::{Job, JobFilter, JobKind, JobState, MissedRuns};
use serde_json::{Value, json};

use super::agent::agent_runtime;
use super::{Access, start_runtime};
use crate::cli::{JobCommand, JobWork, ScheduleCommand};
use crate::config::Config;

const CLI: &str = "cli";

pub async fn jobs(command: JobCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::List { tenant, state, limit } => {
            let mut filter = JobFilter::default();
            if let Some(state) = state {
                filter.states.push(state.parse::<JobState>().context("--state")?);
            }
            let runtime = start_runtime(&config, Access::Existing).await?;
            let listed = runtime.jobs(&tenant, &filter, limit).await;
            runtime.shutdown().await;
            for job in listed? {
                print_job(&job);
            }
        }
        JobCommand::Run { tenant, work } => {
            let (kind, payload) = job_of(&work)?;
            let runtime = agent_runtime(&config, Access::Create).await?;
            let outcome = run_now(&runtime, &tenant, kind, payload).await;
            runtime.shutdown().await;
            let job = outcome?;
            print_job(&job);
            if let Some(result) = &job.result {
                let value: Value = serde_json::from_str(result).unwrap_or(Value::String(result.clone()));
                println!("{}", serde_json::to_string_pretty(&value).unwrap_or_else(|_| result.clone()));
            }
            if job.state != JobState::Completed {
                return Ok(ExitCode::FAILURE);
            }
        }
        JobCommand::Cancel { id, tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let outcome = runtime.cancel_job(&tenant, &id, CLI).await;
            runtime.shutdown().await;
            print_job(&outcome?);
        }
        JobCommand::Retry { id, tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let outcome = runtime.retry_job(&tenant, &id, CLI).await;
            runtime.shutdown().await;
            print_job(&outcome?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Enqueues a job and works the queue here until that job has ended.
async fn run_now(
    runtime: &runtime::Runtime,
    tenant: &domain::TenantId,
    kind: JobKind,
    payload: Value,
) -> anyhow::Result<Job> {
    let job = runtime.enqueue_job(tenant, runtime::jobs::NewJob { kind, payload, run_at: None }, CLI).await?;
    let owner = format!("cli-{}", std::process::id());
    loop {
        let current = runtime.job(tenant, &job.id).await?;
        if current.state.is_finished() {
            return Ok(current);
        }
        if !runtime.work_one(&owner).await? {
            // Another worker (a server) holds it, or it waits for a retry.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

pub async fn schedule(command: ScheduleCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        ScheduleCommand::List { tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let listed = runtime.schedules(&tenant).await;
            runtime.shutdown().await;
            for s in listed? {
                println!(
                    "{} | {} | {} ({}) | {} {} | {} | next {} | last {}",
                    s.id,
                    s.name,
                    s.cron,
                    s.timezone,
                    s.kind,
                    s.payload,
                    if s.enabled { "enabled" } else { "disabled" },
                    s.next_run_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                    s.last_run_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                );
            }
        }
        ScheduleCommand::Add { name, cron, timezone, work, missed, tenant } => {
            let (kind, payload) = job_of(&work)?;
            let missed = missed.parse::<MissedRuns>().context("--missed")?;
            let runtime = start_runtime(&config, Access::Create).await?;
            let new = runtime::jobs::NewSchedule {
                name,
                cron,
                timezone: Some(timezone),
                kind,
                payload,
                missed,
                enabled: true,
            };
            let outcome = runtime.create_schedule(&tenant, new, CLI).await;
            runtime.shutdown().await;
            let s = outcome?;
            println!(
                "created schedule {} ({}); next run {}",
                s.name,
                s.id,
                s.next_run_at.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
            );
        }
        ScheduleCommand::Remove { schedule, tenant } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let outcome = runtime.remove_schedule(&tenant, &schedule, CLI).await;
            runtime.shutdown().await;
            let s = outcome?;
            println!("removed schedule {} ({})", s.name, s.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A job's kind and payload from the command line's flags (clap lets exactly one through).
fn job_of(work: &JobWork) -> anyhow::Result<(JobKind, Value)> {
    if let Some(name) = &work.equipment {
        let params: Value = match &work.params {
            Some(text) => serde_json::from_str(text).with_context(|| format!("--params {text:?} is not JSON"))?,
            None => Value::Null,
        };
        return Ok((JobKind::Equipment, json!({"equipment": name, "params": params})));
    }
    if let Some(task) = &work.task {
        return Ok((JobKind::AgentTask, json!({"task": task})));
    }
    if let Some(text) = &work.broadcast {
        return Ok((JobKind::Broadcast, json!({"text": text, "min_level": work.min_level.unwrap_or(0)})));
    }
    bail!("give one of --equipment, --task or --broadcast")
}

fn print_job(job: &Job) {
    println!(
        "{} | {} | {} | attempts {}/{} | run at {} | by {}{}",
        job.id,
        job.kind,
        job.state,
        job.attempts,
        job.max_attempts,
        job.run_at.to_rfc3339(),
        job.created_by,
        job.last_error.as_deref().map_or_else(String::new, |e| format!(" | {e}")),
    );
}
