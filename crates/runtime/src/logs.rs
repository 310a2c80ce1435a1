//! The server's recent log lines, kept in memory for live views (the console's log tail): a
//! ring of the newest [`LogTail::CAPACITY`] lines, each numbered so a watcher resumes after the
//! last one it saw, and a live feed of new ones. Lines are redacted as they arrive
//! ([`redact`]): API keys, bearer tokens, provider keys, passwords in URLs and values of
//! secret-named fields never reach a watcher, whatever a log call wrote.
//!
//! The binary's logging layer pushes every line it emits here; the runtime only keeps them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use domain::Timestamp;
use tokio::sync::broadcast;

use crate::auth::lock;

/// How severe a line is, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug, LogLevel::Trace];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    pub fn parse(text: &str) -> Option<LogLevel> {
        LogLevel::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Numbered from 1 in the order lines arrived.
    pub seq: u64,
    pub at: Timestamp,
    pub level: LogLevel,
    /// Where it was logged (the module path).
    pub target: String,
    /// The tenant the line is about (its `tenant` field), if it names one.
    pub tenant: Option<String>,
    /// The message and its fields (`key=value`), redacted.
    pub text: String,
}

impl LogLine {
    /// Whether a person of `tenant` may see the line: it names no tenant, or theirs.
    pub fn visible_to(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    /// Whether the line is at least as severe as `level` and contains `text` (any case).
    pub fn matches(&self, level: LogLevel, text: &str) -> bool {
        self.level <= level
            && (text.is_empty()
                || self.text.to_lowercase().contains(&text.to_lowercase())
                || self.target.to_lowercase().contains(&text.to_lowercase()))
    }
}

#[derive(Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    last: u64,
}

/// The newest log lines of this process and a live feed of new ones.
pub struct LogTail {
    ring: Mutex<Ring>,
    live: broadcast::Sender<LogLine>,
}

impl Default for LogTail {
    fn default() -> Self {
        Self { ring: Mutex::default(), live: broadcast::channel(1024).0 }
    }
}

impl LogTail {
    /// Lines kept.
    pub const CAPACITY: usize = 5000;

    /// Keeps a line (redacted) and sends it to watchers.
    pub fn push(&self, level: LogLevel, target: &str, tenant: Option<&str>, text: &str) {
        let mut ring = lock(&self.ring);
        ring.last += 1;
        let line = LogLine {
            seq: ring.last,
            at: Timestamp::now(),
            level,
            target: target.to_owned(),
            tenant: tenant.map(str::to_owned),
            text: redact(text),
        };
        if ring.lines.len() == Self::CAPACITY {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line.clone());
        // No watcher is normal.
        let _ = self.live.send(line);
    }

    /// Every line after `after` (all kept ones when `None`), oldest first, then live ones as
    /// they come; a watcher that falls behind the live feed reads what it missed from the ring.
    pub fn follow(self: &Arc<Self>, after: Option<u64>) -> LogFollow {
        let (backlog, live) = self.attach(after);
        LogFollow { backlog: backlog.into_iter(), live, last: after.unwrap_or(0), tail: self.clone() }
    }

    /// The kept lines after `after` (all when `None`), oldest first, and the live feed from
    /// that moment, so nothing falls between them.
    pub fn attach(&self, after: Option<u64>) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let ring = lock(&self.ring);
        let kept = ring.lines.iter().filter(|l| after.is_none_or(|a| l.seq > a)).cloned().collect();
        (kept, self.live.subscribe())
    }
}

/// A reader of the log tail from a point on (see [`LogTail::follow`]).
pub struct LogFollow {
    backlog: std::vec::IntoIter<LogLine>,
    live: broadcast::Receiver<LogLine>,
    last: u64,
    tail: Arc<LogTail>,
}

