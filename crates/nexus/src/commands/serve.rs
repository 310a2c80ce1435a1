//! `nexus serve`: the HTTP server, with graceful shutdown on SIGINT and SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::Access;
use super::agent::agent_runtime;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = Arc::new(agent_runtime(&config, Access::Create).await?);
    // Runs interrupted by the last stop continue (or fail with the reason) in the background.
    let resuming = runtime.clone();
    runtime::tasks::spawn("resume-runs", async move {
        match resuming.resume_unfinished().await {
            Ok(reports) if !reports.is_empty() => tracing::info!(runs = reports.len(), "resumed unfinished runs"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "resuming unfinished runs failed"),
        }
    });
    // Approvals nobody decided in time count as denied (deny by default).
    let sweeping = runtime.clone();
    let sweeper = runtime::tasks::spawn("approval-expiry", async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            if let Err(error) = sweeping.expire_due_approvals().await {
                tracing::warn!(%error, "expiring approvals failed; will retry");
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.listen))?;
    let address = listener.local_addr().context("reading the listening address")?;
    tracing::info!(
        database = %config.database_display,
        data_dir = %config.data_dir.display(),
        "nexus listening on http://{address}"
    );
    let served = axum::serve(listener, gateway::app(runtime.clone())).with_graceful_shutdown(shutdown_signal()).await;
    sweeper.abort();
    tracing::info!("shutting down: finishing ledger writes");
    runtime.shutdown().await;
    served.context("serving HTTP")?;
    tracing::info!("shutdown complete");
    Ok(ExitCode::SUCCESS)
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
