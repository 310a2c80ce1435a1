//! Backups of the whole database and putting one back (`nexus backup`, `nexus restore`, the
//! `backup` equipment and `POST /v1/admin/backups`).
//!
//! A backup is a consistent snapshot (see `store::backup`) plus a manifest beside it,
//! `<file>.manifest.json`: the schema version, each table's row count, each tenant's ledger size
//! and signed root, the SHA-256 of the file and the id of the key that signed its checkpoints.
//! Every backup is verified before it counts: a scratch copy is opened and each tenant's ledger
//! re-hashed and checked against its signed checkpoints with this server's public key. Older
//! backups beyond `keep` are removed.
//!
//! A restore verifies first (the file's digest, the key, the ledger), refuses while a server is
//! running on the database, keeps a safety copy of what it replaces, then puts the backup in
//! place and verifies the result. The ledger signing key is never inside a backup: without the
//! same key file a restored ledger cannot be extended, so keep `keys/` somewhere else too.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use domain::Timestamp;
use ledger::checkpoint::CheckpointVerifier;
use runtime::verify::Verifier;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use store::DatabaseUrl;
use store::backup as copies;

/// The manifest's format version.
const FORMAT: u32 = 1;
const MANIFEST_SUFFIX: &str = ".manifest.json";
/// A server that beat this recently is taken to be running.
const RUNNING_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// What a backup holds, written beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// RFC 3339.
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The backup file's name (in the same directory as the manifest).
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub schema_version: i64,
    pub row_counts: BTreeMap<String, i64>,
    /// The ledger signing key the checkpoints verify with (its key id, hex).
    pub signing_key_id: String,
    pub ledger_origin: String,
    pub tenants: Vec<TenantLedger>,
    /// The id of the master key the backup's secret settings are sealed under (never the key:
    /// keep it apart from the backups); absent when it holds none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_id: Option<String>,
}

/// One tenant's ledger as verified in the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantLedger {
    pub tenant: String,
    pub entries: u64,
    pub checkpoints: usize,
    /// The latest signed checkpoint's size and root (hex), if any.
    pub checkpoint_size: Option<u64>,
    pub root: Option<String>,
}

/// Takes, verifies and restores backups of one database.
pub struct Backups {
    pub database: DatabaseUrl,
    /// Where backups go (`<data_dir>/backups` unless `--to`).
    pub dir: PathBuf,
    pub key: CheckpointVerifier,
    pub origin: String,
    /// The master key in use, which a restored database's secrets must open under.
    pub master_key: Option<runtime::settings::MasterKey>,
}

/// A backup just taken.
pub struct Taken {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Older backups removed by retention.
    pub removed: Vec<PathBuf>,
}

