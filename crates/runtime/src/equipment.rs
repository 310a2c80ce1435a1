//! Equipment: deterministic work done by code, with no model — a health check, a cost report,
//! pruning old operational records, exporting the ledger's signed checkpoints. A piece of
//! equipment runs on demand (HTTP, CLI), on a schedule (a job), or instead of a model when the
//! router is sure a request asks for it. Every run is sealed in the tenant's ledger with its
//! result; a tenant may switch a piece off. `backup` copies the whole database through the
//! [`Backups`] port the binary provides (the same work as `nexus backup`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use domain::TenantId;
use domain::Timestamp;
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{LedgerError, Runtime};

/// A declared parameter of a piece of equipment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Param {
    pub name: &'static str,
    /// `string` or `integer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: &'static str,
}

/// A piece of equipment as declared in code.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: &'static [Param],
    /// Whether it changes anything (then the router never runs it on a request's words alone).
    pub changes_state: bool,
}

/// Every piece of equipment, by name.
pub const EQUIPMENT: &[Spec] = &[
    Spec {
        name: "health_check",
        description: "Checks the database, the model providers, the chat channels and the free disk space.",
        parameters: &[],
        changes_state: false,
    },
    Spec {
        name: "cost_report",
        description: "Spend per model, per API key and per person over a period.",
        parameters: &[Param {
            name: "days",
            kind: "integer",
            description: "How many days back from now (1 to 366; default 7).",
        }],
        changes_state: false,
    },
    Spec {
        name: "log_rotate",
        description: "Forgets operational records past their retention: finished jobs and inbound-update claims.",
        parameters: &[Param {
            name: "keep_days",
            kind: "integer",
            description: "Keep records from the last this many days (1 to 3650; default 30).",
        }],
        changes_state: true,
    },
    Spec {
        name: "backup",
        description: "Takes a consistent backup of the whole database, verifies its ledger and keeps the newest ones.",
        parameters: &[Param {
            name: "keep",
            kind: "integer",
            description: "How many backups to keep in the backup directory (1 to 1000; default 7).",
        }],
        changes_state: true,
    },
    Spec {
        name: "ledger_checkpoint_export",
        description: "Writes the tenant's latest signed ledger checkpoints to the export directory, for off-site keeping.",
        parameters: &[Param {
            name: "count",
            kind: "integer",
            description: "How many of the latest checkpoints to write (1 to 1000; default 10).",
        }],
        changes_state: true,
    },
];

/// The spec of the equipment called `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    EQUIPMENT.iter().find(|s| s.name == name)
}

/// A piece of equipment as a tenant sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EquipmentInfo {
    #[serde(flatten)]
    pub spec: Spec,
    /// Switched on for the tenant.
    pub enabled: bool,
    /// `None` when it can run here; else why not (the setting to set, the missing backend).
    pub unavailable: Option<String>,
    /// The tenant's schedules that run it, by name, with their next planned run.
    pub schedules: Vec<ScheduleRef>,
}

/// A schedule that runs a piece of equipment.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRef {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub next_run_at: Option<String>,
}

