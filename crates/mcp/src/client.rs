//! A client for MCP servers over both transports the protocol keeps: a child process speaking
//! newline-delimited JSON-RPC on stdin/stdout, and streamable HTTP (a POST per message, answered
//! with JSON or an event stream). It performs the `initialize` handshake, lists tools (every
//! page), calls them and pings; every request has a deadline and every answer a size cap.
//!
//! A stdio server starts with a scrubbed environment: only `PATH`, `HOME`, the locale and the
//! variables its specification names reach it — never the gateway's own secrets.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio as ProcessStdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::plugin::McpServerSpec;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

use crate::wire::{self, CallToolResult, ListToolsResult, Message, Request, Response, RpcError};

/// Variables a stdio server inherits from the gateway's environment (none of them secret).
const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Why talking to an MCP server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    #[error("could not start {command:?}: {reason}")]
    Spawn { command: String, reason: String },
    #[error("{0}")]
    Transport(String),
    #[error("the server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the server refused {method}: {message} (code {code})")]
    Rpc { method: String, code: i64, message: String },
    #[error("no answer to {method} within {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("the server's answer exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the connection is closed: {0}")]
    Closed(String),
}

impl McpError {
    /// Whether trying again later may work (the server was slow or unreachable, not wrong).
    pub fn is_transient(&self) -> bool {
        matches!(self, McpError::Timeout { .. } | McpError::Transport(_) | McpError::Closed(_))
            || matches!(self, McpError::Http { status, .. } if *status >= 500)
    }
}

/// Limits of one connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long one request may take.
    pub timeout: Duration,
    /// The largest message accepted from the server.
    pub max_message_bytes: usize,
    /// The name Nexus gives itself in the handshake.
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_message_bytes: 4 << 20, client_name: "nexus".to_owned() }
    }
}

/// One connection to one MCP server, after the handshake.
pub struct McpClient {
    transport: Transport,
    next_id: AtomicU64,
    timeout: Duration,
    server_info: Value,
    protocol_version: String,
    tools_changed: Arc<AtomicBool>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient").field("server_info", &self.server_info).finish_non_exhaustive()
    }
}

enum Transport {
    Stdio(Stdio),
    Http(Http),
}

impl McpClient {
    /// Starts or reaches the server and performs the `initialize` handshake.
    pub async fn connect(spec: &McpServerSpec, options: &ClientOptions) -> Result<McpClient, McpError> {
        let tools_changed = Arc::new(AtomicBool::new(false));
        let transport = match spec {
            McpServerSpec::Stdio { command, args, env, cwd } => Transport::Stdio(Stdio::spawn(
                command,
                args,
                env,
                cwd.as_deref(),
                options.max_message_bytes,
                tools_changed.clone(),
            )?),
            McpServerSpec::Http { url, headers } => Transport::Http(Http::new(url, headers, options)?),
        };
        let mut client = McpClient {
            transport,
            next_id: AtomicU64::new(1),
            timeout: options.timeout,
            server_info: Value::Null,
            protocol_version: wire::PROTOCOL_VERSION.to_owned(),
            tools_changed,
        };
        let params = json!({
            "protocolVersion": wire::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": options.client_name, "version": env!("CARGO_PKG_VERSION")},
        });
        let answer = client.request("initialize", Some(params)).await?;
        let version = answer.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !wire::PROTOCOL_VERSIONS.contains(&version.as_str()) {
            client.close().await;
            return Err(McpError::Protocol(format!(
                "the server speaks protocol {version:?}; Nexus speaks {}",
                wire::PROTOCOL_VERSIONS.join(", ")
            )));
        }
        if answer.pointer("/capabilities/tools").is_none() {
            tracing::debug!("the MCP server declares no tools capability");
        }
        client.server_info = answer.get("serverInfo").cloned().unwrap_or(Value::Null);
        client.protocol_version = version;
        if let Transport::Http(http) = &client.transport {
            http.set_protocol(&client.protocol_version);
        }
        client.notify("notifications/initialized", None).await?;
        Ok(client)
    }

    /// What the server said of itself (`name`, `version`).
    pub fn server_info(&self) -> &Value {
        &self.server_info
    }

    /// The protocol revision agreed.
    pub fn protocol_version(&self) -> &str {
        &self.protocol_version
    }

