//! Fake platform servers for tests, speaking the real wire formats on 127.0.0.1.
//!
//! [`FakeTelegram`] is a Bot API server: `POST /bot{token}/{method}` with JSON bodies, method
//! names matched without case as Telegram does. `getUpdates` honours `offset` (confirming
//! earlier updates) and parks up to `timeout` seconds for new ones. It checks what Telegram
//! checks — the token, text of 1–4096 UTF-16 units after entity parsing, well-formed HTML of
//! the supported tags, callback data of at most 64 bytes — and can inject the failures bots
//! meet: flood control (429 with `retry_after`), a hung `getUpdates`, a 409 conflict, a user
//! who blocked the bot.
//!
//! [`FakeDiscord`] is Discord's REST API (v10) and gateway (a WebSocket speaking JSON text
//! frames: HELLO, IDENTIFY, READY, heartbeats, RESUME with replay, dispatches).

mod discord;

pub use discord::{APPLICATION_ID as DISCORD_APPLICATION_ID, BOT_ID as DISCORD_BOT_ID, Call, FakeDiscord};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A message the bot sent (or edited).
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub chat_id: i64,
    pub text: String,
    /// `parse_mode` was HTML.
    pub html: bool,
    pub keyboard: Option<Value>,
    pub at: Instant,
}

#[derive(Default)]
struct FakeState {
    token: String,
    next_update: i64,
    queue: Vec<Value>,
    sent: Vec<Sent>,
    actions: Vec<(i64, String)>,
    callback_answers: Vec<String>,
    commands: Vec<Value>,
    get_updates_calls: u64,
    get_updates_completed: u64,
    hang_polls: u32,
    flood: u32,
    /// The next formatted (HTML) messages refused as Telegram refuses entities it cannot parse.
    refuse_formatting: u32,
    conflict: bool,
    blocked: HashSet<i64>,
    next_message_id: i64,
    /// The offset of the last `getUpdates`: what the bot confirmed.
    confirmed: i64,
    /// Every update ever handed out.
    delivered: Vec<Value>,
    /// The webhook set with `setWebhook` (url, secret_token), if any.
    webhook: Option<(String, Option<String>)>,
    /// Files users sent, by `file_id`: (file_path, bytes).
    files: std::collections::HashMap<String, (String, Vec<u8>)>,
}

/// A fake Telegram Bot API server.
#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    arrived: Arc<Notify>,
}

type Shared = (Arc<Mutex<FakeState>>, Arc<Notify>);

