//! Watchers: feeds and web page sections polled on a schedule, their new items posted to a
//! channel on the tenant's behalf.
//!
//! A watcher is a schedule (kind `watcher_poll`) and a row. A poll fetches the source through
//! the SSRF-safe client with the validators the source last sent (`If-None-Match`,
//! `If-Modified-Since`; a 304 fetches nothing), parses it into items keyed by the item itself
//! (guid, canonical link or content hash) and inserts the unseen ones — the first inserter wins,
//! so a restart or a second replica never finds an item new twice. The first successful poll
//! records what exists without posting it. Then at most `max_posts` pending items, oldest first,
//! are posted; the rest wait for the next poll. Each is taken by compare-and-set before it is
//! posted, so no two pollers post it, summarised by a tier model when the watcher asks for it,
//! and sealed as a `watch` entry naming its source, key and digest. A Telegram or Discord post
//! goes through the channel's durable send queue (one recipient, sent at most once); a webhook
//! gets a JSON object. Fetched content is untrusted: every post's seal says the content was
//! tainted and where it came from, and the summary prompt fences it as data.

use std::net::IpAddr;
use std::time::Duration;

use domain::channel::{Broadcast, Channel};
use domain::job::{JobKind, MissedRuns};
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoreError;
use domain::watcher::{ItemStatus, PostTarget, SourceKind, WatchedItem, Watcher};
use domain::{TenantId, Timestamp};
use serde::Serialize;
use serde_json::json;
use tools::builtin::{AddressPolicy, SafeHttp, Url};

use crate::jobs::{JobError, NewSchedule};
use crate::{LedgerError, Runtime};

/// How watchers fetch and post.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    /// Addresses a watcher may reach although they are private or local (an intranet feed, a
    /// webhook relay on the LAN); every other private, loopback or link-local address is refused.
    pub allow_addresses: Vec<IpAddr>,
    /// The most a fetch or a webhook call may take.
    pub timeout: Duration,
    /// The most of a source's body read.
    pub max_bytes: usize,
    /// When a watcher polls if it does not say (a cron expression).
    pub default_cron: String,
    /// Tries to post an item before it is given up as failed.
    pub max_attempts: u32,
}

impl Default for WatcherSettings {
    fn default() -> Self {
        Self {
            allow_addresses: Vec::new(),
            timeout: Duration::from_secs(20),
            max_bytes: 2 * 1024 * 1024,
            default_cron: "*/15 * * * *".into(),
            max_attempts: 3,
        }
    }
}

/// The most posts one poll may make.
pub const MAX_POSTS_PER_POLL: u32 = 50;
/// Posts per poll when the watcher does not say.
pub const DEFAULT_POSTS_PER_POLL: u32 = 5;
/// Items of a watcher shown with it.
const SHOWN_ITEMS: u32 = 50;