impl Backups {
    /// Takes a backup into the backup directory, verifies it, writes its manifest and keeps the
    /// newest `keep`.
    pub async fn backup(&self, keep: u32) -> anyhow::Result<Taken> {
        create_private_dir(&self.dir)?;
        let stamp = file_stamp(Timestamp::now());
        let (backend, extension) = backend_of(&self.database);
        let path = self.dir.join(format!("nexus-{stamp}.{extension}"));
        match &self.database {
            DatabaseUrl::Sqlite(db) => copies::snapshot_sqlite(db, &path).await?,
            DatabaseUrl::Postgres(url) => copies::dump_postgres(url, &path).await?,
        }
        let checked = match self.verify_copy(&path).await {
            Ok(checked) => checked,
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                return Err(error.context(format!("the new backup {} did not verify; it was removed", path.display())));
            }
        };
        let (bytes, sha256) = digest(&path).await?;
        let manifest = Manifest {
            format: FORMAT,
            created_at: Timestamp::now().to_rfc3339(),
            backend: backend.to_owned(),
            file: file_name(&path),
            bytes,
            sha256,
            schema_version: checked.inventory.schema_version,
            row_counts: checked.inventory.row_counts,
            signing_key_id: self.key.key_id_hex(),
            ledger_origin: self.origin.clone(),
            tenants: checked.tenants,
            master_key_id: checked.master_key_id,
        };
        write_manifest(&path, &manifest)?;
        let removed = self.prune(keep)?;
        Ok(Taken { path, manifest, removed })
    }

    /// Checks a backup file against its manifest, this server's key and its own ledger.
    pub async fn check(&self, file: &Path) -> anyhow::Result<Manifest> {
        let manifest_path = manifest_path(file);
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading the backup's manifest {}", manifest_path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Nexus backup manifest", manifest_path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "{} has manifest format {}; this Nexus reads format {FORMAT}",
                manifest_path.display(),
                manifest.format
            );
        }
        let (backend, _) = backend_of(&self.database);
        if manifest.backend != backend {
            bail!("{} is a {} backup; this database is {backend}", file.display(), manifest.backend);
        }
        let (bytes, sha256) = digest(file).await?;
        if (bytes, sha256.as_str()) != (manifest.bytes, manifest.sha256.as_str()) {
            bail!(
                "{} is damaged: its SHA-256 is {sha256} ({bytes} bytes) but the manifest recorded {} ({} bytes)",
                file.display(),
                manifest.sha256,
                manifest.bytes
            );
        }
        if manifest.signing_key_id != self.key.key_id_hex() {
            bail!(
                "{} was signed with ledger key {}, but this server's key is {} (ledger.signing_key): restore the key \
                 file that belongs to the backup",
                file.display(),
                manifest.signing_key_id,
                self.key.key_id_hex()
            );
        }
        if let Some(sealed) = &manifest.master_key_id
            && self.master_key.as_ref().map(|k| k.id()) != Some(sealed.as_str())
        {
            bail!(
                "{}'s secret settings are sealed under master key {sealed}, but {}: restore the master key that \
                 belongs to the backup (keys/master.key, or NEXUS_MASTER_KEY) — with another key every secret would \
                 be unreadable",
                file.display(),
                self.master_key.as_ref().map_or_else(
                    || "no master key is available here".to_owned(),
                    |k| format!("the key in use is {}", k.id())
                )
            );
        }
        let checked = self.verify_copy(file).await.with_context(|| format!("{} does not verify", file.display()))?;
        if checked.tenants != manifest.tenants {
            bail!("{}: its ledgers do not match what its manifest recorded", file.display());
        }
        Ok(manifest)
    }

    /// Puts a checked backup in place of the database, after a safety copy of it. Refused while
    /// a server runs on the database unless `force`.
    pub async fn restore(&self, file: &Path, force: bool) -> anyhow::Result<PathBuf> {
        self.check(file).await?;
        if let Some(beat) = copies::last_heartbeat(&self.database).await? {
            let age = Timestamp::now().as_micros().saturating_sub(beat.as_micros());
            if age < i64::try_from(RUNNING_WITHIN.as_micros()).unwrap_or(i64::MAX) && !force {
                bail!(
                    "a Nexus server was alive on this database {} s ago: stop every server first (or pass --force if \
                     it is gone)",
                    age / 1_000_000
                );
            }
        }
        let safety_dir = self.dir.join("pre-restore");
        create_private_dir(&safety_dir)?;
        let (_, extension) = backend_of(&self.database);
        let safety = safety_dir.join(format!("nexus-{}.{extension}", file_stamp(Timestamp::now())));
        match &self.database {
            DatabaseUrl::Sqlite(db) if db.exists() => copies::snapshot_sqlite(db, &safety).await?,
            DatabaseUrl::Sqlite(_) => {}
            DatabaseUrl::Postgres(url) => copies::dump_postgres(url, &safety).await?,
        }
        match &self.database {
            DatabaseUrl::Sqlite(db) => copies::replace_sqlite(file, db).await?,
            DatabaseUrl::Postgres(url) => copies::replace_postgres(url, file).await?,
        }
        Ok(safety)
    }

    /// Opens a scratch copy of a backup file and verifies every tenant's ledger in it.
    async fn verify_copy(&self, file: &Path) -> anyhow::Result<Checked> {
        match &self.database {
            DatabaseUrl::Sqlite(_) => {
                copies::check_sqlite(file).await?;
                // Opening migrates: a scratch copy keeps the backup itself untouched.
                let scratch = tempdir_beside(&self.dir)?;
                let copy = scratch.join("check.db");
                let (from, to) = (file.to_owned(), copy.clone());
                tokio::task::spawn_blocking(move || std::fs::copy(from, to)).await??;
                let url = DatabaseUrl::Sqlite(copy);
                let outcome = self.verify_database(&url).await;
                let _ = std::fs::remove_dir_all(&scratch);
                outcome
            }
            DatabaseUrl::Postgres(url) => {
                let (scratch, name) = copies::restore_postgres_scratch(url, file).await?;
                let outcome = self.verify_database(&DatabaseUrl::Postgres(scratch)).await;
                copies::drop_postgres_scratch(url, &name).await;
                outcome
            }
        }
    }

    async fn verify_database(&self, url: &DatabaseUrl) -> anyhow::Result<Checked> {
        let inventory = copies::inventory(url).await?;
        let store: Arc<dyn domain::ports::Store> = store::open(url).await?;
        let verifier = Verifier { store: store.as_ref(), key: &self.key, origin_prefix: &self.origin };
        let reports = verifier.all().await;
        let sealed = runtime::settings::sealed_key_id(store.as_ref()).await;
        let opens = match &self.master_key {
            Some(key) => runtime::settings::key_matches(store.as_ref(), key).await.map(|m| m != Some(false)),
            None => Ok(true),
        };
        store.close().await;
        let master_key_id = sealed?;
        if !opens? {
            bail!(
                "its secret settings are sealed under master key {}, not the key in use",
                master_key_id.as_deref().unwrap_or("?")
            );
        }
        let tenants = reports?
            .into_iter()
            .map(|r| TenantLedger {
                tenant: r.tenant.to_string(),
                entries: r.entries,
                checkpoints: r.checkpoints,
                checkpoint_size: r.latest_checkpoint.as_ref().map(|c| c.size),
                root: r.latest_checkpoint.as_ref().map(|c| hex::encode(c.root)),
            })
            .collect();
        Ok(Checked { inventory, tenants, master_key_id })
    }

    /// Removes the oldest backups (file and manifest) beyond `keep`.
    fn prune(&self, keep: u32) -> anyhow::Result<Vec<PathBuf>> {
        let mut manifests: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = file_name(p);
                name.starts_with("nexus-") && name.ends_with(MANIFEST_SUFFIX)
            })
            .collect();
        // Names carry the time, so they sort oldest first.
        manifests.sort();
        let excess = manifests.len().saturating_sub(keep as usize);
        let mut removed = Vec::new();
        for manifest in manifests.into_iter().take(excess) {
            let name = file_name(&manifest);
            let backup = manifest.with_file_name(name.trim_end_matches(MANIFEST_SUFFIX));
            for path in [&backup, &manifest] {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("removing the old backup {}", path.display())),
                }
            }
            removed.push(backup);
        }
        Ok(removed)
    }
}

