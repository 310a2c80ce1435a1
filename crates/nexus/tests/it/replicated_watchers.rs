//! Watchers under two `nexus serve` replicas on one PostgreSQL database: a watcher polled every
//! second by the shared scheduler, and on demand on both replicas at once, records the feed
//! without posting on its first poll, then posts each new item exactly once to its webhook and
//! seals each post once; `nexus watchers list` shows it from the command line.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::replicas::{Backend, Options, Replicas};

const WAIT: Duration = Duration::from_secs(60);

/// Serves an RSS feed without guids whose items are set by the test.
#[derive(Clone, Default)]
struct Feed(Arc<Mutex<Vec<String>>>);

impl Respond for Feed {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let items: String = self
            .0
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .map(|t| {
                format!(
                    "<item><title>{t}</title><link>https://news.example/{t}</link><description>{t}</description></item>"
                )
            })
            .collect();
        ResponseTemplate::new(200).insert_header("content-type", "application/rss+xml").set_body_string(format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>N</title>{items}</channel></rss>"
        ))
    }
}

async fn titles(hook: &MockServer) -> Vec<String> {
    hook.received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).expect("json")["title"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn two_replicas_post_each_new_item_once() {
    let env = vec![("NEXUS_WATCH_ALLOW_ADDRESSES".to_owned(), "127.0.0.1".to_owned())];
    let Some(cluster) = Replicas::start_with(Options { replicas: 2, backend: Backend::Postgres, env }).await else {
        return;
    };
    let key = cluster.admin_key("demo").await;
    let feed = Feed::default();
    *feed.0.lock().expect("lock") = vec!["old-1".into(), "old-2".into()];
    let site = MockServer::start().await;
    Mock::given(method("GET")).and(path("/feed.xml")).respond_with(feed.clone()).mount(&site).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;

    let created = cluster
        .client
        .post(cluster.url(0, "/v1/watchers"))
        .bearer_auth(&key)
        .json(&json!({"name": "news", "kind": "feed", "url": format!("{}/feed.xml", site.uri()),
                      "post_to": {"type": "webhook", "url": format!("{}/hook", hook.uri())},
                      "max_posts": 50, "schedule": "* * * * * *"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let watcher: Value = created.json().await.expect("json");
    let id = watcher["id"].as_str().expect("id").to_owned();

    let deadline = Instant::now() + WAIT;
    loop {
        let read: Value = cluster
            .client
            .get(cluster.url(1, &format!("/v1/watchers/{id}")))
            .bearer_auth(&key)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if read["seeded"] == true {
            assert_eq!(read["items"].as_array().map(Vec::len), Some(2), "{read}");
            break;
        }
        assert!(Instant::now() < deadline, "never seeded: {read}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(titles(&hook).await.is_empty(), "the first poll posts nothing");

    let new: Vec<String> = (1..=12).map(|n| format!("new-{n}")).collect();
    feed.0.lock().expect("lock").extend(new.iter().cloned());
    // Both replicas poll on demand while the scheduler polls too.
    let polls = (0..6)
        .map(|n| cluster.client.post(cluster.url(n % 2, &format!("/v1/watchers/{id}/poll"))).bearer_auth(&key).send());
    for response in futures_util::future::join_all(polls).await {
        assert_eq!(response.expect("poll").status(), reqwest::StatusCode::OK);
    }
    let deadline = Instant::now() + WAIT;
    while titles(&hook).await.len() < new.len() {
        assert!(Instant::now() < deadline, "posted only {:?}", titles(&hook).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posted = titles(&hook).await;
    assert_eq!(posted.len(), new.len(), "each item once: {posted:?}");
    assert_eq!(posted.iter().collect::<HashSet<_>>(), new.iter().collect::<HashSet<_>>());

    let ledger: Value = cluster
        .client
        .get(cluster.url(0, "/v1/ledger?kind=watch&limit=500"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("json");
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(new.len()), "each post sealed once");
    let listed = cluster.nexus(&["watchers", "list"]).await;
    assert!(listed.contains("news") && listed.contains("webhook"), "{listed}");
}
