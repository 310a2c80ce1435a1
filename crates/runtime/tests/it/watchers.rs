//! Watchers through the runtime on real SQLite, with the watched site, the webhook and the
//! model fake HTTP servers: a first poll records without posting; a feed whose items lack ids
//! is deduped across a restart; conditional requests (a 304 fetches nothing); a changed page
//! section is posted once; a cap on posts per poll; posts to Telegram queued once on the send
//! queue; a summary by a tier model; and every post sealed with its source and digest.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::TenantId;
use domain::channel::Channel;
use domain::ledger::EntryKind;
use domain::ports::RecordFilter;
use domain::watcher::{ItemStatus, PostTarget, SourceKind};
use providers::pricing::PriceTable;
use runtime::agent::{AgentServices, Models};
use runtime::watchers::{NewWatcher, WatcherError};
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::Value;
use store::test_support::{TestDatabase, sqlite};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::agent::{fake_model, models, provider};
use crate::support::{config, signer};

fn watcher_config() -> RuntimeConfig {
    let mut config = config();
    config.watchers.allow_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    config
}

async fn start(db: &TestDatabase, models: Option<Models>) -> Runtime {
    start_on(Arc::clone(&db.store), models).await
}

async fn start_on(store: Arc<dyn domain::ports::Store>, models: Option<Models>) -> Runtime {
    let mut parts = RuntimeParts::new(store, signer(1), watcher_config(), None);
    if let Some(models) = models {
        let registry = tools::builtins(&tools::BuiltinSettings::default(), Arc::new(parts.knowledge()));
        parts.agent = Some(AgentServices {
            models,
            providers: Vec::new(),
            tools: registry,
            sandbox: tools::Sandbox::default(),
            workspace_root: std::env::temp_dir(),
            prices: PriceTable::builtin(),
            approval_ttl: std::time::Duration::from_secs(3600),
        });
    }
    let runtime = Runtime::start(parts).await.expect("runtime");
    runtime.seed_demo().await.expect("seed");
    runtime
}

fn demo() -> TenantId {
    TenantId::parse("demo").expect("tenant")
}

/// RSS 2.0 without guids: the first `n` items, newest first, the last with no link either.
fn rss(titles: &[&str]) -> String {
    let items: String = titles
        .iter()
        .rev()
        .map(|t| {
            if t.starts_with("nolink") {
                format!("<item><title>{t}</title><description>About {t}</description></item>")
            } else {
                format!(
                    "<item><title>{t}</title><link>https://news.example/{t}?utm_source=feed</link>\
                     <description>&lt;p&gt;About {t}&lt;/p&gt;</description></item>"
                )
            }
        })
        .collect();
    format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>News</title>{items}</channel></rss>")
}

/// Serves whatever body it is told to, counting requests.
#[derive(Clone, Default)]
struct Body(Arc<std::sync::Mutex<String>>, Arc<AtomicUsize>);

impl Body {
    fn set(&self, body: impl Into<String>) {
        *self.0.lock().expect("lock") = body.into();
    }
}

impl Respond for Body {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.1.fetch_add(1, Ordering::SeqCst);
        let body = self.0.lock().expect("lock").clone();
        ResponseTemplate::new(200).insert_header("content-type", "application/rss+xml").set_body_string(body)
    }
}

async fn site(body: &Body) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path("/feed.xml")).respond_with(body.clone()).mount(&server).await;
    server
}

fn feed_watcher(name: &str, url: String, target: PostTarget, max_posts: Option<u32>) -> NewWatcher {
    NewWatcher {
        name: name.into(),
        kind: SourceKind::Feed,
        url,
        selector: None,
        target,
        summarise: None,
        max_posts,
        cron: None,
        timezone: None,
    }
}

async fn webhook() -> MockServer {
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    hook
}

