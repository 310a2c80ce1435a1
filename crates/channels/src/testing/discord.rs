//! A fake Discord: the REST API (v10) on one port and the gateway WebSocket on another.
//!
//! REST checks the `Bot` token (401 otherwise), refuses empty messages and content over 2000
//! characters as Discord does (400, code 50006 / 50035), can answer 429 with `retry_after`, and
//! keeps each channel's messages so `GET /channels/{id}/messages` reads them back. Every call is
//! recorded with its body and `X-Audit-Log-Reason`.
//!
//! The gateway sends HELLO, answers IDENTIFY with READY (or closes with a chosen code, as
//! Discord does for a bad token or a privileged intent), acknowledges heartbeats, and on RESUME
//! replays the dispatches after the client's sequence number, then RESUMED. Tests dispatch
//! `MESSAGE_CREATE` and `INTERACTION_CREATE`, and drop the connection to test resuming.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The fake bot's user id and application id.
pub const BOT_ID: &str = "900000000000000001";
pub const APPLICATION_ID: &str = "700000000000000001";

/// One REST call the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The route after `/api/v10/`, with its query.
    pub route: String,
    pub body: Value,
    pub audit_reason: Option<String>,
    pub at: Instant,
}

enum Command {
    Send(String),
    Close(u16),
}

#[derive(Default)]
struct Fake {
    token: String,
    ws_url: String,
    calls: Vec<Call>,
    channels: HashMap<String, Vec<Value>>,
    next_id: u64,
    rate_limited: u32,
    refused_for_rate: u32,
    // The gateway.
    heartbeat_ms: u64,
    session: Option<String>,
    sessions: u32,
    seq: u64,
    log: Vec<(u64, String)>,
    current: Option<mpsc::UnboundedSender<Command>>,
    identifies: u32,
    resumes: u32,
    close_on_identify: Option<u16>,
}

impl Fake {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 1_300_000_000_000_000_000u64 + self.next_id)
    }

    fn dispatch(&mut self, kind: &str, data: Value) {
        self.seq += 1;
        let frame = json!({"op": 0, "t": kind, "s": self.seq, "d": data}).to_string();
        self.log.push((self.seq, frame.clone()));
        if let Some(current) = &self.current
            && current.send(Command::Send(frame)).is_err()
        {
            self.current = None;
        }
    }
}

/// A fake Discord REST API and gateway.
#[derive(Clone)]
pub struct FakeDiscord {
    /// The REST address (what `NEXUS_DISCORD_API_URL` is set to).
    pub url: String,
    state: Arc<Mutex<Fake>>,
}

