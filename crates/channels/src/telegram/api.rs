//! The Telegram Bot API over HTTPS: the methods Nexus uses, their wire types (private to the
//! `telegram` module) and every way a call can fail, classified so the poll loop and the
//! senders know what to do (wait `retry_after`, stop on a refused token, note a blocked user).
//!
//! URLs are `{api_url}/bot{token}/{method}`; bodies are JSON. The token is never in an error
//! or a log line: transport errors are reported without their URL.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Why a Bot API call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The token was refused (401, or 404 for a malformed one): retrying cannot help.
    #[error("Telegram refused the bot token ({0}); check NEXUS_TELEGRAM_BOT_TOKEN")]
    Unauthorized(String),
    /// Another program reads updates with this token (or a webhook is set).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("flood control: retry after {0:?}")]
    RetryAfter(Duration),
    /// The person blocked the bot, left, or the chat is gone (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request was refused as written (400): too long, unparsable entities, …
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("Telegram answered {0}: {1}")]
    Server(u16, String),
    #[error("could not reach Telegram: {0}")]
    Network(String),
    #[error("Telegram did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("unexpected answer from Telegram: {0}")]
    Malformed(String),
}

impl ApiError {
    /// A 400 about formatting: the message should be sent again as plain text.
    pub fn is_parse_error(&self) -> bool {
        matches!(self, ApiError::BadRequest(text) if text.contains("can't parse entities") || text.contains("unsupported start tag") || text.contains("can't find end"))
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
    #[serde(default)]
    pub can_read_all_group_messages: Option<bool>,
}

impl User {
    /// `@username`, else the full name.
    pub fn display(&self) -> String {
        match &self.username {
            Some(name) => format!("@{name}"),
            None => match &self.last_name {
                Some(last) => format!("{} {last}", self.first_name),
                None => self.first_name.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Chat {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub message_id: i64,
    #[serde(default)]
    pub from: Option<User>,
    pub chat: Chat,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub reply_to_message: Option<Box<Message>>,
    #[serde(default)]
    pub document: Option<Document>,
    #[serde(default)]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Document {
    pub file_id: String,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
}

/// What Telegram says about the webhook it delivers to.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WebhookInfo {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pending_update_count: u64,
    /// Unix time of the last failed delivery.
    #[serde(default)]
    pub last_error_date: Option<i64>,
    #[serde(default)]
    pub last_error_message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct File {
    #[serde(default)]
    file_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CallbackQuery {
    pub id: String,
    pub from: User,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Update {
    pub update_id: i64,
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

/// One inline keyboard button: its label and the data it sends back (≤ 64 bytes).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Button {
    pub text: String,
    pub callback_data: String,
}

/// A Bot API client for one token.
#[derive(Clone)]
pub(crate) struct BotApi {
    http: reqwest::Client,
    /// `{api_url}/bot{token}/`.
    base: String,
    /// `{api_url}/file/bot{token}/`: where files users sent are downloaded.
    files: String,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotApi { .. }")
    }
}

/// How long a call other than `getUpdates` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

impl BotApi {
    /// A client with a connection pool of its own (dropping it drops every socket: a rebuild
    /// after a stall never reuses a wedged connection). HTTP/1.1 only, keepalive probes on.
    pub fn new(api_url: &url::Url, token: &str, poll_timeout: Duration) -> Result<BotApi, ApiError> {
        let http = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .timeout(poll_timeout + Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let root = api_url.as_str().trim_end_matches('/');
        Ok(BotApi { http, base: format!("{root}/bot{token}/"), files: format!("{root}/file/bot{token}/") })
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, body: &Value, timeout: Duration) -> Result<T, ApiError> {
        let request = self.http.post(format!("{}{method}", self.base)).json(body).timeout(timeout).send();
        let response = match tokio::time::timeout(timeout + Duration::from_secs(1), request).await {
            Err(_) => return Err(ApiError::TimedOut(timeout)),
            Ok(Err(error)) if error.is_timeout() => return Err(ApiError::TimedOut(timeout)),
            Ok(Err(error)) => return Err(ApiError::Network(error.without_url().to_string())),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) if error.is_timeout() => return Err(ApiError::TimedOut(timeout)),
            Err(error) => return Err(ApiError::Network(error.without_url().to_string())),
        };
        let envelope: Envelope = match serde_json::from_slice(&bytes) {
            Ok(envelope) => envelope,
            Err(_) if status >= 500 => {
                return Err(ApiError::Server(status, String::from_utf8_lossy(&bytes).chars().take(200).collect()));
            }
            Err(error) => return Err(ApiError::Malformed(format!("{method}: HTTP {status}: {error}"))),
        };
        if envelope.ok {
            let result = envelope.result.unwrap_or(Value::Null);
            return serde_json::from_value(result).map_err(|e| ApiError::Malformed(format!("{method}: {e}")));
        }
        let code = envelope.error_code.unwrap_or(status);
        let description = envelope.description.unwrap_or_else(|| format!("HTTP {status}"));
        Err(match code {
            401 | 404 => ApiError::Unauthorized(description),
            409 => ApiError::Conflict(description),
            429 => ApiError::RetryAfter(Duration::from_secs(
                envelope.parameters.and_then(|p| p.retry_after).unwrap_or(1).clamp(1, 3600),
            )),
            403 => ApiError::Forbidden(description),
            400 => ApiError::BadRequest(description),
            _ => ApiError::Server(code, description),
        })
    }

    /// Downloads a file a user sent (`getFile`, then the file route), refusing more than
    /// `max_bytes`.
    pub async fn download(&self, file_id: &str, max_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let file: File = self.call("getFile", &json!({"file_id": file_id}), CALL_TIMEOUT).await?;
        let path = file.file_path.ok_or_else(|| ApiError::Malformed("getFile: no file_path".into()))?;
        let response = self
            .http
            .get(format!("{}{path}", self.files))
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ApiError::Server(status, "the file could not be downloaded".into()));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(ApiError::BadRequest(format!("the file is larger than {max_bytes} bytes")));
        }
        let mut bytes = Vec::new();
        let mut body = response;
        while let Some(chunk) = body.chunk().await.map_err(|e| ApiError::Network(e.without_url().to_string()))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max_bytes {
                return Err(ApiError::BadRequest(format!("the file is larger than {max_bytes} bytes")));
            }
        }
        Ok(bytes)
    }

    /// Asks Telegram to deliver updates to `url` with `secret` in each request's
    /// `X-Telegram-Bot-Api-Secret-Token` (pending updates are kept).
    pub async fn set_webhook(&self, url: &str, secret: &str) -> Result<bool, ApiError> {
        let body = json!({"url": url, "secret_token": secret, "allowed_updates": ["message", "callback_query"],
                          "max_connections": 40, "drop_pending_updates": false});
        self.call("setWebhook", &body, CALL_TIMEOUT).await
    }

    pub async fn webhook_info(&self) -> Result<WebhookInfo, ApiError> {
        self.call("getWebhookInfo", &json!({}), CALL_TIMEOUT).await
    }

    pub async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", &json!({}), CALL_TIMEOUT).await
    }

    /// Turns webhook delivery off so `getUpdates` works (pending updates are kept).
    pub async fn delete_webhook(&self) -> Result<bool, ApiError> {
        self.call("deleteWebhook", &json!({"drop_pending_updates": false}), CALL_TIMEOUT).await
    }

    /// Long polling: waits up to `timeout` for updates from `offset` on (which also confirms
    /// every earlier one).
    pub async fn get_updates(&self, offset: i64, timeout: Duration) -> Result<Vec<Update>, ApiError> {
        let body = json!({"offset": offset, "timeout": timeout.as_secs(), "limit": 100,
                          "allowed_updates": ["message", "callback_query"]});
        self.call("getUpdates", &body, timeout + Duration::from_secs(15)).await
    }

    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        html: bool,
        keyboard: Option<&[Vec<Button>]>,
        reply_to: Option<i64>,
    ) -> Result<Message, ApiError> {
        let mut body = json!({"chat_id": chat_id, "text": text, "link_preview_options": {"is_disabled": true}});
        if html {
            body["parse_mode"] = json!("HTML");
        }
        if let Some(rows) = keyboard {
            body["reply_markup"] = json!({"inline_keyboard": rows});
        }
        if let Some(id) = reply_to {
            body["reply_parameters"] = json!({"message_id": id, "allow_sending_without_reply": true});
        }
        self.call("sendMessage", &body, CALL_TIMEOUT).await
    }

