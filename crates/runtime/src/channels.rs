//! Chat channels as the runtime serves them: who a platform account is (a user of the tenant,
//! admitted or refused by the channel's admission rule, or linked with a one-time code), which
//! inbound updates were already taken, where each channel's reading stands, which process reads
//! a bot, broadcasts (a durable queue of recipients, each sent at most once), and each
//! channel's health for `/ready`.
//!
//! The adapters (Telegram, Discord) only translate: every answer is a run or a governed model
//! call made through the same methods the console uses, with the member's [`Principal`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::channel::{
    Admission, Broadcast, BroadcastProgress, Channel, ChannelIdentity, Delivery, DeliveryStatus, LinkCode,
};
use domain::chat::{ChatTarget, Conversation};
use domain::ports::StoreError;
use domain::tenant::{Role, User, UserLevel};
use domain::{ConversationId, TenantId, Timestamp, UserId};
use rand::Rng as _;
use serde_json::json;

use crate::Runtime;
use crate::auth::{AuthMethod, Credential, Principal, lock};
use crate::chat::ChatError;
use domain::ledger::{EntryDraft, EntryKind};

/// How long a link code may be used.
pub const LINK_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// The alphabet of link codes: no 0/O or 1/I/L to misread.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_LEN: usize = 8;
/// The longest broadcast, in characters (it is split into messages as any answer is).
pub const MAX_BROADCAST_CHARS: usize = 16_000;

/// How a channel is doing, as `/ready` and the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// No token configured.
    Unconfigured,
    /// Configured; connecting for the first time.
    Starting,
    /// Reading and answering.
    Connected,
    /// Another replica reads this bot; this one stands by to take over.
    Standby,
    /// Failing repeatedly (stalls, network errors); still retrying, with backoff.
    Degraded,
    /// Another program reads the same bot token (Telegram's 409).
    Conflict,
    /// Stopped for a reason retrying cannot fix (a bad token, a missing tenant).
    Failed,
}

impl ChannelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Unconfigured => "unconfigured",
            ChannelState::Starting => "starting",
            ChannelState::Connected => "connected",
            ChannelState::Standby => "standby",
            ChannelState::Degraded => "degraded",
            ChannelState::Conflict => "conflict",
            ChannelState::Failed => "failed",
        }
    }

    /// Whether the channel works (or waits its turn as it should).
    pub fn is_healthy(self) -> bool {
        matches!(self, ChannelState::Connected | ChannelState::Standby | ChannelState::Starting)
    }
}

/// One channel's health.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelHealth {
    pub channel: Channel,
    pub state: ChannelState,
    /// What the operator should know: the missing setting, the error, the holder of the lease.
    pub detail: Option<String>,
    /// When the platform last answered a read (Telegram: a completed `getUpdates`).
    pub last_inbound_at: Option<Timestamp>,
    /// Times the adapter rebuilt its connection after a stall or an error.
    pub restarts: u64,
}

impl ChannelHealth {
    pub fn new(channel: Channel, state: ChannelState, detail: Option<String>) -> Self {
        Self { channel, state, detail, last_inbound_at: None, restarts: 0 }
    }
}

/// Every channel's latest health on this process.
#[derive(Default)]
pub(crate) struct ChannelBoard {
    health: Mutex<BTreeMap<Channel, ChannelHealth>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("that code is unknown, used or expired; ask for a new one (nexus users link-code)")]
    BadCode,
    #[error("that code belongs to another tenant")]
    OtherTenant,
    #[error("tenant {0} does not exist")]
    NoTenant(TenantId),
    #[error("tenant {tenant} has no user {user}")]
    NoUser { tenant: TenantId, user: String },
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    /// A field of a request is wrong; `field` names it.
    #[error("{reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] crate::LedgerError),
    #[error(transparent)]
    Chat(#[from] ChatError),
}

/// A platform account as an adapter sees it in an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub channel: Channel,
    pub external_id: String,
    /// `@name` or the display name.
    pub display: String,
    /// The private chat with the account, when the update came from one.
    pub private_chat: Option<String>,
}

/// A user speaking through a platform account.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub principal: Principal,
    pub user: User,
    pub identity: ChannelIdentity,
}

/// Whether a channel lets an account in.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// A known account, or a stranger just let in (`new`).
    Member { member: Box<Member>, new: bool },
    /// A stranger in a closed channel.
    Refused,
}