    /// Whether the server announced that its tools changed since the last [`Self::list_tools`].
    pub fn tools_changed(&self) -> bool {
        self.tools_changed.load(Ordering::Relaxed)
    }

    /// Every tool the server offers (all pages).
    pub async fn list_tools(&self) -> Result<Vec<wire::Tool>, McpError> {
        self.tools_changed.store(false, Ordering::Relaxed);
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let answer = self.request("tools/list", params).await?;
            let page: ListToolsResult = serde_json::from_value(answer)
                .map_err(|e| McpError::Protocol(format!("tools/list answered an unreadable page: {e}")))?;
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(tools),
            }
        }
        Err(McpError::Protocol("tools/list did not end after 100 pages".to_owned()))
    }

    /// Calls a tool. A tool's own failure comes back as a result with `is_error`.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<CallToolResult, McpError> {
        let answer = self.request("tools/call", Some(json!({"name": name, "arguments": arguments}))).await?;
        serde_json::from_value(answer)
            .map_err(|e| McpError::Protocol(format!("tools/call answered an unreadable result: {e}")))
    }

    /// Checks that the server answers.
    pub async fn ping(&self) -> Result<(), McpError> {
        self.request("ping", None).await.map(drop)
    }

    /// Ends the connection (stops a stdio server's process).
    pub async fn close(&self) {
        match &self.transport {
            Transport::Stdio(stdio) => stdio.close().await,
            Transport::Http(_) => {}
        }
    }

    async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request::new(Some(json!(id)), method, params);
        let answer = tokio::time::timeout(self.timeout, async {
            match &self.transport {
                Transport::Stdio(stdio) => stdio.request(id, &request).await,
                Transport::Http(http) => http.request(&request).await,
            }
        })
        .await
        .map_err(|_| McpError::Timeout { method: method.to_owned(), after: self.timeout })??;
        match (answer.result, answer.error) {
            (_, Some(error)) => {
                Err(McpError::Rpc { method: method.to_owned(), code: error.code, message: error.message })
            }
            (Some(result), None) => Ok(result),
            (None, None) => Err(McpError::Protocol(format!("the answer to {method} has neither result nor error"))),
        }
    }

    async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), McpError> {
        let note = Request::new(None, method, params);
        let sent = async {
            match &self.transport {
                Transport::Stdio(stdio) => stdio.send(&note).await,
                Transport::Http(http) => http.send(&note).await,
            }
        };
        tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| McpError::Timeout { method: method.to_owned(), after: self.timeout })?
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;
type SharedStdin = Arc<tokio::sync::Mutex<Option<ChildStdin>>>;

