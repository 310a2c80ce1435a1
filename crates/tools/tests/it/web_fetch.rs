//! `web_fetch`: the blocked address ranges, schemes, capped fetches and re-checked redirects.

use std::net::IpAddr;

use serde_json::json;
use tools::builtin::{AddressPolicy, WebFetch, blocked_reason};
use tools::{BuiltinSettings, Tool, ToolError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{failed, invalid_param, no_files, refused, settings};

/// A fetcher that may reach the mock server's exact address and nothing else private.
fn allowing(server: &MockServer, settings: &BuiltinSettings) -> WebFetch {
    WebFetch::with_policy(settings, AddressPolicy::allowing_exact([server.address().ip()]))
}

#[test]
fn blocked_ranges() {
    let blocked = [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.0.9",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.1.2.3",
        "::127.0.0.1",
        "::8.8.8.8",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2002:c0a8:0101::",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "2001:db8:ffff::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "100::1",
        "3fff::1",
    ];
    for ip in blocked {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(blocked_reason(ip).is_some(), "{ip} should be blocked");
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "2a00:1450::1",
        "64:ff9b::808:808",
        "2002:0808:0808::1",
        "::ffff:8.8.8.8",
    ];
    for ip in public {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(blocked_reason(ip), None, "{ip} should be allowed");
    }
    assert!(blocked_reason("::ffff:127.0.0.1".parse().unwrap()).unwrap().contains("loopback"));
    assert!(blocked_reason("169.254.169.254".parse().unwrap()).unwrap().contains("metadata"));
}

#[tokio::test]
async fn blocked_destinations_are_refused_before_connecting() {
    let tool = WebFetch::new(&settings());
    let urls = [
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://LOCALHOST:8080/admin",
        "http://127.0.0.1:1/",
        "https://10.0.0.1/",
        "http://[::1]:8080/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[2001::1]/",
        "http://[fd00::1]/",
        "http://255.255.255.255/",
    ];
    for url in urls {
        let message = refused(tool.call(&no_files(), json!({"url": url})).await);
        assert!(message.contains("blocked"), "{url}: {message}");
    }
}

#[tokio::test]
async fn only_http_and_https_are_fetched() {
    let tool = WebFetch::new(&settings());
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://example.com",
        "data:text/plain,hi",
        "javascript:alert(1)",
    ] {
        let message = refused(tool.call(&no_files(), json!({"url": url})).await);
        assert!(message.contains("scheme"), "{url}: {message}");
    }
    assert_eq!(invalid_param(tool.call(&no_files(), json!({"url": "not a url"})).await), "url");
    assert_eq!(invalid_param(tool.call(&no_files(), json!({})).await), "url");
    assert_eq!(invalid_param(tool.call(&no_files(), json!({"url": "https://a.b", "max_bytes": 0})).await), "max_bytes");
}

#[tokio::test]
async fn an_allowed_server_is_fetched_and_the_body_capped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/page"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html><head><title>t</title><script>evil()</script></head><body><h1>Title</h1><p>Hello &amp; bye</p></body></html>",
            "text/html; charset=utf-8",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("a".repeat(5_000), "text/plain"))
        .mount(&server)
        .await;
    let tool = allowing(&server, &settings());

    let page = tool.call(&no_files(), json!({"url": format!("{}/page", server.uri())})).await.unwrap();
    assert_eq!(page["status"], 200);
    assert_eq!(page["text"], "Title\n\nHello & bye");
    assert_eq!(page["content_type"], "text/html; charset=utf-8");
    assert_eq!(page["truncated"], false);

    let big = format!("{}/big", server.uri());
    let capped = tool.call(&no_files(), json!({"url": big, "max_bytes": 100})).await.unwrap();
    assert_eq!((capped["text"].as_str().unwrap().len(), &capped["truncated"]), (100, &json!(true)));
    let whole = tool.call(&no_files(), json!({"url": big})).await.unwrap();
    assert_eq!((whole["text"].as_str().unwrap().len(), &whole["truncated"]), (5_000, &json!(false)));

    let small_cap = allowing(&server, &BuiltinSettings { max_fetch_bytes: 1_000, ..settings() });
    let capped = small_cap.call(&no_files(), json!({"url": big, "max_bytes": 4_000})).await.unwrap();
    assert_eq!((capped["text"].as_str().unwrap().len(), &capped["truncated"]), (1_000, &json!(true)));

    let strict = WebFetch::new(&settings());
    refused(strict.call(&no_files(), json!({"url": format!("{}/page", server.uri())})).await);
}

