//! The `nexus` binary: parses the command line, resolves configuration, and wires concrete
//! implementations (SQLite or PostgreSQL store, key file, HTTP server) into the runtime.
//!
//! Every failure ends as one `error: …` line on standard error and a non-zero exit: 1 when
//! verification finds a problem, 2 for anything else.

mod backup;
mod cli;
mod commands;
mod config;
mod keyfile;
mod logging;
mod plugins;
mod settings;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let listen = match &cli.command {
        cli::Command::Serve { listen } => listen.as_deref(),
        _ => None,
    };
    let config = match config::load(&cli.global, listen) {
        Ok(config) => config,
        Err(error) => return fail(&anyhow::Error::new(error)),
    };
    if let Err(error) = logging::init(&config, cli.command.is_server()) {
        return fail(&error);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("starting the async runtime")),
    };
    match runtime.block_on(commands::run(cli.command, config)) {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// Prints the error chain on one line, skipping causes their parent message already quotes.
fn fail(error: &anyhow::Error) -> ExitCode {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string().replace(['\n', '\r'], " ");
        if parts.last().is_some_and(|previous| previous.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    eprintln!("error: {}", parts.join(": "));
    ExitCode::from(2)
}