impl FakeDiscord {
    /// Serves Discord for `token`; heartbeats are asked for every `heartbeat`.
    pub async fn start(token: &str, heartbeat: Duration) -> FakeDiscord {
        let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake gateway");
        let ws_url = format!("ws://{}", ws.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(Fake {
            token: token.to_owned(),
            ws_url,
            heartbeat_ms: heartbeat.as_millis() as u64,
            ..Fake::default()
        }));
        let app = axum::Router::new().fallback(rest).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Discord");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        runtime::tasks::spawn("fake-discord", async move {
            let _ = axum::serve(listener, app).await;
        });
        let gateway = state.clone();
        runtime::tasks::spawn("fake-discord-gateway", async move {
            while let Ok((stream, _)) = ws.accept().await {
                runtime::tasks::spawn("fake-discord-connection", connection(gateway.clone(), stream));
            }
        });
        FakeDiscord { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A member posts in a guild channel (or, with `guild` `None`, in a DM); the message id.
    pub fn message(&self, channel: &str, guild: Option<&str>, author: (&str, &str), content: &str) -> String {
        self.with(|f| {
            let id = f.id();
            let mentions: Vec<Value> = if content.contains(&format!("<@{BOT_ID}>")) {
                vec![json!({"id": BOT_ID, "username": "nexus", "bot": true})]
            } else {
                Vec::new()
            };
            let mut message = json!({
                "id": id, "channel_id": channel, "content": content, "type": 0,
                "author": {"id": author.0, "username": author.1, "global_name": author.1},
                "mentions": mentions, "mention_roles": [], "mention_everyone": content.contains("@everyone"),
                "timestamp": "2026-12-03T12:00:00.000000+00:00",
            });
            if let Some(guild) = guild {
                message["guild_id"] = json!(guild);
            }
            f.channels.entry(channel.to_owned()).or_default().push(message.clone());
            f.dispatch("MESSAGE_CREATE", message);
            id
        })
    }

    /// The author edits message `id` in `channel` to `content` (a `MESSAGE_UPDATE`).
    pub fn edit(&self, channel: &str, id: &str, content: &str) {
        self.with(|f| {
            let Some(message) = f.channels.get_mut(channel).and_then(|m| m.iter_mut().find(|m| m["id"] == id)) else {
                return;
            };
            message["content"] = json!(content);
            f.next_id += 1;
            message["edited_timestamp"] = json!(format!("2026-12-03T12:{:02}:00.000000+00:00", f.next_id % 60));
            let message = message.clone();
            f.dispatch("MESSAGE_UPDATE", message);
        });
    }

    fn interaction(&self, kind: u8, channel: &str, guild: Option<&str>, user: &str, data: Value) -> String {
        self.with(|f| {
            let id = f.id();
            let who = json!({"id": user, "username": format!("user{user}")});
            let mut interaction = json!({
                "id": id, "application_id": APPLICATION_ID, "type": kind, "token": format!("itoken-{id}"),
                "version": 1, "channel_id": channel, "data": data,
            });
            match guild {
                Some(guild) => {
                    interaction["guild_id"] = json!(guild);
                    interaction["member"] = json!({"user": who, "roles": []});
                }
                None => interaction["user"] = who,
            }
            f.dispatch("INTERACTION_CREATE", interaction);
            id
        })
    }

    /// `/nexus SUB` with string options, used by `user`; the interaction id.
    pub fn slash(&self, channel: &str, guild: Option<&str>, user: &str, sub: &str, options: &[(&str, &str)]) -> String {
        let options: Vec<Value> = options.iter().map(|(n, v)| json!({"type": 3, "name": n, "value": v})).collect();
        let data = json!({"id": "cmd-1", "name": "nexus", "type": 1,
                          "options": [{"type": 1, "name": sub, "options": options}]});
        self.interaction(2, channel, guild, user, data)
    }

    /// `user` presses the button `custom_id`; the interaction id.
    pub fn press(&self, channel: &str, guild: Option<&str>, user: &str, custom_id: &str) -> String {
        self.interaction(3, channel, guild, user, json!({"custom_id": custom_id, "component_type": 2}))
    }

    /// Every REST call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|f| f.calls.clone())
    }

    /// Waits until `count` calls match, or `within` passes; the matching calls.
    pub async fn wait_calls(&self, count: usize, within: Duration, matches: impl Fn(&Call) -> bool) -> Vec<Call> {
        let until = Instant::now() + within;
        loop {
            let found: Vec<Call> = self.calls().into_iter().filter(|c| matches(c)).collect();
            if found.len() >= count || Instant::now() >= until {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The next `n` message posts are answered 429 with a short `retry_after` (and are not
    /// among [`FakeDiscord::calls`]).
    pub fn rate_limit(&self, n: u32) {
        self.with(|f| f.rate_limited = n);
    }

    /// How many posts were refused by [`FakeDiscord::rate_limit`].
    pub fn refused_for_rate(&self) -> u32 {
        self.with(|f| f.refused_for_rate)
    }

    /// The next IDENTIFY is answered by closing with `code` (4004 bad token, 4014 disallowed
    /// intents, …).
    pub fn close_on_identify(&self, code: Option<u16>) {
        self.with(|f| f.close_on_identify = code);
    }

    /// Closes the current gateway connection with `code` (events dispatched meanwhile wait
    /// for a RESUME).
    pub fn drop_connection(&self, code: u16) {
        self.with(|f| {
            if let Some(current) = f.current.take() {
                let _ = current.send(Command::Close(code));
            }
        });
    }

    /// (IDENTIFYs, RESUMEs) received.
    pub fn handshakes(&self) -> (u32, u32) {
        self.with(|f| (f.identifies, f.resumes))
    }

    /// Waits until a client is connected and identified or resumed `at_least` times in all.
    pub async fn wait_connected(&self, at_least: u32, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            let (connected, handshakes) = self.with(|f| (f.current.is_some(), f.identifies + f.resumes));
            if connected && handshakes >= at_least {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, axum::Json(json!({"message": message, "code": code}))).into_response()
}

async fn rest(
    State(state): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(route) = path.strip_prefix("/api/v10/") else {
        return error(StatusCode::NOT_FOUND, 0, "404: Not Found");
    };
    let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    let mut fake = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let authorised = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bot {}", fake.token));
    if !authorised {
        return error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
    }
    let audit_reason = headers.get("x-audit-log-reason").and_then(|v| v.to_str().ok()).map(|v| {
        url::form_urlencoded::parse(format!("r={v}").as_bytes()).next().map(|(_, r)| r.into_owned()).unwrap_or_default()
    });
    let full_route = uri.query().map_or_else(|| route.to_owned(), |q| format!("{route}?{q}"));
    fake.calls.push(Call {
        method: method.to_string(),
        route: full_route,
        body: body.clone(),
        audit_reason,
        at: Instant::now(),
    });
    let segments: Vec<&str> = route.split('/').collect();
    let bot = json!({"id": BOT_ID, "username": "nexus", "global_name": "Nexus", "bot": true});
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["gateway"]) => axum::Json(json!({"url": fake.ws_url})).into_response(),
        ("GET", ["users", "@me"]) => axum::Json(bot).into_response(),
        ("PUT", ["applications", _, "commands"]) => axum::Json(body).into_response(),
        ("POST", ["interactions", _, _, "callback"]) => StatusCode::NO_CONTENT.into_response(),
        ("PATCH", ["webhooks", _, _, "messages", "@original"]) | ("POST", ["webhooks", _, _]) => {
            if let Some(refused) = refuse_content(&body) {
                return refused;
            }
            let id = fake.id();
            axum::Json(json!({"id": id, "content": body["content"], "author": bot})).into_response()
        }
        ("POST", ["channels", channel, "messages"]) => {
            if fake.rate_limited > 0 {
                fake.rate_limited -= 1;
                // Refused: not a post the bot made.
                fake.calls.pop();
                fake.refused_for_rate += 1;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"message": "You are being rate limited.", "retry_after": 0.2, "global": false})),
                )
                    .into_response();
            }
            if let Some(refused) = refuse_content(&body) {
                return refused;
            }
            let id = fake.id();
            let message = json!({"id": id, "channel_id": channel, "content": body["content"], "author": bot,
                                 "embeds": body.get("embeds").cloned().unwrap_or(json!([]))});
            fake.channels.entry((*channel).to_owned()).or_default().push(message.clone());
            axum::Json(message).into_response()
        }
        ("GET", ["channels", channel, "messages"]) => {
            let limit = uri
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit=")))
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(50);
            let messages: Vec<Value> =
                fake.channels.get(*channel).map(|m| m.iter().rev().take(limit).cloned().collect()).unwrap_or_default();
            axum::Json(messages).into_response()
        }
        ("DELETE", ["channels", channel, "messages", message]) => {
            let known = fake.channels.get_mut(*channel).and_then(|messages| {
                let at = messages.iter().position(|m| m["id"] == *message)?;
                Some(messages.remove(at))
            });
            match known {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            }
        }
        ("POST", ["channels", _, "typing"]) => StatusCode::NO_CONTENT.into_response(),
        ("PATCH", ["guilds", _, "members", user]) => axum::Json(json!({"user": {"id": user}})).into_response(),
        ("DELETE", ["guilds", _, "members", _]) | ("PUT" | "DELETE", ["guilds", _, "bans", _]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, 0, "404: Not Found"),
    }
}

