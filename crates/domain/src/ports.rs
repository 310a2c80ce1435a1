//! Storage ports: small traits shaped by role. `store` implements them for SQLite and PostgreSQL.
//!
//! **Architecture Invariant:** every method that reads or writes tenant data takes the tenant id
//! and filters by it. The only lookups without one are those that discover the tenant (an API
//! key by its hash, keys revoked lately for the caches that trust them) and the operator's
//! listing of tenants.

mod notify;

use async_trait::async_trait;

use crate::agent::{ApprovalStatus, ChainStatus};
use crate::cost::CostRecord;
use crate::knowledge::{AccessLevel, ChunkEmbeddings, ChunkRef, ChunkVector, KnowledgeDocument};
use crate::ledger::{LedgerRecord, LockedLog, LogHead, LogLock, LogWrite, StoredCheckpoint};
use crate::persona::PersonaContract;
use crate::tenant::{ApiKey, Tenant, User};
use crate::web::{WebSession, WebUser};
use crate::{ApiKeyId, ChainId, PersonaId, TenantId, Timestamp, UserId};

pub use notify::{
    Delivery, MAX_PAYLOAD_BYTES, MAX_TOPIC_LEN, Notification, NotificationError, Notifier, Subscription, Topic,
};

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("database unavailable ({target}): {reason}")]
    Unavailable { target: String, reason: String },
    /// The database file or its contents are damaged.
    #[error("database is corrupt ({target}): {reason}")]
    Corrupt { target: String, reason: String },
    /// A uniqueness rule was broken (e.g. a name already taken).
    #[error("{what} already exists")]
    Conflict { what: String },
    /// A stored value could not be read back into its type.
    #[error("stored {what} is invalid: {reason}")]
    InvalidRow { what: &'static str, reason: String },
    /// Migrations could not be applied.
    #[error("migrating {target} failed: {reason}")]
    Migration { target: String, reason: String },
    /// Any other backend error.
    #[error("database error: {0}")]
    Backend(String),
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Inserts the tenant unless one with its id exists. Returns whether it was inserted.
    async fn insert_tenant_if_missing(&self, tenant: &Tenant) -> Result<bool, StoreError>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// All tenants, for operators (verification, administration).
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>, StoreError>;
    async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// Finds an active (unrevoked) key by the hash of its secret.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key. Returns false if the tenant has no such active key.
    async fn revoke_api_key(&self, tenant: &TenantId, id: &ApiKeyId, at: Timestamp) -> Result<bool, StoreError>;
    /// Ids and revocation times of the keys of every tenant revoked at or after `since`, so
    /// a process that caches keys can drop the ones revoked elsewhere.
    async fn api_keys_revoked_since(&self, since: Timestamp) -> Result<Vec<(ApiKeyId, Timestamp)>, StoreError>;
    /// Records when keys were last used, in one batch (kept off the request path).
    async fn touch_api_keys(&self, uses: &[(TenantId, ApiKeyId, Timestamp)]) -> Result<(), StoreError>;
}

#[async_trait]
pub trait PersonaStore: Send + Sync {
    /// Inserts a persona; a persona with the same name in the tenant is a conflict.
    async fn insert_persona(&self, persona: &PersonaContract) -> Result<(), StoreError>;
    /// Replaces a persona's contract, bumping its version. Returns the new version, or `None`
    /// if the tenant has no such persona.
    async fn update_persona(&self, persona: &PersonaContract) -> Result<Option<u32>, StoreError>;
    async fn persona(&self, tenant: &TenantId, id: &PersonaId) -> Result<Option<PersonaContract>, StoreError>;
    async fn persona_by_name(&self, tenant: &TenantId, name: &str) -> Result<Option<PersonaContract>, StoreError>;
    async fn personas(&self, tenant: &TenantId) -> Result<Vec<PersonaContract>, StoreError>;
}

/// Which ledger records a page holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    /// Only records with an index below this (the cursor of the next page).
    pub before: Option<u64>,
    pub kind: Option<crate::ledger::EntryKind>,
    pub chain: Option<ChainId>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// Only records before this time.
    pub until: Option<Timestamp>,
}

/// Builds a batch's writes from the logs as locked; `None` when the batch is found already
/// committed. Pure: no I/O, called inside the store's transaction.
pub type StageFn<'a> = dyn Fn(&[LockedLog]) -> Result<Option<Vec<LogWrite>>, String> + Send + Sync + 'a;