impl FakeTelegram {
    /// Serves the Bot API for `token` (any other token is refused with 401).
    pub async fn start(token: &str) -> FakeTelegram {
        let state = Arc::new(Mutex::new(FakeState {
            token: token.to_owned(),
            next_update: 1000,
            next_message_id: 1,
            ..FakeState::default()
        }));
        let arrived = Arc::new(Notify::new());
        let app = axum::Router::new()
            .route("/{bot}/{method}", post(handle))
            .route("/file/{bot}/{*path}", axum::routing::get(download))
            .with_state((state.clone(), arrived.clone()) as Shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Telegram");
        let address = listener.local_addr().expect("address");
        runtime::tasks::spawn("fake-telegram", async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { url: format!("http://{address}"), state, arrived }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Queues an update (its `update_id` is assigned); returns the id.
    pub fn push_update(&self, mut update: Value) -> i64 {
        let id = self.with(|s| {
            s.next_update += 1;
            update["update_id"] = json!(s.next_update);
            s.queue.push(update);
            s.next_update
        });
        self.arrived.notify_waiters();
        id
    }

    /// A text message from user `from` in `chat` (a private chat when `chat == from`).
    pub fn push_message(&self, from: i64, chat: i64, text: &str) -> i64 {
        let message_id = self.with(|s| {
            s.next_message_id += 1;
            s.next_message_id
        });
        self.push_update(json!({"message": {
            "message_id": message_id, "date": 0, "text": text,
            "from": user(from), "chat": chat_json(from, chat),
        }}))
    }

    /// A document from user `from` in `chat`, with an optional caption; returns the message id
    /// (the file is served by `getFile` and the file download route).
    pub fn push_document(
        &self,
        from: i64,
        chat: i64,
        file_name: &str,
        mime_type: &str,
        bytes: &[u8],
        caption: Option<&str>,
    ) -> i64 {
        let (message_id, file_id) = self.with(|s| {
            s.next_message_id += 1;
            let file_id = format!("file-{}", s.next_message_id);
            s.files.insert(file_id.clone(), (format!("documents/{file_name}"), bytes.to_vec()));
            (s.next_message_id, file_id)
        });
        let mut message = json!({
            "message_id": message_id, "date": 0, "from": user(from), "chat": chat_json(from, chat),
            "document": {"file_id": file_id, "file_unique_id": format!("u{file_id}"), "file_name": file_name,
                         "mime_type": mime_type, "file_size": bytes.len()},
        });
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        self.push_update(json!({ "message": message }));
        message_id
    }

    /// A text message replying to message `reply_to` (a document, say) of the same user.
    pub fn push_reply(&self, from: i64, chat: i64, reply_to: i64, text: &str, replied: Value) -> i64 {
        let message_id = self.with(|s| {
            s.next_message_id += 1;
            s.next_message_id
        });
        let mut replied = replied;
        replied["message_id"] = json!(reply_to);
        replied["date"] = json!(0);
        replied["chat"] = chat_json(from, chat);
        self.push_update(json!({"message": {
            "message_id": message_id, "date": 0, "text": text,
            "from": user(from), "chat": chat_json(from, chat), "reply_to_message": replied,
        }}))
    }

    /// A press on an inline button whose data is `data`, under message `message_id`.
    pub fn push_callback(&self, from: i64, chat: i64, message_id: i64, data: &str) -> i64 {
        self.push_update(json!({"callback_query": {
            "id": format!("cb{from}{message_id}"), "from": user(from), "data": data, "chat_instance": "1",
            "message": {"message_id": message_id, "date": 0, "chat": chat_json(from, chat), "text": "menu"},
        }}))
    }

    /// Queues again an update already delivered, with its original id (a redelivery after a
    /// crash before the offset moved).
    pub fn redeliver(&self, update_id: i64) {
        self.with(|s| {
            if let Some(update) = s.delivered.iter().find(|u| u["update_id"].as_i64() == Some(update_id)).cloned() {
                s.queue.push(update);
                s.confirmed = 0;
            }
        });
        self.arrived.notify_waiters();
    }

    /// Everything the bot sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.with(|s| s.sent.clone())
    }

    /// What the bot sent to `chat`.
    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        self.with(|s| s.sent.iter().filter(|m| m.chat_id == chat).cloned().collect())
    }

    /// Waits until `chat` has received at least `count` messages; panics after `within`.
    pub async fn wait_sent(&self, chat: i64, count: usize, within: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + within;
        loop {
            let sent = self.sent_to(chat);
            if sent.len() >= count {
                return sent;
            }
            assert!(Instant::now() < deadline, "chat {chat} got {} of {count} messages: {sent:#?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chat actions sent (`typing`), as (chat, action).
    pub fn actions(&self) -> Vec<(i64, String)> {
        self.with(|s| s.actions.clone())
    }

    pub fn callback_answers(&self) -> Vec<String> {
        self.with(|s| s.callback_answers.clone())
    }

    /// The command menus registered (`setMyCommands` bodies).
    pub fn commands(&self) -> Vec<Value> {
        self.with(|s| s.commands.clone())
    }

    /// `getUpdates` calls received, and those answered.
    pub fn polls(&self) -> (u64, u64) {
        self.with(|s| (s.get_updates_calls, s.get_updates_completed))
    }

    /// The offset of the latest `getUpdates` (every update below it is confirmed).
    pub fn confirmed(&self) -> i64 {
        self.with(|s| s.confirmed)
    }

    /// The next `n` `getUpdates` calls never answer (a wedged connection).
    pub fn hang_polls(&self, n: u32) {
        self.with(|s| s.hang_polls = n);
    }

    /// The next `n` `sendMessage` calls get 429 with `retry_after: 1`.
    pub fn flood(&self, n: u32) {
        self.with(|s| s.flood = n);
    }

    /// The next `n` messages sent with `parse_mode` HTML get 400 "can't parse entities", as
    /// Telegram answers formatting it does not accept.
    pub fn refuse_formatting(&self, n: u32) {
        self.with(|s| s.refuse_formatting = n);
    }

    /// Every `getUpdates` answers 409 (another instance polls the token) while on.
    /// The webhook the bot set (url, secret_token), if any.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        self.with(|s| s.webhook.clone())
    }

    /// A Telegram update as its webhook delivery body, with a fresh `update_id` (not queued for
    /// `getUpdates`).
    pub fn webhook_message(&self, from: i64, chat: i64, text: &str) -> Value {
        self.with(|s| {
            s.next_update += 1;
            s.next_message_id += 1;
            json!({"update_id": s.next_update, "message": {
                "message_id": s.next_message_id, "date": 0, "text": text,
                "from": user(from), "chat": chat_json(from, chat),
            }})
        })
    }

    pub fn conflict(&self, on: bool) {
        self.with(|s| s.conflict = on);
    }

    /// Sends to `chat` answer 403 "bot was blocked by the user".
    pub fn block(&self, chat: i64) {
        self.with(|s| s.blocked.insert(chat));
    }
}

fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "username": format!("user{id}"), "language_code": "en"})
}