impl LogFollow {
    /// The next line, in order and never twice; `None` when the tail is gone.
    pub async fn next(&mut self) -> Option<LogLine> {
        loop {
            let line = match self.backlog.next() {
                Some(line) => line,
                None => match self.live.recv().await {
                    Ok(line) => line,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (missed, live) = self.tail.attach(Some(self.last));
                        self.backlog = missed.into_iter();
                        self.live = live;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if line.seq <= self.last {
                continue;
            }
            self.last = line.seq;
            return Some(line);
        }
    }
}

/// Secret-named fields whose values are masked (`password=…`, `"api_key": …`).
const SECRET_NAMES: &[&str] =
    &["password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "cookie", "x-api-key"];
/// Prefixes of credentials masked wherever they appear: Nexus API keys, provider keys.
const SECRET_PREFIXES: &[&str] = &["nxs_", "sk-", "xoxb-", "ghp_", "AKIA"];

/// `text` with credentials masked as `[redacted]`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // Credentials in URLs: `scheme://user:password@host`.
        if let Some(after) = rest.strip_prefix("://")
            && let Some(at) = after.find('@')
            && let Some(colon) = after[..at].find(':')
            && !after[..at].contains(['/', ' ', '"'])
        {
            out.push_str("://");
            out.push_str(&after[..=colon]);
            out.push_str("[redacted]");
            rest = &after[at..];
            continue;
        }
        let word_start = out.chars().last().is_none_or(|c| !is_token_char(c));
        if word_start && let Some(len) = secret_at(rest) {
            out.push_str("[redacted]");
            rest = &rest[len..];
            continue;
        }
        if let Some(len) = named_value_at(rest, &mut out) {
            rest = &rest[len..];
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=')
}

/// The length of a credential starting here (a known prefix, or a `Bearer` token).
fn secret_at(text: &str) -> Option<usize> {
    let token_len = |from: usize| from + text[from..].find(|c: char| !is_token_char(c)).unwrap_or(text.len() - from);
    for prefix in SECRET_PREFIXES {
        if text.starts_with(prefix) && token_len(prefix.len()) >= prefix.len() + 8 {
            return Some(token_len(prefix.len()));
        }
    }
    for bearer in ["Bearer ", "bearer "] {
        if text.starts_with(bearer) && token_len(bearer.len()) > bearer.len() {
            return Some(token_len(bearer.len()));
        }
    }
    None
}

/// At a secret-named field (`password=x`, `"token": "x"`, `api_key: x`): writes the name and
/// separator with the value masked and returns how much of `text` that covered.
fn named_value_at(text: &str, out: &mut String) -> Option<usize> {
    let starts_word = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
    if !starts_word {
        return None;
    }
    let lower = text.get(..32.min(text.len())).unwrap_or(text).to_ascii_lowercase();
    let name = SECRET_NAMES.iter().find(|n| lower.starts_with(*n))?;
    let mut i = name.len();
    // The name may end in more letters (`password_hash`, `tokens`): only exact names count.
    if text[i..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let bytes = text.as_bytes();
    if bytes.get(i) == Some(&b'"') {
        i += 1;
    }
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    if !matches!(bytes.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    let quoted = bytes.get(i) == Some(&b'"');
    let value_start = if quoted { i + 1 } else { i };
    // `Authorization: Bearer x`: the scheme and its credentials are one value.
    let scheme = ["Bearer ", "Basic ", "Token ", "bearer ", "basic "]
        .iter()
        .find(|s| text[value_start..].starts_with(*s))
        .map_or(0, |s| s.len());
    let value_end = if quoted {
        text[value_start..].find('"').map_or(text.len(), |e| value_start + e)
    } else {
        let from = value_start + scheme;
        text[from..].find([' ', ',', ';', '}', '&']).map_or(text.len(), |e| from + e)
    };
    if value_end == value_start {
        return None;
    }
    out.push_str(&text[..value_start]);
    out.push_str("[redacted]");
    Some(value_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_wherever_they_appear() {
        let cases = [
            ("key nxs_AbCdEf0123456789xyz used", "key [redacted] used"),
            ("Authorization: Bearer abc.def-ghi", "Authorization: [redacted]"),
            ("calling with sk-ant-api03-abcdefghijkl ok", "calling with [redacted] ok"),
            ("postgres://nexus:hunter2@db:5432/nexus", "postgres://nexus:[redacted]@db:5432/nexus"),
            ("password=hunter2 user=ada", "password=[redacted] user=ada"),
            (r#"{"api_key": "abc123", "model": "x"}"#, r#"{"api_key": "[redacted]", "model": "x"}"#),
            ("token: t0k3n, next", "token: [redacted], next"),
        ];
        for (raw, shown) in cases {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "tokens=57 input_tokens=12",
            "password_hash rotated for user 7",
            "risk-free asking about sk-",
            "listening on http://127.0.0.1:8080",
            "città è più bella",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_numbered_and_resumes_after_one() {
        let tail = LogTail::default();
        for i in 0..(LogTail::CAPACITY + 3) {
            tail.push(LogLevel::Info, "nexus", None, &format!("line {i}"));
        }
        let (all, _) = tail.attach(None);
        assert_eq!(all.len(), LogTail::CAPACITY);
        assert_eq!(all[0].seq, 4, "the oldest were forgotten");
        let (after, mut live) = tail.attach(Some(all[all.len() - 2].seq));
        assert_eq!(after.len(), 1);
        tail.push(LogLevel::Warn, "nexus::serve", Some("acme"), "careful");
        let next = live.try_recv().expect("live");
        assert_eq!((next.seq, next.level), (LogTail::CAPACITY as u64 + 4, LogLevel::Warn));
        assert!(next.matches(LogLevel::Info, "CAREFUL") && !next.matches(LogLevel::Error, ""));
        assert!(next.visible_to("acme") && !next.visible_to("other") && all[0].visible_to("other"));
    }
}
