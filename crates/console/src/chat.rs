//! Chat: conversations with a gateway model or with the agent (as a persona), kept per person,
//! searchable, exportable as Markdown and JSON, deletable. A reply streams into the page over
//! SSE while it is written (each fragment escaped here); reloading shows what is stored.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use domain::ConversationId;
use domain::chat::{ChatRole, ChatTarget};
use runtime::chat::ReplyEvent;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::extract::{Form, Path, Query};
use crate::i18n::Lang;
use crate::pages::{ConsoleError, Page, PageResult, api, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct ConversationRow {
    pub id: String,
    pub title: String,
    pub target: String,
    pub updated: String,
}

pub struct TargetOption {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "chats.html")]
struct ChatsView {
    page: Page,
    rows: Vec<ConversationRow>,
    targets: Vec<TargetOption>,
    query: String,
    /// A one-time code just made to link a Telegram or Discord account, with its expiry.
    link_code: Option<(String, String)>,
}

pub struct MessageRow {
    pub mine: bool,
    pub content: String,
    pub chain: String,
    pub model: String,
    pub time: String,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatView {
    page: Page,
    id: String,
    title: String,
    target: String,
    messages: Vec<MessageRow>,
    /// A reply is being written: the page follows it.
    pending: bool,
    failure: String,
}

fn target_label(lang: Lang, target: &ChatTarget) -> String {
    let t = lang.catalog();
    match target {
        ChatTarget::Model(model) => t.fill("chat.model", &[("model", model)]),
        ChatTarget::Agent(None) => t.get("chat.agent_any").to_owned(),
        ChatTarget::Agent(Some(persona)) => t.fill("chat.agent", &[("persona", persona)]),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChatsQuery {
    q: String,
}

/// `GET /chat?q=`: the person's conversations (those mentioning `q`) and a new one's form.
pub async fn chats(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<ChatsQuery>) -> PageResult {
    chats_page(&state, &signed, query.q, None).await
}

async fn chats_page(
    state: &ConsoleState,
    signed: &Signed,
    q: String,
    link_code: Option<(String, String)>,
) -> PageResult {
    let query = ChatsQuery { q };
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let text = Some(query.q.trim()).filter(|q| !q.is_empty());
    let (conversations, targets) =
        tokio::join!(state.runtime.conversations(principal, text), state.runtime.chat_targets(principal));
    let rows = conversations
        .map_err(api(lang))?
        .into_iter()
        .map(|c| ConversationRow {
            id: c.id.to_string(),
            title: visible(&c.title),
            target: target_label(lang, &c.target),
            updated: time(c.updated_at),
        })
        .collect();
    let targets = targets
        .map_err(api(lang))?
        .iter()
        .map(|t| TargetOption { value: t.to_text(), label: target_label(lang, t) })
        .collect();
    render(&ChatsView { page: Page::new(signed, "chat"), rows, targets, query: query.q, link_code })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

/// A one-time code (15 minutes) the signed-in person sends to the Telegram bot (`/link CODE`)
/// or on Discord (`/nexus link`), so that account speaks for them.
pub async fn link_code(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let principal = &signed.user.principal;
    let runtime::auth::Credential::User { id, .. } = &principal.credential else {
        return Err(ConsoleError::NotFound(signed.lang));
    };
    let (code, expires) =
        state.runtime.create_link_code(&principal.tenant, id, &principal.subject()).await.map_err(api(signed.lang))?;
    chats_page(&state, &signed, String::new(), Some((code, time(expires)))).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewChatForm {
    csrf: String,
    target: String,
    message: String,
}

/// `POST /chat`: a new conversation with its first message.
pub async fn start(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<NewChatForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let lang = signed.lang;
    let target = ChatTarget::parse(&form.target).ok_or_else(|| {
        ConsoleError::Api(lang, gateway::ApiError::invalid("target", "choose a model or a persona to talk to"))
    })?;
    let conversation =
        state.runtime.start_conversation(&signed.user.principal, target, &form.message).await.map_err(api(lang))?;
    Ok(Redirect::to(&format!("/chat/{}", conversation.id)).into_response())
}

fn conversation_id(lang: Lang, id: &str) -> Result<ConversationId, ConsoleError> {
    ConversationId::parse(id).map_err(|_| ConsoleError::NotFound(lang))
}

/// `GET /chat/{id}`.
pub async fn conversation(State(state): State<ConsoleState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    let lang = signed.lang;
    let id = conversation_id(lang, &id)?;
    let (conversation, messages) = state.runtime.conversation(&signed.user.principal, &id).await.map_err(api(lang))?;
    let pending = state.runtime.watch_reply(&id).is_some();
    let messages = messages
        .into_iter()
        .map(|m| MessageRow {
            mine: m.role == ChatRole::User,
            content: m.content,
            chain: m.chain_id.map(|c| c.to_string()).unwrap_or_default(),
            model: m.model.unwrap_or_default(),
            time: time(m.created_at),
        })
        .collect();
    render(&ChatView {
        page: Page::new(&signed, "chat"),
        id: id.to_string(),
        title: visible(&conversation.title),
        target: target_label(lang, &conversation.target),
        messages,
        pending,
        failure: state.runtime.take_reply_failure(&id).unwrap_or_default(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SayForm {
    csrf: String,
    message: String,
}

/// `POST /chat/{id}`: the person's next turn.
pub async fn say(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<SayForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let lang = signed.lang;
    let id = conversation_id(lang, &id)?;
    state.runtime.say(&signed.user.principal, &id, &form.message).await.map_err(api(lang))?;
    Ok(Redirect::to(&format!("/chat/{id}")).into_response())
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /chat/{id}/reply`: the reply being written, as escaped text fragments (`text`), then
/// `done` (or `failed` with the reason). A conversation with no reply in flight sends `done`.
pub async fn reply(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let lang = signed.lang;
    let id = conversation_id(lang, &id)?;
    // Only the owner may follow it.
    state.runtime.own_conversation(&signed.user.principal, &id).await.map_err(api(lang))?;
    let watch = state.runtime.watch_reply(&id);
    enum Next {
        First(runtime::chat::ReplyWatch),
        Live(tokio::sync::broadcast::Receiver<ReplyEvent>),
        End,
    }
    let start = match watch {
        Some(watch) => Next::First(watch),
        None => Next::End,
    };
    let done = || SseEvent::default().event("done").data("done");
    let stream = futures_util::stream::unfold(Some(start), move |next| async move {
        match next? {
            Next::First(watch) => {
                let event = SseEvent::default().event("text").data(escape(&watch.so_far));
                Some((Ok::<_, Infallible>(event), Some(Next::Live(watch.events))))
            }
            Next::Live(mut events) => loop {
                match events.recv().await {
                    Ok(ReplyEvent::Text(text)) => {
                        let event = SseEvent::default().event("text").data(escape(&text));
                        return Some((Ok(event), Some(Next::Live(events))));
                    }
                    Ok(ReplyEvent::Done(_)) | Err(RecvError::Closed) => return Some((Ok(done()), None)),
                    Ok(ReplyEvent::Failed(reason)) => {
                        let event = SseEvent::default().event("failed").data(escape(&reason));
                        return Some((Ok(event), Some(Next::End)));
                    }
                    // Fell behind: the page reloads what is stored once the reply ends.
                    Err(RecvError::Lagged(_)) => continue,
                }
            },
            Next::End => Some((Ok(done()), None)),
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportQuery {
    format: String,
}

/// `GET /chat/{id}/export?format=md|json`: the conversation as a download.
pub async fn export(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ConsoleError> {
    let lang = signed.lang;
    let id = conversation_id(lang, &id)?;
    let (conversation, messages) = state.runtime.conversation(&signed.user.principal, &id).await.map_err(api(lang))?;
    let (body, kind, extension) = match query.format.as_str() {
        "md" | "" => (runtime::chat::to_markdown(&conversation, &messages), "text/markdown; charset=utf-8", "md"),
        "json" => (
            serde_json::to_string_pretty(&runtime::chat::to_json(&conversation, &messages)).unwrap_or_default(),
            "application/json",
            "json",
        ),
        _ => {
            let error = gateway::ApiError::invalid("format", "format must be md or json");
            return Err(ConsoleError::Api(lang, error));
        }
    };
    let disposition = format!("attachment; filename=\"conversation-{id}.{extension}\"");
    Ok(([(header::CONTENT_TYPE, kind.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

/// `POST /chat/{id}/delete`.
pub async fn delete(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<crate::pages::CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let lang = signed.lang;
    let id = conversation_id(lang, &id)?;
    if !state.runtime.delete_conversation(&signed.user.principal, &id).await.map_err(api(lang))? {
        return Err(ConsoleError::NotFound(lang));
    }
    Ok(Redirect::to("/chat").into_response())
}
