//! The MCP client against real peers from the Python package index: the reference servers
//! `mcp-server-time` and `mcp-server-git` over stdio, and a server built on the official Python
//! SDK over both stdio and streamable HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::persona::RiskLevel;
use domain::plugin::McpServerSpec;
use mcp::{ClientOptions, McpClient, McpError, McpTool};
use serde_json::json;
use tools::{Tool as _, ToolContext, ToolError};

fn peers() -> Option<PathBuf> {
    mcp::test_support::peers(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

fn stdio(site: &Path, command: &str, args: &[&str]) -> McpServerSpec {
    let program = site.join("bin").join(command);
    McpServerSpec::Stdio {
        command: if program.exists() { program.display().to_string() } else { command.to_owned() },
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: BTreeMap::from([("PYTHONPATH".to_owned(), site.display().to_string())]),
        cwd: None,
    }
}

fn drifting_script() -> String {
    mcp::test_support::DRIFTING_SERVER.to_owned()
}

fn context() -> ToolContext {
    ToolContext {
        tenant: domain::TenantId::parse("acme").expect("tenant"),
        workspace: std::env::temp_dir(),
        memory: None,
    }
}

async fn connect(spec: &McpServerSpec) -> Arc<McpClient> {
    Arc::new(McpClient::connect(spec, &ClientOptions::default()).await.expect("connects"))
}

#[tokio::test]
async fn the_time_server_is_listed_and_called_over_stdio() {
    let Some(site) = peers() else { return };
    let client = connect(&stdio(&site, "mcp-server-time", &["--local-timezone", "UTC"])).await;
    assert_eq!(client.server_info()["name"], "mcp-time");
    let listed = client.list_tools().await.expect("tools/list");
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["get_current_time", "convert_time"]);

    let now = McpTool::new("time", listed[0].clone(), client.clone());
    let definition = now.definition();
    assert_eq!(definition.name, "time__get_current_time");
    assert_eq!((definition.risk_level, definition.state_changing), (RiskLevel::Low, false), "declared read-only");
    let answer = now.call(&context(), json!({"timezone": "Europe/Rome"})).await.expect("called");
    let text = answer["text"].as_str().expect("text");
    assert!(text.contains("Europe/Rome") && text.contains("datetime"), "{answer}");

    let convert = McpTool::new("time", listed[1].clone(), client.clone());
    let answer = convert
        .call(&context(), json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}))
        .await
        .expect("converted");
    assert!(answer["text"].as_str().expect("text").contains("21:00"), "{answer}");

    // The tool's own failure is an error naming it, not a result.
    let error = now.call(&context(), json!({"timezone": "Mars/Olympus"})).await.expect_err("no such zone");
    assert!(
        matches!(&error, ToolError::Failed { message, transient: false } if message.contains("get_current_time")),
        "{error}"
    );
    client.ping().await.expect("ping");
    client.close().await;
    assert!(matches!(client.ping().await, Err(McpError::Closed(_))), "a closed connection says so");
}

#[tokio::test]
async fn the_git_server_reads_a_repository_and_its_writes_count_as_state_changing() {
    let Some(site) = peers() else { return };
    let repo = tempfile::tempdir().expect("dir");
    for args in
        [&["init", "-q", "-b", "main"][..], &["config", "user.email", "t@example.org"], &["config", "user.name", "T"]]
    {
        git(repo.path(), args);
    }
    std::fs::write(repo.path().join("README.md"), "hello\n").expect("write");
    git(repo.path(), &["add", "README.md"]);
    git(repo.path(), &["commit", "-q", "-m", "first words"]);

    let client = connect(&stdio(&site, "mcp-server-git", &["--repository", &repo.path().display().to_string()])).await;
    let listed = client.list_tools().await.expect("tools/list");
    let tool = |name: &str| {
        let remote = listed.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} listed")).clone();
        McpTool::new("git", remote, client.clone())
    };
    let log = tool("git_log");
    assert_eq!((log.definition().risk_level, log.definition().state_changing), (RiskLevel::Low, false));
    let commit = tool("git_commit");
    assert_eq!((commit.definition().risk_level, commit.definition().state_changing), (RiskLevel::Medium, true));
    let reset = tool("git_reset");
    assert_eq!((reset.definition().risk_level, reset.definition().state_changing), (RiskLevel::High, true));

    let answer = log.call(&context(), json!({"repo_path": repo.path()})).await.expect("git_log");
    assert!(answer["text"].as_str().expect("text").contains("first words"), "{answer}");
    client.close().await;
}

fn git(dir: &Path, args: &[&str]) {
    #[allow(clippy::disallowed_methods)] // preparing a repository for the git server
    let status = std::process::Command::new("git").args(args).current_dir(dir).status().expect("git runs");
    assert!(status.success(), "git {args:?}");
}