#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// The ledger's append path. In one transaction: locks each tenant's log head (creating it
    /// at size 0 if missing; tenants locked in the order given, which callers sort, so two
    /// writers never deadlock), reads the fingerprints `locks` ask for, hands the locked logs to
    /// `stage`, writes what it returns (entries, tree nodes, new heads) with `companions`, and
    /// commits. Writers on other connections or processes wait for the lock instead of
    /// failing. Returns what was written, or `None` if `stage` found the batch already
    /// committed (nothing is written then, companions included).
    async fn append_locked(
        &self,
        locks: &[LogLock],
        stage: &StageFn<'_>,
        companions: &Companions,
    ) -> Result<Option<Vec<LogWrite>>, StoreError>;
    /// The tenant's log head, if it has one (read without locking).
    async fn log_head(&self, tenant: &TenantId) -> Result<Option<LogHead>, StoreError>;
    /// Stored tree hashes of `level` with indexes in `[from, to)`, in order (level 0: leaf
    /// hashes of the entries). Shorter than asked when the tree does not reach `to`.
    async fn tree_hashes(&self, tenant: &TenantId, level: u8, from: u64, to: u64) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Sets the tenant's head to `head` and stores `nodes` (already-stored ones are kept),
    /// provided the head is still at `expected_size` (0 when missing); else `Conflict`. For
    /// building heads of logs written before heads existed, or after raw appends.
    async fn repair_log_head(
        &self,
        tenant: &TenantId,
        expected_size: u64,
        head: &LogHead,
        nodes: &[crate::ledger::TreeNode],
    ) -> Result<(), StoreError>;
    /// Appends records (possibly of several tenants) in one transaction, as given: all or none
    /// are stored, and when this returns `Ok` they are durable. Raw: no head is locked or
    /// moved (the ledger writer repairs heads that fall behind); for tools and tests.
    async fn append_records(&self, records: &[LedgerRecord]) -> Result<(), StoreError> {
        self.append_with(records, &Companions::default()).await
    }
    /// As [`Self::append_records`], with other rows written in the same transaction (run state,
    /// cost records, drift counts), so a step's writes share one durable commit.
    async fn append_with(&self, records: &[LedgerRecord], companions: &Companions) -> Result<(), StoreError>;
    /// Number of entries in the tenant's log.
    async fn ledger_size(&self, tenant: &TenantId) -> Result<u64, StoreError>;
    /// Up to `limit` records from index `from` on, in index order.
    async fn records(&self, tenant: &TenantId, from: u64, limit: u32) -> Result<Vec<LedgerRecord>, StoreError>;
    /// The record at `index`, if any.
    async fn record(&self, tenant: &TenantId, index: u64) -> Result<Option<LedgerRecord>, StoreError>;
    /// A page of the tenant's records, newest first, matching `filter`.
    async fn records_page(
        &self,
        tenant: &TenantId,
        filter: &RecordFilter,
        limit: u32,
    ) -> Result<Vec<LedgerRecord>, StoreError>;
    /// All records of one chain, in index order.
    async fn chain_records(&self, tenant: &TenantId, chain: &ChainId) -> Result<Vec<LedgerRecord>, StoreError>;
    /// Stored leaf hashes from index 0, in order (to rebuild the tree in memory).
    async fn leaf_hashes(&self, tenant: &TenantId) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Fingerprint of the newest entry of a chain (`None` = entries outside any chain).
    async fn last_fingerprint(&self, tenant: &TenantId, chain: Option<&ChainId>) -> Result<Option<String>, StoreError>;
    /// Tenants that have ledger entries or checkpoints.
    async fn ledger_tenants(&self) -> Result<Vec<TenantId>, StoreError>;
    async fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;
    async fn latest_checkpoint(&self, tenant: &TenantId) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// All checkpoints of a tenant, oldest first.
    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError>;
}

#[async_trait]
pub trait CostStore: Send + Sync {
    async fn insert_cost(&self, cost: &CostRecord) -> Result<(), StoreError>;
    /// The overview counts: runs, actions and refusals since `day_start`, approvals waiting,
    /// spend and tokens since `month_start`; one round trip.
    async fn overview(
        &self,
        tenant: &TenantId,
        day_start: Timestamp,
        month_start: Timestamp,
    ) -> Result<crate::cost::Overview, StoreError>;
    /// Runs started, actions sealed and calls refused by the gates, per UTC day since `since`
    /// (days without any are absent); one round trip.
    async fn activity(&self, tenant: &TenantId, since: Timestamp) -> Result<Vec<crate::cost::DayActivity>, StoreError>;
    /// Total spent by the tenant since `since` (sums the cost records).
    async fn tenant_cost_since(&self, tenant: &TenantId, since: Timestamp) -> Result<f64, StoreError>;
    /// Total spent by the tenant in the month starting at `month` (`Timestamp::month_start`),
    /// from a running total kept with every cost record: one row read, however many records.
    async fn tenant_month_spend(&self, tenant: &TenantId, month: Timestamp) -> Result<f64, StoreError>;
    /// Cost records of the tenant in `[since, until)`, grouped by day, model, provider, key
    /// and chain.
    async fn usage(
        &self,
        tenant: &TenantId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<crate::cost::UsageRow>, StoreError>;
}

/// Console sign-in: users with passwords and their sessions.
#[async_trait]
pub trait WebStore: Send + Sync {
    /// Inserts the user and their credentials in one transaction; a taken email or user id is
    /// `Conflict`.
    async fn insert_web_user(&self, user: &WebUser) -> Result<(), StoreError>;
    /// The user who signs in with `email` (already normalized), in any tenant.
    async fn web_user_by_email(&self, email: &str) -> Result<Option<WebUser>, StoreError>;
    async fn web_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<WebUser>, StoreError>;
    /// A tenant's users who can sign in, by email.
    async fn web_users(&self, tenant: &TenantId) -> Result<Vec<WebUser>, StoreError>;
    /// Whether anyone at all can sign in (a fresh install has no one).
    async fn any_web_user(&self) -> Result<bool, StoreError>;
    /// Replaces a user's password hash; whether the user exists.
    async fn set_web_password(&self, tenant: &TenantId, id: &UserId, password_hash: &str) -> Result<bool, StoreError>;
    async fn set_web_locale(&self, tenant: &TenantId, id: &UserId, locale: Option<&str>) -> Result<(), StoreError>;