/// A watcher to create.
#[derive(Debug, Clone)]
pub struct NewWatcher {
    pub name: String,
    pub kind: SourceKind,
    pub url: String,
    /// For a page: the CSS selector of the part to watch.
    pub selector: Option<String>,
    pub target: PostTarget,
    /// `trivial`, `normal` or `complex`: summarise each item on that tier (`None`: post as is).
    pub summarise: Option<String>,
    pub max_posts: Option<u32>,
    /// A cron expression (`None`: the default, every 15 minutes).
    pub cron: Option<String>,
    /// The cron expression's IANA time zone (`None`: UTC).
    pub timezone: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatcherError {
    /// A field of the request is wrong; `field` names it.
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("tenant {tenant} has no watcher {id}")]
    NotFound { tenant: TenantId, id: String },
    #[error("a watcher named {0:?} exists")]
    Conflict(String),
    /// The source could not be fetched or read (recorded as the watcher's last error).
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<JobError> for WatcherError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Invalid { field, reason } => {
                let field = if field == "cron" || field == "timezone" { field } else { format!("schedule.{field}") };
                WatcherError::Invalid { field, reason }
            }
            JobError::Store(e) => WatcherError::Store(e),
            JobError::Ledger(e) => WatcherError::Ledger(e),
            other => WatcherError::Invalid { field: "schedule".into(), reason: other.to_string() },
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> WatcherError {
    WatcherError::Invalid { field: field.to_owned(), reason: reason.into() }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub watcher: String,
    /// `not_modified` (the source said 304), `seeded` (a first poll: recorded, nothing posted)
    /// or `polled`.
    pub outcome: &'static str,
    /// Items the source holds now (0 when not modified).
    pub found: usize,
    /// Items not seen before.
    pub new: usize,
    pub posted: usize,
    /// Items whose post failed this time (retried next poll until their tries run out).
    pub failed: usize,
    /// Items still waiting for a post (held by the per-poll cap).
    pub waiting: u64,
}

impl Runtime {
    /// Creates a watcher and the schedule that polls it; sealed as an `admin_change`.
    pub async fn add_watcher(&self, tenant: &TenantId, new: NewWatcher, by: &str) -> Result<Watcher, WatcherError> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            return Err(invalid("name", "a watcher needs a name of 1 to 60 characters"));
        }
        let url = check_http_url("url", &new.url)?;
        let selector = new.selector.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        match (new.kind, &selector) {
            (SourceKind::Feed, Some(_)) => {
                return Err(invalid("selector", "a feed is read whole; selectors are for pages"));
            }
            (SourceKind::Page, Some(selector)) => {
                feeds::check_selector(selector).map_err(|e| invalid("selector", e.to_string()))?;
            }
            _ => {}
        }
        let target = check_target(new.target)?;
        let summarise = match new.summarise.map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()) {
            Some(tier) if ["trivial", "normal", "complex"].contains(&tier.as_str()) => Some(tier),
            Some(other) => {
                return Err(invalid("summarise", format!("{other:?} is not a tier: trivial, normal or complex")));
            }
            None => None,
        };
        let max_posts = new.max_posts.unwrap_or(DEFAULT_POSTS_PER_POLL);
        if !(1..=MAX_POSTS_PER_POLL).contains(&max_posts) {
            return Err(invalid("max_posts", format!("from 1 to {MAX_POSTS_PER_POLL} posts per poll")));
        }
        if self.store.watchers(tenant).await?.iter().any(|w| w.name == name) {
            return Err(WatcherError::Conflict(name));
        }
        let id = crate::jobs::new_id("wat");
        let schedule = self
            .create_schedule(
                tenant,
                NewSchedule {
                    name: format!("watcher:{name}"),
                    cron: new.cron.unwrap_or_else(|| self.config.watchers.default_cron.clone()),
                    timezone: new.timezone,
                    kind: JobKind::WatcherPoll,
                    payload: json!({"watcher": id}),
                    missed: MissedRuns::RunOnce,
                    enabled: true,
                },
                by,
            )
            .await?;
        let watcher = Watcher {
            tenant_id: tenant.clone(),
            id,
            name,
            kind: new.kind,
            url,
            selector,
            target,
            summarise,
            max_posts,
            schedule_id: Some(schedule.id.clone()),
            etag: None,
            last_modified: None,
            seeded: false,
            last_polled_at: None,
            last_error: None,
            created_by: by.to_owned(),
            created_at: Timestamp::now(),
        };
        if let Err(error) = self.store.insert_watcher(&watcher).await {
            if let Err(e) = self.store.delete_schedule(tenant, &schedule.id).await {
                tracing::warn!(error = %e, schedule = %schedule.id, "could not remove the schedule of a watcher not created");
            }
            return Err(match error {
                StoreError::Conflict { .. } => WatcherError::Conflict(watcher.name),
                other => other.into(),
            });
        }
        self.watcher_change(tenant, &watcher, "watcher.create", by).await?;
        Ok(watcher)
    }

    /// The tenant's watchers, by name.
    pub async fn watchers(&self, tenant: &TenantId) -> Result<Vec<Watcher>, WatcherError> {
        Ok(self.store.watchers(tenant).await?)
    }

    /// A watcher and its latest items, newest first.
    pub async fn watcher(
        &self,
        tenant: &TenantId,
        id_or_name: &str,
    ) -> Result<(Watcher, Vec<WatchedItem>), WatcherError> {
        let watcher = self.find_watcher(tenant, id_or_name).await?;
        let items = self.store.watched_items(tenant, &watcher.id, None, false, SHOWN_ITEMS).await?;
        Ok((watcher, items))
    }

    /// Forgets a watcher, its items and its schedule; sealed as an `admin_change`.
    pub async fn remove_watcher(&self, tenant: &TenantId, id_or_name: &str, by: &str) -> Result<Watcher, WatcherError> {
        let watcher = self.find_watcher(tenant, id_or_name).await?;
        if let Some(schedule) = &watcher.schedule_id {
            self.store.delete_schedule(tenant, schedule).await?;
        }
        if !self.store.delete_watcher(tenant, &watcher.id).await? {
            return Err(WatcherError::NotFound { tenant: tenant.clone(), id: id_or_name.to_owned() });
        }
        self.watcher_change(tenant, &watcher, "watcher.remove", by).await?;
        Ok(watcher)
    }

    async fn find_watcher(&self, tenant: &TenantId, id_or_name: &str) -> Result<Watcher, WatcherError> {
        if let Some(watcher) = self.store.watcher(tenant, id_or_name).await? {
            return Ok(watcher);
        }
        self.store
            .watchers(tenant)
            .await?
            .into_iter()
            .find(|w| w.name == id_or_name)
            .ok_or_else(|| WatcherError::NotFound { tenant: tenant.clone(), id: id_or_name.to_owned() })
    }

    async fn watcher_change(&self, tenant: &TenantId, w: &Watcher, action: &str, by: &str) -> Result<(), LedgerError> {
        let payload = json!({
            "action": action, "watcher": w.id, "name": w.name, "kind": w.kind, "source": crate::plugins::masked_url(&w.url),
            "source_sha256": crate::keys::key_hash(&w.url), "selector": w.selector, "target": w.target.kind(),
            "summarise": w.summarise, "max_posts": w.max_posts, "schedule": w.schedule_id, "by": by,
        });
        self.ledger.append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(())
    }

    /// Polls a watcher now: fetches its source, records what is new (the first time without
    /// posting) and posts at most its cap of pending items. A source that cannot be read is
    /// recorded as the watcher's last error and returned as [`WatcherError::Source`].
    pub async fn poll_watcher(&self, tenant: &TenantId, id_or_name: &str) -> Result<PollReport, WatcherError> {
        let mut watcher = self.find_watcher(tenant, id_or_name).await?;
        let now = Timestamp::now();
        watcher.last_polled_at = Some(now);
        let fetched = match self.read_source(&watcher).await {
            Ok(fetched) => fetched,
            Err(reason) => {
                metrics::counter!("nexus_watcher_polls_total", "outcome" => "failed").increment(1);
                tracing::warn!(tenant = %tenant, watcher = %watcher.name, %reason, "a watcher could not read its source");
                watcher.last_error = Some(reason.clone());
                self.store.record_watcher_poll(&watcher).await?;
                return Err(WatcherError::Source(reason));
            }
        };
        watcher.last_error = None;
        let mut report = PollReport {
            watcher: watcher.id.clone(),
            outcome: "not_modified",
            found: 0,
            new: 0,
            posted: 0,
            failed: 0,
            waiting: 0,
        };
        if let Some(source) = fetched {
            watcher.etag = source.etag;
            watcher.last_modified = source.last_modified;
            report.found = source.items.len();
            let first = !watcher.seeded;
            let status = if first { ItemStatus::Seeded } else { ItemStatus::Pending };
            let items: Vec<WatchedItem> = source
                .items
                .into_iter()
                .enumerate()
                .map(|(at, item)| WatchedItem {
                    watcher_id: watcher.id.clone(),
                    key: item.key,
                    title: item.title,
                    link: item.link,
                    text: item.text,
                    digest: item.digest,
                    status,
                    attempts: 0,
                    detail: None,
                    // Oldest first: the order the source gave is kept within one poll.
                    found_at: Timestamp::from_micros(now.as_micros().saturating_add(at as i64)),
                    posted_at: None,
                })
                .collect();
            report.new = self.store.add_watched_items(tenant, &items).await?.len();
            report.outcome = if first { "seeded" } else { "polled" };
            watcher.seeded = true;
        }
        self.store.record_watcher_poll(&watcher).await?;
        metrics::counter!("nexus_watcher_polls_total", "outcome" => report.outcome).increment(1);

        let pending =
            self.store.watched_items(tenant, &watcher.id, Some(ItemStatus::Pending), true, watcher.max_posts).await?;
        for item in pending {
            match self.post_item(&watcher, item).await? {
                Some(true) => report.posted += 1,
                Some(false) => report.failed += 1,
                None => {}
            }
        }
        report.waiting = self.store.count_watched_items(tenant, &watcher.id, ItemStatus::Pending).await?;
        Ok(report)
    }

    /// The checked client watchers reach their sources and webhooks with (the operator's exact
    /// exceptions and timeout); `name` prefixes its errors.
    fn watcher_http(&self, name: &'static str) -> SafeHttp {
        let settings = &self.config.watchers;
        SafeHttp::new(
            name,
            AddressPolicy::operator_exceptions(settings.allow_addresses.iter().copied()),
            settings.timeout,
        )
    }

    /// Reads the watcher's source: `None` when it has not changed since the last poll.
    async fn read_source(&self, watcher: &Watcher) -> Result<Option<Source>, String> {
        let settings = &self.config.watchers;
        let http = self.watcher_http("watcher");
        let url = Url::parse(&watcher.url).map_err(|e| format!("the watcher's URL is not valid: {e}"))?;
        let accept = match watcher.kind {
            SourceKind::Feed => {
                "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.5"
            }
            SourceKind::Page => "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
        };
        let mut headers = vec![("accept", accept.to_owned())];
        for (name, value) in [("if-none-match", &watcher.etag), ("if-modified-since", &watcher.last_modified)] {
            if let Some(value) = value {
                headers.push((name, value.clone()));
            }
        }
        let fetched = http.get(url, &headers, settings.max_bytes).await.map_err(|e| e.to_string())?;
        if fetched.status == 304 {
            return Ok(None);
        }
        if !(200..300).contains(&fetched.status) {
            return Err(format!("the source answered {}", fetched.status));
        }
        let final_url = fetched.url.to_string();
        let items = match watcher.kind {
            SourceKind::Feed => {
                if fetched.truncated {
                    return Err(format!("the feed is larger than {} bytes", settings.max_bytes));
                }
                feeds::parse_feed(&fetched.body, &final_url).map_err(|e| e.to_string())?
            }
            SourceKind::Page => {
                let html = String::from_utf8_lossy(&fetched.body);
                vec![feeds::page_section(&html, watcher.selector.as_deref(), &final_url).map_err(|e| e.to_string())?]
            }
        };
        Ok(Some(Source {
            items,
            etag: fetched.header("etag").map(str::to_owned),
            last_modified: fetched.header("last-modified").map(str::to_owned),
        }))
    }

    /// Posts one pending item: `None` when another poller took it first, else whether it went.
    async fn post_item(&self, watcher: &Watcher, item: WatchedItem) -> Result<Option<bool>, WatcherError> {
        let tenant = &watcher.tenant_id;
        let mut taken = item.clone();
        taken.status = ItemStatus::Posting;
        if !self.store.move_watched_item(tenant, &taken, ItemStatus::Pending).await? {
            return Ok(None);
        }
        let outcome = self.send_post(watcher, &item).await;
        let mut done = taken.clone();
        match outcome {
            Ok((text, via, model)) => {
                done.status = ItemStatus::Posted;
                done.detail = Some(via.clone());
                done.posted_at = Some(Timestamp::now());
                self.store.move_watched_item(tenant, &done, ItemStatus::Posting).await?;
                let payload = json!({
                    "watcher": watcher.id, "name": watcher.name, "source": crate::plugins::masked_url(&watcher.url),
                    "source_sha256": crate::keys::key_hash(&watcher.url), "item": item.key, "link": item.link,
                    "digest": item.digest, "post_sha256": crate::keys::key_hash(&text), "target": watcher.target.kind(),
                    "via": via, "summarised_by": model, "tainted": true,
                    "taint": format!("content fetched from {}", crate::plugins::masked_url(&watcher.url)),
                });
                self.ledger.append(tenant, EntryDraft { kind: EntryKind::Watch, chain_id: None, payload }).await?;
                metrics::counter!("nexus_watcher_posts_total", "outcome" => "posted").increment(1);
                Ok(Some(true))
            }
            Err(reason) => {
                done.attempts = item.attempts.saturating_add(1);
                done.status = if done.attempts >= self.config.watchers.max_attempts {
                    ItemStatus::Failed
                } else {
                    ItemStatus::Pending
                };
                tracing::warn!(tenant = %tenant, watcher = %watcher.name, item = %item.key, %reason,
                    attempts = done.attempts, "a watcher could not post an item");
                done.detail = Some(reason);
                self.store.move_watched_item(tenant, &done, ItemStatus::Posting).await?;
                metrics::counter!("nexus_watcher_posts_total", "outcome" => "failed").increment(1);
                Ok(Some(false))
            }
        }
    }

    /// Makes the post's text and sends it: the text, where it went, and the model that
    /// summarised it (if one did).
    async fn send_post(
        &self,
        watcher: &Watcher,
        item: &WatchedItem,
    ) -> Result<(String, String, Option<String>), String> {
        let (body, model) = match &watcher.summarise {
            Some(tier) => {
                let (summary, model) = self.summarise_item(watcher, item, tier).await?;
                (summary, Some(model))
            }
            None => (item.text.clone(), None),
        };
        let text = post_text(item, &body);
        let via = match &watcher.target {
            PostTarget::Telegram { chat_id } => self.queue_post(watcher, Channel::Telegram, chat_id, &text).await?,
            PostTarget::Discord { channel_id } => self.queue_post(watcher, Channel::Discord, channel_id, &text).await?,
            PostTarget::Webhook { url } => {
                let url = Url::parse(url).map_err(|e| format!("the webhook URL is not valid: {e}"))?;
                let http = self.watcher_http("watcher webhook");
                let body = json!({
                    "watcher": watcher.name, "source": watcher.url, "key": item.key, "title": item.title,
                    "link": item.link, "text": text, "digest": item.digest, "summarised_by": model,
                });
                let status = http.post_json(&url, &body).await.map_err(|e| e.to_string())?;
                format!("webhook {status}")
            }
        };
        Ok((text, via, model))
    }

    /// Queues a post on a chat channel's durable send queue (one recipient, sent at most once
    /// by the process that runs the bot); returns the queue entry's id.
    async fn queue_post(&self, watcher: &Watcher, channel: Channel, chat: &str, text: &str) -> Result<String, String> {
        let now = Timestamp::now();
        let broadcast = Broadcast {
            id: crate::channels::new_broadcast_id(),
            tenant_id: watcher.tenant_id.clone(),
            channel,
            body: text.to_owned(),
            min_level: 0,
            created_by: format!("watcher:{}", watcher.id),
            notify_chat: None,
            created_at: now,
            finished_at: None,
        };
        let recipient = (format!("watcher:{}", watcher.id), chat.to_owned());
        self.store.insert_broadcast(&broadcast, &[recipient]).await.map_err(|e| e.to_string())?;
        Ok(broadcast.id)
    }

    /// A summary of an item by a tier model, recorded as any governed call (cost, budget,
    /// `model_call` entry) under `watcher:<id>`.
    async fn summarise_item(
        &self,
        watcher: &Watcher,
        item: &WatchedItem,
        tier: &str,
    ) -> Result<(String, String), String> {
        let caller = crate::llm::Caller {
            tenant: watcher.tenant_id.clone(),
            key_id: None,
            subject: Some(format!("watcher:{}", watcher.id)),
            durable: false,
        };
        let request = providers::ChatRequest {
            model: String::new(),
            system: Some(engine::prompts::WATCH_SUMMARY_SYSTEM.to_owned()),
            messages: vec![providers::Message::user(engine::prompts::watch_summary(item.title.as_deref(), &item.text))],
            tools: Vec::new(),
            max_tokens: 400,
            temperature: Some(0.2),
            stop: Vec::new(),
        };
        let (response, meta) = self
            .gateway_complete(&caller, &format!("nexus/{tier}"), request)
            .await
            .map_err(|e| format!("could not summarise on the {tier} tier: {e}"))?;
        let summary = response.content.trim().to_owned();
        if summary.is_empty() {
            return Err(format!("the {tier} tier answered an empty summary"));
        }
        Ok((summary, format!("{}/{}", meta.provider, meta.model)))
    }
}