fn chat_json(from: i64, chat: i64) -> Value {
    if chat == from {
        json!({"id": chat, "type": "private", "first_name": format!("User{from}")})
    } else {
        json!({"id": chat, "type": "group", "title": "Group"})
    }
}

fn refuse(code: u16, description: &str) -> Json<Value> {
    Json(json!({"ok": false, "error_code": code, "description": description}))
}

fn ok(result: Value) -> Json<Value> {
    Json(json!({"ok": true, "result": result}))
}

/// Telegram's HTML check: only supported tags, properly nested; the visible text's length.
fn parse_html(text: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "tg-spoiler",
        "blockquote",
        "span",
    ];
    let mut open: Vec<String> = Vec::new();
    let mut visible = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['<', '&']) {
        visible.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with('&') {
            let end = rest.find(';').ok_or("can't parse entities: unclosed entity")?;
            let entity = &rest[..=end];
            visible.push(match entity {
                "&lt;" => '<',
                "&gt;" => '>',
                "&amp;" => '&',
                "&quot;" => '"',
                _ => return Err(format!("can't parse entities: unsupported entity {entity}")),
            });
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest.find('>').ok_or("can't parse entities: unclosed tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(top) if top == name => {}
                _ => return Err(format!("can't parse entities: unexpected end tag {name}")),
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or_default();
            if !TAGS.contains(&name) {
                return Err(format!("can't parse entities: unsupported start tag \"{name}\""));
            }
            open.push(name.to_owned());
        }
    }
    visible.push_str(rest);
    if let Some(unclosed) = open.pop() {
        return Err(format!("can't parse entities: can't find end tag corresponding to start tag {unclosed}"));
    }
    Ok(visible)
}

