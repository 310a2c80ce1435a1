//! Watchers: a feed (RSS, Atom, JSON Feed) or a section of a web page, polled on a schedule,
//! whose new items are posted to a channel. Every item a watcher has seen is kept under a key
//! that depends only on the item (its guid, else its canonical link, else a hash of its
//! content), so a restart, a second replica or a feed that lost its ids never posts one twice.

use serde::{Deserialize, Serialize};

use crate::persona::str_enum;
use crate::{TenantId, Timestamp};

/// What a watcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An RSS, Atom or JSON feed: each entry is an item.
    Feed,
    /// A web page: the text of the part a CSS selector picks (the whole body without one) is
    /// the item, so each new version of that part is posted once.
    Page,
}

str_enum!(SourceKind: "watcher source kind" { Feed => "feed", Page => "page" });

/// Where a watcher posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PostTarget {
    /// A Telegram chat (a group, a channel or a person), by its numeric id.
    Telegram { chat_id: String },
    /// A Discord channel, by its id.
    Discord { channel_id: String },
    /// An HTTP endpoint that receives each post as a JSON object.
    Webhook { url: String },
}

impl PostTarget {
    /// `telegram`, `discord` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            PostTarget::Telegram { .. } => "telegram",
            PostTarget::Discord { .. } => "discord",
            PostTarget::Webhook { .. } => "webhook",
        }
    }
}

/// One watcher, as configured and as its last poll left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watcher {
    pub tenant_id: TenantId,
    /// `wat_` and 20 hex digits.
    pub id: String,
    /// Unique per tenant.
    pub name: String,
    pub kind: SourceKind,
    pub url: String,
    /// For a page: the CSS selector of the watched part (`None`: the whole body).
    pub selector: Option<String>,
    pub target: PostTarget,
    /// The model tier that summarises each item before it is posted (`None`: posted as it is).
    pub summarise: Option<String>,
    /// At most this many posts per poll; the rest wait for the next.
    pub max_posts: u32,
    /// The schedule that polls it (a cron expression in `schedules`).
    pub schedule_id: Option<String>,
    /// The validator the source last sent (`ETag`), sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// The source's `Last-Modified`, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// Whether a first poll recorded what existed (without posting it).
    pub seeded: bool,
    pub last_polled_at: Option<Timestamp>,
    /// Why the last poll failed; `None` after a good one.
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Found by the first poll: recorded, never posted.
    Seeded,
    /// New, waiting for a post (the cap may hold it to the next poll).
    Pending,
    /// Taken by one poller to be posted.
    Posting,
    Posted,
    /// Could not be posted after every try.
    Failed,
}

str_enum!(ItemStatus: "watcher item status" {
    Seeded => "seeded", Pending => "pending", Posting => "posting", Posted => "posted", Failed => "failed",
});

/// One item a watcher found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchedItem {
    pub watcher_id: String,
    /// `id:<guid>`, `link:<canonical link>` or `sha256:<content hash>`.
    pub key: String,
    pub title: Option<String>,
    pub link: Option<String>,
    /// The item's text (capped), what a post is made from.
    pub text: String,
    /// SHA-256 (hex) of the title, link and text: what the post's seal names.
    pub digest: String,
    pub status: ItemStatus,
    /// Failed tries to post.
    pub attempts: u32,
    /// What the post became (a broadcast id, a webhook's status) or why it failed.
    pub detail: Option<String>,
    pub found_at: Timestamp,
    pub posted_at: Option<Timestamp>,
}
