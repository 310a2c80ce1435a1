//! Live settings: the values an administrator changes at run time, kept in the database with
//! secrets sealed, checked whole before they are stored, audited in the ledger, and put in
//! force on every process without a restart.
//!
//! Precedence, highest first: a flag, an environment variable, the config file (each *pins* a
//! setting: the database cannot change it while it is there), then the database, then the
//! built-in default. The composition root tells the runtime what its file, environment and
//! flags pin ([`Pinned`]) and how to rebuild the services from a set of database values
//! ([`SettingsHost`]). A change is:
//!
//! 1. read against the registry (unknown names, types, ranges, bootstrap-only and pinned
//!    settings are refused, naming the setting);
//! 2. checked whole: the host rebuilds every service with the candidate values, so a change
//!    that would leave the configuration unusable (a tier naming a provider with no key) is
//!    refused with the setting named and nothing stored;
//! 3. stored in one transaction against the revision it was checked on (another writer in
//!    between makes it start over from 1);
//! 4. sealed in the ledger as one `admin_change` entry per setting, with digests of the old and
//!    new values — keyed digests for secrets — never the values;
//! 5. put in force here at once (providers rebuilt with fresh circuit breakers, limits and
//!    budgets from the next request), and on every other process within a second: each one
//!    watches the revision (a notification makes it sooner) and rebuilds when it moves.

mod crypto;
mod registry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::{Delivery, Notification, StoreError, Topic};
use domain::settings::{GLOBAL_SCOPE, SettingWrite, SettingsSnapshot, StoredSetting};
use domain::{TenantId, Timestamp};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

pub use crypto::{MasterKey, SecretError, digest};
pub use registry::{Applies, Registry, SettingScope, SettingSpec, SettingType, closest};

use crate::{LedgerError, Runtime};

/// The topic a process publishes on after it changed settings (the payload: the revision).
pub const SETTINGS_CHANGED: Topic = Topic::from_static("settings.changed");
/// How often a process reads the revision, in case a notification was lost.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The meta name of the key check value.
const KEY_CHECK: &str = "key_check";
/// The meta name recording when the environment was imported.
const IMPORTED_AT: &str = "imported_at";
/// How a secret is shown.
pub const MASK: &str = "********";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Settings are not kept in this runtime (no master key was given).
    #[error("settings are not managed by this process")]
    NotConfigured,
    #[error("unknown setting {key:?}{}", .suggestion.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown { key: String, suggestion: Option<&'static str> },
    /// The value cannot be used; names the setting.
    #[error("setting {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    /// A file, variable or flag sets it, or it is read before the database opens.
    #[error("setting {setting}: {reason}")]
    Pinned { setting: String, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Other writers kept changing the settings while this change was checked.
    #[error("the settings kept changing while this change was checked; try again")]
    Busy,
}

/// Where a pinned value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum PinSource {
    Flag { flag: String },
    Env { variable: String },
    File { path: String },
}

/// A value a flag, variable or the config file sets (the database cannot change it).
#[derive(Clone, PartialEq, Eq)]
pub struct Pinned {
    pub source: PinSource,
    /// The value as read (a secret's in the clear: shown masked).
    pub value: String,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned").field("source", &self.source).finish_non_exhaustive()
    }
}

/// Why the host refused a set of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub setting: String,
    pub reason: String,
}

/// The services a set of database values configures, ready to be put in force.
pub struct Reconfiguration {
    pub agent: Option<crate::agent::AgentServices>,
    pub limits: crate::limits::LimitSettings,
    pub default_budget_usd: Option<f64>,
    pub budget_alert_fraction: Option<f64>,
}

/// Database values in the clear, by setting name (secrets opened; wiped when dropped).
pub type Values = BTreeMap<String, Zeroizing<String>>;

/// How the composition root rebuilds the services from settings.
pub trait SettingsHost: Send + Sync {
    /// Resolves the whole configuration with `values` as the database layer and builds the
    /// services; the error names the setting at fault.
    fn reconfigure(&self, values: &Values) -> Result<Reconfiguration, Invalid>;
}

