//! Discord's REST API (v10): the routes Nexus uses, their wire types (private to the `discord`
//! module) and every way a call can fail, classified so the adapter knows what to do (wait a
//! 429's `retry_after`, stop on a refused token, report a missing permission).
//!
//! URLs are `{api_url}/api/v10/{route}`, authorised with `Bot {token}`; the token is never in
//! an error or a log line. Moderation actions carry their reason in `X-Audit-Log-Reason`, so
//! the guild's own audit log says why.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Why a REST call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("Discord refused the bot token ({0}); check NEXUS_DISCORD_BOT_TOKEN")]
    Unauthorized(String),
    /// The bot lacks a permission, or the target is above it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("rate limited: retry after {0:?}")]
    RateLimited(Duration),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("Discord answered {0}: {1}")]
    Server(u16, String),
    #[error("could not reach Discord: {0}")]
    Network(String),
    #[error("unexpected answer from Discord: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub global_name: Option<String>,
    #[serde(default)]
    pub bot: bool,
}

impl User {
    /// The display name, else `@username`.
    pub fn display(&self) -> String {
        match &self.global_name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("@{}", self.username),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub id: String,
    pub channel_id: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    pub author: User,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub mentions: Vec<User>,
    #[serde(default)]
    pub mention_roles: Vec<String>,
    /// Set on an edit (`MESSAGE_UPDATE`).
    #[serde(default)]
    pub edited_timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GuildMember {
    #[serde(default)]
    pub user: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Interaction {
    pub id: String,
    pub application_id: String,
    #[serde(rename = "type")]
    pub kind: u8,
    pub token: String,
    #[serde(default)]
    pub guild_id: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub member: Option<GuildMember>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub data: Option<Value>,
}

impl Interaction {
    /// Who acted: the member in a guild, the user in a DM.
    pub fn actor(&self) -> Option<&User> {
        self.member.as_ref().and_then(|m| m.user.as_ref()).or(self.user.as_ref())
    }
}

/// Interaction types.
pub(crate) const APPLICATION_COMMAND: u8 = 2;
pub(crate) const MESSAGE_COMPONENT: u8 = 3;
/// Interaction callback types.
pub(crate) const CHANNEL_MESSAGE: u8 = 4;
pub(crate) const DEFERRED_CHANNEL_MESSAGE: u8 = 5;
pub(crate) const DEFERRED_UPDATE_MESSAGE: u8 = 6;
/// Message flag: only the person who acted sees it.
pub(crate) const EPHEMERAL: u64 = 1 << 6;

/// A route as it may be logged: an interaction's token (a credential for 15 minutes) is hidden.
fn shown(route: &str) -> String {
    let parts: Vec<&str> = route.split('/').collect();
    let hide = match parts.first() {
        Some(&"interactions") | Some(&"webhooks") => Some(2),
        _ => None,
    };
    parts.iter().enumerate().map(|(i, part)| if Some(i) == hide { "…" } else { part }).collect::<Vec<_>>().join("/")
}

/// `X-Audit-Log-Reason`: percent-encoded (spaces as `%20`), at most 512 characters encoded.
fn audit_reason(reason: &str) -> String {
    let mut encoded = String::new();
    for c in reason.chars() {
        let mut buf = [0u8; 4];
        let piece: String = url::form_urlencoded::byte_serialize(c.encode_utf8(&mut buf).as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        if encoded.len() + piece.len() > 512 {
            break;
        }
        encoded.push_str(&piece);
    }
    encoded
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Created {
    id: String,
}

/// A REST client for one bot token.
#[derive(Clone)]
pub(crate) struct RestApi {
    http: reqwest::Client,
    base: String,
    authorization: String,
}

impl std::fmt::Debug for RestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestApi { .. }")
    }
}

const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts of one call through rate limits and 5xx answers.
const ATTEMPTS: u32 = 4;

impl RestApi {
    pub fn new(api_url: &url::Url, token: &str) -> Result<RestApi, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("DiscordBot (https://github.com/nexus, ", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        let root = api_url.as_str().trim_end_matches('/');
        Ok(RestApi { http, base: format!("{root}/api/v10/"), authorization: format!("Bot {token}") })
    }

    /// One call, retried through 429s (waiting `retry_after`) and 5xx answers.
    async fn call(
        &self,
        method: reqwest::Method,
        route: &str,
        body: Option<&Value>,
        reason: Option<&str>,
    ) -> Result<Option<Value>, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{route}", self.base))
                .header("Authorization", &self.authorization);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(reason) = reason {
                request = request.header("X-Audit-Log-Reason", audit_reason(reason));
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %error.without_url(), route = %shown(route), "a Discord call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                    continue;
                }
                Err(error) => return Err(ApiError::Network(error.without_url().to_string())),
            };
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(|e| ApiError::Network(e.without_url().to_string()))?;
            if (200..300).contains(&status) {
                if bytes.is_empty() {
                    return Ok(None);
                }
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| ApiError::Malformed(format!("{}: {e}", shown(route))));
            }
            let error: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                retry_after: None,
            });
            match status {
                429 => {
                    let wait = Duration::from_secs_f64(error.retry_after.unwrap_or(1.0).clamp(0.05, 600.0));
                    if attempt >= ATTEMPTS {
                        return Err(ApiError::RateLimited(wait));
                    }
                    tracing::warn!(?wait, route = %shown(route), "Discord rate limit; waiting");
                    tokio::time::sleep(wait).await;
                }
                500.. if attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await
                }
                401 => return Err(ApiError::Unauthorized(error.message)),
                403 => return Err(ApiError::Forbidden(error.message)),
                404 => return Err(ApiError::NotFound(error.message)),
                400..500 => return Err(ApiError::BadRequest(format!("{status}: {}", error.message))),
                _ => return Err(ApiError::Server(status, error.message)),
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, ApiError> {
        let value = self.call(reqwest::Method::GET, route, None, None).await?.unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| ApiError::Malformed(format!("{}: {e}", shown(route))))
    }

    /// The gateway's address (`GET /gateway`).
    pub async fn gateway_url(&self) -> Result<String, ApiError> {
        let value: Value = self.get("gateway").await?;
        value["url"].as_str().map(str::to_owned).ok_or_else(|| ApiError::Malformed("gateway: no url".into()))
    }

    /// The bot's own user: checks the token.
    pub async fn me(&self) -> Result<User, ApiError> {
        self.get("users/@me").await
    }

    /// Replaces the application's global commands.
    pub async fn set_commands(&self, application: &str, commands: &Value) -> Result<(), ApiError> {
        self.call(reqwest::Method::PUT, &format!("applications/{application}/commands"), Some(commands), None).await?;
        Ok(())
    }

    pub async fn respond(&self, interaction: &Interaction, body: &Value) -> Result<(), ApiError> {
        let route = format!("interactions/{}/{}/callback", interaction.id, interaction.token);
        self.call(reqwest::Method::POST, &route, Some(body), None).await?;
        Ok(())
    }

    /// Edits the interaction's first answer (the deferred one).
    pub async fn edit_original(&self, interaction: &Interaction, body: &Value) -> Result<(), ApiError> {
        let route = format!("webhooks/{}/{}/messages/@original", interaction.application_id, interaction.token);
        self.call(reqwest::Method::PATCH, &route, Some(body), None).await?;
        Ok(())
    }

    /// Another message answering the interaction.
    pub async fn follow_up(&self, interaction: &Interaction, body: &Value) -> Result<(), ApiError> {
        let route = format!("webhooks/{}/{}", interaction.application_id, interaction.token);
        self.call(reqwest::Method::POST, &route, Some(body), None).await?;
        Ok(())
    }

    /// Posts a message; its id.
    pub async fn post(&self, channel: &str, body: &Value) -> Result<String, ApiError> {
        let value = self.call(reqwest::Method::POST, &format!("channels/{channel}/messages"), Some(body), None).await?;
        let created: Created = serde_json::from_value(value.unwrap_or(Value::Null))
            .map_err(|e| ApiError::Malformed(format!("create message: {e}")))?;
        Ok(created.id)
    }

    /// The channel's latest messages, newest first.
    pub async fn recent(&self, channel: &str, limit: u8) -> Result<Vec<Message>, ApiError> {
        self.get(&format!("channels/{channel}/messages?limit={limit}")).await
    }

    pub async fn typing(&self, channel: &str) -> Result<(), ApiError> {
        self.call(reqwest::Method::POST, &format!("channels/{channel}/typing"), None, None).await?;
        Ok(())
    }

    pub async fn delete_message(&self, channel: &str, message: &str, reason: &str) -> Result<(), ApiError> {
        let route = format!("channels/{channel}/messages/{message}");
        self.call(reqwest::Method::DELETE, &route, None, Some(reason)).await?;
        Ok(())
    }

    /// Times a member out until `until` (RFC 3339), or lifts it (`None`).
    pub async fn timeout(&self, guild: &str, user: &str, until: Option<&str>, reason: &str) -> Result<(), ApiError> {
        let body = json!({"communication_disabled_until": until});
        self.call(reqwest::Method::PATCH, &format!("guilds/{guild}/members/{user}"), Some(&body), Some(reason)).await?;
        Ok(())
    }

    pub async fn kick(&self, guild: &str, user: &str, reason: &str) -> Result<(), ApiError> {
        self.call(reqwest::Method::DELETE, &format!("guilds/{guild}/members/{user}"), None, Some(reason)).await?;
        Ok(())
    }

    pub async fn ban(&self, guild: &str, user: &str, reason: &str) -> Result<(), ApiError> {
        let body = json!({"delete_message_seconds": 3600});
        self.call(reqwest::Method::PUT, &format!("guilds/{guild}/bans/{user}"), Some(&body), Some(reason)).await?;
        Ok(())
    }

    /// The DM channel with a user (opened if needed); its id.
    pub async fn dm_channel(&self, user: &str) -> Result<String, ApiError> {
        let body = json!({"recipient_id": user});
        let value = self.call(reqwest::Method::POST, "users/@me/channels", Some(&body), None).await?;
        let created: Created = serde_json::from_value(value.unwrap_or(Value::Null))
            .map_err(|e| ApiError::Malformed(format!("create DM: {e}")))?;
        Ok(created.id)
    }

    pub async fn unban(&self, guild: &str, user: &str, reason: &str) -> Result<(), ApiError> {
        self.call(reqwest::Method::DELETE, &format!("guilds/{guild}/bans/{user}"), None, Some(reason)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_tokens_are_hidden_and_reasons_encoded_within_the_limit() {
        assert_eq!(shown("interactions/123/SECRET/callback"), "interactions/123/…/callback");
        assert_eq!(shown("webhooks/7/SECRET/messages/@original"), "webhooks/7/…/messages/@original");
        assert_eq!(shown("channels/1/messages"), "channels/1/messages");
        assert_eq!(audit_reason("spam: free nitro+"), "spam%3A%20free%20nitro%2B");
        let long = audit_reason(&"é".repeat(400));
        assert!(long.len() <= 512 && long.ends_with("%A9"), "{}", long.len());
    }

    #[test]
    fn the_client_never_shows_the_token() {
        let api = RestApi::new(&url::Url::parse("http://127.0.0.1:1/").expect("url"), "SECRET").expect("client");
        assert_eq!(format!("{api:?}"), "RestApi { .. }");
    }
}