/// Checks what a broadcast asks for — a channel that sends broadcasts, a text of 1 to
/// [`MAX_BROADCAST_CHARS`] characters, a level that exists — and returns the trimmed text.
pub fn check_broadcast(channel: Channel, body: &str, min_level: u8) -> Result<&str, ChannelError> {
    if channel != Channel::Telegram {
        return Err(ChannelError::InvalidField {
            field: "channel",
            reason: format!("broadcasts are sent on telegram only; {channel} does not send them yet"),
        });
    }
    let body = body.trim();
    if body.is_empty() {
        return Err(ChannelError::InvalidField { field: "text", reason: "the broadcast is empty".into() });
    }
    if body.chars().count() > MAX_BROADCAST_CHARS {
        return Err(ChannelError::InvalidField {
            field: "text",
            reason: format!("a broadcast is at most {MAX_BROADCAST_CHARS} characters"),
        });
    }
    if min_level > UserLevel::MAX {
        return Err(ChannelError::InvalidField {
            field: "min_level",
            reason: format!("levels go from 0 to {}", UserLevel::MAX),
        });
    }
    Ok(body)
}

fn principal_of(user: &User, identity: &ChannelIdentity) -> Principal {
    Principal {
        tenant: user.tenant_id.clone(),
        credential: Credential::User { id: user.id.clone(), email: identity.display.clone() },
        role: user.role,
        level: user.level,
        method: AuthMethod::Channel,
    }
}

/// A send-queue entry's id: `bc_`, the time in µs (hex) and 6 random hex digits.
pub(crate) fn new_broadcast_id() -> String {
    format!("bc_{:x}{:06x}", Timestamp::now().as_micros(), rand::thread_rng().gen_range(0..0x0100_0000u32))
}

/// A fresh link code (8 characters of an unambiguous alphabet).
fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN).map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())])).collect()
}

/// How a typed code is stored: upper-cased, spaces and dashes dropped, hashed.
fn code_hash(code: &str) -> String {
    let normal: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_uppercase();
    crate::keys::key_hash(&normal)
}

impl Runtime {
    /// Records a channel's health (the adapters call this as their state changes), also as
    /// metrics: `nexus_channel_up` (1 when healthy), `nexus_channel_state` (1 for the current
    /// state) and `nexus_channel_restarts`.
    pub fn report_channel(&self, health: ChannelHealth) {
        let channel = health.channel.as_str();
        metrics::gauge!("nexus_channel_up", "channel" => channel).set(f64::from(u8::from(health.state.is_healthy())));
        for state in [
            ChannelState::Unconfigured,
            ChannelState::Starting,
            ChannelState::Connected,
            ChannelState::Standby,
            ChannelState::Degraded,
            ChannelState::Conflict,
            ChannelState::Failed,
        ] {
            metrics::gauge!("nexus_channel_state", "channel" => channel, "state" => state.as_str())
                .set(f64::from(u8::from(state == health.state)));
        }
        metrics::gauge!("nexus_channel_restarts", "channel" => channel).set(health.restarts as f64);
        lock(&self.channels.health).insert(health.channel, health);
    }

    /// Every channel's health, in a fixed order; a channel nobody reported is `unconfigured`.
    pub fn channel_health(&self) -> Vec<ChannelHealth> {
        let health = lock(&self.channels.health);
        Channel::ALL
            .into_iter()
            .map(|channel| {
                health
                    .get(&channel)
                    .cloned()
                    .unwrap_or_else(|| ChannelHealth::new(channel, ChannelState::Unconfigured, None))
            })
            .collect()
    }