    pub async fn send_chat_action(&self, chat_id: i64, action: &str) -> Result<bool, ApiError> {
        self.call("sendChatAction", &json!({"chat_id": chat_id, "action": action}), CALL_TIMEOUT).await
    }

    pub async fn answer_callback_query(&self, id: &str, text: Option<&str>) -> Result<bool, ApiError> {
        let mut body = json!({"callback_query_id": id});
        if let Some(text) = text {
            body["text"] = json!(text);
        }
        self.call("answerCallbackQuery", &body, CALL_TIMEOUT).await
    }

    /// The command menu, for everyone or for one language.
    pub async fn set_my_commands(&self, commands: &[(&str, &str)], language: Option<&str>) -> Result<bool, ApiError> {
        let list: Vec<Value> = commands.iter().map(|(c, d)| json!({"command": c, "description": d})).collect();
        let mut body = json!({"commands": list});
        if let Some(language) = language {
            body["language_code"] = json!(language);
        }
        self.call("setMyCommands", &body, CALL_TIMEOUT).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_told_apart_from_other_refusals() {
        assert!(ApiError::BadRequest("Bad Request: can't parse entities: unexpected end tag".into()).is_parse_error());
        assert!(!ApiError::BadRequest("Bad Request: message is too long".into()).is_parse_error());
        assert!(!ApiError::Forbidden("Forbidden: bot was blocked by the user".into()).is_parse_error());
    }

    #[test]
    fn errors_never_show_the_token() {
        let api =
            BotApi::new(&url::Url::parse("http://127.0.0.1:1/").expect("url"), "123:SECRET", Duration::from_secs(1))
                .expect("client");
        assert_eq!(format!("{api:?}"), "BotApi { .. }");
    }
}
