//! `nexus verify`: a whole database, one tenant, one chain, a kept checkpoint, or an offline
//! proof bundle. Exit code 1 and the first bad entry named when verification fails.

use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use ledger::bundle::ProofBundle;
use runtime::VerifyError;
use runtime::verify::{TenantReport, Verifier};

use super::{Access, open_store};
use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::keyfile;

pub async fn run(args: VerifyArgs, config: Config) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.bundle {
        return verify_bundle(path, &args, &config);
    }
    let key = keyfile::verifier(args.public_key.as_deref(), &config.signing_key)?;
    let store = open_store(&config, Access::Existing).await?;
    store.integrity_check().await?;
    let verifier = Verifier { store: store.as_ref(), key: &key, origin_prefix: &config.ledger_origin };

    let outcome = if let Some(path) = &args.checkpoint {
        let note = std::fs::read_to_string(path).with_context(|| format!("checkpoint file {}", path.display()))?;
        verifier.external_checkpoint(&note).await.map(|r| {
            print_tenant(&r);
            println!("ok: consistent with the checkpoint in {}", path.display());
        })
    } else {
        match (&args.tenant, &args.chain) {
            (Some(tenant), Some(chain)) => verifier.chain(tenant, chain).await.map(|r| {
                let covered =
                    r.checkpoint_size.map_or("no signed checkpoint yet".to_owned(), |s| format!("checkpoint size {s}"));
                println!(
                    "ok: tenant {} chain {}: {} entries, {} proven included ({covered})",
                    r.tenant, r.chain, r.entries, r.proven
                );
            }),
            (Some(tenant), None) => verifier.tenant(tenant, None).await.map(|r| print_tenant(&r)),
            // clap requires --tenant with --chain, so this is the whole database.
            (None, _) => verifier.all().await.map(|reports| {
                for r in &reports {
                    print_tenant(r);
                }
                println!("ok: {} tenant ledger(s) verified in {}", reports.len(), config.database_display);
            }),
        }
    };
    store.close().await;
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(VerifyError::Store(error)) => Err(error.into()),
        Err(failure) => {
            eprintln!("error: ledger verification FAILED: {failure}");
            Ok(ExitCode::from(1))
        }
    }
}

fn print_tenant(report: &TenantReport) {
    let latest = match &report.latest_checkpoint {
        Some(c) => format!(
            "latest signed checkpoint size {} root {}",
            c.size,
            base64::engine::general_purpose::STANDARD.encode(c.root)
        ),
        None => "no signed checkpoint yet".to_owned(),
    };
    println!(
        "ok: tenant {}: {} entries, {} checkpoint(s), {latest}",
        report.tenant, report.entries, report.checkpoints
    );
}

fn verify_bundle(path: &std::path::Path, args: &VerifyArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("proof bundle {}", path.display()))?;
    let bundle = ProofBundle::from_json(&text).with_context(|| format!("proof bundle {}", path.display()))?;
    // Prefer a key we hold over the one the bundle carries.
    let trusted = match &args.public_key {
        Some(_) => Some(keyfile::verifier(args.public_key.as_deref(), &config.signing_key)?),
        None if config.signing_key.exists() => Some(keyfile::verifier(None, &config.signing_key)?),
        None => None,
    };
    match bundle.verify(trusted.as_ref()) {
        Ok(report) => {
            println!(
                "ok: entry #{} of tenant {} is included in the signed checkpoint of size {} (key id {})",
                report.index, report.tenant_id, report.checkpoint.size, report.key_id
            );
            if report.key_from_bundle {
                println!("note: checked against the key inside the bundle; pass --public-key to check who signed it");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!("error: proof bundle {} FAILED: {failure}", path.display());
            Ok(ExitCode::from(1))
        }
    }
}