    /// Who an account is in the tenant: its linked user, a stranger let in at level 0 (open
    /// channels; an `admin_change` entry), or refused (closed channels).
    pub async fn channel_member(
        &self,
        tenant: &TenantId,
        account: &Account,
        admission: Admission,
    ) -> Result<Admitted, ChannelError> {
        if let Some(mut identity) = self.store().channel_identity(tenant, account.channel, &account.external_id).await?
        {
            let user = self
                .store()
                .user(tenant, &identity.user_id)
                .await?
                .ok_or_else(|| ChannelError::NoUser { tenant: tenant.clone(), user: identity.user_id.to_string() })?;
            // Keep the display name and private chat current; the person may have unblocked us.
            let chat = account.private_chat.clone().or_else(|| identity.chat_id.clone());
            if identity.display != account.display
                || identity.chat_id != chat
                || identity.blocked_at.is_some() && account.private_chat.is_some()
            {
                identity.display = account.display.clone();
                identity.chat_id = chat;
                if account.private_chat.is_some() {
                    identity.blocked_at = None;
                }
                self.store().save_channel_identity(&identity).await?;
            }
            let principal = principal_of(&user, &identity);
            return Ok(Admitted::Member { member: Box::new(Member { principal, user, identity }), new: false });
        }
        if admission == Admission::Closed {
            return Ok(Admitted::Refused);
        }
        self.store().tenant(tenant).await?.ok_or_else(|| ChannelError::NoTenant(tenant.clone()))?;
        let now = Timestamp::now();
        let user = User {
            id: UserId::generate(),
            tenant_id: tenant.clone(),
            name: account.display.clone(),
            level: UserLevel::NEWCOMER,
            role: Role::Member,
            created_at: now,
        };
        let identity = ChannelIdentity {
            tenant_id: tenant.clone(),
            channel: account.channel,
            external_id: account.external_id.clone(),
            user_id: user.id.clone(),
            display: account.display.clone(),
            chat_id: account.private_chat.clone(),
            locale: None,
            persona: None,
            conversation_id: None,
            blocked_at: None,
            created_at: now,
        };
        match self.store().admit_channel_user(&user, &identity).await {
            Ok(()) => {}
            // Another update of the same stranger (another replica) let them in first.
            Err(StoreError::Conflict { .. }) => return Box::pin(self.channel_member(tenant, account, admission)).await,
            Err(error) => return Err(error.into()),
        }
        self.channel_admin_change(
            tenant,
            json!({"action": "user.admitted", "channel": account.channel.as_str(), "account": account.external_id,
                   "display": account.display, "user_id": user.id.as_str(), "level": 0}),
        )
        .await?;
        let principal = principal_of(&user, &identity);
        Ok(Admitted::Member { member: Box::new(Member { principal, user, identity }), new: true })
    }

    /// A one-time code that links a platform account to `user` (`/link CODE`), valid for
    /// [`LINK_CODE_TTL`]; only its hash is stored. `by` is who asked (`operator`, `user:<id>`).
    pub async fn create_link_code(
        &self,
        tenant: &TenantId,
        user: &UserId,
        by: &str,
    ) -> Result<(String, Timestamp), ChannelError> {
        self.store()
            .user(tenant, user)
            .await?
            .ok_or_else(|| ChannelError::NoUser { tenant: tenant.clone(), user: user.to_string() })?;
        let code = new_code();
        let now = Timestamp::now();
        let expires_at = now.plus(LINK_CODE_TTL);
        let stored = LinkCode {
            code_hash: code_hash(&code),
            tenant_id: tenant.clone(),
            user_id: user.clone(),
            created_at: now,
            expires_at,
        };
        self.store().insert_link_code(&stored).await?;
        self.channel_admin_change(tenant, json!({"action": "link_code.created", "user_id": user.as_str(), "by": by}))
            .await?;
        Ok((code, expires_at))
    }

    /// Links the account to the user a code was made for (the code is used up, even by a
    /// failed attempt from another tenant's channel); an `admin_change` entry.
    pub async fn link_account(&self, tenant: &TenantId, account: &Account, code: &str) -> Result<Member, ChannelError> {
        let found =
            self.store().take_link_code(&code_hash(code), Timestamp::now()).await?.ok_or(ChannelError::BadCode)?;
        if &found.tenant_id != tenant {
            return Err(ChannelError::OtherTenant);
        }
        let user = self
            .store()
            .user(tenant, &found.user_id)
            .await?
            .ok_or_else(|| ChannelError::NoUser { tenant: tenant.clone(), user: found.user_id.to_string() })?;
        let previous = self.store().channel_identity(tenant, account.channel, &account.external_id).await?;
        let identity = ChannelIdentity {
            tenant_id: tenant.clone(),
            channel: account.channel,
            external_id: account.external_id.clone(),
            user_id: user.id.clone(),
            display: account.display.clone(),
            chat_id: account.private_chat.clone().or_else(|| previous.as_ref().and_then(|p| p.chat_id.clone())),
            locale: previous.as_ref().and_then(|p| p.locale.clone()),
            persona: None,
            // A new person behind the account starts a conversation of their own.
            conversation_id: None,
            blocked_at: None,
            created_at: previous.as_ref().map_or_else(Timestamp::now, |p| p.created_at),
        };
        self.store().save_channel_identity(&identity).await?;
        self.channel_admin_change(
            tenant,
            json!({"action": "identity.linked", "channel": account.channel.as_str(), "account": account.external_id,
                   "display": account.display, "user_id": user.id.as_str(),
                   "previous_user_id": previous.map(|p| p.user_id.to_string())}),
        )
        .await?;
        let principal = principal_of(&user, &identity);
        Ok(Member { principal, user, identity })
    }

