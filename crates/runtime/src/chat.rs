//! Conversations: a person chatting with a gateway model or with the agent, kept per owner
//! (the principal's subject) so they can be read again, searched, exported and deleted.
//!
//! Saying something stores the person's turn and starts the reply on a task of its own (a
//! client that goes away never stops it): a model's answer streams through the governed
//! gateway path (budget, price, ledger entry per call) with the whole conversation as context;
//! the agent's answer is a run (planned, gated and sealed) whose task is the latest turn with
//! the earlier ones as context. Watchers of this process see the reply as it is written
//! ([`Runtime::watch_reply`]); the stored reply is the record. One reply at a time per
//! conversation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::chat::{ChatMessage, ChatRole, ChatTarget, Conversation};
use domain::ports::StoreError;
use domain::{ConversationId, Timestamp};
use futures_util::StreamExt as _;
use providers::{ChatRequest, Message, StreamEvent};
use tokio::sync::broadcast;

use crate::Runtime;
use crate::agent::RunRequest;
use crate::auth::{Principal, lock};
use crate::llm::Caller;

/// The longest turn a person may write, in characters.
pub const MAX_TURN_CHARS: usize = 32_000;
/// Conversations a listing shows at most.
pub const LISTED: u32 = 200;
/// Characters of earlier turns given to the agent as context.
const AGENT_CONTEXT_CHARS: usize = 4_000;
/// The longest answer asked of a model, in tokens.
const MAX_ANSWER_TOKENS: u32 = 2048;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("no such conversation")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("an answer is still being written in this conversation; wait for it")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] crate::LedgerError),
}

/// What a watcher of a reply sees.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// More of the answer.
    Text(String),
    /// The answer is stored.
    Done(ChatMessage),
    /// The answer failed; nothing was stored.
    Failed(String),
}

/// A reply being written by this process.
struct Pending {
    text: String,
    live: broadcast::Sender<ReplyEvent>,
    /// The run writing an agent's reply, once started.
    chain: Option<domain::ChainId>,
}

/// Replies in flight on this process, by conversation.
#[derive(Default)]
pub(crate) struct Replies {
    pending: Mutex<HashMap<ConversationId, Pending>>,
    /// The last failure of each conversation's reply, shown once.
    failed: Mutex<HashMap<ConversationId, String>>,
}

impl Replies {
    fn send(&self, id: &ConversationId, event: ReplyEvent) {
        let mut pending = lock(&self.pending);
        if let Some(reply) = pending.get_mut(id) {
            if let ReplyEvent::Text(text) = &event {
                reply.text.push_str(text);
            }
            let finished = !matches!(event, ReplyEvent::Text(_));
            let _ = reply.live.send(event.clone());
            if finished {
                pending.remove(id);
            }
        }
        if let ReplyEvent::Failed(reason) = event {
            lock(&self.failed).insert(id.clone(), reason);
        }
    }
}

/// A watch over a reply in flight: what was written so far, then the rest.
pub struct ReplyWatch {
    pub so_far: String,
    pub events: broadcast::Receiver<ReplyEvent>,
}

fn title_of(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let mut title: String = line.chars().take(80).collect();
    if line.chars().count() > 80 {
        title.push('…');
    }
    title
}

fn check_turn(text: &str) -> Result<&str, ChatError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatError::Invalid("the message is empty".into()));
    }
    if text.chars().count() > MAX_TURN_CHARS {
        return Err(ChatError::Invalid(format!("the message is longer than {MAX_TURN_CHARS} characters")));
    }
    Ok(text)
}

impl Runtime {
    /// What a conversation may talk to: the gateway's models (`model:<id>`), and the agent
    /// with any persona or one of the tenant's active personas (`agent:`, `agent:<persona>`).
    pub async fn chat_targets(&self, principal: &Principal) -> Result<Vec<ChatTarget>, ChatError> {
        let mut targets: Vec<ChatTarget> = self.gateway_models().into_iter().map(|m| ChatTarget::Model(m.id)).collect();
        if self.tool_list().is_ok() {
            targets.push(ChatTarget::Agent(None));
            let personas = self.personas(&principal.tenant).await?;
            targets.extend(personas.into_iter().filter(|p| p.is_active).map(|p| ChatTarget::Agent(Some(p.name))));
        }
        Ok(targets)
    }

    /// Starts a conversation with `first` as its first turn; the reply begins at once.
    pub async fn start_conversation(
        self: &Arc<Self>,
        principal: &Principal,
        target: ChatTarget,
        first: &str,
    ) -> Result<Conversation, ChatError> {
        let first = check_turn(first)?;
        let conversation = self.open_conversation(principal, target, first).await?;
        self.say(principal, &conversation.id, first).await?;
        Ok(conversation)
    }