/// A child process speaking newline-delimited JSON-RPC.
struct Stdio {
    stdin: SharedStdin,
    child: tokio::sync::Mutex<Child>,
    pending: Pending,
    /// Why the connection ended, once it has.
    ended: Arc<Mutex<Option<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Stdio {
    fn spawn(
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
        cwd: Option<&str>,
        max_message_bytes: usize,
        tools_changed: Arc<AtomicBool>,
    ) -> Result<Stdio, McpError> {
        let mut process = tokio::process::Command::new(command);
        process.args(args).env_clear().stdin(ProcessStdio::piped()).stdout(ProcessStdio::piped());
        process.stderr(ProcessStdio::piped()).kill_on_drop(true);
        for name in INHERITED {
            if let Some(value) = std::env::var_os(name) {
                process.env(name, value);
            }
        }
        process.envs(env);
        if let Some(cwd) = cwd {
            process.current_dir(cwd);
        }
        let spawn_error = |reason: String| McpError::Spawn { command: command.to_owned(), reason };
        let mut child = process.spawn().map_err(|e| spawn_error(e.to_string()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error("its standard streams could not be opened".to_owned()));
        };
        let pending: Pending = Arc::default();
        let ended: Arc<Mutex<Option<String>>> = Arc::default();
        let stdin: SharedStdin = Arc::new(tokio::sync::Mutex::new(Some(stdin)));
        let reader = {
            let (pending, ended, name, writer) = (pending.clone(), ended.clone(), command.to_owned(), stdin.clone());
            // The reader lives exactly as long as the connection: it is aborted when it closes.
            #[allow(clippy::disallowed_methods)]
            tokio::spawn(read_loop(name, stdout, stderr, max_message_bytes, writer, pending, ended, tools_changed))
        };
        Ok(Stdio { stdin, child: tokio::sync::Mutex::new(child), pending, ended, reader })
    }

    async fn send(&self, message: &impl serde::Serialize) -> Result<(), McpError> {
        write_message(&self.stdin, message).await.map_err(|e| McpError::Closed(self.ended_reason().unwrap_or(e)))
    }

    async fn request(&self, id: u64, request: &Request) -> Result<Response, McpError> {
        if let Some(reason) = self.ended_reason() {
            return Err(McpError::Closed(reason));
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        // Forgets the waiting entry however this ends, a caller's deadline included.
        let _forget = Forget { pending: &self.pending, id };
        self.send(request).await?;
        rx.await.map_err(|_| McpError::Closed(self.ended_reason().unwrap_or_else(|| "the server exited".to_owned())))
    }

    fn ended_reason(&self) -> Option<String> {
        lock(&self.ended).clone()
    }

    async fn close(&self) {
        // Closing stdin asks the server to exit; a server that does not is killed.
        self.stdin.lock().await.take();
        let mut child = self.child.lock().await;
        if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        self.reader.abort();
    }
}

impl Drop for Stdio {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Writes one message as one line.
async fn write_message(stdin: &SharedStdin, message: &impl serde::Serialize) -> Result<(), String> {
    let mut line = serde_json::to_vec(message).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let mut stdin = stdin.lock().await;
    let Some(stdin) = stdin.as_mut() else { return Err("closed by Nexus".to_owned()) };
    stdin.write_all(&line).await.map_err(|e| e.to_string())?;
    stdin.flush().await.map_err(|e| e.to_string())
}

/// Removes a request's waiting entry when dropped.
struct Forget<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the server's messages until it exits: answers go to their waiting request, the
/// server's own requests are answered, notifications noted. Its standard error is logged.
#[allow(clippy::too_many_arguments)] // the parts of one connection the reader shares
async fn read_loop(
    name: String,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    max: usize,
    writer: SharedStdin,
    pending: Pending,
    ended: Arc<Mutex<Option<String>>>,
    tools_changed: Arc<AtomicBool>,
) {
    let mut stdout = BufReader::new(stdout);
    let mut stderr = BufReader::new(stderr);
    // The partial lines live here, outside the reads, so a read that loses the race to the
    // other stream keeps what it had read (`select!` drops the losing future).
    let mut out_line = Vec::new();
    let mut err_line = Vec::new();
    let mut err_open = true;
    let reason = loop {
        let line = tokio::select! {
            read = read_line(&mut stdout, &mut out_line, max) => match read {
                Ok(true) => std::mem::take(&mut out_line),
                Ok(false) => break "the server exited".to_owned(),
                Err(e) => break e,
            },
            read = read_line(&mut stderr, &mut err_line, 8192), if err_open => {
                match read {
                    // A line, or one too long to keep: logged (cut) either way.
                    Ok(true) | Err(_) => {
                        tracing::debug!(server = %name, "{}", String::from_utf8_lossy(&err_line).trim_end());
                        err_line.clear();
                    }
                    Ok(false) => err_open = false,
                }
                continue;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Some(message) = serde_json::from_slice(&line).ok().and_then(Message::from_value) else {
            tracing::debug!(server = %name, "ignored a line that is no JSON-RPC message");
            continue;
        };
        match message {
            Message::Response(response) => {
                let waiting = response.id.as_u64().and_then(|id| lock(&pending).remove(&id));
                if let Some(waiting) = waiting {
                    let _ = waiting.send(response);
                }
            }
            Message::Request(request) if request.method == "notifications/tools/list_changed" => {
                tools_changed.store(true, Ordering::Relaxed);
            }
            Message::Request(Request { id: Some(id), method, .. }) => {
                // The server asks something of us (roots, sampling…): only ping is offered.
                let answer = if method == "ping" {
                    Response::ok(id, json!({}))
                } else {
                    Response::error(
                        id,
                        RpcError::new(wire::codes::METHOD_NOT_FOUND, format!("{method} is not offered")),
                    )
                };
                tracing::debug!(server = %name, method, "answered a server request");
                if let Err(e) = write_message(&writer, &answer).await {
                    tracing::debug!(server = %name, "could not answer: {e}");
                }
            }
            Message::Request(_) => {}
        }
    };
    *lock(&ended) = Some(reason);
    lock(&pending).clear();
}

/// Reads into `line` until a newline (dropped): `true` when `line` holds a whole line (or the
/// stream's last, unterminated one), `false` at the end of the stream, an error past `max` bytes.
/// Cancel-safe: what was read stays in `line` for the next call.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>, max: usize) -> Result<bool, String> {
    loop {
        let buffer = reader.fill_buf().await.map_err(|e| e.to_string())?;
        if buffer.is_empty() {
            return Ok(!line.is_empty());
        }
        let (take, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + take > max + 1 {
            let room = (max + 1).saturating_sub(line.len()).min(take);
            line.extend_from_slice(&buffer[..room]);
            reader.consume(take);
            return Err(format!("a message exceeds {max} bytes"));
        }
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take);
        if done {
            line.pop();
            return Ok(true);
        }
    }
}

/// The streamable HTTP transport: each message is a POST; the answer is JSON or an event stream.
struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    session: Mutex<Option<String>>,
    protocol: Mutex<Option<String>>,
    max: usize,
}

impl Http {
    fn new(url: &str, headers: &BTreeMap<String, String>, options: &ClientOptions) -> Result<Http, McpError> {
        let url = reqwest::Url::parse(url).map_err(|e| McpError::Transport(format!("url {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(McpError::Transport(format!("url {url}: only http and https are spoken")));
        }
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| McpError::Transport(format!("header {name:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| McpError::Transport(format!("header {name:?}: {e}")))?;
            map.insert(header, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| McpError::Transport(e.to_string()))?;
        Ok(Http {
            client,
            url,
            headers: map,
            session: Mutex::default(),
            protocol: Mutex::default(),
            max: options.max_message_bytes,
        })
    }

    fn set_protocol(&self, version: &str) {
        *lock(&self.protocol) = Some(version.to_owned());
    }

    fn post(&self, message: &Request) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
            .json(message);
        if let Some(session) = lock(&self.session).clone() {
            builder = builder.header("mcp-session-id", session);
        }
        if let Some(version) = lock(&self.protocol).clone() {
            builder = builder.header("mcp-protocol-version", version);
        }
        builder
    }

    async fn send(&self, note: &Request) -> Result<(), McpError> {
        let response = self.post(note).send().await.map_err(|e| McpError::Transport(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(McpError::Http { status: status.as_u16(), body: capped_text(response, 512).await })
    }

    async fn request(&self, request: &Request) -> Result<Response, McpError> {
        let response = self.post(request).send().await.map_err(|e| McpError::Transport(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(McpError::Http { status: status.as_u16(), body: capped_text(response, 512).await });
        }
        if let Some(session) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            *lock(&self.session) = Some(session.to_owned());
        }
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let id = request.id.clone().unwrap_or(Value::Null);
        if kind.starts_with("text/event-stream") {
            return self.read_events(response, &id).await;
        }
        if !kind.starts_with("application/json") {
            return Err(McpError::Protocol(format!("the answer's content type is {kind:?}")));
        }
        let body = capped_bytes(response, self.max).await?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| McpError::Protocol(format!("the answer is no JSON: {e}")))?;
        match Message::from_value(value) {
            Some(Message::Response(answer)) if answer.id == id => Ok(answer),
            _ => Err(McpError::Protocol("the answer is not the response to the request".to_owned())),
        }
    }

    /// Reads events until the response to `id` arrives.
    async fn read_events(&self, response: reqwest::Response, id: &Value) -> Result<Response, McpError> {
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        let mut data = String::new();
        let mut read = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| McpError::Transport(e.to_string()))?;
            read += chunk.len();
            if read > self.max {
                return Err(McpError::TooLarge(self.max));
            }
            buffer.extend_from_slice(&chunk);
            while let Some(at) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                } else if line.is_empty() && !data.is_empty() {
                    let event = std::mem::take(&mut data);
                    if let Some(Message::Response(answer)) =
                        serde_json::from_str(&event).ok().and_then(Message::from_value)
                        && &answer.id == id
                    {
                        return Ok(answer);
                    }
                }
            }
        }
        Err(McpError::Protocol("the event stream ended without the response".to_owned()))
    }
}

async fn capped_bytes(response: reqwest::Response, max: usize) -> Result<Vec<u8>, McpError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| McpError::Transport(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(McpError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn capped_text(response: reqwest::Response, max: usize) -> String {
    let body = capped_bytes(response, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    text.chars().take(max).collect()
}