/// What a source held.
struct Source {
    items: Vec<feeds::Item>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A post: the title, the body and the link, as Markdown.
fn post_text(item: &WatchedItem, body: &str) -> String {
    let mut text = String::new();
    if let Some(title) = &item.title {
        text.push_str(&format!("**{title}**\n\n"));
    }
    text.push_str(body.trim());
    if let Some(link) = &item.link {
        text.push_str(&format!("\n\n{link}"));
    }
    text
}

fn check_http_url(field: &str, text: &str) -> Result<String, WatcherError> {
    let url = Url::parse(text.trim()).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(field, "an http or https URL with a host"));
    }
    Ok(url.to_string())
}

fn check_target(target: PostTarget) -> Result<PostTarget, WatcherError> {
    Ok(match target {
        PostTarget::Telegram { chat_id } => {
            let chat_id = chat_id.trim().to_owned();
            if chat_id.parse::<i64>().is_err() {
                return Err(invalid(
                    "post_to.chat_id",
                    "a Telegram chat id is a number (groups and channels are negative)",
                ));
            }
            PostTarget::Telegram { chat_id }
        }
        PostTarget::Discord { channel_id } => {
            let channel_id = channel_id.trim().to_owned();
            if channel_id.is_empty() || channel_id.len() > 20 || !channel_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("post_to.channel_id", "a Discord channel id is a number (a snowflake)"));
            }
            PostTarget::Discord { channel_id }
        }
        PostTarget::Webhook { url } => PostTarget::Webhook { url: check_http_url("post_to.url", &url)? },
    })
}
