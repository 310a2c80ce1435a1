//! Feeds and page sections parsed into items: keys that survive a re-parse (guid, else the
//! canonical link, else a content hash — never random), oldest first, text without markup, and
//! a page section keyed by its text.

use feeds::{FeedError, canonical_link, check_selector, page_section, parse_feed};

const RSS_WITHOUT_GUIDS: &str = r#"<?xml version="1.0"?>
<rss version="2.0"><channel><title>News</title><link>https://example.org/</link>
  <item><title>Third</title><link>https://Example.org/posts/3/?utm_source=x&amp;b=2&amp;a=1#top</link>
    <description>&lt;p&gt;Three &lt;b&gt;bold&lt;/b&gt;&lt;/p&gt;&lt;script&gt;evil()&lt;/script&gt;</description></item>
  <item><title>Second</title><link>/posts/2</link><description>Two</description></item>
  <item><title>First, no link</title><description>One</description></item>
</channel></rss>"#;

const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:blog</id><updated>2026-12-01T10:00:00Z</updated>
  <entry><id>urn:post:b</id><title>Later</title><link href="https://example.org/b"/><updated>2026-12-01T10:00:00Z</updated><summary>B</summary></entry>
  <entry><id>urn:post:a</id><title>Earlier</title><link href="https://example.org/a"/><updated>2026-11-30T10:00:00Z</updated><content type="html">&lt;p&gt;A&lt;/p&gt;</content></entry>
</feed>"#;

const JSON_FEED: &str = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "J",
  "items": [{"id": "2", "content_text": "two", "url": "https://example.org/j/2"},
            {"id": "1", "content_html": "<p>one</p>", "url": "https://example.org/j/1"}]}"#;

#[test]
fn a_feed_without_guids_gets_the_same_keys_on_every_parse() {
    let first = parse_feed(RSS_WITHOUT_GUIDS.as_bytes(), "https://example.org/feed.xml").expect("parse");
    let again = parse_feed(RSS_WITHOUT_GUIDS.as_bytes(), "https://example.org/feed.xml").expect("parse");
    assert_eq!(first, again);
    let keys: Vec<&str> = first.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys[1], "link:https://example.org/posts/2", "relative links resolved");
    assert_eq!(keys[2], "link:https://example.org/posts/3?a=1&b=2", "canonical: host, tracking, fragment, order");
    assert!(keys[0].starts_with("sha256:") && keys[0].len() == 7 + 64, "{keys:?}");
    assert_eq!(first[0].title.as_deref(), Some("First, no link"), "oldest (last listed) first");
    assert_eq!(first[2].text, "Three bold", "markup and scripts dropped");
    assert_eq!(first[2].digest.len(), 64);
}

#[test]
fn atom_and_json_feeds_key_on_their_ids_oldest_first() {
    let atom = parse_feed(ATOM.as_bytes(), "https://example.org/atom").expect("atom");
    assert_eq!(atom.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["id:urn:post:a", "id:urn:post:b"]);
    assert_eq!(atom[0].text, "A");
    assert_eq!(atom[0].link.as_deref(), Some("https://example.org/a"));
    let json = parse_feed(JSON_FEED.as_bytes(), "https://example.org/j.json").expect("json");
    assert_eq!(json.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["id:1", "id:2"]);
    assert_eq!(json[0].text, "one");
}

#[test]
fn an_edited_entry_keeps_its_key_but_not_its_digest() {
    let edited = ATOM.replace("<summary>B</summary>", "<summary>B, corrected</summary>");
    let before = parse_feed(ATOM.as_bytes(), "https://example.org/atom").expect("atom");
    let after = parse_feed(edited.as_bytes(), "https://example.org/atom").expect("atom");
    assert_eq!(before[1].key, after[1].key);
    assert_ne!(before[1].digest, after[1].digest);
}

#[test]
fn what_is_not_a_feed_is_an_error() {
    assert!(matches!(parse_feed(b"<html><body>hi</body></html>", "https://e.org"), Err(FeedError::NotAFeed(_))));
    assert!(matches!(parse_feed(b"", "https://e.org"), Err(FeedError::NotAFeed(_))));
}

#[test]
fn a_page_section_is_keyed_by_its_text() {
    let page = |price: &str| {
        format!(
            "<html><head><title> Shop </title><style>.x{{}}</style></head><body><nav>Menu</nav>\
             <div id=\"price\"><span>Price:</span> <b>{price}</b></div><footer>{}</footer></body></html>",
            "changing footer"
        )
    };
    let one = page_section(&page("10 EUR"), Some("#price"), "https://example.org/shop").expect("section");
    assert_eq!(one.text, "Price: 10 EUR");
    assert_eq!(one.title.as_deref(), Some("Shop"));
    assert_eq!(one.link.as_deref(), Some("https://example.org/shop"));
    let same = page_section(&page("10 EUR").replace("changing footer", "new footer"), Some("#price"), "u").expect("s");
    assert_eq!(one.key, same.key, "a change outside the section is not a change");
    let two = page_section(&page("12 EUR"), Some("#price"), "u").expect("section");
    assert_ne!(one.key, two.key);
    let whole = page_section(&page("10 EUR"), None, "u").expect("whole body");
    assert!(whole.text.contains("Menu") && !whole.text.contains(".x"), "{}", whole.text);
    assert_eq!(page_section(&page("1"), Some("#missing"), "u"), Err(FeedError::NothingSelected("#missing".into())));
    assert!(matches!(check_selector("div[["), Err(FeedError::BadSelector { .. })));
    assert!(check_selector("main article > h2").is_ok());
}

#[test]
fn canonical_links() {
    assert_eq!(
        canonical_link("HTTPS://Example.ORG/a/?utm_medium=x&fbclid=1#f").as_deref(),
        Some("https://example.org/a")
    );
    assert_eq!(canonical_link("https://example.org/").as_deref(), Some("https://example.org"));
    assert_eq!(canonical_link("https://example.org/?b=1&a=2").as_deref(), Some("https://example.org/?a=2&b=1"));
    assert_eq!(canonical_link("mailto:x@example.org"), None);
    assert_eq!(canonical_link("/relative"), None);
}