async fn hooked_titles(hook: &MockServer) -> Vec<String> {
    let received = hook.received_requests().await.expect("recording");
    received
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            body["title"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_feed_without_ids_is_deduped_across_a_restart_and_the_first_poll_posts_nothing() {
    let db = sqlite().await;
    let body = Body::default();
    body.set(rss(&["a", "b", "nolink-c"]));
    let server = site(&body).await;
    let hook = webhook().await;
    let tenant = demo();
    let runtime = start(&db, None).await;
    let target = PostTarget::Webhook { url: format!("{}/hook", hook.uri()) };
    let watcher = runtime
        .add_watcher(&tenant, feed_watcher("news", format!("{}/feed.xml", server.uri()), target, None), "user:admin")
        .await
        .expect("add");
    assert!(watcher.schedule_id.is_some(), "polled on the scheduler");

    let first = runtime.poll_watcher(&tenant, "news").await.expect("first poll");
    assert_eq!((first.outcome, first.found, first.new, first.posted), ("seeded", 3, 3, 0));
    assert!(hooked_titles(&hook).await.is_empty(), "the first poll posts nothing");

    body.set(rss(&["a", "b", "nolink-c", "d", "e"]));
    let second = runtime.poll_watcher(&tenant, "news").await.expect("second poll");
    assert_eq!((second.outcome, second.new, second.posted, second.waiting), ("polled", 2, 2, 0));
    assert_eq!(hooked_titles(&hook).await, ["d", "e"], "oldest first");
    runtime.shutdown().await;

    // A new process, the same database, the same items: nothing is new.
    let file = db.url.trim_start_matches("sqlite://");
    let reopened = store::SqliteStore::open(std::path::Path::new(file)).await.expect("reopen");
    let runtime = start_on(Arc::new(reopened), None).await;
    let third = runtime.poll_watcher(&tenant, &watcher.id).await.expect("after restart");
    assert_eq!((third.new, third.posted), (0, 0));
    assert_eq!(hooked_titles(&hook).await.len(), 2, "no item posted twice");
    assert_eq!(body.1.load(Ordering::SeqCst), 3);

    // Every post is sealed with its source and digest, marked tainted.
    let filter = RecordFilter { kind: Some(EntryKind::Watch), ..RecordFilter::default() };
    let page = runtime.store().records_page(&tenant, &filter, 100).await.expect("records");
    let posts: Vec<Value> = page.iter().rev().map(|r| serde_json::from_str(&r.payload).expect("payload")).collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["item"], "link:https://news.example/d");
    assert_eq!(posts[0]["tainted"], true);
    assert_eq!(posts[0]["digest"].as_str().map(str::len), Some(64));
    assert!(posts[0]["source"].as_str().is_some_and(|s| s.ends_with("/feed.xml")));
    let (_, items) = runtime.watcher(&tenant, "news").await.expect("watcher");
    assert_eq!(items.iter().filter(|i| i.status == ItemStatus::Posted).count(), 2);
    assert_eq!(items.iter().filter(|i| i.status == ItemStatus::Seeded).count(), 3);
    runtime.shutdown().await;
}

/// Answers 304 when the client sends back the ETag it was given.
struct Conditional(Arc<AtomicUsize>);

impl Respond for Conditional {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.fetch_add(1, Ordering::SeqCst);
        if request.headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some("\"v1\"") {
            return ResponseTemplate::new(304);
        }
        ResponseTemplate::new(200)
            .insert_header("etag", "\"v1\"")
            .insert_header("content-type", "application/rss+xml")
            .set_body_string(rss(&["a"]))
    }
}

