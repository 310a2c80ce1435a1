//! Chat channels (Telegram, Discord): the people behind platform accounts, the one-time codes
//! that link an account to a user, and how a channel admits people it does not know.

use std::fmt;
use std::str::FromStr;

use crate::{ConversationId, TenantId, Timestamp, UserId};

/// A chat platform Nexus answers on. Stored as its name; a value may be added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Telegram,
    Discord,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Telegram, Channel::Discord];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Discord => "discord",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = crate::UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| unknown("channel", text, vec!["telegram", "discord"]))
    }
}

/// What a channel does with a person it does not know: let them in as a new user at level 0,
/// or refuse them (and tell the tenant's admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Admission {
    Open,
    #[default]
    Closed,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Open => "open",
            Admission::Closed => "closed",
        }
    }
}

impl FromStr for Admission {
    type Err = crate::UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "open" => Ok(Admission::Open),
            "closed" => Ok(Admission::Closed),
            _ => Err(unknown("admission", text, vec!["open", "closed"])),
        }
    }
}

fn unknown(kind: &'static str, value: &str, expected: Vec<&'static str>) -> crate::UnknownValue {
    crate::UnknownValue { kind, value: value.to_owned(), expected }
}

/// A platform account known to a tenant, and the user it speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelIdentity {
    pub tenant_id: TenantId,
    pub channel: Channel,
    /// The platform's id of the account (Telegram's user id, Discord's snowflake).
    pub external_id: String,
    pub user_id: UserId,
    /// How the platform names the account (`@name` or the display name), for people.
    pub display: String,
    /// Where the account is reached privately (a Telegram private chat, a Discord DM channel).
    pub chat_id: Option<String>,
    /// The language the person chose (`en`, `it`), if they did.
    pub locale: Option<String>,
    /// The persona their agent conversation talks to (`None`: the planner picks).
    pub persona: Option<String>,
    /// Their current conversation on this channel (its memory).
    pub conversation_id: Option<ConversationId>,
    /// When the platform said the person blocked the bot (broadcasts skip them).
    pub blocked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A one-time code that links a platform account to a user (`/link CODE`). Only its SHA-256 is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Where one recipient of a broadcast stands. Stored as its name; a value may be added, never
/// renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    /// Taken by a sender; if the sender died here the message is never sent again.
    Sending,
    Delivered,
    /// The person blocked the bot (or left).
    Blocked,
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Blocked,
        DeliveryStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Blocked => "blocked",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = crate::UnknownValue;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| unknown("delivery status", text, DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect()))
    }
}

/// One message sent to many of a tenant's accounts on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: String,
    pub tenant_id: TenantId,
    pub channel: Channel,
    pub body: String,
    /// Only accounts of users at this level or above receive it (0: everyone).
    pub min_level: u8,
    /// Who sent it (`user:<id>`, `key:<id>`).
    pub created_by: String,
    /// Where to report its end (the sender's chat), if anywhere.
    pub notify_chat: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// How many recipients of a broadcast are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastProgress {
    pub pending: u64,
    pub sending: u64,
    pub delivered: u64,
    pub blocked: u64,
    pub failed: u64,
}

impl BroadcastProgress {
    pub fn total(&self) -> u64 {
        self.pending + self.sending + self.delivered + self.blocked + self.failed
    }
}

/// A recipient still to be sent a broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub broadcast_id: String,
    pub external_id: String,
    pub chat_id: String,
    pub body: String,
}