/// One run of a piece of equipment.
#[derive(Debug, Clone, Serialize)]
pub struct EquipmentRun {
    pub name: String,
    /// Whether everything it checked or did went well (a health check can run and find a
    /// problem).
    pub ok: bool,
    /// One sentence for people.
    pub summary: String,
    pub result: Value,
    pub duration_ms: u64,
    /// Index of its `equipment` entry in the tenant's ledger.
    pub ledger_index: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EquipmentError {
    #[error("no equipment named {name:?}; known: {}", EQUIPMENT.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))]
    Unknown { name: String },
    #[error("the {name} equipment is switched off for this tenant; enable it first")]
    Disabled { name: String },
    #[error("the {name} equipment cannot run here: {reason}")]
    Unavailable { name: String, reason: String },
    #[error("invalid parameter `{param}` of {name}: {reason}")]
    InvalidParam { name: String, param: String, reason: String },
    #[error("the {name} equipment failed: {reason}")]
    Failed { name: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Where the equipment writes and reads on this machine.
#[derive(Debug, Clone, Default)]
pub struct EquipmentSettings {
    /// Where `ledger_checkpoint_export` writes (`<dir>/<tenant>/`); `None`: it is unavailable.
    pub export_dir: Option<PathBuf>,
    /// The directory whose free space the health check reports; `None`: not checked.
    pub data_dir: Option<PathBuf>,
}

/// Takes backups of the whole database: the binary's implementation of `nexus backup`.
#[async_trait::async_trait]
pub trait Backups: Send + Sync {
    /// Takes a backup, verifies it and keeps only the newest `keep`; a summary and the backup's
    /// manifest.
    async fn backup(&self, keep: u32) -> Result<(String, Value), String>;
}

/// Below this much free disk space the health check reports a problem.
const LOW_DISK_BYTES: u64 = 512 * 1024 * 1024;

impl Runtime {
    /// Every piece of equipment as the tenant sees it.
    pub async fn equipment(&self, tenant: &TenantId) -> Result<Vec<EquipmentInfo>, EquipmentError> {
        let disabled = self.store.disabled_equipment(tenant).await?;
        let schedules = self.store.schedules(tenant).await?;
        Ok(EQUIPMENT
            .iter()
            .map(|spec| EquipmentInfo {
                spec: *spec,
                enabled: !disabled.iter().any(|d| d == spec.name),
                unavailable: self.unavailable(spec.name),
                schedules: schedules
                    .iter()
                    .filter(|s| {
                        s.kind == domain::job::JobKind::Equipment && equipment_of(&s.payload) == Some(spec.name)
                    })
                    .map(|s| ScheduleRef {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        cron: s.cron.clone(),
                        timezone: s.timezone.clone(),
                        enabled: s.enabled,
                        next_run_at: s.next_run_at.map(Timestamp::to_rfc3339),
                    })
                    .collect(),
            })
            .collect())
    }

    /// One piece of equipment as the tenant sees it.
    pub async fn equipment_info(&self, tenant: &TenantId, name: &str) -> Result<EquipmentInfo, EquipmentError> {
        self.equipment(tenant)
            .await?
            .into_iter()
            .find(|e| e.spec.name == name)
            .ok_or_else(|| EquipmentError::Unknown { name: name.to_owned() })
    }

    /// Switches a piece of equipment on or off for the tenant (sealed as an admin change).
    pub async fn set_equipment_enabled(
        &self,
        tenant: &TenantId,
        name: &str,
        enabled: bool,
        by: &str,
    ) -> Result<(), EquipmentError> {
        let spec = spec(name).ok_or_else(|| EquipmentError::Unknown { name: name.to_owned() })?;
        self.store.set_equipment_enabled(tenant, spec.name, enabled, Timestamp::now()).await?;
        let payload = json!({
            "action": if enabled { "equipment.enable" } else { "equipment.disable" },
            "equipment": spec.name, "by": by,
        });
        self.ledger.append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(())
    }

    /// Runs a piece of equipment for the tenant with `params` (a JSON object, or null) and seals
    /// the run with its result. `by` says who asked (`user:<id>`, `schedule:<id>`, `router`).
    pub async fn run_equipment(
        &self,
        tenant: &TenantId,
        name: &str,
        params: &Value,
        by: &str,
        chain: Option<domain::ChainId>,
    ) -> Result<EquipmentRun, EquipmentError> {
        let spec = spec(name).ok_or_else(|| EquipmentError::Unknown { name: name.to_owned() })?;
        let params = Params::check(spec, params)?;
        if self.store.disabled_equipment(tenant).await?.iter().any(|d| d == spec.name) {
            return Err(EquipmentError::Disabled { name: spec.name.to_owned() });
        }
        if let Some(reason) = self.unavailable(spec.name) {
            return Err(EquipmentError::Unavailable { name: spec.name.to_owned(), reason });
        }
        let started = Instant::now();
        let (ok, summary, result) = match spec.name {
            "health_check" => self.health_check().await,
            "cost_report" => self.cost_report(tenant, params.integer("days", 7, 1, 366)?).await?,
            "log_rotate" => self.log_rotate(params.integer("keep_days", 30, 1, 3650)?).await?,
            "ledger_checkpoint_export" => {
                self.export_checkpoints(tenant, params.integer("count", 10, 1, 1000)?).await?
            }
            "backup" => {
                let keep = u32::try_from(params.integer("keep", 7, 1, 1000)?).unwrap_or(7);
                let backups = self.backups.as_ref().ok_or_else(|| EquipmentError::Unavailable {
                    name: spec.name.to_owned(),
                    reason: "backups are not configured in this process".into(),
                })?;
                let (summary, manifest) = backups
                    .backup(keep)
                    .await
                    .map_err(|reason| EquipmentError::Failed { name: spec.name.to_owned(), reason })?;
                (true, summary, manifest)
            }
            other => return Err(EquipmentError::Unavailable { name: other.to_owned(), reason: "not built".into() }),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let payload = json!({
            "equipment": spec.name, "params": params.values, "by": by, "ok": ok, "summary": summary,
            "result_sha256": hex::encode(ledger::hash::sha256(domain::canonical::canonical_json(&result).as_bytes())),
            "duration_ms": duration_ms,
        });
        let appended =
            self.ledger.append(tenant, EntryDraft { kind: EntryKind::Equipment, chain_id: chain, payload }).await?;
        metrics::counter!("nexus_equipment_runs_total", "equipment" => spec.name, "ok" => ok.to_string()).increment(1);
        Ok(EquipmentRun { name: spec.name.to_owned(), ok, summary, result, duration_ms, ledger_index: appended.index })
    }

    /// Why a piece of equipment cannot run on this process, if it cannot.
    fn unavailable(&self, name: &str) -> Option<String> {
        match name {
            "ledger_checkpoint_export" if self.config.equipment.export_dir.is_none() => {
                Some("no export directory is configured".into())
            }
            "backup" if self.backups.is_none() => Some("backups are not configured in this process".into()),
            _ => None,
        }
    }

    async fn health_check(&self) -> (bool, String, Value) {
        let mut problems: Vec<String> = Vec::new();
        let started = Instant::now();
        let database = match self.store.ping().await {
            Ok(()) => json!({"ok": true, "backend": self.store.backend(), "latency_ms": started.elapsed().as_millis()}),
            Err(error) => {
                problems.push(format!("database: {error}"));
                json!({"ok": false, "backend": self.store.backend(), "error": error.to_string()})
            }
        };
        let providers: Vec<Value> = self
            .provider_health()
            .into_iter()
            .map(|p| {
                let ok = !matches!(p.state, crate::agent::BreakerState::Open { .. });
                if !ok {
                    problems.push(format!("provider {}: circuit open", p.name));
                }
                json!({"name": p.name, "ok": ok, "circuit": p.state.as_str(), "serves": p.serves})
            })
            .collect();
        let channels: Vec<Value> = self
            .channel_health()
            .into_iter()
            .filter(|c| c.state != crate::channels::ChannelState::Unconfigured)
            .map(|c| {
                let ok = c.state.is_healthy();
                if !ok {
                    problems.push(format!("{} channel: {}", c.channel.as_str(), c.state.as_str()));
                }
                json!({"channel": c.channel.as_str(), "ok": ok, "state": c.state.as_str(), "detail": c.detail})
            })
            .collect();
        let disk = self.config.equipment.data_dir.as_ref().map(|dir| match free_bytes(dir) {
            Ok(free) => {
                let ok = free >= LOW_DISK_BYTES;
                if !ok {
                    problems.push(format!("disk: only {} MiB free at {}", free / (1024 * 1024), dir.display()));
                }
                json!({"ok": ok, "path": dir.display().to_string(), "free_bytes": free})
            }
            Err(error) => {
                problems.push(format!("disk: {error}"));
                json!({"ok": false, "path": dir.display().to_string(), "error": error.to_string()})
            }
        });
        let settings = self.settings_health();
        if let Some(error) = settings.as_ref().and_then(|s| s["error"].as_str()) {
            problems.push(format!("settings: {error}"));
        }
        // Each plugin (and so each MCP server) as this process sees it; one failing is a problem.
        let plugins: Vec<Value> = self
            .plugin_health()
            .into_iter()
            .map(|(name, state, reason)| {
                if state == domain::plugin::PluginState::Error {
                    problems.push(format!("plugin {name} is failing"));
                }
                json!({"name": name, "ok": state != domain::plugin::PluginState::Error, "state": state, "reason": reason})
            })
            .collect();
        // A model that failed to load is a problem (its fallback serves); one loading is not yet.
        let models: Vec<Value> = self
            .models_readiness()
            .into_iter()
            .map(|m| {
                if m.state == crate::ModelState::Failed {
                    problems.push(format!("model {} failed to load", m.name));
                }
                json!({"name": m.name, "ok": m.state != crate::ModelState::Failed, "state": m.state.as_str(), "detail": m.detail})
            })
            .collect();
        let ok = problems.is_empty();
        let summary = if ok {
            format!(
                "Healthy: the {} database answers, {} provider(s) and {} configured channel(s) are up{}.",
                self.store.backend(),
                providers.len(),
                channels.len(),
                if disk.is_some() { ", disk space is ample" } else { "" }
            )
        } else {
            format!("{} problem(s): {}.", problems.len(), problems.join("; "))
        };
        let rate_limits = match self.limits.ping().await {
            Ok(()) => json!({"ok": true, "backend": self.limits.backend()}),
            Err(error) => {
                // Limits fail open: worth knowing, not a reason to call the server unhealthy.
                json!({"ok": false, "backend": self.limits.backend(), "error": error.to_string()})
            }
        };
        let components = json!({
            "database": database, "rate_limits": rate_limits, "providers": providers, "channels": channels,
            "disk": disk, "router": self.router.name(), "settings": settings, "plugins": plugins,
            "models": models,
        });
        (ok, summary, components)
    }

    /// Every component this server depends on and its state: the database, the rate-limit
    /// counter, each provider's breaker, each configured channel, the data directory's free
    /// disk. The health check's result, without sealing a run.
    pub async fn components(&self) -> (bool, String, Value) {
        self.health_check().await
    }

    async fn cost_report(&self, tenant: &TenantId, days: i64) -> Result<(bool, String, Value), EquipmentError> {
        let until = Timestamp::now();
        let since = until.minus(Duration::from_secs(u64::try_from(days).unwrap_or(7) * 86_400));
        let rows = self.store.usage(tenant, since, until).await?;
        let mut by_model: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
        let mut by_key: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
        let mut by_subject: std::collections::BTreeMap<String, (u64, f64)> = Default::default();
        let (mut calls, mut total) = (0u64, 0.0f64);
        for row in &rows {
            let model = match &row.provider {
                Some(provider) => format!("{provider}/{}", row.model),
                None => row.model.clone(),
            };
            for (map, key) in [
                (&mut by_model, model),
                (&mut by_key, row.api_key_id.as_ref().map_or_else(|| "(no key)".to_owned(), |k| k.to_string())),
                (&mut by_subject, row.subject.clone().unwrap_or_else(|| "(unknown)".to_owned())),
            ] {
                let entry = map.entry(key).or_default();
                entry.0 += row.calls;
                entry.1 += row.cost_usd;
            }
            calls += row.calls;
            total += row.cost_usd;
        }
        let list = |map: std::collections::BTreeMap<String, (u64, f64)>| -> Vec<Value> {
            let mut items: Vec<(String, (u64, f64))> = map.into_iter().collect();
            items.sort_by(|a, b| b.1.1.total_cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
            items
                .into_iter()
                .map(|(name, (calls, cost))| json!({"name": name, "calls": calls, "cost_usd": cost}))
                .collect()
        };
        let by_model = list(by_model);
        let top = by_model
            .first()
            .and_then(|m| m["name"].as_str().map(str::to_owned))
            .map_or_else(String::new, |name| format!("; most went to {name}"));
        let summary = format!("Spent ${total:.4} on {calls} model call(s) in the last {days} day(s){top}.");
        let result = json!({
            "tenant": tenant.as_str(), "since": since.to_rfc3339(), "until": until.to_rfc3339(), "days": days,
            "calls": calls, "total_cost_usd": total,
            "by_model": by_model, "by_key": list(by_key), "by_subject": list(by_subject),
        });
        Ok((true, summary, result))
    }

    async fn log_rotate(&self, keep_days: i64) -> Result<(bool, String, Value), EquipmentError> {
        let before = Timestamp::now().minus(Duration::from_secs(u64::try_from(keep_days).unwrap_or(30) * 86_400));
        let jobs = self.store.prune_jobs(before).await?;
        let updates = self.store.prune_channel_updates(before).await?;
        let summary = format!(
            "Forgot {jobs} finished job(s) and {updates} inbound-update claim(s) older than {keep_days} day(s)."
        );
        Ok((true, summary, json!({"keep_days": keep_days, "jobs_pruned": jobs, "update_claims_pruned": updates})))
    }

    async fn export_checkpoints(&self, tenant: &TenantId, count: i64) -> Result<(bool, String, Value), EquipmentError> {
        let name = "ledger_checkpoint_export";
        let Some(root) = &self.config.equipment.export_dir else {
            return Err(EquipmentError::Unavailable { name: name.into(), reason: "no export directory".into() });
        };
        let dir = root.join(tenant.as_str());
        let failed =
            |e: std::io::Error| EquipmentError::Failed { name: name.into(), reason: format!("{}: {e}", dir.display()) };
        let mut checkpoints = self.store.checkpoints(tenant).await?;
        checkpoints.sort_by_key(|c| c.size);
        let keep = usize::try_from(count).unwrap_or(10);
        let latest: Vec<_> = checkpoints.iter().rev().take(keep).collect();
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let mut written = Vec::new();
        for checkpoint in &latest {
            let file = dir.join(format!("checkpoint-{:012}.note", checkpoint.size));
            // Written beside, then renamed: a reader never sees half a note.
            let partial = dir.join(format!(".checkpoint-{:012}.note.partial", checkpoint.size));
            std::fs::write(&partial, &checkpoint.signed_note).map_err(failed)?;
            std::fs::rename(&partial, &file).map_err(failed)?;
            written.push(json!({"size": checkpoint.size, "file": file.display().to_string()}));
        }
        let summary = match latest.first() {
            Some(newest) => format!(
                "Wrote {} signed checkpoint(s) to {}, the newest covering {} ledger entries.",
                latest.len(),
                dir.display(),
                newest.size
            ),
            None => "The ledger has no signed checkpoint yet; nothing was written.".to_owned(),
        };
        Ok((true, summary, json!({"directory": dir.display().to_string(), "written": written})))
    }
}

/// The equipment a job or schedule payload names (`{"equipment": "health_check", …}`).
pub fn equipment_of(payload: &str) -> Option<&'static str> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let name = value.get("equipment")?.as_str()?;
    spec(name).map(|s| s.name)
}

/// A run's parameters, checked against the spec.
struct Params {
    name: &'static str,
    values: Value,
}

impl Params {
    fn check(spec: &Spec, params: &Value) -> Result<Params, EquipmentError> {
        let map = match params {
            Value::Null => serde_json::Map::new(),
            Value::Object(map) => map.clone(),
            _ => {
                return Err(EquipmentError::InvalidParam {
                    name: spec.name.into(),
                    param: "params".into(),
                    reason: "expected a JSON object".into(),
                });
            }
        };
        for (key, value) in &map {
            let Some(param) = spec.parameters.iter().find(|p| p.name == key) else {
                let known: Vec<&str> = spec.parameters.iter().map(|p| p.name).collect();
                return Err(EquipmentError::InvalidParam {
                    name: spec.name.into(),
                    param: key.clone(),
                    reason: format!(
                        "unknown parameter; {} takes {}",
                        spec.name,
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                });
            };
            let fits = match param.kind {
                "integer" => value.is_i64(),
                _ => value.is_string(),
            };
            if !fits && !value.is_null() {
                return Err(EquipmentError::InvalidParam {
                    name: spec.name.into(),
                    param: key.clone(),
                    reason: format!("expected {}", if param.kind == "integer" { "an integer" } else { "a string" }),
                });
            }
        }
        Ok(Params { name: spec.name, values: Value::Object(map) })
    }

    fn integer(&self, param: &str, default: i64, min: i64, max: i64) -> Result<i64, EquipmentError> {
        let value = self.values.get(param).and_then(Value::as_i64).unwrap_or(default);
        if !(min..=max).contains(&value) {
            return Err(EquipmentError::InvalidParam {
                name: self.name.to_owned(),
                param: param.to_owned(),
                reason: format!("{value} is not between {min} and {max}"),
            });
        }
        Ok(value)
    }
}

/// Free bytes for unprivileged users on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}