/// Discord's refusals of a message body: empty, or content over 2000 characters.
fn refuse_content(body: &Value) -> Option<Response> {
    let content = body["content"].as_str().unwrap_or("");
    let embeds = body["embeds"].as_array().is_some_and(|e| !e.is_empty());
    if content.chars().count() > 2000 {
        return Some(error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body: content: Must be 2000 or fewer in length.",
        ));
    }
    if content.trim().is_empty() && !embeds && body.get("components").is_none() {
        return Some(error(StatusCode::BAD_REQUEST, 50006, "Cannot send an empty message"));
    }
    None
}

async fn connection(state: Arc<Mutex<Fake>>, stream: tokio::net::TcpStream) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else { return };
    let (tx, mut commands) = mpsc::unbounded_channel::<Command>();
    let hello = {
        let fake = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        json!({"op": 10, "d": {"heartbeat_interval": fake.heartbeat_ms}}).to_string()
    };
    if socket.send(Frame::text(hello)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Send(text)) => {
                    if socket.send(Frame::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Close(code)) => {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::from(code), reason: "closed by the test".into() })).await;
                    return;
                }
                None => return,
            },
            frame = socket.next() => {
                let Some(Ok(Frame::Text(text))) = frame else {
                    if matches!(frame, Some(Ok(Frame::Ping(_) | Frame::Pong(_)))) {
                        continue;
                    }
                    return;
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { return };
                let replies = answer(&state, &payload, &tx);
                for reply in replies {
                    let done = matches!(reply, Command::Close(_));
                    let sent = match reply {
                        Command::Send(text) => socket.send(Frame::text(text)).await,
                        Command::Close(code) => socket.close(Some(CloseFrame { code: CloseCode::from(code), reason: "refused".into() })).await,
                    };
                    if sent.is_err() || done {
                        return;
                    }
                }
            }
        }
    }
}

