//! `nexus ledger checkpoint | proof | public-key`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Access, start_runtime};
use crate::cli::{KeyFormat, LedgerCommand};
use crate::config::Config;
use crate::keyfile;

pub async fn run(command: LedgerCommand, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        LedgerCommand::Checkpoint { tenant, out } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let checkpoint = runtime.ledger().checkpoint(&tenant).await;
            runtime.shutdown().await;
            let checkpoint = checkpoint?;
            emit(out.as_deref(), &checkpoint.signed_note)?;
        }
        LedgerCommand::Proof { tenant, index, out } => {
            let runtime = start_runtime(&config, Access::Existing).await?;
            let bundle = runtime.ledger().proof_bundle(&tenant, index).await;
            runtime.shutdown().await;
            emit(out.as_deref(), &format!("{}\n", bundle?.to_json()))?;
        }
        LedgerCommand::PublicKey { format } => {
            let verifier = keyfile::verifier(None, &config.signing_key)?;
            let text = match format {
                KeyFormat::Pem => keyfile::public_pem(&verifier)?,
                KeyFormat::Note => format!("{}\n", verifier.to_vkey()),
            };
            print!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
