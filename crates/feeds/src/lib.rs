//! What watchers read, parsed into items: the entries of an RSS, Atom or JSON feed, or the part
//! of a web page a CSS selector picks. Pure (no I/O): bytes in, items out.
//!
//! Every item gets a key that depends only on the item, so a poller that restarts, or another
//! replica, finds the same key for the same item: `id:<guid>` when the feed gives one, else
//! `link:<canonical link>` (host lower-cased, tracking parameters, fragment and trailing slash
//! dropped, query sorted), else `sha256:<hash of the title and text>`. Never a random id: a feed
//! without ids must not look new on every poll. A page section's key is the hash of its text,
//! so each new version of the section is a new item and an unchanged one is not.

use sha2::{Digest as _, Sha256};

/// The most characters of text an item keeps.
pub const MAX_TEXT_CHARS: usize = 4_000;

/// Query parameters that only track who clicked.
const TRACKING: &[&str] = &["fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "ref_src"];

/// Elements whose content is never text for a reader.
const SKIPPED: &[&str] = &["script", "style", "noscript", "template", "svg", "head", "iframe", "object"];

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("not a feed (RSS, Atom or JSON Feed): {0}")]
    NotAFeed(String),
    #[error("the CSS selector {selector:?} is not valid: {reason}")]
    BadSelector { selector: String, reason: String },
    #[error("the CSS selector {0:?} matched nothing on the page")]
    NothingSelected(String),
    #[error("the page has no text to watch")]
    EmptyPage,
}

/// One item a source holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `id:…`, `link:…` or `sha256:…` (see the module's documentation).
    pub key: String,
    pub title: Option<String>,
    pub link: Option<String>,
    /// Plain text, at most [`MAX_TEXT_CHARS`] characters.
    pub text: String,
    /// SHA-256 (hex) of the title, link and text, one per line.
    pub digest: String,
}

impl Item {
    fn new(key: String, title: Option<String>, link: Option<String>, text: String) -> Self {
        let digest = sha256_hex(
            format!("{}\n{}\n{}", title.as_deref().unwrap_or(""), link.as_deref().unwrap_or(""), text).as_bytes(),
        );
        Self { key, title, link, text, digest }
    }
}

/// A feed's entries as items, oldest first (by date when every entry has one, else the reverse
/// of the document's order, as feeds list the newest first). Relative links are resolved
/// against `base`.
pub fn parse_feed(bytes: &[u8], base: &str) -> Result<Vec<Item>, FeedError> {
    // An entry without an id gets an empty one, never feed-rs's generated or random one: the
    // key is ours to derive.
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(base))
        .sanitize_content(false)
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser.parse(bytes).map_err(|e| FeedError::NotAFeed(e.to_string()))?;
    let dated = feed.entries.iter().all(|e| e.published.or(e.updated).is_some());
    let mut entries: Vec<(Option<i64>, Item)> = feed
        .entries
        .iter()
        .map(|entry| {
            let title = entry.title.as_ref().map(|t| collapse(&fragment_text(&t.content))).filter(|t| !t.is_empty());
            let link = entry
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or(entry.links.first())
                .map(|l| resolve(base, l.href.trim()));
            let body = entry
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .or_else(|| entry.summary.as_ref().map(|s| s.content.clone()))
                .unwrap_or_default();
            let text = cap(&collapse(&fragment_text(&body)));
            let id = entry.id.trim();
            let key = if !id.is_empty() {
                format!("id:{id}")
            } else if let Some(canonical) = link.as_deref().and_then(canonical_link) {
                format!("link:{canonical}")
            } else {
                format!("sha256:{}", sha256_hex(format!("{}\n{text}", title.as_deref().unwrap_or("")).as_bytes()))
            };
            let at = entry.published.or(entry.updated).map(|t| t.timestamp_micros());
            (at, Item::new(key, title, link, text))
        })
        .collect();
    if dated {
        // Stable: entries of the same instant keep the reverse document order below.
        entries.reverse();
        entries.sort_by_key(|(at, _)| *at);
    } else {
        entries.reverse();
    }
    let mut seen = std::collections::HashSet::new();
    Ok(entries.into_iter().map(|(_, item)| item).filter(|item| seen.insert(item.key.clone())).collect())
}