    /// Starts a conversation with no turn yet (a chat channel's memory), titled `title`.
    pub async fn open_conversation(
        &self,
        principal: &Principal,
        target: ChatTarget,
        title: &str,
    ) -> Result<Conversation, ChatError> {
        if !self.chat_targets(principal).await?.contains(&target) {
            return Err(ChatError::Invalid(format!("{} is not a model or persona you can talk to", target.to_text())));
        }
        let now = Timestamp::now();
        let conversation = Conversation {
            id: ConversationId::generate(),
            tenant_id: principal.tenant.clone(),
            owner: principal.subject(),
            title: title_of(title),
            target,
            created_at: now,
            updated_at: now,
        };
        self.store().insert_conversation(&conversation).await?;
        Ok(conversation)
    }

    /// The principal's conversations, most recent first; with `text`, those that mention it.
    pub async fn conversations(
        &self,
        principal: &Principal,
        text: Option<&str>,
    ) -> Result<Vec<Conversation>, ChatError> {
        Ok(self.store().conversations(&principal.tenant, &principal.subject(), text, LISTED).await?)
    }

    /// One of the principal's conversations, without its messages (`NotFound` if it is not
    /// theirs).
    pub async fn own_conversation(
        &self,
        principal: &Principal,
        id: &ConversationId,
    ) -> Result<Conversation, ChatError> {
        let found = self.store().conversation(&principal.tenant, &principal.subject(), id).await?;
        found.ok_or(ChatError::NotFound)
    }

    /// One of the principal's conversations with its messages.
    pub async fn conversation(
        &self,
        principal: &Principal,
        id: &ConversationId,
    ) -> Result<(Conversation, Vec<ChatMessage>), ChatError> {
        let conversation = self.own_conversation(principal, id).await?;
        let messages = self.store().messages(&principal.tenant, id).await?;
        Ok((conversation, messages))
    }

    /// Deletes one of the principal's conversations; whether it existed. The ledger keeps a
    /// tombstone: which conversation, how many messages, and the SHA-256 of its JSON export —
    /// never the text — so a kept export can later be proven to be the deleted conversation.
    pub async fn delete_conversation(&self, principal: &Principal, id: &ConversationId) -> Result<bool, ChatError> {
        let (conversation, messages) = match self.conversation(principal, id).await {
            Ok(found) => found,
            Err(ChatError::NotFound) => return Ok(false),
            Err(other) => return Err(other),
        };
        let export = domain::canonical::canonical_json(&to_json(&conversation, &messages));
        if !self.store().delete_conversation(&principal.tenant, &principal.subject(), id).await? {
            return Ok(false);
        }
        use sha2::Digest as _;
        let payload = serde_json::json!({
            "action": "conversation_deleted",
            "conversation": id.as_str(),
            "owner": conversation.owner,
            "messages": messages.len(),
            "export_digest": format!("sha256:{}", hex::encode(sha2::Sha256::digest(export.as_bytes()))),
            "by": principal.subject(),
        });
        let draft = domain::ledger::EntryDraft { kind: domain::ledger::EntryKind::Memory, chain_id: None, payload };
        self.ledger().append(&principal.tenant, draft).await?;
        Ok(true)
    }

    /// The reply being written in a conversation on this process, if one is.
    pub fn watch_reply(&self, id: &ConversationId) -> Option<ReplyWatch> {
        let pending = lock(&self.replies.pending);
        pending.get(id).map(|p| ReplyWatch { so_far: p.text.clone(), events: p.live.subscribe() })
    }

    /// Stops the run writing the reply in one of the principal's conversations on this
    /// process; whether there was one to stop (a model's streamed reply cannot be stopped).
    pub async fn cancel_reply(&self, principal: &Principal, id: &ConversationId) -> Result<bool, ChatError> {
        self.own_conversation(principal, id).await?;
        let chain = lock(&self.replies.pending).get(id).and_then(|p| p.chain.clone());
        let Some(chain) = chain else { return Ok(false) };
        match self.cancel_run(&principal.tenant, &chain, &principal.subject()).await {
            Ok(_) => Ok(true),
            Err(crate::agent::AgentError::Store(error)) => Err(error.into()),
            Err(error) => Err(ChatError::Invalid(error.to_string())),
        }
    }

    /// Why the conversation's last reply failed, once (then forgotten).
    pub fn take_reply_failure(&self, id: &ConversationId) -> Option<String> {
        lock(&self.replies.failed).remove(id)
    }

    /// Stores the principal's turn and starts the reply. Refused while a reply is still being
    /// written here.
    pub async fn say(
        self: &Arc<Self>,
        principal: &Principal,
        id: &ConversationId,
        text: &str,
    ) -> Result<(), ChatError> {
        self.say_watched(principal, id, text).await.map(drop)
    }

