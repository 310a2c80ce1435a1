//! `nexus backup` and `nexus restore`: the command line over [`crate::backup::Backups`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use crate::backup::{Backups, Manifest};
use crate::config::Config;
use crate::keyfile;

/// The backups of the configured database, into `to` (default `<data_dir>/backups`), checked
/// with the ledger key's public half.
pub fn backups(config: &Config, to: Option<PathBuf>, key: ledger::checkpoint::CheckpointVerifier) -> Backups {
    Backups {
        database: config.database.clone(),
        dir: to.unwrap_or_else(|| config.data_dir.join("backups")),
        key,
        origin: config.ledger_origin.clone(),
        master_key: master_key(config),
    }
}

/// The master key in use, if one is given or its file exists (a backup's secrets must open
/// under it).
fn master_key(config: &Config) -> Option<runtime::settings::MasterKey> {
    if let Some(key) = &config.master_key {
        return Some(key.clone());
    }
    if !config.master_key_file.exists() {
        return None;
    }
    match crate::settings::read_key_file(&config.master_key_file) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!("{error:#}");
            None
        }
    }
}

pub async fn backup(config: Config, to: Option<PathBuf>, keep: u32) -> anyhow::Result<ExitCode> {
    if let store::DatabaseUrl::Sqlite(path) = &config.database
        && !path.is_file()
    {
        bail!("database {} does not exist (database_url): nothing to back up", path.display());
    }
    let key = keyfile::verifier(None, &config.signing_key)?;
    let taken = backups(&config, to, key).backup(keep).await?;
    println!("backup {} ({} bytes, sha256 {})", taken.path.display(), taken.manifest.bytes, taken.manifest.sha256);
    print_manifest(&taken.manifest);
    for removed in &taken.removed {
        println!("removed the older backup {}", removed.display());
    }
    println!(
        "keep {} too: a backup holds no keys, and its ledger verifies and grows only with that signing key",
        config.signing_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(config: Config, file: &Path, dry_run: bool, force: bool) -> anyhow::Result<ExitCode> {
    if !file.is_file() {
        bail!("backup file {} does not exist", file.display());
    }
    let key = keyfile::verifier(None, &config.signing_key)?;
    let service = backups(&config, None, key);
    if dry_run {
        let manifest = service.check(file).await?;
        println!("ok: {} verifies and can be restored over {}", file.display(), config.database_display);
        print_manifest(&manifest);
        return Ok(ExitCode::SUCCESS);
    }
    let safety = service.restore(file, force).await?;
    println!("restored {} over {}", file.display(), config.database_display);
    if safety.exists() {
        println!("what it replaced is kept in {}", safety.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_manifest(manifest: &Manifest) {
    println!("taken {}, {} schema version {}", manifest.created_at, manifest.backend, manifest.schema_version);
    for tenant in &manifest.tenants {
        println!(
            "  tenant {}: {} ledger entries, {} checkpoints{}",
            tenant.tenant,
            tenant.entries,
            tenant.checkpoints,
            match (&tenant.checkpoint_size, &tenant.root) {
                (Some(size), Some(root)) => format!(", latest signed at size {size} with root {root}"),
                _ => String::new(),
            }
        );
    }
    if let Some(id) = &manifest.master_key_id {
        println!("  secret settings sealed under master key {id} (not in the backup: keep keys/master.key apart)");
    }
}