#[tokio::test]
async fn a_stdio_server_gets_a_scrubbed_environment_and_silent_annotations_mean_destructive() {
    let Some(site) = peers() else { return };
    let description = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(description.path(), "Looks a word up.").expect("write");
    // Cargo gives this test process its CARGO_* variables: none may reach the server.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok());
    let mut spec = stdio(&site, "python3", &[&drifting_script(), &description.path().display().to_string()]);
    if let McpServerSpec::Stdio { command, env, .. } = &mut spec {
        *command = "python3".to_owned();
        env.insert("GREETING".to_owned(), "hello".to_owned());
    }
    let client = connect(&spec).await;
    let listed = client.list_tools().await.expect("tools/list");
    let environment = listed.iter().find(|t| t.name == "environment").expect("listed").clone();
    let names = McpTool::new("drift", environment, client.clone()).call(&context(), json!({})).await.expect("called");
    let names: Vec<String> = serde_json::from_value(names["structured"]["result"].clone()).expect("names");
    assert!(names.contains(&"GREETING".to_owned()) && names.contains(&"PYTHONPATH".to_owned()), "{names:?}");
    let inherited = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
    let ours: Vec<String> =
        std::env::vars().map(|(name, _)| name).filter(|n| !inherited.contains(&n.as_str())).collect();
    // A shell wrapper (a pyenv shim) sets PWD, SHLVL and its own PYENV_* variables itself.
    let by_shim = |n: &str| ["PYTHONPATH", "PWD", "SHLVL"].contains(&n) || n.starts_with("PYENV_");
    let leaked: Vec<&String> = names.iter().filter(|n| ours.contains(n) && !by_shim(n)).collect();
    assert!(ours.iter().any(|n| n.starts_with("CARGO")), "the test process has variables to leak");
    assert!(leaked.is_empty(), "the server saw the gateway's variables {leaked:?}");

    let forget = McpTool::new("drift", listed.iter().find(|t| t.name == "forget").expect("listed").clone(), client);
    assert_eq!((forget.definition().risk_level, forget.definition().state_changing), (RiskLevel::High, true));
}

#[tokio::test]
async fn a_server_over_streamable_http_is_listed_and_called() {
    let Some(site) = peers() else { return };
    let description = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(description.path(), "Looks a word up.").expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let mut server = tokio::process::Command::new("python3")
        .args([&drifting_script(), &description.path().display().to_string(), "--http", &port.to_string()])
        .env("PYTHONPATH", &site)
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    let spec = McpServerSpec::Http { url: format!("http://127.0.0.1:{port}/mcp"), headers: BTreeMap::new() };
    let mut client = None;
    for _ in 0..100 {
        match McpClient::connect(&spec, &ClientOptions::default()).await {
            Ok(connected) => {
                client = Some(Arc::new(connected));
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let client = client.expect("the HTTP server answers within 10 s");
    let listed = client.list_tools().await.expect("tools/list");
    let lookup = listed.iter().find(|t| t.name == "lookup").expect("listed");
    assert_eq!(lookup.description.as_deref(), Some("Looks a word up."));
    let lookup = McpTool::new("words", lookup.clone(), client.clone());
    let answer = lookup.call(&context(), json!({"word": "stressed"})).await.expect("called");
    assert_eq!(answer["text"], "stressed means desserts");
    let forget = McpTool::new("words", listed.iter().find(|t| t.name == "forget").expect("listed").clone(), client);
    let error = forget.call(&context(), json!({"word": "everything"})).await.expect_err("refused");
    assert!(matches!(&error, ToolError::Failed { message, .. } if message.contains("forget")), "{error}");
    server.kill().await.expect("stopped");
}

#[tokio::test]
async fn a_server_that_cannot_start_or_speaks_nonsense_is_a_clear_error() {
    let missing =
        McpServerSpec::Stdio { command: "/nonexistent/mcp".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    let error = McpClient::connect(&missing, &ClientOptions::default()).await.expect_err("no such program");
    assert!(matches!(&error, McpError::Spawn { command, .. } if command == "/nonexistent/mcp"), "{error}");

    // `cat` echoes our own request back: the client refuses it as a server's request, and the
    // echo of that refusal ends the handshake with the method named.
    let echo = McpServerSpec::Stdio { command: "cat".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    let options = ClientOptions { timeout: Duration::from_millis(500), ..ClientOptions::default() };
    let error = McpClient::connect(&echo, &options).await.expect_err("no handshake");
    assert!(matches!(&error, McpError::Rpc { method, .. } if method == "initialize"), "{error}");

    // A program that reads and never answers: the deadline.
    let silent =
        McpServerSpec::Stdio { command: "sleep".into(), args: vec!["30".into()], env: BTreeMap::new(), cwd: None };
    let error = McpClient::connect(&silent, &options).await.expect_err("no answer");
    assert!(matches!(&error, McpError::Timeout { method, .. } if method == "initialize"), "{error}");

    // A program that exits at once: the connection is closed, and said so.
    let exits = McpServerSpec::Stdio { command: "true".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    let error = McpClient::connect(&exits, &options).await.expect_err("exited");
    assert!(matches!(&error, McpError::Closed(_)), "{error}");

    let ftp = McpServerSpec::Http { url: "ftp://example.org/mcp".into(), headers: BTreeMap::new() };
    assert!(McpClient::connect(&ftp, &options).await.expect_err("not http").to_string().contains("only http"));
}