/// Checks a CSS selector without a page.
pub fn check_selector(selector: &str) -> Result<(), FeedError> {
    parse_selector(selector).map(|_| ())
}

/// The watched part of a page as one item: the text of every element `selector` matches (the
/// whole body without one), keyed by its hash. The title is the page's `<title>`, the link
/// `url`.
pub fn page_section(html: &str, selector: Option<&str>, url: &str) -> Result<Item, FeedError> {
    let document = scraper::Html::parse_document(html);
    let text = match selector.map(str::trim).filter(|s| !s.is_empty()) {
        Some(selector) => {
            let parsed = parse_selector(selector)?;
            let parts: Vec<String> = document.select(&parsed).map(|e| element_text(e)).collect();
            if parts.is_empty() {
                return Err(FeedError::NothingSelected(selector.to_owned()));
            }
            parts.join("\n")
        }
        None => {
            let body = parse_selector("body")?;
            document.select(&body).map(|e| element_text(e)).collect::<Vec<_>>().join("\n")
        }
    };
    let text = cap(&collapse(&text));
    if text.is_empty() {
        return Err(FeedError::EmptyPage);
    }
    let title = parse_selector("title")
        .ok()
        .and_then(|s| document.select(&s).next().map(|e| collapse(&e.text().collect::<String>())))
        .filter(|t| !t.is_empty());
    let key = format!("sha256:{}", sha256_hex(text.as_bytes()));
    Ok(Item::new(key, title, Some(url.to_owned()), text))
}

/// A link in canonical form, for keys: http(s) only, host lower-cased (the `url` crate does
/// that), fragment, tracking parameters (`utm_*` and the click ids) and a trailing slash
/// dropped, the remaining query sorted. `None` for anything that is not an absolute http(s) URL.
pub fn canonical_link(link: &str) -> Option<String> {
    let mut url = url::Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    let path = url.path().to_owned();
    if path.len() > 1 && path.ends_with('/') {
        url.set_path(path.trim_end_matches('/'));
    }
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("utm_") && !TRACKING.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let mut text = url.to_string();
    if url.query().is_none() && text.ends_with('/') {
        text.pop();
    }
    Some(text)
}

fn parse_selector(selector: &str) -> Result<scraper::Selector, FeedError> {
    scraper::Selector::parse(selector)
        .map_err(|e| FeedError::BadSelector { selector: selector.to_owned(), reason: e.to_string() })
}

/// `href` resolved against `base` (as it is when either is not a URL).
fn resolve(base: &str, href: &str) -> String {
    url::Url::parse(base).and_then(|b| b.join(href)).map(|u| u.to_string()).unwrap_or_else(|_| href.to_owned())
}

/// The text of an HTML fragment (plain text comes through as it is).
fn fragment_text(html: &str) -> String {
    if !html.contains('<') && !html.contains('&') {
        return html.to_owned();
    }
    let fragment = scraper::Html::parse_fragment(html);
    element_text(fragment.root_element())
}

/// The text under an element, skipping scripts and styles, blocks on their own lines.
fn element_text(element: scraper::ElementRef<'_>) -> String {
    let mut out = String::new();
    for edge in element.traverse() {
        let ego_tree::iter::Edge::Open(node) = edge else { continue };
        if node.ancestors().filter_map(scraper::ElementRef::wrap).any(|a| SKIPPED.contains(&a.value().name())) {
            continue;
        }
        match node.value() {
            scraper::Node::Text(text) => out.push_str(text),
            scraper::Node::Element(e) if matches!(e.name(), "p" | "br" | "li" | "div" | "h1" | "h2" | "h3" | "tr") => {
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Whitespace collapsed within lines, blank lines dropped.
fn collapse(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn cap(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