#[tokio::test]
async fn errors_and_binary_content_fail() {
    let server = MockServer::start().await;
    Mock::given(path("/down")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    Mock::given(path("/gone"))
        .respond_with(ResponseTemplate::new(404).set_body_raw("no such page", "text/plain"))
        .mount(&server)
        .await;
    Mock::given(path("/image"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0x89, b'P', b'N', b'G'], "image/png"))
        .mount(&server)
        .await;
    let tool = allowing(&server, &settings());
    let (_, transient) = failed(tool.call(&no_files(), json!({"url": format!("{}/down", server.uri())})).await);
    assert!(transient);
    let gone = tool.call(&no_files(), json!({"url": format!("{}/gone", server.uri())})).await.unwrap();
    assert_eq!((gone["status"].as_u64(), gone["text"].as_str()), (Some(404), Some("no such page")));
    let (message, transient) = failed(tool.call(&no_files(), json!({"url": format!("{}/image", server.uri())})).await);
    assert!(message.contains("image/png") && !transient, "{message}");
}

#[tokio::test]
async fn redirects_are_followed_and_every_hop_rechecked() {
    let server = MockServer::start().await;
    let port = server.address().port();
    let redirect = |to: String| ResponseTemplate::new(302).insert_header("Location", to.as_str());
    Mock::given(path("/start")).respond_with(redirect("/middle".into())).mount(&server).await;
    Mock::given(path("/middle")).respond_with(redirect(format!("{}/final", server.uri()))).mount(&server).await;
    Mock::given(path("/final"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("arrived", "text/plain"))
        .mount(&server)
        .await;
    Mock::given(path("/metadata"))
        .respond_with(redirect("http://169.254.169.254/latest/meta-data".into()))
        .mount(&server)
        .await;
    Mock::given(path("/other-loopback"))
        .respond_with(redirect(format!("http://127.0.0.2:{port}/final")))
        .mount(&server)
        .await;
    Mock::given(path("/mapped"))
        .respond_with(redirect(format!("http://[::ffff:127.0.0.1]:{port}/final")))
        .mount(&server)
        .await;
    Mock::given(path("/file")).respond_with(redirect("file:///etc/passwd".into())).mount(&server).await;
    Mock::given(path("/loop")).respond_with(redirect("/loop".into())).expect(6).mount(&server).await;
    let tool = allowing(&server, &settings());
    let fetch = |p: &str| {
        let params = json!({"url": format!("{}{p}", server.uri())});
        async { tool.call(&no_files(), params).await }
    };

    let arrived = fetch("/start").await.unwrap();
    assert_eq!(arrived["url"], format!("{}/final", server.uri()));
    assert_eq!(arrived["text"], "arrived");

    assert!(refused(fetch("/metadata").await).contains("169.254.169.254"));
    assert!(refused(fetch("/other-loopback").await).contains("127.0.0.2"));
    refused(fetch("/mapped").await);
    assert!(refused(fetch("/file").await).contains("scheme"));
    let (message, transient) = failed(fetch("/loop").await);
    assert!(message.contains("redirects") && !transient, "{message}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&server)
        .await;
    let quick = BuiltinSettings { http_timeout: std::time::Duration::from_millis(200), ..settings() };
    let result = allowing(&server, &quick).call(&no_files(), json!({"url": format!("{}/slow", server.uri())})).await;
    assert!(result.as_ref().is_err_and(ToolError::is_transient), "{result:?}");
}

#[tokio::test]
async fn a_host_name_is_resolved_once_and_connected_to_as_checked() {
    let server = MockServer::start().await;
    Mock::given(path("/named"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("by name", "text/plain"))
        .mount(&server)
        .await;
    let loopbacks: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let tool = WebFetch::with_policy(&settings(), AddressPolicy::allowing_exact(loopbacks));
    let url = format!("http://localhost:{}/named", server.address().port());
    let result = tool.call(&no_files(), json!({"url": url})).await.unwrap();
    assert_eq!((result["text"].as_str(), result["url"].as_str()), (Some("by name"), Some(url.as_str())));
}