/// `GET /file/bot{token}/{file_path}`: a file's bytes, as the Bot API serves downloads.
async fn download(State((state, _)): State<Shared>, uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let s = state.lock().expect("fake state");
    let rest = uri.path().trim_start_matches("/file/");
    let Some((bot, path)) = rest.split_once('/') else { return axum::http::StatusCode::NOT_FOUND.into_response() };
    if bot.strip_prefix("bot") != Some(s.token.as_str()) {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    match s.files.values().find(|(p, _)| p == path) {
        Some((_, bytes)) => bytes.clone().into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn handle(State((state, arrived)): State<Shared>, uri: Uri, body: Option<Json<Value>>) -> Json<Value> {
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let mut segments = uri.path().trim_start_matches('/').splitn(2, '/');
    let bot = segments.next().unwrap_or_default().to_owned();
    let method = segments.next().unwrap_or_default().to_ascii_lowercase();
    {
        let s = state.lock().expect("fake state");
        if bot.strip_prefix("bot") != Some(s.token.as_str()) {
            return refuse(401, "Unauthorized");
        }
    }
    match method.as_str() {
        "getme" => ok(json!({"id": 4242, "is_bot": true, "first_name": "Nexus", "username": "nexus_bot",
                             "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false})),
        "deletewebhook" => {
            state.lock().expect("fake state").webhook = None;
            ok(json!(true))
        }
        "setwebhook" => {
            let url = body["url"].as_str().unwrap_or_default().to_owned();
            if !url.starts_with("https://") && !url.starts_with("http://127.0.0.1") {
                return refuse(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook");
            }
            let secret = body["secret_token"].as_str().map(str::to_owned);
            state.lock().expect("fake state").webhook = Some((url, secret));
            ok(json!(true))
        }
        "getwebhookinfo" => {
            let s = state.lock().expect("fake state");
            let url = s.webhook.as_ref().map(|(u, _)| u.clone()).unwrap_or_default();
            ok(json!({"url": url, "has_custom_certificate": false, "pending_update_count": 0}))
        }
        "getfile" => {
            let id = body["file_id"].as_str().unwrap_or_default();
            let s = state.lock().expect("fake state");
            match s.files.get(id) {
                Some((path, bytes)) => ok(json!({"file_id": id, "file_unique_id": format!("u{id}"),
                                                 "file_size": bytes.len(), "file_path": path})),
                None => refuse(400, "Bad Request: invalid file_id"),
            }
        }
        "getupdates" if state.lock().expect("fake state").webhook.is_some() => refuse(
            409,
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        ),
        "getupdates" => get_updates(&state, &arrived, &body).await,
        "sendmessage" | "editmessagetext" => send_message(&state, &method, &body),
        "sendchataction" => {
            let chat = body["chat_id"].as_i64().unwrap_or_default();
            let action = body["action"].as_str().unwrap_or_default().to_owned();
            state.lock().expect("fake state").actions.push((chat, action));
            ok(json!(true))
        }
        "answercallbackquery" => {
            let id = body["callback_query_id"].as_str().unwrap_or_default().to_owned();
            state.lock().expect("fake state").callback_answers.push(id);
            ok(json!(true))
        }
        "setmycommands" => {
            for command in body["commands"].as_array().into_iter().flatten() {
                let name = command["command"].as_str().unwrap_or_default();
                if name.is_empty()
                    || name.len() > 32
                    || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    return refuse(400, "Bad Request: BOT_COMMAND_INVALID");
                }
            }
            state.lock().expect("fake state").commands.push(body);
            ok(json!(true))
        }
        _ => refuse(404, "Not Found: method not found"),
    }
}

async fn get_updates(state: &Arc<Mutex<FakeState>>, arrived: &Notify, body: &Value) -> Json<Value> {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
    let hang = {
        let mut s = state.lock().expect("fake state");
        s.get_updates_calls += 1;
        if s.conflict {
            return refuse(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
            );
        }
        if offset > 0 {
            s.confirmed = offset;
            s.queue.retain(|u| u["update_id"].as_i64().unwrap_or_default() >= offset);
        }
        let hang = s.hang_polls > 0;
        s.hang_polls = s.hang_polls.saturating_sub(1);
        hang
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let deadline = Instant::now() + timeout;
    loop {
        let waiting = arrived.notified();
        let ready: Vec<Value> = {
            let s = state.lock().expect("fake state");
            s.queue
                .iter()
                .filter(|u| u["update_id"].as_i64().unwrap_or_default() >= offset)
                .take(100)
                .cloned()
                .collect()
        };
        if !ready.is_empty() || Instant::now() >= deadline {
            let mut s = state.lock().expect("fake state");
            s.get_updates_completed += 1;
            for update in &ready {
                if !s.delivered.contains(update) {
                    s.delivered.push(update.clone());
                }
            }
            drop(s);
            return ok(Value::Array(ready));
        }
        let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), waiting).await;
    }
}

fn send_message(state: &Arc<Mutex<FakeState>>, method: &str, body: &Value) -> Json<Value> {
    let mut s = state.lock().expect("fake state");
    let chat = body["chat_id"].as_i64().unwrap_or_default();
    if s.blocked.contains(&chat) {
        return refuse(403, "Forbidden: bot was blocked by the user");
    }
    if method == "sendmessage" && s.flood > 0 {
        s.flood -= 1;
        return Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                           "parameters": {"retry_after": 1}}));
    }
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let html = body["parse_mode"].as_str() == Some("HTML");
    if html && s.refuse_formatting > 0 {
        s.refuse_formatting -= 1;
        return refuse(400, "Bad Request: can't parse entities: unsupported start tag \"b\" at byte offset 0");
    }
    let visible = if html {
        match parse_html(&text) {
            Ok(visible) => visible,
            Err(reason) => return refuse(400, &format!("Bad Request: {reason}")),
        }
    } else if body.get("parse_mode").is_some_and(|m| !m.is_null()) {
        return refuse(400, "Bad Request: this fake speaks HTML and plain text only");
    } else {
        text.clone()
    };
    if visible.trim().is_empty() {
        return refuse(400, "Bad Request: message text is empty");
    }
    if visible.encode_utf16().count() > 4096 {
        return refuse(400, "Bad Request: message is too long");
    }
    let keyboard = body.get("reply_markup").cloned();
    for button in keyboard.iter().flat_map(|k| {
        k["inline_keyboard"].as_array().into_iter().flatten().flat_map(|r| r.as_array().into_iter().flatten())
    }) {
        let data = button["callback_data"].as_str().unwrap_or_default();
        if data.is_empty() || data.len() > 64 {
            return refuse(400, "Bad Request: BUTTON_DATA_INVALID");
        }
    }
    s.next_message_id += 1;
    let id = s.next_message_id;
    s.sent.push(Sent {
        method: method.to_owned(),
        chat_id: chat,
        text: text.clone(),
        html,
        keyboard,
        at: Instant::now(),
    });
    ok(json!({"message_id": id, "date": 0, "chat": {"id": chat, "type": "private"}, "text": visible}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_parses_html_as_telegram_does() {
        assert_eq!(parse_html("<b>a</b> &lt;x&gt; &amp;").as_deref(), Ok("a <x> &"));
        assert!(parse_html("<b>a</i>").is_err());
        assert!(parse_html("<p>a</p>").is_err());
        assert!(parse_html("<b>open").is_err());
        assert!(parse_html("a & b").is_err());
        assert_eq!(parse_html("<a href=\"https://x\">x</a>").as_deref(), Ok("x"));
    }
}