/// What the runtime needs to manage settings.
pub struct SettingsParts {
    pub registry: Registry,
    pub key: MasterKey,
    /// What the file, environment and flags set, by setting name.
    pub pinned: BTreeMap<String, Pinned>,
    pub host: Arc<dyn SettingsHost>,
    /// The revision the services were built at.
    pub revision: i64,
}

pub(crate) struct SettingsState {
    parts: SettingsParts,
    /// The revision in force on this process.
    applied: std::sync::Mutex<i64>,
    /// One change or reload at a time on this process.
    changing: tokio::sync::Mutex<()>,
    /// Tells watchers (the channels) the revision now in force.
    in_force: tokio::sync::watch::Sender<i64>,
    /// Why the stored settings cannot be put in force here, while they cannot.
    problem: std::sync::Mutex<Option<String>>,
}

impl SettingsState {
    pub(crate) fn new(parts: SettingsParts) -> Self {
        let applied = std::sync::Mutex::new(parts.revision);
        let (in_force, _) = tokio::sync::watch::channel(parts.revision);
        Self { parts, applied, changing: tokio::sync::Mutex::new(()), in_force, problem: std::sync::Mutex::new(None) }
    }
}

/// Who changes settings, and whose ledger records it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: TenantId,
    /// `user:<id>`, `key:<id>`, `cli`.
    pub by: String,
}

/// Where the value in force comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    Flag,
    Env,
    File,
    Database,
    Default,
    /// No value at all.
    Unset,
}

/// One setting as an administrator sees it: secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct SettingView {
    pub key: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [&'static str],
    pub scope: SettingScope,
    pub secret: bool,
    pub applies: Applies,
    pub doc: &'static str,
    pub env: Option<&'static str>,
    pub default: Option<&'static str>,
    /// The value in force (a secret's is [`MASK`] when set).
    pub value: Option<String>,
    pub source: ValueSource,
    /// The variable, flag or file that pins it.
    pub pinned_by: Option<String>,
    /// Whether the database holds a value (pinned settings may hold one that applies once the
    /// pin is removed).
    pub stored: bool,
    pub updated_at: Option<Timestamp>,
    pub updated_by: Option<String>,
}

/// What one change did.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub key: String,
    /// `set` or `unset`.
    pub action: &'static str,
    /// Whether the new value is in force now (else at the next restart).
    pub live: bool,
}

/// The report of a change.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeReport {
    pub revision: i64,
    pub changed: Vec<Changed>,
}