/// The gateway's answer to one client frame.
fn answer(state: &Arc<Mutex<Fake>>, payload: &Value, tx: &mpsc::UnboundedSender<Command>) -> Vec<Command> {
    let mut fake = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match payload["op"].as_u64() {
        Some(1) => vec![Command::Send(json!({"op": 11}).to_string())],
        Some(2) => {
            fake.identifies += 1;
            if payload["d"]["token"].as_str() != Some(fake.token.as_str()) {
                return vec![Command::Close(4004)];
            }
            if let Some(code) = fake.close_on_identify.take() {
                return vec![Command::Close(code)];
            }
            fake.sessions += 1;
            let session = format!("session-{}", fake.sessions);
            fake.session = Some(session.clone());
            fake.seq += 1;
            let ready = json!({"op": 0, "t": "READY", "s": fake.seq, "d": {
                "v": 10, "session_id": session, "resume_gateway_url": fake.ws_url,
                "user": {"id": BOT_ID, "username": "nexus", "global_name": "Nexus", "bot": true},
                "application": {"id": APPLICATION_ID, "flags": 0}, "guilds": [],
            }});
            fake.current = Some(tx.clone());
            vec![Command::Send(ready.to_string())]
        }
        Some(6) => {
            fake.resumes += 1;
            let same = payload["d"]["session_id"].as_str() == fake.session.as_deref()
                && payload["d"]["token"].as_str() == Some(fake.token.as_str());
            if !same {
                return vec![Command::Send(json!({"op": 9, "d": false}).to_string())];
            }
            let after = payload["d"]["seq"].as_u64().unwrap_or(0);
            let mut replies: Vec<Command> =
                fake.log.iter().filter(|(s, _)| *s > after).map(|(_, frame)| Command::Send(frame.clone())).collect();
            fake.seq += 1;
            replies.push(Command::Send(json!({"op": 0, "t": "RESUMED", "s": fake.seq, "d": {}}).to_string()));
            fake.current = Some(tx.clone());
            replies
        }
        _ => Vec::new(),
    }
}