    async fn insert_session(&self, session: &WebSession) -> Result<(), StoreError>;
    /// The unexpired session whose token hashes to `token_hash`.
    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<WebSession>, StoreError>;
    /// The unexpired session whose token hashes to `token_hash` and the person it belongs to, in
    /// one query (every console request asks); `None` also when the person no longer exists.
    async fn session_user(&self, token_hash: &str, now: Timestamp)
    -> Result<Option<(WebSession, WebUser)>, StoreError>;
    /// Moves a session's expiry (sliding sessions).
    async fn touch_session(&self, token_hash: &str, expires_at: Timestamp) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Signs a user out everywhere; how many sessions ended.
    async fn delete_sessions_of(&self, tenant: &TenantId, user: &UserId) -> Result<u64, StoreError>;
    /// Forgets sessions that expired before `now`; how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// One run event for the live feed, as its runtime recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord {
    pub tenant_id: TenantId,
    pub chain_id: ChainId,
    /// The event's number within its run (from 0).
    pub seq: u64,
    pub created_at: Timestamp,
    /// The engine's event as JSON.
    pub event: String,
}

/// A feed record with its place in the feed: ids grow in the order records became visible,
/// across every process sharing the store.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub id: u64,
    pub record: FeedRecord,
}

/// The live feed of run events, shared by every process on the store, so a watcher sees every
/// replica's runs and resumes from an id without gaps.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Appends records in order; ids are assigned so that no reader who has seen an id can
    /// later find a smaller one appear (appends are serialized across processes).
    async fn append_feed(&self, records: &[FeedRecord]) -> Result<(), StoreError>;
    /// The tenant's entries after `after`, oldest first, at most `limit`.
    async fn feed_after(&self, tenant: &TenantId, after: u64, limit: u32) -> Result<Vec<FeedEntry>, StoreError>;
    /// The tenant's newest `limit` entries, oldest first.
    async fn feed_latest(&self, tenant: &TenantId, limit: u32) -> Result<Vec<FeedEntry>, StoreError>;
    /// The highest id in the feed (0 when empty), over every tenant.
    async fn feed_head(&self) -> Result<u64, StoreError>;
    /// Forgets entries recorded before `before`; how many.
    async fn prune_feed(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Conversations, per owner.
#[async_trait]
pub trait ChatStore: Send + Sync {
    async fn insert_conversation(&self, conversation: &crate::chat::Conversation) -> Result<(), StoreError>;
    /// The owner's conversations, most recently active first, at most `limit`; with `text`,
    /// only those whose title or any message contains it (any case).
    async fn conversations(
        &self,
        tenant: &TenantId,
        owner: &str,
        text: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::chat::Conversation>, StoreError>;
    async fn conversation(
        &self,
        tenant: &TenantId,
        owner: &str,
        id: &crate::ConversationId,
    ) -> Result<Option<crate::chat::Conversation>, StoreError>;
    /// Appends a message (its `seq` the next free number, assigned here) and marks the
    /// conversation active now; returns the stored message.
    async fn append_message(
        &self,
        tenant: &TenantId,
        message: &crate::chat::ChatMessage,
    ) -> Result<crate::chat::ChatMessage, StoreError>;
    /// A conversation's messages in order.
    async fn messages(
        &self,
        tenant: &TenantId,
        id: &crate::ConversationId,
    ) -> Result<Vec<crate::chat::ChatMessage>, StoreError>;
    /// Deletes a conversation of the owner with its messages; whether it existed.
    async fn delete_conversation(
        &self,
        tenant: &TenantId,
        owner: &str,
        id: &crate::ConversationId,
    ) -> Result<bool, StoreError>;
}

/// Chat channels: linked platform accounts, link codes, which inbound updates were taken, where
/// each channel's reading stands, and which process reads it.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    async fn channel_identity(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
        external_id: &str,
    ) -> Result<Option<crate::channel::ChannelIdentity>, StoreError>;
    /// The identities on a channel of the tenant's users with at least `min_level` or an admin
    /// role (who hears of refused strangers; who approves).
    async fn channel_staff(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
        min_level: u8,
    ) -> Result<Vec<crate::channel::ChannelIdentity>, StoreError>;
    /// Creates a user and its identity in one transaction (a stranger let in).
    async fn admit_channel_user(
        &self,
        user: &User,
        identity: &crate::channel::ChannelIdentity,
    ) -> Result<(), StoreError>;
    /// Inserts or replaces the identity of (tenant, channel, external id).
    async fn save_channel_identity(&self, identity: &crate::channel::ChannelIdentity) -> Result<(), StoreError>;
    async fn insert_link_code(&self, code: &crate::channel::LinkCode) -> Result<(), StoreError>;
    /// Uses up a code that is unused and unexpired at `now`: at most one caller ever gets it.
    async fn take_link_code(
        &self,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<Option<crate::channel::LinkCode>, StoreError>;
    /// Records that an inbound update (`key`: the platform's id of it) is being handled;
    /// false when some process took it before.
    async fn claim_channel_update(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Forgets claims older than `before`; how many.
    async fn prune_channel_updates(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Where reading the channel stands (Telegram's next update offset), if recorded.
    async fn channel_cursor(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
    ) -> Result<Option<String>, StoreError>;
    async fn set_channel_cursor(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
        cursor: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Takes or keeps the lease on reading a channel (`key`: the bot's identity) for `owner`
    /// until `until`: granted when nobody holds it, `owner` already does, or the holder's lease
    /// ended before `now`. Returns the holder after the attempt.
    async fn lease_channel(
        &self,
        key: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<String, StoreError>;
    /// Stores a broadcast and its recipients (account id, chat), all `pending`, in one
    /// transaction.
    async fn insert_broadcast(
        &self,
        broadcast: &crate::channel::Broadcast,
        recipients: &[(String, String)],
    ) -> Result<(), StoreError>;
    /// Recipients still `pending` of the tenant's unfinished broadcasts on a channel, oldest
    /// broadcast first, at most `limit`.
    async fn pending_deliveries(
        &self,
        tenant: &TenantId,
        channel: crate::channel::Channel,
        limit: u32,
    ) -> Result<Vec<crate::channel::Delivery>, StoreError>;
    /// Moves a recipient from `pending` to `sending`; false when someone took it before.
    async fn take_delivery(
        &self,
        tenant: &TenantId,
        broadcast: &str,
        external_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Records a taken recipient's outcome.
    async fn finish_delivery(
        &self,
        tenant: &TenantId,
        broadcast: &str,
        external_id: &str,
        status: crate::channel::DeliveryStatus,
        detail: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// A broadcast and how far it got.
    async fn broadcast(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(crate::channel::Broadcast, crate::channel::BroadcastProgress)>, StoreError>;
    /// Marks a broadcast with no `pending` recipient left finished; true for the one call
    /// that did.
    async fn finish_broadcast(&self, tenant: &TenantId, id: &str, at: Timestamp) -> Result<bool, StoreError>;

    /// Stores a new moderation case.
    async fn insert_moderation_case(&self, case: &crate::moderation::ModerationCase) -> Result<(), StoreError>;
    async fn moderation_case(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<crate::moderation::ModerationCase>, StoreError>;
    /// Cases of a tenant, newest first; only those in `status` when given.
    async fn moderation_cases(
        &self,
        tenant: &TenantId,
        status: Option<crate::moderation::CaseStatus>,
        limit: u32,
    ) -> Result<Vec<crate::moderation::ModerationCase>, StoreError>;
    /// Records staff's verdict on a case still open (`acted`, `dry_run`, `review`); false when
    /// it was decided already (the first verdict wins).
    async fn review_moderation_case(&self, case: &crate::moderation::ModerationCase) -> Result<bool, StoreError>;
    /// Each category's strictness adjustment in a scope.
    async fn moderation_strictness(&self, tenant: &TenantId, scope: &str) -> Result<Vec<(String, f64)>, StoreError>;
    /// Moves a category's adjustment by `delta`, kept within `-bound..=bound`, in one statement
    /// (concurrent verdicts never lose a step); the new adjustment.
    async fn adjust_moderation_strictness(
        &self,
        tenant: &TenantId,
        scope: &str,
        category: &str,
        delta: f64,
        bound: f64,
        at: Timestamp,
    ) -> Result<f64, StoreError>;
}

/// The settings an administrator changes at run time, and a few named facts about them (the
/// secrets' key check, when the environment was imported). Every write moves the revision, so
/// processes notice changes by reading one number.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Every stored value and the revision they are at, read together.
    async fn settings(&self) -> Result<crate::settings::SettingsSnapshot, StoreError>;
    /// The current revision (0 before the first change).
    async fn settings_revision(&self) -> Result<i64, StoreError>;
    /// Applies `writes` and sets or clears the named `meta` values in one transaction, only if
    /// the revision is still `expected`: the new revision, or `None` (and nothing changed) when
    /// another writer moved it first.
    async fn write_settings(
        &self,
        expected: i64,
        writes: &[crate::settings::SettingWrite],
        meta: &[(&str, Option<&str>)],
    ) -> Result<Option<i64>, StoreError>;
    /// A named fact about the settings (`key_check`, `imported_at`), if recorded.
    async fn settings_meta(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// Plugins as stored: each one's switch, lifecycle state and approved tool definitions, and
/// the MCP servers added by hand. Writes are compare-and-set on the record's revision, so of
/// several processes noticing the same transition exactly one records (and seals) it.
#[async_trait]
pub trait PluginStore: Send + Sync {
    /// Every stored plugin, by name.
    async fn plugins(&self) -> Result<Vec<crate::plugin::PluginRecord>, StoreError>;
    /// Stores `record` (at `record.revision + 1`) if the stored one is still at
    /// `record.revision`, or, when `record.revision` is 0, if there is none yet. `false` (and
    /// nothing changed) when another writer came first.
    async fn put_plugin(&self, record: &crate::plugin::PluginRecord) -> Result<bool, StoreError>;
    /// Forgets a plugin if it is still at `revision`; `false` when it is not (or is gone).
    async fn delete_plugin(&self, name: &str, revision: i64) -> Result<bool, StoreError>;
}

/// Watchers and the items they found. An item is inserted once per (watcher, key) — the first
/// inserter wins, whatever the replica — and moves through its states by compare-and-set.
#[async_trait]
pub trait WatcherStore: Send + Sync {
    /// Stores a new watcher; `Conflict` when the tenant has one of that name.
    async fn insert_watcher(&self, watcher: &crate::watcher::Watcher) -> Result<(), StoreError>;
    async fn watcher(&self, tenant: &TenantId, id: &str) -> Result<Option<crate::watcher::Watcher>, StoreError>;
    /// The tenant's watchers, by name.
    async fn watchers(&self, tenant: &TenantId) -> Result<Vec<crate::watcher::Watcher>, StoreError>;
    /// Forgets a watcher and its items; `false` when there was none.
    async fn delete_watcher(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
    /// Records a poll: the source's validators, whether the watcher is seeded, when, and why it
    /// failed (`None`: it did not).
    async fn record_watcher_poll(&self, watcher: &crate::watcher::Watcher) -> Result<(), StoreError>;
    /// Inserts the items not seen before (by key) and returns their keys.
    async fn add_watched_items(
        &self,
        tenant: &TenantId,
        items: &[crate::watcher::WatchedItem],
    ) -> Result<Vec<String>, StoreError>;
    /// A watcher's items in one state (all when `None`): oldest first when `oldest_first`,
    /// else newest first.
    async fn watched_items(
        &self,
        tenant: &TenantId,
        watcher_id: &str,
        status: Option<crate::watcher::ItemStatus>,
        oldest_first: bool,
        limit: u32,
    ) -> Result<Vec<crate::watcher::WatchedItem>, StoreError>;
    /// How many of a watcher's items are in `status`.
    async fn count_watched_items(
        &self,
        tenant: &TenantId,
        watcher_id: &str,
        status: crate::watcher::ItemStatus,
    ) -> Result<u64, StoreError>;
    /// Moves an item from `from` to `item.status` (with its attempts, detail and post time) if
    /// it is still in `from`; `false` when another poller moved it first.
    async fn move_watched_item(
        &self,
        tenant: &TenantId,
        item: &crate::watcher::WatchedItem,
        from: crate::watcher::ItemStatus,
    ) -> Result<bool, StoreError>;
}

/// Memory items, as append-only versions.
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Stores one version, unless that (tenant, id, version) exists: `false` then (another
    /// writer came first; read the item again).
    async fn append_memory(&self, version: &crate::memory::MemoryVersion) -> Result<bool, StoreError>;
    /// An item's latest version.
    async fn memory_item(&self, tenant: &TenantId, id: &str) -> Result<Option<crate::memory::MemoryItem>, StoreError>;
    /// Every version of an item, oldest first.
    async fn memory_history(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<crate::memory::MemoryVersion>, StoreError>;
    /// Items as they stand (latest versions), newest first: of one owner (or all), whose content
    /// contains `text` (case-insensitive; all when `None`), deleted ones only when asked.
    async fn memory_items(
        &self,
        tenant: &TenantId,
        owner: Option<&str>,
        text: Option<&str>,
        include_deleted: bool,
        limit: u32,
    ) -> Result<Vec<crate::memory::MemoryItem>, StoreError>;
    /// The live (not deleted) items of an owner with this content hash.
    async fn memory_duplicates(
        &self,
        tenant: &TenantId,
        owner: &str,
        content_hash: &str,
    ) -> Result<Vec<crate::memory::MemoryItem>, StoreError>;
    /// How many live items an owner has, and their content's total bytes.
    async fn memory_usage(&self, tenant: &TenantId, owner: &str) -> Result<(u64, u64), StoreError>;
    /// An owner's live items, newest first, at most `limit`, each with the vector `model` made
    /// of its content if one is stored.
    async fn memory_with_vectors(
        &self,
        tenant: &TenantId,
        owner: &str,
        model: &str,
        limit: u32,
    ) -> Result<Vec<(crate::memory::MemoryItem, Option<Vec<f32>>)>, StoreError>;
    /// Stores vectors `model` made of an owner's texts, by content hash; one already stored for
    /// the same hash and model is kept.
    async fn put_memory_vectors(
        &self,
        tenant: &TenantId,
        owner: &str,
        model: &str,
        vectors: &[(String, Vec<f32>)],
    ) -> Result<(), StoreError>;
}

/// Which runs to list. The default is every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<ChainStatus>,
    /// Only runs older than this one (the cursor of the next page): its creation time and id.
    pub before: Option<(Timestamp, ChainId)>,
    /// Only runs created at or after this time.
    pub since: Option<Timestamp>,
    /// Only runs created before this time.
    pub until: Option<Timestamp>,
    /// Only runs whose task contains this text (ASCII letters compared without case).
    pub text: Option<String>,
    /// Only runs with a step planned for this persona.
    pub persona: Option<String>,
}

/// The durable job queue, its schedules and which equipment each tenant has switched off.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job. Returns false (and stores nothing) when the tenant already has a job
    /// with the same idempotency key.
    async fn insert_job(&self, job: &crate::job::Job) -> Result<bool, StoreError>;
    async fn job(&self, tenant: &TenantId, id: &str) -> Result<Option<crate::job::Job>, StoreError>;
    /// The tenant's jobs matching `filter`, newest first, at most `limit`.
    async fn jobs(
        &self,
        tenant: &TenantId,
        filter: &crate::job::JobFilter,
        limit: u32,
    ) -> Result<Vec<crate::job::Job>, StoreError>;
    /// Claims the oldest due job (`pending`, `run_at <= now`) of any tenant that has fewer than
    /// `tenant_cap` jobs running: it becomes `running`, held by `owner` until `lease_until`,
    /// with one more attempt and `started_at = now`. At most one caller ever gets a given claim,
    /// and the cap holds under concurrent claims from many processes.
    async fn claim_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        tenant_cap: u32,
    ) -> Result<Option<crate::job::Job>, StoreError>;
    /// Extends the hold of `owner` on a running job. `None`: the job is no longer running under
    /// `owner` (its lease was lost and taken over, or it ended); the worker must stop.
    /// `Some(cancel_requested)` otherwise.
    async fn renew_job(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        lease_until: Timestamp,
    ) -> Result<Option<bool>, StoreError>;
    /// Ends a running job held by `owner`; false (nothing changed) when `owner` no longer holds
    /// it. A failure with `retry_at` goes back to `pending` from then, unless its attempts are
    /// used up (then it fails for good).
    async fn finish_job(
        &self,
        tenant: &TenantId,
        id: &str,
        owner: &str,
        outcome: &crate::job::JobOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Running jobs whose lease ended before `now` (their process stopped answering): back to
    /// `pending` at `now` when attempts remain, else `failed` saying the lease ran out. Returns
    /// the jobs as they are after the change.
    async fn requeue_expired_jobs(&self, now: Timestamp) -> Result<Vec<crate::job::Job>, StoreError>;
    /// Cancels a job: a pending one at once, a running one by asking its worker to stop. A
    /// finished job is left as it is. Returns the job after the change (`None`: no such job).
    async fn cancel_job(
        &self,
        tenant: &TenantId,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<crate::job::Job>, StoreError>;
    /// Makes a failed or cancelled job pending again at `now` with its attempts reset; any
    /// other job is left as it is. Returns the job after the change (`None`: no such job).
    async fn retry_job(
        &self,
        tenant: &TenantId,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<crate::job::Job>, StoreError>;
    /// Forgets finished jobs that finished before `before`; how many.
    async fn prune_jobs(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Stores a new schedule; `Conflict` when the tenant has one with its name.
    async fn insert_schedule(&self, schedule: &crate::job::Schedule) -> Result<(), StoreError>;
    /// A schedule by id or by name.
    async fn schedule(&self, tenant: &TenantId, id_or_name: &str) -> Result<Option<crate::job::Schedule>, StoreError>;
    /// The tenant's schedules by name.
    async fn schedules(&self, tenant: &TenantId) -> Result<Vec<crate::job::Schedule>, StoreError>;
    /// Deletes a schedule (its jobs stay); false when there was none.
    async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
    /// Switches a schedule on or off, with its next planned run.
    async fn set_schedule_enabled(
        &self,
        tenant: &TenantId,
        id: &str,
        enabled: bool,
        next_run_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Enabled schedules of every tenant whose next run is at or before `now`, earliest first,
    /// at most `limit` (the scheduler's sweep).
    async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<crate::job::Schedule>, StoreError>;
    /// Moves a schedule from the planned run `expected` to `next`, in one transaction with
    /// inserting `job` (the run that fires, if any; skipped when its idempotency key exists).
    /// False (nothing changed) when the schedule's next run is no longer `expected`: another
    /// process fired it first.
    async fn advance_schedule(
        &self,
        tenant: &TenantId,
        id: &str,
        expected: Timestamp,
        next: Option<Timestamp>,
        job: Option<&crate::job::Job>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The names of the equipment the tenant has switched off.
    async fn disabled_equipment(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError>;
    async fn set_equipment_enabled(
        &self,
        tenant: &TenantId,
        name: &str,
        enabled: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

/// Everything the runtime needs from a database.
#[async_trait]
pub trait Store:
    TenantStore
    + UserStore
    + ApiKeyStore
    + PersonaStore
    + LedgerStore
    + CostStore
    + RunStore
    + ApprovalStore
    + DriftStore
    + KnowledgeStore
    + WebStore
    + FeedStore
    + ChatStore
    + ChannelStore
    + JobStore
    + SettingsStore
    + PluginStore
    + MemoryStore
    + WatcherStore
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Where the data lives, with any password removed (for messages).
    fn location(&self) -> String;
    /// Notifications between the processes sharing this store.
    fn notifier(&self) -> std::sync::Arc<dyn Notifier>;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Runs the backend's own integrity check (SQLite `PRAGMA integrity_check`).
    async fn integrity_check(&self) -> Result<(), StoreError>;
    /// Closes all connections, waiting for in-flight work.
    async fn close(&self);
}

/// Rows written in the same transaction as a ledger batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Companions {
    /// Run states to insert or replace.
    pub runs: Vec<StoredRun>,
    pub costs: Vec<CostRecord>,
    /// Drift samples: one more occurrence of each (tenant, persona, tool, fingerprint).
    pub actions: Vec<ActionSample>,
}

impl Companions {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.costs.is_empty() && self.actions.is_empty()
    }

    pub fn extend(&mut self, other: Companions) {
        self.runs.extend(other.runs);
        self.costs.extend(other.costs);
        self.actions.extend(other.actions);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSample {
    pub tenant_id: TenantId,
    pub persona: String,
    pub tool: String,
    pub fingerprint: String,
}

/// A stored agent run: its status and the engine's serialized state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub tenant_id: TenantId,
    pub chain_id: ChainId,
    pub task: String,
    pub status: ChainStatus,
    /// The engine's `Run` as JSON.
    pub state: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The process (runtime instance) driving the run.
    pub owner: Option<String>,
    /// The personas its planned steps use, each once (what the chain list filters on).
    pub personas: Vec<String>,
    /// What the run needs that does not change while it runs (its personas and tool
    /// definitions), as JSON, kept apart from `state` so the state saved after every step does
    /// not carry it. Saving with `Some` stores it (replacing what is stored); `None` leaves
    /// what is stored. Read back: what is stored, `None` for a run whose state carries its own.
    pub context: Option<String>,
}

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts or replaces the run's state.
    async fn save_run(&self, run: &StoredRun) -> Result<(), StoreError>;
    async fn run(&self, tenant: &TenantId, chain: &ChainId) -> Result<Option<StoredRun>, StoreError>;
    /// The tenant's runs matching `filter`, at most `limit`, newest first (by creation time,
    /// then chain id). Every filter applies before the limit.
    async fn runs(&self, tenant: &TenantId, filter: &RunFilter, limit: u32) -> Result<Vec<StoredRun>, StoreError>;
    /// Runs of every tenant whose status is one of `statuses` (for resuming after a restart).
    async fn runs_with_status(&self, statuses: &[ChainStatus]) -> Result<Vec<StoredRun>, StoreError>;
    /// Takes over a run if its owner is still `expected` (compare-and-set on the owner, `None`
    /// for a run nobody owns). Returns whether this caller won.
    async fn claim_run(
        &self,
        tenant: &TenantId,
        chain: &ChainId,
        expected: Option<&str>,
        owner: &str,
    ) -> Result<bool, StoreError>;
    /// Records that a runtime instance is alive.
    async fn heartbeat(&self, instance: &str, at: Timestamp) -> Result<(), StoreError>;
    /// When an instance last showed it is alive.
    async fn last_heartbeat(&self, instance: &str) -> Result<Option<Timestamp>, StoreError>;
    /// Forgets an instance that stopped cleanly, and every instance silent since `stale_before`.
    async fn forget_instances(&self, instance: &str, stale_before: Timestamp) -> Result<(), StoreError>;
}

/// A request for a human decision on one exact call.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: String,
    pub tenant_id: TenantId,
    pub chain_id: ChainId,
    pub step: u32,
    pub tool: String,
    /// The call's parameters as JSON.
    pub params: String,
    /// Digest of the exact call; a decision applies to this call only.
    pub call_digest: String,
    pub reason: String,
    /// Who asked (the run's user), if known; they may never approve it themselves.
    pub requested_by: Option<String>,
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub note: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn insert_approval(&self, approval: &Approval) -> Result<(), StoreError>;
    async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Option<Approval>, StoreError>;
    /// Newest first; `status` filters when given.
    async fn approvals(&self, tenant: &TenantId, status: Option<ApprovalStatus>) -> Result<Vec<Approval>, StoreError>;
    /// Decides a pending, unexpired approval exactly once, moving it to `status`. Returns false
    /// if it was not pending (already decided or expired) at `at`.
    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        note: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait DriftStore: Send + Sync {
    /// Counts one more occurrence of `fingerprint` for (tenant, persona, tool).
    async fn record_action(
        &self,
        tenant: &TenantId,
        persona: &str,
        tool: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError>;
    /// Occurrences per fingerprint for (tenant, persona, tool).
    async fn action_counts(
        &self,
        tenant: &TenantId,
        persona: &str,
        tool: &str,
    ) -> Result<Vec<(String, u64)>, StoreError>;
}

/// A stored chunk with its document's source.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkHit {
    pub document_id: crate::DocumentId,
    pub ordinal: u32,
    pub source: String,
    pub text: String,
}

impl ChunkHit {
    pub fn chunk_ref(&self) -> ChunkRef {
        ChunkRef { document_id: self.document_id.clone(), ordinal: self.ordinal }
    }
}

#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Stores a document, its chunks and (optionally) one embedding per chunk in one
    /// transaction, unless the same content (by hash) is already in the tenant's namespace.
    /// Returns the stored document's id and whether it was new; a duplicate changes nothing.
    async fn insert_document(
        &self,
        document: &KnowledgeDocument,
        embeddings: Option<&ChunkEmbeddings>,
    ) -> Result<(crate::DocumentId, bool), StoreError>;
    /// The id of the tenant's document in `namespace` whose content has this hash, if any.
    async fn document_by_hash(
        &self,
        tenant: &TenantId,
        namespace: &str,
        content_hash: &str,
    ) -> Result<Option<crate::DocumentId>, StoreError>;
    /// Documents of a tenant (one namespace, or all), without their chunks.
    async fn documents(&self, tenant: &TenantId, namespace: Option<&str>)
    -> Result<Vec<KnowledgeDocument>, StoreError>;
    /// Deletes a document with its chunks and their vectors. Returns false if the tenant has
    /// no such document.
    async fn delete_document(&self, tenant: &TenantId, id: &crate::DocumentId) -> Result<bool, StoreError>;
    async fn namespaces(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError>;
    /// Chunks in the tenant's namespace, readable at `max_access`, that contain any of `terms`
    /// (lower-case words) as a word, at most `limit`, best matches first (by the backend's
    /// full-text ranking, so a large namespace still yields its best candidates).
    async fn chunks_matching(
        &self,
        tenant: &TenantId,
        namespace: &str,
        terms: &[String],
        max_access: AccessLevel,
        limit: u32,
    ) -> Result<Vec<ChunkHit>, StoreError>;
    /// The chunks named by `refs` that exist in the tenant's namespace and are readable at
    /// `max_access`, in no particular order.
    async fn chunks_by_ref(
        &self,
        tenant: &TenantId,
        namespace: &str,
        max_access: AccessLevel,
        refs: &[ChunkRef],
    ) -> Result<Vec<ChunkHit>, StoreError>;
    /// One page of the tenant's chunk texts, ordered by chunk, starting after `after` (from the
    /// beginning when `None`), at most `limit`.
    async fn chunk_texts(
        &self,
        tenant: &TenantId,
        after: Option<&ChunkRef>,
        limit: u32,
    ) -> Result<Vec<crate::knowledge::ChunkText>, StoreError>;
    /// How many documents the tenant has and when the newest was stored: one cheap read.
    async fn knowledge_revision(&self, tenant: &TenantId) -> Result<crate::knowledge::KnowledgeRevision, StoreError>;
    /// One page of the tenant's chunk vectors made by `model`, ordered by chunk, starting
    /// after `after` (from the beginning when `None`), at most `limit`.
    async fn chunk_vectors(
        &self,
        tenant: &TenantId,
        model: &str,
        after: Option<&ChunkRef>,
        limit: u32,
    ) -> Result<Vec<ChunkVector>, StoreError>;
    /// Up to `limit` of the tenant's chunks that have no vector from `model` (none, or
    /// another model's), ordered by chunk, for back-filling.
    async fn chunks_without_vectors(
        &self,
        tenant: &TenantId,
        model: &str,
        limit: u32,
    ) -> Result<Vec<ChunkHit>, StoreError>;
    /// Sets the vectors of existing chunks (made by `model`). Chunks that no longer exist are
    /// skipped; returns how many were set.
    async fn set_chunk_vectors(
        &self,
        tenant: &TenantId,
        model: &str,
        vectors: &[(ChunkRef, Vec<f32>)],
    ) -> Result<u64, StoreError>;
}