    /// Saves what a member changed about their account (language, persona, conversation).
    pub async fn save_channel_identity(&self, identity: &ChannelIdentity) -> Result<(), StoreError> {
        self.store().save_channel_identity(identity).await
    }

    /// The accounts on a channel of the tenant's admins and of users at `min_level` or above.
    pub async fn channel_staff(
        &self,
        tenant: &TenantId,
        channel: Channel,
        min_level: u8,
    ) -> Result<Vec<ChannelIdentity>, StoreError> {
        self.store().channel_staff(tenant, channel, min_level).await
    }

    /// Takes an inbound update for handling: false when this or another process took it
    /// before (a redelivery, a restart before the cursor moved, a second replica).
    pub async fn claim_channel_update(
        &self,
        tenant: &TenantId,
        channel: Channel,
        key: &str,
    ) -> Result<bool, StoreError> {
        self.store().claim_channel_update(tenant, channel, key, Timestamp::now()).await
    }

    /// Forgets which updates were taken more than `age` ago (platforms redeliver within a day).
    pub async fn prune_channel_updates(&self, age: Duration) -> Result<u64, StoreError> {
        self.store().prune_channel_updates(Timestamp::now().minus(age)).await
    }

    pub async fn channel_cursor(&self, tenant: &TenantId, channel: Channel) -> Result<Option<String>, StoreError> {
        self.store().channel_cursor(tenant, channel).await
    }

    pub async fn set_channel_cursor(
        &self,
        tenant: &TenantId,
        channel: Channel,
        cursor: &str,
    ) -> Result<(), StoreError> {
        self.store().set_channel_cursor(tenant, channel, cursor, Timestamp::now()).await
    }

    /// Takes or renews this process's lease on reading `bot` for `ttl`. `Ok(None)`: the lease
    /// is ours; `Ok(Some(holder))`: another process reads it.
    pub async fn lease_channel(&self, bot: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let now = Timestamp::now();
        let holder = self.store().lease_channel(bot, self.instance(), now, now.plus(ttl)).await?;
        Ok((holder != self.instance()).then_some(holder))
    }

    /// The member's current agent conversation on their channel, started when they have none
    /// (or it was deleted); the identity is saved with it.
    pub async fn channel_conversation(&self, member: &mut Member) -> Result<Conversation, ChannelError> {
        if let Some(id) = &member.identity.conversation_id {
            match self.own_conversation(&member.principal, id).await {
                Ok(conversation) => return Ok(conversation),
                Err(ChatError::NotFound) => {}
                Err(error) => return Err(error.into()),
            }
        }
        // The identity's choice: a persona, or `model:<id>` for a gateway model instead.
        let target = match member.identity.persona.as_deref() {
            Some(choice) if choice.starts_with("model:") => {
                ChatTarget::parse(choice).unwrap_or(ChatTarget::Agent(None))
            }
            persona => ChatTarget::Agent(persona.map(str::to_owned)),
        };
        let title = format!("{} via {}", member.identity.display, member.identity.channel);
        let conversation = self.open_conversation(&member.principal, target, &title).await?;
        member.identity.conversation_id = Some(conversation.id.clone());
        self.store().save_channel_identity(&member.identity).await?;
        Ok(conversation)
    }

    /// Forgets the member's conversation: the next message starts a new one.
    pub async fn reset_channel_conversation(&self, member: &mut Member) -> Result<Option<ConversationId>, StoreError> {
        let old = member.identity.conversation_id.take();
        self.store().save_channel_identity(&member.identity).await?;
        Ok(old)
    }

    /// Queues `body` for every account on `channel` of the tenant's users at `min_level` or
    /// above who can be reached privately and did not block the bot. Only users at level 3 or
    /// above, and admins, may broadcast. The broadcast is an `admin_change` entry; returns it
    /// and how many people it goes to.
    pub async fn start_broadcast(
        &self,
        principal: &Principal,
        channel: Channel,
        body: &str,
        min_level: u8,
        notify_chat: Option<String>,
    ) -> Result<(Broadcast, u64), ChannelError> {
        if principal.level < UserLevel::ARCHITECT && !principal.is_admin() {
            return Err(ChannelError::NotAllowed("only users at level 3 or above, and admins, may broadcast".into()));
        }
        self.queue_broadcast(&principal.tenant, principal.subject(), channel, body, min_level, notify_chat).await
    }