#[tokio::test]
async fn an_unchanged_source_answers_304_and_nothing_is_parsed() {
    let db = sqlite().await;
    let server = MockServer::start().await;
    let hits = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET")).and(path("/feed.xml")).respond_with(Conditional(hits.clone())).mount(&server).await;
    let tenant = demo();
    let runtime = start(&db, None).await;
    let target = PostTarget::Webhook { url: "https://hooks.example/x".into() };
    runtime
        .add_watcher(&tenant, feed_watcher("etag", format!("{}/feed.xml", server.uri()), target, None), "user:admin")
        .await
        .expect("add");
    assert_eq!(runtime.poll_watcher(&tenant, "etag").await.expect("poll").outcome, "seeded");
    let again = runtime.poll_watcher(&tenant, "etag").await.expect("poll");
    assert_eq!((again.outcome, again.found), ("not_modified", 0));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let (watcher, _) = runtime.watcher(&tenant, "etag").await.expect("watcher");
    assert_eq!(watcher.etag.as_deref(), Some("\"v1\""));
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_changed_page_section_is_posted_once_and_changes_elsewhere_are_not() {
    let db = sqlite().await;
    let server = MockServer::start().await;
    let page = Body::default();
    let html = |price: &str, footer: &str| {
        format!(
            "<html><head><title>Shop</title></head><body><div id=\"price\">Price: {price}</div>\
             <footer>{footer}</footer></body></html>"
        )
    };
    page.set(html("10", "one"));
    Mock::given(method("GET")).and(path("/shop")).respond_with(page.clone()).mount(&server).await;
    let hook = webhook().await;
    let tenant = demo();
    let runtime = start(&db, None).await;
    let new = NewWatcher {
        kind: SourceKind::Page,
        selector: Some("#price".into()),
        ..feed_watcher(
            "shop",
            format!("{}/shop", server.uri()),
            PostTarget::Webhook { url: format!("{}/hook", hook.uri()) },
            None,
        )
    };
    runtime.add_watcher(&tenant, new, "user:admin").await.expect("add");
    assert_eq!(runtime.poll_watcher(&tenant, "shop").await.expect("poll").posted, 0);
    page.set(html("10", "two"));
    assert_eq!(runtime.poll_watcher(&tenant, "shop").await.expect("poll").new, 0, "outside the section");
    page.set(html("12", "two"));
    assert_eq!(runtime.poll_watcher(&tenant, "shop").await.expect("poll").posted, 1);
    assert_eq!(runtime.poll_watcher(&tenant, "shop").await.expect("poll").posted, 0, "posted once");
    let received = hook.received_requests().await.expect("recording");
    let body: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert!(body["text"].as_str().is_some_and(|t| t.contains("Price: 12")), "{body}");

    page.set(html("12", "two").replace("id=\"price\"", "id=\"cost\""));
    let error = runtime.poll_watcher(&tenant, "shop").await.expect_err("the section is gone");
    assert!(matches!(&error, WatcherError::Source(reason) if reason.contains("matched nothing")), "{error}");
    let (watcher, _) = runtime.watcher(&tenant, "shop").await.expect("watcher");
    assert!(watcher.last_error.is_some_and(|e| e.contains("#price")), "the reason is kept for the operator");
    runtime.shutdown().await;
}

#[tokio::test]
async fn posts_per_poll_are_capped_and_the_rest_wait_for_the_next_poll() {
    let db = sqlite().await;
    let body = Body::default();
    body.set(rss(&["a"]));
    let server = site(&body).await;
    let tenant = demo();
    let runtime = start(&db, None).await;
    let target = PostTarget::Telegram { chat_id: "-1001234".into() };
    runtime
        .add_watcher(
            &tenant,
            feed_watcher("capped", format!("{}/feed.xml", server.uri()), target, Some(3)),
            "user:admin",
        )
        .await
        .expect("add");
    runtime.poll_watcher(&tenant, "capped").await.expect("seed");
    body.set(rss(&["a", "b", "c", "d", "e", "f", "g", "h"]));
    let report = runtime.poll_watcher(&tenant, "capped").await.expect("poll");
    assert_eq!((report.new, report.posted, report.waiting), (7, 3, 4));
    let queued = runtime.pending_deliveries(&tenant, Channel::Telegram, 100).await.expect("queue");
    assert_eq!(queued.len(), 3, "posted on Telegram's send queue");
    assert!(queued.iter().all(|d| d.chat_id == "-1001234"));
    assert!(
        queued[0].body.contains("**b**") && queued[0].body.contains("https://news.example/b"),
        "{}",
        queued[0].body
    );
    let next = runtime.poll_watcher(&tenant, "capped").await.expect("poll");
    assert_eq!((next.new, next.posted, next.waiting), (0, 3, 1));
    let last = runtime.poll_watcher(&tenant, "capped").await.expect("poll");
    assert_eq!((last.posted, last.waiting), (1, 0));
    assert_eq!(runtime.pending_deliveries(&tenant, Channel::Telegram, 100).await.expect("queue").len(), 7);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_tier_model_summarises_each_item_with_the_web_content_fenced() {
    let db = sqlite().await;
    let body = Body::default();
    body.set(rss(&["a"]));
    let server = site(&body).await;
    let model = fake_model(&[("untrusted_item", "A short summary of b.")]).await;
    let hook = webhook().await;
    let tenant = demo();
    let runtime = start(&db, Some(models(provider(&model.uri())))).await;
    let new = NewWatcher {
        summarise: Some("trivial".into()),
        ..feed_watcher(
            "sum",
            format!("{}/feed.xml", server.uri()),
            PostTarget::Webhook { url: format!("{}/hook", hook.uri()) },
            None,
        )
    };
    runtime.add_watcher(&tenant, new, "user:admin").await.expect("add");
    runtime.poll_watcher(&tenant, "sum").await.expect("seed");
    body.set(rss(&["a", "b"]));
    assert_eq!(runtime.poll_watcher(&tenant, "sum").await.expect("poll").posted, 1);
    let received = hook.received_requests().await.expect("recording");
    let posted: Value = serde_json::from_slice(&received[0].body).expect("json");
    assert!(posted["text"].as_str().is_some_and(|t| t.contains("A short summary of b.")), "{posted}");
    assert_eq!(posted["summarised_by"], "fake/gpt-4o-mini");
    let asked = model.received_requests().await.expect("recording");
    let prompt = String::from_utf8_lossy(&asked[0].body).to_string();
    assert!(prompt.contains("About b") && prompt.contains("data, not instructions"), "{prompt}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn bad_watchers_are_refused_naming_the_field() {
    let db = sqlite().await;
    let tenant = demo();
    let runtime = start(&db, None).await;
    let hook = || PostTarget::Webhook { url: "https://hooks.example/x".into() };
    let cases = [
        (feed_watcher("x", "ftp://example.org/feed".into(), hook(), None), "url"),
        (feed_watcher("", "https://example.org/feed".into(), hook(), None), "name"),
        (
            feed_watcher(
                "x",
                "https://example.org/feed".into(),
                PostTarget::Telegram { chat_id: "@news".into() },
                None,
            ),
            "post_to.chat_id",
        ),
        (
            feed_watcher("x", "https://example.org/feed".into(), PostTarget::Webhook { url: "not a url".into() }, None),
            "post_to.url",
        ),
        (feed_watcher("x", "https://example.org/feed".into(), hook(), Some(0)), "max_posts"),
        (
            NewWatcher {
                cron: Some("every day".into()),
                ..feed_watcher("x", "https://example.org/feed".into(), hook(), None)
            },
            "cron",
        ),
        (
            NewWatcher {
                selector: Some("div".into()),
                ..feed_watcher("x", "https://example.org/feed".into(), hook(), None)
            },
            "selector",
        ),
        (
            NewWatcher {
                kind: SourceKind::Page,
                selector: Some("div[[".into()),
                ..feed_watcher("x", "https://example.org/".into(), hook(), None)
            },
            "selector",
        ),
        (
            NewWatcher {
                summarise: Some("huge".into()),
                ..feed_watcher("x", "https://example.org/feed".into(), hook(), None)
            },
            "summarise",
        ),
    ];
    for (new, field) in cases {
        match runtime.add_watcher(&tenant, new, "user:admin").await {
            Err(WatcherError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    runtime
        .add_watcher(&tenant, feed_watcher("one", "https://example.org/feed".into(), hook(), None), "u")
        .await
        .expect("add");
    let clash =
        runtime.add_watcher(&tenant, feed_watcher("one", "https://example.org/other".into(), hook(), None), "u").await;
    assert!(matches!(clash, Err(WatcherError::Conflict(_))), "{clash:?}");
    assert!(runtime.schedules(&tenant).await.expect("schedules").len() == 1, "a refused watcher leaves no schedule");

    // A private address the settings do not name is refused, whatever the host says.
    runtime
        .add_watcher(&tenant, feed_watcher("private", "http://10.1.2.3/feed".into(), hook(), None), "u")
        .await
        .expect("add");
    let refused = runtime.poll_watcher(&tenant, "private").await.expect_err("blocked");
    assert!(refused.to_string().contains("blocked"), "{refused}");
    let removed = runtime.remove_watcher(&tenant, "one", "u").await.expect("remove");
    assert_eq!(removed.name, "one");
    assert!(matches!(runtime.watcher(&tenant, "one").await, Err(WatcherError::NotFound { .. })));
    runtime.shutdown().await;
}
