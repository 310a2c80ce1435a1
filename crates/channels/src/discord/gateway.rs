//! One connection to Discord's gateway (v10, JSON text frames): HELLO, then IDENTIFY (or RESUME
//! of the previous session, on its `resume_gateway_url`), heartbeats at the interval HELLO
//! gives (the first one jittered), and dispatches handed on without waiting for their handling,
//! so a slow answer never starves the heartbeat.
//!
//! A heartbeat not acknowledged by the time the next is due means a zombie connection: it is
//! dropped and resumed. Close codes that no retry can fix (a refused token, disallowed or
//! invalid intents, a bad API version, sharding) end the channel with a clear error instead of
//! a reconnect loop; an invalid session starts a fresh one.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::api::{Interaction, Message, User};

/// Guilds, guild messages, direct messages and message content (a privileged intent: it must
/// be enabled for the bot in Discord's developer portal).
pub(crate) const INTENTS: u64 = 1 | (1 << 9) | (1 << 12) | (1 << 15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A session that may be resumed on a new connection.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    pub session_id: String,
    pub url: String,
    pub seq: u64,
}

/// What the connection hands on.
#[derive(Debug)]
pub(crate) enum Event {
    /// A new session: who the bot is.
    Ready {
        user: User,
        application_id: String,
    },
    /// The previous session goes on; the events missed are replayed after this.
    Resumed,
    Message(Box<Message>),
    /// A message edited (moderated again).
    Edited(Box<Message>),
    Interaction(Box<Interaction>),
}

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Closed {
    /// Retrying cannot help: stop the channel and say why.
    Fatal(String),
    /// Reconnect (resuming if the session is still there).
    Lost(String),
}

/// Why Discord closed the connection, when no retry can fix it.
pub(crate) fn fatal_close(code: u16) -> Option<&'static str> {
    Some(match code {
        4004 => "Discord refused the bot token (close code 4004); check NEXUS_DISCORD_BOT_TOKEN",
        4010 => "Discord refused the shard (close code 4010)",
        4011 => "the bot is in too many guilds for one connection: sharding is required (close code 4011)",
        4012 => "Discord refused the gateway API version (close code 4012)",
        4013 => "Discord refused the intents asked for (close code 4013)",
        4014 => {
            "Discord refused a privileged intent (close code 4014): enable the Message Content intent for \
             the bot in the Discord developer portal (Bot → Privileged Gateway Intents)"
        }
        _ => return None,
    })
}

/// Runs one connection until it ends. `resume` is the session to resume (updated as dispatches
/// arrive, cleared when Discord says it is gone); `url` the gateway's address for a new one.
pub(crate) async fn connect(
    url: &str,
    token: &str,
    resume: &mut Option<Resume>,
    events: &mpsc::UnboundedSender<Event>,
) -> Closed {
    let address = resume.as_ref().map_or(url, |r| r.url.as_str());
    let address = format!("{}/?v=10&encoding=json", address.trim_end_matches('/'));
    let (mut socket, _) = match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&address)).await
    {
        Ok(Ok(connected)) => connected,
        Ok(Err(error)) => return Closed::Lost(format!("could not connect to the gateway: {error}")),
        Err(_) => return Closed::Lost("the gateway did not answer the connection".into()),
    };
    let interval = match tokio::time::timeout(CONNECT_TIMEOUT, socket.next()).await {
        Ok(Some(Ok(Frame::Text(text)))) => match serde_json::from_str::<Value>(&text) {
            Ok(hello) if hello["op"] == 10 => hello["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250),
            _ => return Closed::Lost("the gateway did not start with HELLO".into()),
        },
        Ok(Some(Ok(Frame::Close(frame)))) => return closed_by(frame, resume),
        _ => return Closed::Lost("the gateway sent no HELLO".into()),
    };
    let interval = Duration::from_millis(interval.max(100));
    let opening = match resume.as_ref() {
        Some(r) => json!({"op": 6, "d": {"token": token, "session_id": r.session_id, "seq": r.seq}}),
        None => json!({"op": 2, "d": {"token": token, "intents": INTENTS,
                        "properties": {"os": std::env::consts::OS, "browser": "nexus", "device": "nexus"}}}),
    };
    if let Err(error) = socket.send(Frame::text(opening.to_string())).await {
        return Closed::Lost(format!("could not identify: {error}"));
    }
    let first = interval.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
    let mut awaiting_ack = false;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                if awaiting_ack {
                    let _ = socket.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "zombie".into() })).await;
                    return Closed::Lost("no heartbeat acknowledgement: a zombie connection; resuming".into());
                }
                let seq = resume.as_ref().map(|r| r.seq);
                if let Err(error) = socket.send(Frame::text(json!({"op": 1, "d": seq}).to_string())).await {
                    return Closed::Lost(format!("could not send a heartbeat: {error}"));
                }
                awaiting_ack = true;
            }
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(Frame::Close(frame))) => return closed_by(frame, resume),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Closed::Lost(format!("the gateway connection failed: {error}")),
                    None => return Closed::Lost("the gateway closed the connection".into()),
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("a gateway frame that is not JSON; ignored");
                    continue;
                };
                match payload["op"].as_u64() {
                    Some(0) => dispatch(payload, resume, events),
                    Some(1) => {
                        let seq = resume.as_ref().map(|r| r.seq);
                        if let Err(error) = socket.send(Frame::text(json!({"op": 1, "d": seq}).to_string())).await {
                            return Closed::Lost(format!("could not send a heartbeat: {error}"));
                        }
                    }
                    Some(7) => {
                        let _ = socket.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "reconnect".into() })).await;
                        return Closed::Lost("Discord asked to reconnect".into());
                    }
                    Some(9) => {
                        if payload["d"].as_bool() != Some(true) {
                            *resume = None;
                        }
                        let _ = socket.close(None).await;
                        // Discord asks for a pause of 1 to 5 seconds before identifying again.
                        let pause = Duration::from_millis(rand::thread_rng().gen_range(1000..5000));
                        tokio::time::sleep(pause).await;
                        return Closed::Lost("Discord invalidated the session".into());
                    }
                    Some(11) => awaiting_ack = false,
                    _ => {}
                }
            }
        }
    }
}