    /// Queues a broadcast already allowed (a person's, or a scheduled job's that an admin
    /// set up): checks it, finds its recipients and seals it.
    pub(crate) async fn queue_broadcast(
        &self,
        tenant: &TenantId,
        created_by: String,
        channel: Channel,
        body: &str,
        min_level: u8,
        notify_chat: Option<String>,
    ) -> Result<(Broadcast, u64), ChannelError> {
        let body = check_broadcast(channel, body, min_level)?;
        let recipients: Vec<(String, String)> = self
            .store()
            .channel_staff(tenant, channel, min_level)
            .await?
            .into_iter()
            .filter(|i| i.blocked_at.is_none())
            .filter_map(|i| i.chat_id.map(|chat| (i.external_id, chat)))
            .collect();
        let broadcast = Broadcast {
            id: new_broadcast_id(),
            tenant_id: tenant.clone(),
            channel,
            body: body.to_owned(),
            min_level,
            created_by,
            notify_chat,
            created_at: Timestamp::now(),
            finished_at: None,
        };
        self.store().insert_broadcast(&broadcast, &recipients).await?;
        self.channel_admin_change(
            tenant,
            json!({"action": "broadcast.created", "broadcast_id": broadcast.id, "channel": channel.as_str(),
                   "recipients": recipients.len(), "min_level": min_level, "by": broadcast.created_by,
                   "body_sha256": crate::keys::key_hash(body)}),
        )
        .await?;
        Ok((broadcast, recipients.len() as u64))
    }

    /// Recipients still to be sent the tenant's broadcasts on a channel, oldest first.
    pub async fn pending_deliveries(
        &self,
        tenant: &TenantId,
        channel: Channel,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.store().pending_deliveries(tenant, channel, limit).await
    }

    /// Takes a recipient for sending: false when another sender took it (it is then never sent
    /// here).
    pub async fn take_delivery(&self, tenant: &TenantId, delivery: &Delivery) -> Result<bool, StoreError> {
        self.store().take_delivery(tenant, &delivery.broadcast_id, &delivery.external_id, Timestamp::now()).await
    }

    /// Records what became of a taken recipient.
    pub async fn finish_delivery(
        &self,
        tenant: &TenantId,
        delivery: &Delivery,
        status: DeliveryStatus,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.store()
            .finish_delivery(tenant, &delivery.broadcast_id, &delivery.external_id, status, detail, Timestamp::now())
            .await
    }

    /// A broadcast and how far it got.
    pub async fn broadcast(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(Broadcast, BroadcastProgress)>, StoreError> {
        self.store().broadcast(tenant, id).await
    }

    /// Closes a broadcast with nobody left to send to (once: the one caller that closes it
    /// gets it back, with its outcome, and its `admin_change` entry is written).
    pub async fn finish_broadcast(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(Broadcast, BroadcastProgress)>, ChannelError> {
        if !self.store().finish_broadcast(tenant, id, Timestamp::now()).await? {
            return Ok(None);
        }
        let Some((broadcast, progress)) = self.store().broadcast(tenant, id).await? else { return Ok(None) };
        self.channel_admin_change(
            tenant,
            json!({"action": "broadcast.finished", "broadcast_id": id, "delivered": progress.delivered,
                   "blocked": progress.blocked, "failed": progress.failed, "interrupted": progress.sending}),
        )
        .await?;
        Ok(Some((broadcast, progress)))
    }

    async fn channel_admin_change(&self, tenant: &TenantId, payload: serde_json::Value) -> Result<(), ChannelError> {
        self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet_and_hash_as_typed_loosely() {
        let code = new_code();
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        let loose = format!(" {}-{} ", code[..4].to_lowercase(), &code[4..]);
        assert_eq!(code_hash(&code), code_hash(&loose));
        assert_ne!(code_hash(&code), code_hash("AAAAAAAA"));
    }

    #[test]
    fn only_working_states_are_healthy() {
        assert!(ChannelState::Connected.is_healthy());
        assert!(ChannelState::Standby.is_healthy());
        assert!(!ChannelState::Degraded.is_healthy());
        assert!(!ChannelState::Conflict.is_healthy());
        assert!(!ChannelState::Failed.is_healthy());
        assert_eq!(ChannelState::Unconfigured.as_str(), "unconfigured");
    }
}