/// Settings written out: plain values in the clear, secrets only sealed (they open only under
/// the same master key).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SettingsExport {
    pub format: String,
    pub key_id: String,
    pub settings: Vec<ExportedSetting>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ExportedSetting {
    pub key: String,
    #[serde(default = "global")]
    pub scope: String,
    /// A plain value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A secret, sealed under the key named by the export's `key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

fn global() -> String {
    GLOBAL_SCOPE.into()
}

/// The export format's name.
pub const EXPORT_FORMAT: &str = "nexus-settings/1";

/// Checks the master key against the database's key check value, recording it the first time;
/// then reads every stored value in the clear. A wrong key is refused before anything is
/// opened.
pub async fn load(store: &dyn domain::ports::Store, key: &MasterKey) -> Result<(i64, Values), SettingsError> {
    loop {
        match store.settings_meta(KEY_CHECK).await? {
            Some(check) => key.verify_check(&check)?,
            None => {
                let revision = store.settings_revision().await?;
                let check = key.check_value()?;
                if store.write_settings(revision, &[], &[(KEY_CHECK, Some(&check))]).await?.is_none() {
                    continue;
                }
            }
        }
        let snapshot = store.settings().await?;
        return Ok((snapshot.revision, open_all(&snapshot, key)?));
    }
}

/// The id of the master key this database's secrets are sealed under (read from its key check
/// value, without any key), if it has one.
pub async fn sealed_key_id(store: &dyn domain::ports::Store) -> Result<Option<String>, StoreError> {
    Ok(store.settings_meta(KEY_CHECK).await?.and_then(|check| check.split(':').nth(1).map(str::to_owned)))
}

/// Whether the master key opens this database's secrets (`None`: no key check recorded yet).
pub async fn key_matches(store: &dyn domain::ports::Store, key: &MasterKey) -> Result<Option<bool>, StoreError> {
    Ok(store.settings_meta(KEY_CHECK).await?.map(|check| key.verify_check(&check).is_ok()))
}

fn open_all(snapshot: &SettingsSnapshot, key: &MasterKey) -> Result<Values, SettingsError> {
    let mut values = Values::new();
    for s in snapshot.settings.iter().filter(|s| s.scope == GLOBAL_SCOPE) {
        let value = if s.encrypted { key.open(&s.scope, &s.key, &s.value)? } else { Zeroizing::new(s.value.clone()) };
        values.insert(s.key.clone(), value);
    }
    Ok(values)
}

/// Values of the environment to import on first start: (setting, text) for every setting the
/// registry can store whose variable is set.
pub fn importable(registry: Registry, lookup: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
    registry
        .all()
        .iter()
        .filter(|s| s.applies != Applies::Bootstrap)
        .filter_map(|s| {
            let text = lookup(s.env?)?;
            (!text.trim().is_empty()).then_some((s.key, text))
        })
        .collect()
}

impl Runtime {
    fn settings_state(&self) -> Result<&SettingsState, SettingsError> {
        self.settings.as_ref().ok_or(SettingsError::NotConfigured)
    }

    /// The master key, when this runtime manages settings.
    pub(crate) fn settings_key(&self) -> Option<&MasterKey> {
        self.settings.as_ref().map(|s| &s.parts.key)
    }

    /// Whether this runtime manages settings.
    pub fn settings_enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// Every setting with the value in force and where it comes from; secrets masked.
    pub async fn settings_view(&self) -> Result<Vec<SettingView>, SettingsError> {
        let state = self.settings_state()?;
        let snapshot = self.store.settings().await?;
        let stored: BTreeMap<&str, &StoredSetting> =
            snapshot.settings.iter().filter(|s| s.scope == GLOBAL_SCOPE).map(|s| (s.key.as_str(), s)).collect();
        let shown = |spec: &SettingSpec, value: &str| if spec.secret { MASK.to_owned() } else { value.to_owned() };
        Ok(state
            .parts
            .registry
            .all()
            .iter()
            .map(|spec| {
                let row = stored.get(spec.key).copied();
                let pin = state.parts.pinned.get(spec.key);
                let (value, source, pinned_by) = match (pin, row, spec.default) {
                    (Some(pin), _, _) => {
                        let (source, by) = match &pin.source {
                            PinSource::Flag { flag } => (ValueSource::Flag, flag.clone()),
                            PinSource::Env { variable } => (ValueSource::Env, variable.clone()),
                            PinSource::File { path } => (ValueSource::File, path.clone()),
                        };
                        (Some(shown(spec, &pin.value)), source, Some(by))
                    }
                    (None, Some(row), _) if spec.applies != Applies::Bootstrap => {
                        let value = if row.encrypted || spec.secret { MASK.to_owned() } else { row.value.clone() };
                        (Some(value), ValueSource::Database, None)
                    }
                    (None, _, Some(default)) => (Some(default.to_owned()), ValueSource::Default, None),
                    (None, _, None) => (None, ValueSource::Unset, None),
                };
                SettingView {
                    key: spec.key,
                    kind: spec.kind.name(),
                    choices: spec.kind.choices(),
                    scope: spec.scope,
                    secret: spec.secret,
                    applies: spec.applies,
                    doc: spec.doc,
                    env: spec.env,
                    default: spec.default,
                    value,
                    source,
                    pinned_by,
                    stored: row.is_some(),
                    updated_at: row.map(|r| r.updated_at),
                    updated_by: row.map(|r| r.updated_by.clone()),
                }
            })
            .collect())
    }

    /// The revision of the settings in force on this process, changing as they do (for what
    /// the runtime does not rebuild itself, such as the chat channels). `None` when settings are
    /// not managed here.
    pub fn settings_in_force(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        self.settings.as_ref().map(|s| s.in_force.subscribe())
    }

    /// The settings' part of the health check: the revision in force, the master key's id, and
    /// why the stored settings cannot be put in force here, if they cannot. `None` when
    /// settings are not managed here.
    pub fn settings_health(&self) -> Option<serde_json::Value> {
        let state = self.settings.as_ref()?;
        let revision = *state.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let problem = state.problem.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Some(json!({
            "ok": problem.is_none(), "revision": revision, "master_key_id": state.parts.key.id(), "error": problem,
        }))
    }

    /// The stored values in the clear (secrets opened) and their revision, for the composition
    /// root to resolve its configuration again.
    pub async fn settings_values(&self) -> Result<(i64, Values), SettingsError> {
        let state = self.settings_state()?;
        let snapshot = self.store.settings().await?;
        Ok((snapshot.revision, open_all(&snapshot, &state.parts.key)?))
    }

    /// One setting's view.
    pub async fn setting_view(&self, key: &str) -> Result<SettingView, SettingsError> {
        let state = self.settings_state()?;
        self.settings_view().await?.into_iter().find(|v| v.key == key).ok_or_else(|| SettingsError::Unknown {
            key: key.to_owned(),
            suggestion: state.parts.registry.closest(key),
        })
    }

    /// Sets (`Some`) or unsets (`None`) settings, all or none: each value is read against its
    /// type, the whole configuration is rebuilt with them before anything is stored, and every
    /// change is sealed in `actor`'s ledger. In force at once on this process, within a second
    /// on the others.
    pub async fn change_settings(
        &self,
        actor: &Actor,
        changes: &[(String, Option<serde_json::Value>)],
    ) -> Result<ChangeReport, SettingsError> {
        // Read every value first: a mistake anywhere changes nothing.
        let mut read: Vec<(&'static SettingSpec, Option<String>)> = Vec::with_capacity(changes.len());
        for (key, value) in changes {
            let spec = self.settable(key)?;
            let text = match value {
                None | Some(serde_json::Value::Null) => None,
                Some(value) => Some(
                    spec.kind
                        .read_json(value)
                        .map_err(|reason| SettingsError::Invalid { setting: key.clone(), reason })?,
                ),
            };
            if read.iter().any(|(s, _)| s.key == spec.key) {
                return Err(SettingsError::Invalid {
                    setting: key.clone(),
                    reason: "named twice in one change".into(),
                });
            }
            read.push((spec, text));
        }
        let writes = |_: &Values| {
            read.iter().map(|(spec, text)| (spec.key.to_owned(), text.clone().map(Zeroizing::new))).collect::<Vec<_>>()
        };
        self.commit(actor, writes, "setting.changed", &[]).await
    }

    /// The spec of a setting the database may set; the error names why not.
    fn settable(&self, key: &str) -> Result<&'static SettingSpec, SettingsError> {
        let state = self.settings_state()?;
        let spec = state.parts.registry.get(key).ok_or_else(|| SettingsError::Unknown {
            key: key.to_owned(),
            suggestion: state.parts.registry.closest(key),
        })?;
        if spec.applies == Applies::Bootstrap {
            let env = spec.env.map(|e| format!(" or {e}")).unwrap_or_default();
            return Err(SettingsError::Pinned {
                setting: key.to_owned(),
                reason: format!("it is read before the database opens; set it in nexus.toml{env}"),
            });
        }
        if let Some(pin) = state.parts.pinned.get(key) {
            let by = match &pin.source {
                PinSource::Flag { flag } => format!("the flag {flag}"),
                PinSource::Env { variable } => format!("the environment variable {variable}"),
                PinSource::File { path } => format!("the config file {path}"),
            };
            return Err(SettingsError::Pinned {
                setting: key.to_owned(),
                reason: format!("{by} sets it; remove it there to manage this setting here"),
            });
        }
        Ok(spec)
    }

    /// Stores the changes `plan` makes to the current values (checked whole by the host, against
    /// the revision read), seals them, and puts them in force. Starts over when another writer
    /// moved the revision meanwhile.
    async fn commit(
        &self,
        actor: &Actor,
        plan: impl Fn(&Values) -> Vec<(String, Option<Zeroizing<String>>)>,
        action: &str,
        meta: &[(&str, Option<&str>)],
    ) -> Result<ChangeReport, SettingsError> {
        let state = self.settings_state()?;
        let key = &state.parts.key;
        let _one = state.changing.lock().await;
        for _ in 0..5 {
            let snapshot = self.store.settings().await?;
            let current = open_all(&snapshot, key)?;
            let changes = plan(&current);
            if changes.is_empty() && meta.is_empty() {
                return Ok(ChangeReport { revision: snapshot.revision, changed: Vec::new() });
            }
            let mut candidate = current.clone();
            for (name, value) in &changes {
                match value {
                    Some(value) => candidate.insert(name.clone(), value.clone()),
                    None => candidate.remove(name),
                };
            }
            let rebuilt = state
                .parts
                .host
                .reconfigure(&candidate)
                .map_err(|i| SettingsError::Invalid { setting: i.setting, reason: i.reason })?;
            let now = Timestamp::now();
            let mut writes = Vec::with_capacity(changes.len());
            let mut entries = Vec::with_capacity(changes.len());
            let mut changed = Vec::with_capacity(changes.len());
            for (name, value) in &changes {
                let Some(spec) = state.parts.registry.get(name) else { continue };
                let old = current.get(name);
                if old.map(|o| o.as_str()) == value.as_deref().map(String::as_str) {
                    continue;
                }
                let digest_of = |v: &str| {
                    if spec.secret { key.keyed_digest(GLOBAL_SCOPE, name, v) } else { digest(v) }
                };
                writes.push(match value {
                    Some(value) => SettingWrite::Put(StoredSetting {
                        scope: GLOBAL_SCOPE.into(),
                        key: name.clone(),
                        value: if spec.secret { key.seal(GLOBAL_SCOPE, name, value)? } else { value.to_string() },
                        encrypted: spec.secret,
                        updated_at: now,
                        updated_by: actor.by.clone(),
                    }),
                    None => SettingWrite::Delete { scope: GLOBAL_SCOPE.into(), key: name.clone() },
                });
                entries.push(json!({
                    "action": action,
                    "setting": name,
                    "scope": GLOBAL_SCOPE,
                    "secret": spec.secret,
                    "old_digest": old.map(|o| digest_of(o)),
                    "new_digest": value.as_deref().map(|v| digest_of(v)),
                    "by": actor.by,
                }));
                changed.push(Changed {
                    key: name.clone(),
                    action: if value.is_some() { "set" } else { "unset" },
                    live: spec.applies == Applies::Live,
                });
            }
            if writes.is_empty() && meta.is_empty() {
                return Ok(ChangeReport { revision: snapshot.revision, changed });
            }
            let Some(revision) = self.store.write_settings(snapshot.revision, &writes, meta).await? else {
                continue;
            };
            for payload in entries {
                self.ledger
                    .append(&actor.tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload })
                    .await?;
            }
            self.put_in_force(state, revision, rebuilt);
            self.announce_settings(revision).await;
            for c in &changed {
                tracing::info!(setting = %c.key, action = c.action, live = c.live, by = %actor.by, revision, "setting changed");
            }
            return Ok(ChangeReport { revision, changed });
        }
        Err(SettingsError::Busy)
    }

    fn put_in_force(&self, state: &SettingsState, revision: i64, rebuilt: Reconfiguration) {
        let mut applied = state.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if revision <= *applied {
            return;
        }
        self.replace_agent(rebuilt.agent);
        self.limits.set_settings(rebuilt.limits);
        self.budgets.set_defaults(rebuilt.default_budget_usd, rebuilt.budget_alert_fraction);
        *applied = revision;
        state.in_force.send_replace(revision);
    }

    async fn announce_settings(&self, revision: i64) {
        match Notification::new(SETTINGS_CHANGED, revision.to_string()) {
            Ok(notification) => {
                if let Err(error) = self.store.notifier().publish(&notification).await {
                    tracing::debug!(%error, "could not announce the settings change; other processes read it within a second");
                }
            }
            Err(error) => tracing::debug!(%error, "could not announce the settings change"),
        }
    }

    /// Reads the stored settings again and puts them in force when their revision moved past
    /// the one this process runs with. True when it rebuilt.
    pub async fn reload_settings(&self) -> Result<bool, SettingsError> {
        let state = self.settings_state()?;
        let revision = self.store.settings_revision().await?;
        if revision <= *state.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Ok(false);
        }
        let _one = state.changing.lock().await;
        let snapshot = self.store.settings().await?;
        if snapshot.revision <= *state.applied.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Ok(false);
        }
        if let Some(check) = self.store.settings_meta(KEY_CHECK).await? {
            state.parts.key.verify_check(&check)?;
        }
        let values = open_all(&snapshot, &state.parts.key)?;
        let rebuilt = state
            .parts
            .host
            .reconfigure(&values)
            .map_err(|i| SettingsError::Invalid { setting: i.setting, reason: i.reason })?;
        self.put_in_force(state, snapshot.revision, rebuilt);
        tracing::info!(revision = snapshot.revision, "settings changed elsewhere are in force here");
        Ok(true)
    }

    /// Keeps this process's settings in step with the database's: reads the revision every
    /// [`CHECK_EVERY`], and at once when another process announces a change. Stopped by
    /// [`Self::shutdown`]. Does nothing when settings are not managed here.
    pub fn watch_settings(self: &Arc<Self>) {
        if self.settings.is_none() {
            return;
        }
        let mut watcher = crate::auth::lock(&self.settings_watcher);
        if watcher.is_some() {
            return;
        }
        let runtime = Arc::downgrade(self);
        let notifier = self.store.notifier();
        *watcher = Some(crate::tasks::spawn("settings-watch", async move {
            let mut subscription = notifier.subscribe(std::slice::from_ref(&SETTINGS_CHANGED)).await.ok();
            let mut failing = false;
            loop {
                let heard = async {
                    match subscription.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending::<Option<Delivery>>().await,
                    }
                };
                tokio::select! {
                    delivery = heard => if delivery.is_none() { subscription = None },
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                }
                let Some(runtime) = runtime.upgrade() else { return };
                let outcome = runtime.reload_settings().await;
                if let Some(state) = runtime.settings.as_ref() {
                    *state.problem.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        outcome.as_ref().err().map(ToString::to_string);
                }
                match outcome {
                    Ok(_) => failing = false,
                    Err(error) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::error!(%error, "the stored settings cannot be put in force; this process keeps its current ones");
                        }
                    }
                }
            }
        }));
    }

    /// The stored settings as an export: secrets stay sealed.
    pub async fn export_settings(&self) -> Result<SettingsExport, SettingsError> {
        let state = self.settings_state()?;
        let snapshot = self.store.settings().await?;
        let settings = snapshot
            .settings
            .into_iter()
            .map(|s| ExportedSetting {
                key: s.key,
                scope: s.scope,
                value: (!s.encrypted).then(|| s.value.clone()),
                sealed: s.encrypted.then_some(s.value),
            })
            .collect();
        Ok(SettingsExport { format: EXPORT_FORMAT.into(), key_id: state.parts.key.id().to_owned(), settings })
    }

    /// Stores an export's values (each checked as a change would be; secrets must be sealed
    /// under this process's key). With `replace`, stored settings the export lacks are unset.
    pub async fn import_settings(
        &self,
        actor: &Actor,
        export: &SettingsExport,
        replace: bool,
    ) -> Result<ChangeReport, SettingsError> {
        let state = self.settings_state()?;
        let key = &state.parts.key;
        if export.format != EXPORT_FORMAT {
            return Err(SettingsError::Invalid {
                setting: "format".into(),
                reason: format!("{:?} is not {EXPORT_FORMAT}", export.format),
            });
        }
        let mut incoming: Vec<(String, Option<Zeroizing<String>>)> = Vec::new();
        for item in &export.settings {
            if item.scope != GLOBAL_SCOPE {
                return Err(SettingsError::Invalid {
                    setting: item.key.clone(),
                    reason: format!("scope {:?}: only global values are stored", item.scope),
                });
            }
            let spec = self.settable(&item.key)?;
            let text = match (&item.value, &item.sealed) {
                (Some(value), None) if !spec.secret => spec
                    .kind
                    .read(value)
                    .map_err(|reason| SettingsError::Invalid { setting: item.key.clone(), reason })?,
                (None, Some(sealed)) => key.open(GLOBAL_SCOPE, &item.key, sealed)?.to_string(),
                (Some(_), None) => {
                    return Err(SettingsError::Invalid {
                        setting: item.key.clone(),
                        reason: "a secret is imported sealed only, never in the clear".into(),
                    });
                }
                _ => {
                    return Err(SettingsError::Invalid {
                        setting: item.key.clone(),
                        reason: "give exactly one of value and sealed".into(),
                    });
                }
            };
            incoming.push((item.key.clone(), Some(Zeroizing::new(text))));
        }
        self.commit(
            actor,
            |current| {
                let mut changes = incoming.clone();
                if replace {
                    for name in current.keys() {
                        if !changes.iter().any(|(k, _)| k == name) {
                            changes.push((name.clone(), None));
                        }
                    }
                }
                changes
            },
            "setting.imported",
            &[],
        )
        .await
    }

    /// Stores the environment's values of settings the database does not hold yet, once per
    /// database (later starts do nothing): how many were imported.
    pub async fn import_environment(
        &self,
        actor: &Actor,
        values: &[(&'static str, String)],
    ) -> Result<usize, SettingsError> {
        let state = self.settings_state()?;
        if self.store.settings_meta(IMPORTED_AT).await?.is_some() {
            return Ok(0);
        }
        let mut incoming = Vec::new();
        for (name, text) in values {
            let Some(spec) = state.parts.registry.get(name) else { continue };
            match spec.kind.read(text) {
                Ok(value) => incoming.push((name.to_string(), Some(Zeroizing::new(value)))),
                Err(reason) => tracing::warn!(setting = name, %reason, "not imported"),
            }
        }
        let now = Timestamp::now().as_micros().to_string();
        let report = self
            .commit(
                actor,
                |current| incoming.iter().filter(|(k, _)| !current.contains_key(k)).cloned().collect(),
                "setting.imported",
                &[(IMPORTED_AT, Some(&now))],
            )
            .await?;
        Ok(report.changed.len())
    }
}

/// Re-seals every secret under `new` and records its key check, in one transaction against
/// the revision read (run with no process changing settings; a server still on the old key
/// refuses the new values until restarted with the new key). How many secrets were re-sealed.
pub async fn rekey(store: &dyn domain::ports::Store, old: &MasterKey, new: &MasterKey) -> Result<usize, SettingsError> {
    if let Some(check) = store.settings_meta(KEY_CHECK).await? {
        old.verify_check(&check)?;
    }
    let snapshot = store.settings().await?;
    let mut writes = Vec::new();
    for s in snapshot.settings.iter().filter(|s| s.encrypted) {
        let plain = old.open(&s.scope, &s.key, &s.value)?;
        writes.push(SettingWrite::Put(StoredSetting { value: new.seal(&s.scope, &s.key, &plain)?, ..s.clone() }));
    }
    let check = new.check_value()?;
    match store.write_settings(snapshot.revision, &writes, &[(KEY_CHECK, Some(&check))]).await? {
        Some(_) => Ok(writes.len()),
        None => Err(SettingsError::Busy),
    }
}