    /// [`Runtime::say`], watching the reply from its first word: the receiver sees every
    /// [`ReplyEvent`] of it (a slow reader may miss `Text`s, never the end).
    pub async fn say_watched(
        self: &Arc<Self>,
        principal: &Principal,
        id: &ConversationId,
        text: &str,
    ) -> Result<broadcast::Receiver<ReplyEvent>, ChatError> {
        let text = check_turn(text)?;
        let (conversation, history) = self.conversation(principal, id).await?;
        let watch = {
            let mut pending = lock(&self.replies.pending);
            if pending.contains_key(id) {
                return Err(ChatError::Busy);
            }
            let (live, watch) = broadcast::channel(256);
            pending.insert(id.clone(), Pending { text: String::new(), live, chain: None });
            watch
        };
        lock(&self.replies.failed).remove(id);
        let turn = ChatMessage {
            conversation_id: id.clone(),
            seq: 0,
            role: ChatRole::User,
            content: text.to_owned(),
            chain_id: None,
            model: None,
            created_at: Timestamp::now(),
        };
        let turn = match self.store().append_message(&principal.tenant, &turn).await {
            Ok(turn) => turn,
            Err(error) => {
                lock(&self.replies.pending).remove(id);
                return Err(error.into());
            }
        };
        let mut history = history;
        history.push(turn);
        let runtime = self.clone();
        let principal = principal.clone();
        crate::tasks::spawn("chat-reply", async move {
            let id = conversation.id.clone();
            let outcome = runtime.reply(&principal, &conversation, &history).await;
            match outcome {
                Ok(message) => runtime.replies.send(&id, ReplyEvent::Done(message)),
                Err(reason) => {
                    tracing::warn!(conversation = %id, tenant = %principal.tenant, %reason, "a chat reply failed");
                    runtime.replies.send(&id, ReplyEvent::Failed(reason));
                }
            }
        });
        Ok(watch)
    }