fn closed_by(frame: Option<CloseFrame>, resume: &mut Option<Resume>) -> Closed {
    let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
    if let Some(fatal) = fatal_close(code) {
        return Closed::Fatal(fatal.to_owned());
    }
    if matches!(code, 4007 | 4009) {
        // Invalid sequence, or the session timed out: it cannot be resumed.
        *resume = None;
    }
    Closed::Lost(format!("the gateway closed the connection ({code} {reason})"))
}

fn dispatch(payload: Value, resume: &mut Option<Resume>, events: &mpsc::UnboundedSender<Event>) {
    let seq = payload["s"].as_u64();
    if let (Some(seq), Some(r)) = (seq, resume.as_mut()) {
        r.seq = r.seq.max(seq);
    }
    let kind = payload["t"].as_str().unwrap_or_default().to_owned();
    let mut payload = payload;
    let data = payload["d"].take();
    let event = match kind.as_str() {
        "READY" => {
            let (Some(session), Some(url)) = (data["session_id"].as_str(), data["resume_gateway_url"].as_str()) else {
                tracing::warn!("a READY without a session; ignored");
                return;
            };
            *resume = Some(Resume { session_id: session.to_owned(), url: url.to_owned(), seq: seq.unwrap_or(0) });
            let application_id = data["application"]["id"].as_str().unwrap_or_default().to_owned();
            match serde_json::from_value::<User>(data["user"].clone()) {
                Ok(user) => Event::Ready { user, application_id },
                Err(error) => {
                    tracing::warn!(%error, "a READY without the bot's user; ignored");
                    return;
                }
            }
        }
        "RESUMED" => Event::Resumed,
        "MESSAGE_CREATE" => match serde_json::from_value::<Message>(data) {
            Ok(message) => Event::Message(Box::new(message)),
            Err(error) => {
                tracing::warn!(%error, "a MESSAGE_CREATE that could not be read; ignored");
                return;
            }
        },
        // Partial updates (an embed unfurled) carry no author or content: nothing to judge.
        "MESSAGE_UPDATE" if data["content"].is_string() && data["author"].is_object() => {
            match serde_json::from_value::<Message>(data) {
                Ok(message) => Event::Edited(Box::new(message)),
                Err(error) => {
                    tracing::debug!(%error, "a MESSAGE_UPDATE that could not be read; ignored");
                    return;
                }
            }
        }
        "INTERACTION_CREATE" => match serde_json::from_value::<Interaction>(data) {
            Ok(interaction) => Event::Interaction(Box::new(interaction)),
            Err(error) => {
                tracing::warn!(%error, "an INTERACTION_CREATE that could not be read; ignored");
                return;
            }
        },
        _ => return,
    };
    // The receiver ends only with its session; a late event then has no one to go to.
    let _ = events.send(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unfixable_close_codes_are_fatal() {
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert!(fatal_close(code).is_some(), "{code}");
        }
        for code in [1000, 1001, 1005, 4000, 4001, 4007, 4008, 4009] {
            assert!(fatal_close(code).is_none(), "{code}");
        }
        assert!(fatal_close(4014).is_some_and(|m| m.contains("Message Content")));
    }

    #[test]
    fn an_unresumable_close_forgets_the_session() {
        let mut resume = Some(Resume { session_id: "s".into(), url: "ws://x".into(), seq: 3 });
        let frame = CloseFrame { code: CloseCode::from(4009), reason: "timed out".into() };
        assert!(matches!(closed_by(Some(frame), &mut resume), Closed::Lost(_)));
        assert!(resume.is_none());
        let mut resume = Some(Resume { session_id: "s".into(), url: "ws://x".into(), seq: 3 });
        let frame = CloseFrame { code: CloseCode::from(4000), reason: String::new().into() };
        assert!(matches!(closed_by(Some(frame), &mut resume), Closed::Lost(_)));
        assert!(resume.is_some());
    }
}
