//! `nexus serve`: the HTTP server, with graceful shutdown on SIGINT and SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::Access;
use super::agent::agent_runtime;
use crate::config::Config;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = Arc::new(agent_runtime(&config, Access::Create).await?);
    // Runs whose process died continue here (or fail with the reason) once that process has
    // missed its heartbeats; approvals nobody decided in time count as denied.
    let maintained = runtime.clone();
    let maintenance = runtime::tasks::spawn("resume-runs", async move {
        loop {
            match maintained.resume_unfinished().await {
                Ok(reports) => tracing::debug!(runs = reports.len(), "checked unfinished runs"),
                Err(error) => tracing::error!(%error, "resuming unfinished runs failed; will retry"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
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
    maintenance.abort();
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
