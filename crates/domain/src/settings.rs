//! Settings kept in the database: the rows an administrator changes at run time, stored as
//! text (secrets as sealed envelopes, never in the clear), and the one revision number every
//! change moves so that each process sharing the database sees that something changed.

use crate::Timestamp;

/// The scope of settings that apply to the whole installation.
pub const GLOBAL_SCOPE: &str = "global";

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSetting {
    /// `global`, or a tenant id for a tenant's own value.
    pub scope: String,
    /// The setting's dotted name, e.g. `providers.openai.base_url`.
    pub key: String,
    /// The value's canonical text; for a secret, its encrypted envelope.
    pub value: String,
    /// Whether `value` is an encrypted envelope.
    pub encrypted: bool,
    pub updated_at: Timestamp,
    /// Who set it (`user:<id>`, `cli`, `import`).
    pub updated_by: String,
}

/// One change to the stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingWrite {
    /// Stores a value, replacing the one at its scope and key.
    Put(StoredSetting),
    /// Forgets the value at a scope and key (the setting falls back to the layers below).
    Delete { scope: String, key: String },
}

/// The stored settings as of one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsSnapshot {
    /// Moves by one with every committed change.
    pub revision: i64,
    pub settings: Vec<StoredSetting>,
}