/// The `backup` equipment: the same work, for jobs, schedules and `POST /v1/admin/backups`.
#[async_trait::async_trait]
impl runtime::equipment::Backups for Backups {
    async fn backup(&self, keep: u32) -> Result<(String, serde_json::Value), String> {
        let taken = Backups::backup(self, keep).await.map_err(|e| format!("{e:#}"))?;
        let entries: u64 = taken.manifest.tenants.iter().map(|t| t.entries).sum();
        let summary = format!(
            "backup {} ({} bytes), {} tenant ledger(s) with {entries} entries verified{}",
            taken.path.display(),
            taken.manifest.bytes,
            taken.manifest.tenants.len(),
            if taken.removed.is_empty() { String::new() } else { format!("; {} older removed", taken.removed.len()) }
        );
        let mut value = serde_json::to_value(&taken.manifest).map_err(|e| e.to_string())?;
        value["path"] = serde_json::Value::String(taken.path.display().to_string());
        value["removed"] = taken.removed.iter().map(|p| p.display().to_string()).collect();
        Ok((summary, value))
    }
}

struct Checked {
    inventory: copies::Inventory,
    tenants: Vec<TenantLedger>,
    master_key_id: Option<String>,
}

fn backend_of(url: &DatabaseUrl) -> (&'static str, &'static str) {
    match url {
        DatabaseUrl::Sqlite(_) => ("sqlite", "sqlite"),
        // Without PostgreSQL's client tools the built-in export is written instead.
        DatabaseUrl::Postgres(_) if copies::pg_tools_installed() => ("postgres", "pgdump"),
        DatabaseUrl::Postgres(_) => ("postgres", "pgexport"),
    }
}

/// `20261203T190405.123456Z`: sorts by time, safe in a file name.
fn file_stamp(at: Timestamp) -> String {
    at.to_rfc3339().chars().filter(|c| !matches!(c, '-' | ':')).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn manifest_path(file: &Path) -> PathBuf {
    file.with_file_name(format!("{}{MANIFEST_SUFFIX}", file_name(file)))
}

fn write_manifest(file: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = manifest_path(file);
    let partial = path.with_file_name(format!("{}.partial", file_name(&path)));
    let text = serde_json::to_string_pretty(manifest)?;
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The file's size and SHA-256 (hex), read in pieces.
async fn digest(path: &Path) -> anyhow::Result<(u64, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, String)> {
        let mut file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            hasher.update(&buffer[..n]);
        }
        Ok((bytes, hex::encode(hasher.finalize())))
    })
    .await?
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the backup directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// A fresh scratch directory inside `dir` (so a copy stays on the same disk).
fn tempdir_beside(dir: &Path) -> anyhow::Result<PathBuf> {
    let scratch = dir.join(format!(".check-{}", Timestamp::now().as_micros()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stamps_sort_by_time() {
        let a = file_stamp(Timestamp::from_micros(1_764_788_645_000_001));
        let b = file_stamp(Timestamp::from_micros(1_764_788_646_000_000));
        assert!(a < b, "{a} < {b}");
        assert!(a.starts_with("2025") && a.contains('T') && a.ends_with("000001Z"), "{a}");
        assert_eq!(manifest_path(Path::new("/b/nexus-x.sqlite")), PathBuf::from("/b/nexus-x.sqlite.manifest.json"));
    }
}