    /// Keeps what a conversation's context no longer holds (its turns before `dropped_to`
    /// characters) as one memory item of the person's, replaced as more is left out: the
    /// person's own words first, the most recent of them when they do not all fit.
    async fn keep_trimmed(
        &self,
        principal: &Principal,
        conversation: &Conversation,
        earlier: &[ChatMessage],
        dropped_to: usize,
    ) -> Result<(), String> {
        let mut at = 0usize;
        let mut said = Vec::new();
        for m in earlier {
            let line = format!("{}: {}\n", m.role.as_str(), m.content);
            let starts = at;
            at += line.len();
            if starts >= dropped_to {
                break;
            }
            if m.role == ChatRole::User {
                said.push(m.content.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        if said.is_empty() {
            return Ok(());
        }
        let head = format!("Said earlier in the conversation \"{}\": ", conversation.title);
        let room = crate::memory::MAX_ITEM_CHARS.saturating_sub(head.chars().count());
        let mut kept: Vec<String> = Vec::new();
        let mut used = 0usize;
        for line in said.iter().rev() {
            let chars = line.chars().count() + 3;
            if used + chars > room {
                break;
            }
            used += chars;
            kept.push(line.clone());
        }
        kept.reverse();
        if kept.is_empty() {
            // One turn longer than an item: its end is what is kept.
            let last = said.last().map(String::as_str).unwrap_or_default();
            let skip = last.chars().count().saturating_sub(room);
            kept.push(last.chars().skip(skip).collect());
        }
        let write = crate::memory::MemoryWrite {
            owner: conversation.owner.clone(),
            content: format!("{head}{}", kept.join(" / ")),
            trust: domain::memory::MemoryTrust::Agent,
            provenance: domain::memory::Provenance {
                message: Some(format!("conversation:{}", conversation.id.as_str())),
                ..domain::memory::Provenance::default()
            },
            by: principal.subject(),
        };
        let item = format!("conversation-{}", conversation.id.as_str());
        self.remember_as(&principal.tenant, &item, write).await.map(drop).map_err(|e| e.to_string())
    }

    /// Writes the reply to the last turn of `history` and stores it.
    async fn reply(
        self: &Arc<Self>,
        principal: &Principal,
        conversation: &Conversation,
        history: &[ChatMessage],
    ) -> Result<ChatMessage, String> {
        let id = &conversation.id;
        let (content, chain_id, model) = match &conversation.target {
            ChatTarget::Model(model) => {
                let messages = history
                    .iter()
                    .map(|m| match m.role {
                        ChatRole::User => Message::user(m.content.clone()),
                        ChatRole::Assistant => Message::assistant(m.content.clone()),
                    })
                    .collect();
                let request = ChatRequest {
                    model: model.clone(),
                    system: None,
                    messages,
                    tools: Vec::new(),
                    max_tokens: MAX_ANSWER_TOKENS,
                    temperature: None,
                    stop: Vec::new(),
                };
                let caller = Caller::of(principal);
                let (mut stream, meta) =
                    self.gateway_stream(&caller, model, request).await.map_err(|e| e.to_string())?;
                let mut answer = String::new();
                while let Some(item) = stream.next().await {
                    match item.map_err(|e| e.to_string())? {
                        StreamEvent::TextDelta(text) => {
                            answer.push_str(&text);
                            self.replies.send(id, ReplyEvent::Text(text));
                        }
                        StreamEvent::Done { .. } => break,
                        _ => {}
                    }
                }
                (answer, None, Some(meta.model))
            }
            ChatTarget::Agent(persona) => {
                let (last, earlier) = history.split_last().ok_or("the conversation is empty")?;
                let mut task = String::new();
                let context: String = earlier.iter().map(|m| format!("{}: {}\n", m.role.as_str(), m.content)).collect();
                // The last AGENT_CONTEXT_CHARS characters: the most recent turns matter most.
                let skip = context.chars().count().saturating_sub(AGENT_CONTEXT_CHARS);
                let dropped_to = context.char_indices().nth(skip).map_or(context.len(), |(at, _)| at);
                let context = &context[dropped_to..];
                // What no longer fits is kept in the person's memory first, never lost silently.
                if skip > 0
                    && let Err(reason) = self.keep_trimmed(principal, conversation, earlier, dropped_to).await
                {
                    tracing::warn!(conversation = %id, %reason, "trimmed turns could not be kept in memory");
                    task.push_str(&format!(
                        "(Earlier turns of this conversation were left out and could not be kept in memory: {reason}.)\n"
                    ));
                }
                if !context.is_empty() {
                    task.push_str("Conversation so far:\n");
                    task.push_str(context);
                    task.push_str("\nNow: ");
                }
                task.push_str(&last.content);
                let request = RunRequest {
                    tenant: principal.tenant.clone(),
                    task,
                    persona: persona.clone(),
                    qa_spec: None,
                    user: Some(principal.subject()),
                    chain_id: None,
                    tier: None,
                };
                let handle = self.start_run(request).await.map_err(|e| e.to_string())?;
                let chain = handle.chain_id().clone();
                if let Some(pending) = lock(&self.replies.pending).get_mut(id) {
                    pending.chain = Some(chain.clone());
                }
                let report = handle.finished().await.map_err(|e| e.to_string())?;
                let answer = match report.answer.as_deref().filter(|a| !a.trim().is_empty()) {
                    Some(answer) => answer.to_owned(),
                    // Parked in the database until someone decides; not an ending.
                    None if report.status == domain::agent::ChainStatus::AwaitingApproval => {
                        "This run waits for an approval; its answer will be on the run's page once an admin decides."
                            .to_owned()
                    }
                    None => format!("The run ended {} without an answer.", report.status.as_str()),
                };
                self.replies.send(id, ReplyEvent::Text(answer.clone()));
                (answer, Some(chain), None)
            }
        };
        let message = ChatMessage {
            conversation_id: id.clone(),
            seq: 0,
            role: ChatRole::Assistant,
            content,
            chain_id,
            model,
            created_at: Timestamp::now(),
        };
        self.store().append_message(&principal.tenant, &message).await.map_err(|e| e.to_string())
    }
}

/// A conversation as Markdown: its title, then each turn under its speaker.
pub fn to_markdown(conversation: &Conversation, messages: &[ChatMessage]) -> String {
    let mut out = format!(
        "# {}\n\nWith `{}`, started {}.\n",
        conversation.title,
        conversation.target.to_text(),
        conversation.created_at.to_rfc3339()
    );
    for m in messages {
        let who = match m.role {
            ChatRole::User => "You".to_owned(),
            ChatRole::Assistant => match (&m.model, &m.chain_id) {
                (Some(model), _) => format!("Assistant ({model})"),
                (None, Some(chain)) => format!("Agent (run {chain})"),
                (None, None) => "Assistant".to_owned(),
            },
        };
        out.push_str(&format!("\n## {who} — {}\n\n{}\n", m.created_at.to_rfc3339(), m.content.trim_end()));
    }
    out
}

/// A conversation as JSON.
pub fn to_json(conversation: &Conversation, messages: &[ChatMessage]) -> serde_json::Value {
    serde_json::json!({
        "id": conversation.id.as_str(),
        "title": conversation.title,
        "target": conversation.target.to_text(),
        "created_at": conversation.created_at.to_rfc3339(),
        "updated_at": conversation.updated_at.to_rfc3339(),
        "messages": messages.iter().map(|m| serde_json::json!({
            "seq": m.seq,
            "role": m.role.as_str(),
            "content": m.content,
            "chain_id": m.chain_id.as_ref().map(|c| c.as_str()),
            "model": m.model,
            "created_at": m.created_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    })
}
