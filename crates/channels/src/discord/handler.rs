//! What the Discord bot does with each event: slash commands (`/nexus ask|status|help|link`),
//! mentions and DMs answered by a run in the member's conversation, moderation of configured
//! channels, and the buttons staff press to decide cases and approvals.
//!
//! An interaction is acknowledged at once (deferred: Discord drops it after 3 s) and answered
//! when its run finishes, by editing that first answer and following up with the rest.
//! Answers are Discord Markdown split under 2000 characters, in order, never empty, with the
//! seal as an embed on the last part; mentions in answers never ping anyone.
//!
//! Moderation: the pre-screen runs on every message of a moderated channel; a flagged message
//! by someone who is not staff goes to [`Runtime::moderate`]. An action the gate allows is
//! carried out here (delete, warn, timeout, kick, ban) and shown to staff with a button to
//! overturn it; a case for review is shown with uphold, overturn and dismiss. A verdict goes
//! through [`Runtime::review_case`] (staff only, once), carries out an upheld action or undoes
//! an overturned one where Discord allows, and is sealed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::channel::{Channel, Delivery, DeliveryStatus};
use domain::moderation::{CaseStatus, Inspected, ModAction, ModerationCase, Prescreen, Verdict};
use runtime::Runtime;
use runtime::channels::{Account, Admitted, ChannelError, Member};
use runtime::chat::ChatError;
use runtime::moderation::{Flagged, Judged, ModerationError};
use serde_json::{Value, json};

use super::DiscordSettings;
use super::api::{
    APPLICATION_COMMAND, ApiError, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, EPHEMERAL,
    Interaction, MESSAGE_COMPONENT, Message, RestApi, User,
};
use crate::text::{self, Measure, Piece};

/// How many earlier messages of the channel `/nexus ask` reads as context.
const CONTEXT_MESSAGES: u8 = 10;
/// Discord's typing indicator lasts ~10 s.
const TYPING_EVERY: Duration = Duration::from_secs(8);
const TYPING_AT_MOST: Duration = Duration::from_secs(600);
/// Answers never ping anyone, whatever the model wrote.
fn no_pings() -> Value {
    json!({"parse": []})
}

/// Who the bot is, learnt when the gateway is ready.
#[derive(Debug, Clone)]
pub(crate) struct Bot {
    pub user_id: String,
    pub application_id: String,
}

#[derive(Clone)]
pub(crate) struct Context {
    pub runtime: Arc<Runtime>,
    pub settings: Arc<DiscordSettings>,
    pub api: RestApi,
    pub bot: Arc<Mutex<Bot>>,
    pub prescreen: Arc<Mutex<Prescreen>>,
    pub authors: Arc<Authors>,
}

impl Context {
    fn bot(&self) -> Bot {
        self.bot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// An event claimed for handling.
pub(crate) enum Work {
    Message(Box<Message>),
    /// An edited message: moderated again, not answered.
    Edited(Box<Message>),
    Interaction(Box<Interaction>),
}

/// The slash commands, registered on every new session (the call replaces them whole).
fn commands() -> Value {
    let sub = |name: &str, description: &str, it: &str, options: Value| {
        json!({"type": 1, "name": name, "description": description,
               "description_localizations": {"it": it}, "options": options})
    };
    let text_option = |name: &str, description: &str, it: &str| {
        json!([{"type": 3, "name": name, "description": description,
                "description_localizations": {"it": it}, "required": true}])
    };
    json!([{
        "name": "nexus", "type": 1,
        "description": "Ask the Nexus agent, or see its status",
        "description_localizations": {"it": "Chiedi all'agente Nexus, o guarda il suo stato"},
        "options": [
            sub("ask", "Ask the agent (it reads the channel's last messages)", "Chiedi all'agente (legge gli ultimi messaggi del canale)",
                text_option("prompt", "Your question", "La tua domanda")),
            sub("status", "Providers, budget and queue", "Provider, budget e coda", json!([])),
            sub("help", "What Nexus does here", "Cosa fa Nexus qui", json!([])),
            sub("link", "Link your Discord account to your Nexus user", "Collega il tuo account Discord al tuo utente Nexus",
                text_option("code", "The code from your admin (nexus users link-code)", "Il codice del tuo admin (nexus users link-code)")),
        ]
    }])
}

/// A new gateway session: remember the application and register the commands.
pub(crate) async fn ready(cx: &Context, application_id: &str) {
    cx.bot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).application_id = application_id.to_owned();
    if application_id.is_empty() {
        tracing::warn!("Discord's READY named no application; slash commands are not registered");
        return;
    }
    if let Err(error) = cx.api.set_commands(application_id, &commands()).await {
        tracing::warn!(%error, "could not register the Discord slash commands");
    }
    if !cx.settings.moderated_channels.is_empty() && cx.settings.staff_channel.is_none() {
        tracing::warn!(
            "Discord moderation has no staff channel (channels.discord.staff_channel): cases are recorded and \
             sealed, but nobody is shown them to decide"
        );
    }
}

/// Handles one event. A person's messages go to their own worker, in the order the gateway
/// sent them (their turns never overlap, so a quick second message waits for the first answer
/// instead of being refused as busy); interactions run at once, since Discord wants an
/// acknowledgement within 3 s.
pub(crate) fn handle(cx: &Context, work: Work) {
    match work {
        Work::Message(message) => cx.authors.dispatch(cx, *message, false),
        Work::Edited(message) => cx.authors.dispatch(cx, *message, true),
        Work::Interaction(interaction) => {
            let cx = cx.clone();
            runtime::tasks::spawn("discord-interaction", async move { on_interaction(&cx, *interaction).await });
        }
    }
}

/// How long an author's worker waits for another message before it ends.
const WORKER_IDLE: Duration = Duration::from_secs(300);

/// One worker per author, started on demand.
#[derive(Default)]
pub(crate) struct Authors {
    queues: Mutex<std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<(Message, bool)>>>,
}

impl Authors {
    fn dispatch(&self, cx: &Context, message: Message, edited: bool) {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if queues.len() > 1000 {
            // Forget the workers that ended (idle).
            queues.retain(|_, queue| !queue.is_closed());
        }
        let author = message.author.id.clone();
        let message = (message, edited);
        let message = match queues.get(&author) {
            Some(queue) => match queue.send(message) {
                Ok(()) => return,
                // The worker ended (idle): start another.
                Err(tokio::sync::mpsc::error::SendError(message)) => message,
            },
            None => message,
        };
        let (queue, mut messages) = tokio::sync::mpsc::unbounded_channel();
        // A fresh channel's receiver is alive: this send cannot fail.
        let _ = queue.send(message);
        queues.insert(author, queue);
        let cx = cx.clone();
        runtime::tasks::spawn("discord-author", async move {
            while let Ok(Some((message, edited))) = tokio::time::timeout(WORKER_IDLE, messages.recv()).await {
                on_message(&cx, message, edited).await;
            }
        });
    }
}

fn allowed_guild(cx: &Context, guild: Option<&str>) -> bool {
    guild.is_none_or(|g| cx.settings.allowed_guilds.is_empty() || cx.settings.allowed_guilds.iter().any(|a| a == g))
}

fn account_of(user: &User, dm_channel: Option<&str>) -> Account {
    Account {
        channel: Channel::Discord,
        external_id: user.id.clone(),
        display: user.display(),
        private_chat: dm_channel.map(str::to_owned),
    }
}

/// Whether the bot has anything to do with a message: moderate it (in a moderated channel of
/// an allowed guild), or answer it (a DM, or a mention of the bot). Checked before the message
/// is even recorded.
pub(crate) fn wanted(cx: &Context, message: &Message, edited: bool) -> bool {
    let bot = cx.bot();
    if message.author.bot || message.author.id == bot.user_id || !allowed_guild(cx, message.guild_id.as_deref()) {
        return false;
    }
    let moderated = message.guild_id.is_some() && cx.settings.moderated_channels.contains(&message.channel_id);
    if edited {
        return moderated;
    }
    moderated || message.guild_id.is_none() || message.mentions.iter().any(|u| u.id == bot.user_id)
}

/// A message the dispatcher found [`wanted`]: moderated first where it is watched, then
/// answered if it is for the bot.
async fn on_message(cx: &Context, message: Message, edited: bool) {
    let bot = cx.bot();
    if let Some(guild) = message.guild_id.as_deref()
        && cx.settings.moderated_channels.contains(&message.channel_id)
        && moderate(cx, guild, &message).await
    {
        return;
    }
    if edited {
        return;
    }
    let dm = message.guild_id.is_none();
    let mentioned = message.mentions.iter().any(|u| u.id == bot.user_id);
    if !dm && !mentioned {
        return;
    }
    let question =
        message.content.replace(&format!("<@{}>", bot.user_id), " ").replace(&format!("<@!{}>", bot.user_id), " ");
    let question = readable(&question, &message.mentions);
    let account = account_of(&message.author, dm.then_some(message.channel_id.as_str()));
    if let Some(code) = question.strip_prefix("link ").or_else(|| question.strip_prefix("/link ")) {
        let text = link(cx, &account, code).await;
        reply(cx, &message, &text).await;
        return;
    }
    let reply_to = Some(message.id.as_str());
    if question.is_empty() {
        post_parts(cx, &message.channel_id, &[Piece::Ready(HELP.to_owned())], reply_to, None).await;
        return;
    }
    let Some(mut member) = member_or_reply(cx, &account, |text| reply(cx, &message, text)).await else { return };
    let typing = runtime::tasks::spawn("discord-typing", keep_typing(cx.api.clone(), message.channel_id.clone()));
    let answer = run(cx, &mut member, &question).await;
    typing.abort();
    post_parts(cx, &message.channel_id, &answer.parts, reply_to, answer.seal.as_ref()).await;
}

async fn reply(cx: &Context, message: &Message, text: &str) {
    post_parts(cx, &message.channel_id, &[Piece::Ready(text.to_owned())], Some(&message.id), None).await;
}

/// The member who wrote, or `None` after telling them why not.
async fn member_or_reply<F, Fut>(cx: &Context, account: &Account, tell: F) -> Option<Member>
where
    F: FnOnce(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match cx.runtime.channel_member(&cx.settings.tenant, account, cx.settings.admission).await {
        Ok(Admitted::Member { member, new }) => {
            if new {
                tracing::info!(account = %account.external_id, display = %account.display, "a Discord stranger was let in at level 0");
            }
            Some(*member)
        }
        Ok(Admitted::Refused) => {
            tracing::info!(account = %account.external_id, display = %account.display, "refused a Discord stranger (channel closed)");
            tell(REFUSED).await;
            tell_staff_refused(cx, account).await;
            None
        }
        Err(error) => {
            tracing::error!(%error, "could not tell who wrote to the Discord bot");
            tell(UNAVAILABLE).await;
            None
        }
    }
}

/// Tells staff (in the staff channel) that a stranger was refused, once a day per account.
async fn tell_staff_refused(cx: &Context, account: &Account) {
    let Some(staff) = cx.settings.staff_channel.as_deref() else { return };
    let day = domain::Timestamp::now().as_micros() / 86_400_000_000;
    let key = format!("refused:{}:{day}", account.external_id);
    match cx.runtime.claim_channel_update(&cx.settings.tenant, Channel::Discord, &key).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "could not record a refusal notice");
            return;
        }
    }
    let text = format!(
        "🚪 <@{}> ({}) wrote to the bot and was refused. To let them in, make them a user and a code: \
         `nexus users link-code --tenant {} --email …`, then they use `/nexus link`.",
        account.external_id, account.display, cx.settings.tenant
    );
    let body = json!({"content": text, "allowed_mentions": no_pings()});
    if let Err(error) = cx.api.post(staff, &body).await {
        tracing::warn!(%error, "could not tell staff of a refused stranger");
    }
}

const HELP: &str = "**Nexus** answers here as the agent of this community: every answer is a run, checked \
against policy, on the budget and sealed in the ledger.\n\
• `/nexus ask prompt:` asks, with this channel's last messages as context\n\
• mention me or DM me to talk (I remember the conversation)\n\
• `/nexus status` shows providers, budget and queue\n\
• `/nexus link code:` links your account to your Nexus user";
const REFUSED: &str = "This assistant is private: ask an administrator for a link code, then use `/nexus link`.";
const UNAVAILABLE: &str = "Nexus cannot answer right now; please try again in a moment.";

/// An answer: its parts, and the run's seal when there is one.
struct Answer {
    parts: Vec<Piece>,
    seal: Option<Value>,
}

impl Answer {
    fn says(text: impl Into<String>) -> Answer {
        Answer { parts: vec![Piece::Ready(text.into())], seal: None }
    }
}

/// A turn in the member's conversation, waited for.
async fn run(cx: &Context, member: &mut Member, question: &str) -> Answer {
    let conversation = match cx.runtime.channel_conversation(member).await {
        Ok(conversation) => conversation,
        Err(ChannelError::Chat(ChatError::Invalid(reason))) => return Answer::says(format!("⚠️ {reason}")),
        Err(error) => {
            tracing::error!(%error, "could not open a Discord user's conversation");
            return Answer::says(UNAVAILABLE);
        }
    };
    let watch = match cx.runtime.say_watched(&member.principal, &conversation.id, question).await {
        Ok(watch) => watch,
        Err(ChatError::Busy) => return Answer::says("I am still answering your previous message."),
        Err(ChatError::Invalid(reason)) => return Answer::says(format!("⚠️ {reason}")),
        Err(error) => {
            tracing::error!(%error, "could not start a Discord user's turn");
            return Answer::says(UNAVAILABLE);
        }
    };
    match crate::reply::wait_reply(watch).await {
        Ok(message) => {
            let tenant = &member.principal.tenant;
            let body = if crate::reply::awaits_approval(&cx.runtime, tenant, &message).await {
                Piece::Ready(
                    "⏳ This needs a staff member's approval; I will send you the answer when it is decided.".into(),
                )
            } else if message.content.trim().is_empty() {
                Piece::Ready("The run ended without an answer.".into())
            } else {
                Piece::Markdown(message.content.clone())
            };
            let seal = match &message.chain_id {
                Some(chain) => Some(seal_embed(&cx.runtime, tenant, chain).await),
                None => None,
            };
            Answer { parts: vec![body], seal }
        }
        Err(reason) => Answer::says(format!("⚠️ The run failed: {reason}")),
    }
}

/// The run's seal as an embed: its last ledger entry, which anyone can look up and prove.
async fn seal_embed(runtime: &Runtime, tenant: &domain::TenantId, chain: &domain::ChainId) -> Value {
    let description = match crate::reply::seal(runtime, tenant, chain).await {
        Some((fingerprint, index)) => format!("`{fingerprint}` #{index} · run `{chain}`"),
        None => format!("run `{chain}`"),
    };
    json!({"title": "🔏 Sealed", "description": description, "color": 0x2f_80_ed})
}

async fn keep_typing(api: RestApi, channel: String) {
    let started = std::time::Instant::now();
    while started.elapsed() < TYPING_AT_MOST {
        if let Err(error) = api.typing(&channel).await {
            tracing::debug!(%error, "could not show the typing indicator");
        }
        tokio::time::sleep(TYPING_EVERY).await;
    }
}

fn discord_parts(pieces: &[Piece]) -> Vec<String> {
    text::split(pieces, text::DISCORD_LIMIT, Measure::Chars, |markdown| markdown.to_owned())
        .into_iter()
        .map(|part| part.text)
        .collect()
}

/// Sends one queued post to its channel, split under 2000 characters, without pinging anyone.
pub(super) async fn deliver(cx: &Context, delivery: &Delivery) -> (DeliveryStatus, Option<String>) {
    for (n, part) in discord_parts(&[Piece::Markdown(delivery.body.clone())]).iter().enumerate() {
        let body = json!({"content": part, "allowed_mentions": no_pings()});
        match cx.api.post(&delivery.chat_id, &body).await {
            Ok(_) => {}
            Err(ApiError::Forbidden(reason)) | Err(ApiError::NotFound(reason)) => {
                return (DeliveryStatus::Blocked, Some(format!("part {n}: {reason}")));
            }
            Err(error) => return (DeliveryStatus::Failed, Some(format!("part {n}: {error}"))),
        }
    }
    (DeliveryStatus::Delivered, None)
}

/// Posts an answer in a channel: split under 2000 characters, in order; the first part replies
/// to `reply_to`; the seal rides on the last.
async fn post_parts(cx: &Context, channel: &str, pieces: &[Piece], reply_to: Option<&str>, seal: Option<&Value>) {
    let parts = discord_parts(pieces);
    let last = parts.len().saturating_sub(1);
    for (n, part) in parts.iter().enumerate() {
        let mut body = json!({"content": part, "allowed_mentions": no_pings()});
        if n == 0
            && let Some(id) = reply_to
        {
            body["message_reference"] = json!({"message_id": id, "fail_if_not_exists": false});
        }
        if n == last
            && let Some(seal) = seal
        {
            body["embeds"] = json!([seal]);
        }
        if let Err(error) = cx.api.post(channel, &body).await {
            tracing::error!(%error, channel, part = n, "could not send a Discord message; the rest of the answer is dropped");
            return;
        }
    }
}

async fn on_interaction(cx: &Context, interaction: Interaction) {
    if !allowed_guild(cx, interaction.guild_id.as_deref()) {
        return;
    }
    match interaction.kind {
        APPLICATION_COMMAND => on_command(cx, interaction).await,
        MESSAGE_COMPONENT => on_button(cx, interaction).await,
        other => tracing::debug!(kind = other, "a Discord interaction of a kind Nexus does not use"),
    }
}

/// The subcommand of `/nexus` and its string options.
fn subcommand(data: &Value) -> Option<(String, Vec<(String, String)>)> {
    if data["name"] != "nexus" {
        return None;
    }
    let sub = data["options"].as_array()?.first()?;
    let name = sub["name"].as_str()?.to_owned();
    let options = sub["options"]
        .as_array()
        .map(|options| {
            options
                .iter()
                .filter_map(|o| Some((o["name"].as_str()?.to_owned(), o["value"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Some((name, options))
}

async fn respond_now(cx: &Context, interaction: &Interaction, text: &str) {
    let body =
        json!({"type": CHANNEL_MESSAGE, "data": {"content": text, "flags": EPHEMERAL, "allowed_mentions": no_pings()}});
    if let Err(error) = cx.api.respond(interaction, &body).await {
        tracing::warn!(%error, "could not answer a Discord interaction");
    }
}

async fn on_command(cx: &Context, interaction: Interaction) {
    let Some((name, options)) = interaction.data.as_ref().and_then(subcommand) else {
        respond_now(cx, &interaction, "Unknown command.").await;
        return;
    };
    let Some(actor) = interaction.actor().cloned() else { return };
    let dm = interaction.guild_id.is_none().then_some(interaction.channel_id.as_deref()).flatten();
    let account = account_of(&actor, dm);
    let option = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim().to_owned());
    match name.as_str() {
        "help" => respond_now(cx, &interaction, HELP).await,
        "link" => {
            let text = link(cx, &account, &option("code").unwrap_or_default()).await;
            respond_now(cx, &interaction, &text).await;
        }
        "status" => {
            let text = match member_quiet(cx, &account).await {
                Some(member) => status(cx, &member, interaction.guild_id.as_deref()).await,
                None => REFUSED.to_owned(),
            };
            respond_now(cx, &interaction, &text).await;
        }
        "ask" => ask(cx, interaction, account, option("prompt").unwrap_or_default()).await,
        _ => respond_now(cx, &interaction, "Unknown command.").await,
    }
}

async fn member_quiet(cx: &Context, account: &Account) -> Option<Member> {
    match cx.runtime.channel_member(&cx.settings.tenant, account, cx.settings.admission).await {
        Ok(Admitted::Member { member, .. }) => Some(*member),
        Ok(Admitted::Refused) => None,
        Err(error) => {
            tracing::error!(%error, "could not tell who used a Discord command");
            None
        }
    }
}

/// `/nexus ask`: deferred at once, then answered by editing that answer (and following up
/// with the rest of a long one).
async fn ask(cx: &Context, interaction: Interaction, account: Account, prompt: String) {
    if let Err(error) = cx.api.respond(&interaction, &json!({"type": DEFERRED_CHANNEL_MESSAGE})).await {
        tracing::warn!(%error, "could not acknowledge a Discord command; its token is lost");
        return;
    }
    let answer = if prompt.is_empty() {
        Answer::says("Ask something: `/nexus ask prompt: …`")
    } else {
        match member_quiet(cx, &account).await {
            None => Answer::says(REFUSED),
            Some(mut member) => {
                let context = match interaction.channel_id.as_deref() {
                    Some(channel) => channel_context(cx, channel).await,
                    None => String::new(),
                };
                let question = if context.is_empty() {
                    prompt.clone()
                } else {
                    format!("Recent messages in this channel, oldest first:\n{context}\n\nQuestion: {prompt}")
                };
                run(cx, &mut member, &question).await
            }
        }
    };
    let parts = discord_parts(&answer.parts);
    let last = parts.len().saturating_sub(1);
    for (n, part) in parts.iter().enumerate() {
        let mut body = json!({"content": part, "allowed_mentions": no_pings()});
        if n == last
            && let Some(seal) = &answer.seal
        {
            body["embeds"] = json!([seal]);
        }
        let sent = if n == 0 {
            cx.api.edit_original(&interaction, &body).await
        } else {
            cx.api.follow_up(&interaction, &body).await
        };
        if let Err(error) = sent {
            tracing::error!(%error, part = n, "could not answer a Discord command; the rest of the answer is dropped");
            return;
        }
    }
}

/// The channel's last messages as `name: text` lines, oldest first (bots' included, so the
/// agent sees its own earlier answers).
async fn channel_context(cx: &Context, channel: &str) -> String {
    match cx.api.recent(channel, CONTEXT_MESSAGES).await {
        Ok(messages) => messages
            .iter()
            .rev()
            .filter(|m| !m.content.trim().is_empty())
            .map(|m| {
                format!(
                    "{}: {}",
                    m.author.display(),
                    readable(&m.content, &m.mentions).chars().take(1000).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(error) => {
            tracing::warn!(%error, channel, "could not read the channel's recent messages for context");
            String::new()
        }
    }
}

/// A message as people read it: mentions by name instead of `<@snowflake>` (which also keeps
/// long numeric ids out of what the agent sees and repeats).
fn readable(content: &str, mentions: &[User]) -> String {
    static TOKENS: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"<(@!?|@&|#)\d+>").ok());
    let mut text = content.to_owned();
    for user in mentions {
        let name = format!("@{}", user.display().trim_start_matches('@'));
        text = text.replace(&format!("<@{}>", user.id), &name).replace(&format!("<@!{}>", user.id), &name);
    }
    let text = match TOKENS.as_ref() {
        Some(tokens) => tokens
            .replace_all(&text, |c: &regex::Captures<'_>| match &c[1] {
                "#" => "#channel",
                "@&" => "@role",
                _ => "@someone",
            })
            .into_owned(),
        None => text,
    };
    text.trim().to_owned()
}

async fn link(cx: &Context, account: &Account, code: &str) -> String {
    if code.trim().is_empty() {
        return "Send the code your administrator made with `nexus users link-code`: `/nexus link code: …`".into();
    }
    match cx.runtime.link_account(&cx.settings.tenant, account, code).await {
        Ok(member) => format!("✅ Linked: you are **{}** (level {}).", member.user.name, member.user.level.get()),
        Err(ChannelError::BadCode) => "That code is unknown, used or expired; ask for a new one.".into(),
        Err(ChannelError::OtherTenant) => "That code belongs to another Nexus tenant.".into(),
        Err(error) => {
            tracing::error!(%error, "could not link a Discord account");
            UNAVAILABLE.into()
        }
    }
}

async fn status(cx: &Context, member: &Member, guild: Option<&str>) -> String {
    let tenant = &member.principal.tenant;
    let mut lines = vec!["**Nexus status**".to_owned()];
    lines.extend(crate::status::lines(&cx.runtime, tenant, str::to_owned).await);
    if let Some(guild) = guild
        && !cx.settings.moderated_channels.is_empty()
    {
        let policy = cx.settings.policy(Some(guild));
        let mut line = format!(
            "🛡️ moderation on {} channel(s), threshold {:.2}{}",
            cx.settings.moderated_channels.len(),
            policy.threshold,
            if policy.dry_run { ", dry run" } else { "" }
        );
        if let Ok(adjustments) = cx.runtime.moderation_strictness(tenant, guild).await {
            for (category, adjustment) in adjustments.iter().filter(|(_, a)| a.abs() > 1e-9) {
                line.push_str(&format!(" · {category} {adjustment:+.2}"));
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

// --- Moderation -------------------------------------------------------------------------------

/// Runs moderation on a message of a moderated channel; true when the message or its author
/// was acted on (the bot then does not answer it).
async fn moderate(cx: &Context, guild: &str, message: &Message) -> bool {
    // `@everyone` and `@here` are counted from the text by the pre-screen itself.
    let mentions = message.mentions.len() + message.mention_roles.len();
    let flags = {
        let mut screen = cx.prescreen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let inspected = Inspected { author_id: &message.author.id, text: &message.content, mentions };
        screen.check(&cx.settings.policy(Some(guild)).rules, &inspected, domain::Timestamp::now())
    };
    if flags.is_empty() {
        return false;
    }
    // Staff are not moderated (known accounts only: a stranger is never let in here).
    let account = account_of(&message.author, None);
    if let Ok(Admitted::Member { member, .. }) =
        cx.runtime.channel_member(&cx.settings.tenant, &account, domain::channel::Admission::Closed).await
        && is_staff(cx, &member, Some(guild))
    {
        return false;
    }
    let flagged = Flagged {
        tenant: cx.settings.tenant.clone(),
        channel: Channel::Discord.as_str().to_owned(),
        scope: guild.to_owned(),
        place: message.channel_id.clone(),
        message_id: message.id.clone(),
        author_id: message.author.id.clone(),
        author: message.author.display(),
        text: message.content.clone(),
        flags,
    };
    let case = match cx.runtime.moderate(cx.settings.policy(Some(guild)), flagged).await {
        Ok(Judged::Clear { reason }) => {
            tracing::debug!(message = %message.id, %reason, "a flagged Discord message was judged fine");
            return false;
        }
        Ok(Judged::Case(case)) => *case,
        Err(error) => {
            tracing::error!(%error, message = %message.id, "could not record a moderation decision; nothing was done");
            return false;
        }
    };
    tracing::info!(case = %case.id, status = %case.status, action = %case.action, category = %case.category, "a Discord message was moderated");
    let mut notes = Vec::new();
    if case.status == CaseStatus::Acted {
        notes = carry_out(cx, &case).await;
    }
    show_case(cx, &case, &notes).await;
    case.status == CaseStatus::Acted && !matches!(case.action, ModAction::None | ModAction::Warn)
}

fn is_staff(cx: &Context, member: &Member, guild: Option<&str>) -> bool {
    member.principal.is_admin() || member.principal.level.get() >= cx.settings.policy(guild).staff_level
}

/// Carries out a case's action; what went wrong, if anything (a missing permission, …).
async fn carry_out(cx: &Context, case: &ModerationCase) -> Vec<String> {
    let reason = format!("Nexus moderation {}: {} ({})", case.id, case.category, case.reason);
    let api = &cx.api;
    let mut steps: Vec<(&str, Result<(), ApiError>)> = Vec::new();
    let delete = |steps: &mut Vec<(&str, Result<(), ApiError>)>, outcome| steps.push(("delete the message", outcome));
    match case.action {
        ModAction::None => {}
        ModAction::Delete => delete(&mut steps, api.delete_message(&case.place, &case.message_id, &reason).await),
        ModAction::Warn => {
            let body = json!({
                "content": format!("⚠️ <@{}>, a message of yours broke this community's rules ({}): {}",
                                   case.author_id, case.category, case.reason),
                "allowed_mentions": {"users": [case.author_id]},
                "message_reference": {"message_id": case.message_id, "fail_if_not_exists": false},
            });
            steps.push(("warn", api.post(&case.place, &body).await.map(|_| ())));
        }
        ModAction::Timeout => {
            delete(&mut steps, api.delete_message(&case.place, &case.message_id, &reason).await);
            let until = chrono::Utc::now()
                + chrono::Duration::from_std(cx.settings.timeout).unwrap_or_else(|_| chrono::Duration::minutes(10));
            let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            steps.push(("time out", api.timeout(&case.scope, &case.author_id, Some(&until), &reason).await));
        }
        ModAction::Kick => {
            delete(&mut steps, api.delete_message(&case.place, &case.message_id, &reason).await);
            steps.push(("kick", api.kick(&case.scope, &case.author_id, &reason).await));
        }
        ModAction::Ban => steps.push(("ban", api.ban(&case.scope, &case.author_id, &reason).await)),
    }
    steps
        .into_iter()
        .filter_map(|(what, outcome)| {
            outcome.err().map(|error| {
                tracing::warn!(%error, case = %case.id, what, "a moderation action failed");
                format!("could not {what}: {error}")
            })
        })
        .collect()
}

/// Undoes what Discord lets undo of an overturned case.
async fn undo(cx: &Context, case: &ModerationCase) -> Vec<String> {
    let reason = format!("Nexus moderation {} overturned", case.id);
    let outcome = match case.action {
        ModAction::Timeout => cx.api.timeout(&case.scope, &case.author_id, None, &reason).await,
        ModAction::Ban => cx.api.unban(&case.scope, &case.author_id, &reason).await,
        ModAction::Delete | ModAction::Kick => {
            return vec![format!("a {} cannot be undone on Discord", case.action)];
        }
        ModAction::None | ModAction::Warn => return Vec::new(),
    };
    outcome.err().map(|error| vec![format!("could not undo the {}: {error}", case.action)]).unwrap_or_default()
}

fn case_text(case: &ModerationCase, notes: &[String]) -> String {
    let confidence = case.confidence.map_or_else(|| "—".to_owned(), |c| format!("{c:.2}"));
    let mut lines = vec![
        format!("🛡️ **Moderation case `{}`** — {}", case.id, case.status),
        format!("Author: <@{}> ({}) in <#{}>", case.author_id, case.author, case.place),
        format!(
            "Flags: {} · category **{}** ({}) · confidence {confidence} (threshold {:.2})",
            case.flags.join(", "),
            case.category,
            case.severity,
            case.threshold
        ),
        format!("Action: **{}** · decided by {}", case.action, case.decided_by),
        format!("Reason: {}", case.reason),
        format!("> {}", case.excerpt.replace('\n', " ").chars().take(300).collect::<String>()),
    ];
    if let Some(by) = &case.reviewed_by {
        lines.push(format!("Staff: **{}** by {by}", case.status));
    }
    lines.extend(notes.iter().map(|n| format!("⚠️ {n}")));
    lines.join("\n")
}

fn case_buttons(case: &ModerationCase) -> Value {
    let button = |label: &str, style: u8, verdict: &str| json!({"type": 2, "style": style, "label": label, "custom_id": format!("m:{verdict}:{}", case.id)});
    let buttons = match case.status {
        CaseStatus::Acted => vec![button("Overturn", 4, "o"), button("Uphold", 2, "u")],
        CaseStatus::DryRun | CaseStatus::Review => {
            vec![button("Uphold", 3, "u"), button("Overturn", 4, "o"), button("Dismiss", 2, "d")]
        }
        _ => return json!([]),
    };
    json!([{"type": 1, "components": buttons}])
}

async fn show_case(cx: &Context, case: &ModerationCase, notes: &[String]) {
    let Some(staff) = cx.settings.staff_channel_of(Some(&case.scope)) else { return };
    let body =
        json!({"content": case_text(case, notes), "components": case_buttons(case), "allowed_mentions": no_pings()});
    if let Err(error) = cx.api.post(staff, &body).await {
        tracing::warn!(%error, case = %case.id, "could not show a moderation case to staff");
    }
}

const REVIEW_DATA: &str = "m:";
const APPROVE_DATA: &str = "a:y:";
const DENY_DATA: &str = "a:n:";

async fn on_button(cx: &Context, interaction: Interaction) {
    // Acknowledged at once; the message is edited when the decision is made.
    if let Err(error) = cx.api.respond(&interaction, &json!({"type": DEFERRED_UPDATE_MESSAGE})).await {
        tracing::warn!(%error, "could not acknowledge a Discord button");
        return;
    }
    let Some(data) = interaction.data.as_ref().and_then(|d| d["custom_id"].as_str()).map(str::to_owned) else { return };
    let Some(actor) = interaction.actor().cloned() else { return };
    let account = account_of(&actor, None);
    let member =
        match cx.runtime.channel_member(&cx.settings.tenant, &account, domain::channel::Admission::Closed).await {
            Ok(Admitted::Member { member, .. }) => Some(*member),
            _ => None,
        };
    let Some(member) = member else {
        follow_up_private(cx, &interaction, "Only linked staff decide here: link your account with `/nexus link`.")
            .await;
        return;
    };
    if let Some(id) = data.strip_prefix(APPROVE_DATA) {
        decide(cx, &interaction, &member, id, true).await;
    } else if let Some(id) = data.strip_prefix(DENY_DATA) {
        decide(cx, &interaction, &member, id, false).await;
    } else if let Some(rest) = data.strip_prefix(REVIEW_DATA) {
        let verdict = match rest.split_once(':') {
            Some(("u", id)) => Some((Verdict::Uphold, id)),
            Some(("o", id)) => Some((Verdict::Overturn, id)),
            Some(("d", id)) => Some((Verdict::Dismiss, id)),
            _ => None,
        };
        if let Some((verdict, id)) = verdict {
            review(cx, &interaction, &member, id, verdict).await;
        }
    }
}

async fn follow_up_private(cx: &Context, interaction: &Interaction, text: &str) {
    let body = json!({"content": text, "flags": EPHEMERAL, "allowed_mentions": no_pings()});
    if let Err(error) = cx.api.follow_up(interaction, &body).await {
        tracing::warn!(%error, "could not answer a Discord button");
    }
}

async fn review(cx: &Context, interaction: &Interaction, member: &Member, id: &str, verdict: Verdict) {
    // The case's guild decides who its staff are and whether it runs dry.
    let scope = cx.runtime.moderation_case(&member.principal.tenant, id).await.ok().flatten().map(|c| c.scope);
    let policy = cx.settings.policy(scope.as_deref());
    let (case, before) = match cx.runtime.review_case(&member.principal, policy.staff_level, id, verdict).await {
        Ok(decided) => decided,
        Err(error @ (ModerationError::NotAllowed(_) | ModerationError::Decided(_) | ModerationError::NoCase(_))) => {
            follow_up_private(cx, interaction, &format!("⚠️ {error}")).await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, case = id, "could not record a moderation verdict");
            follow_up_private(cx, interaction, UNAVAILABLE).await;
            return;
        }
    };
    let mut notes = match (verdict, before) {
        (Verdict::Uphold, CaseStatus::Review) if policy.dry_run => {
            vec!["dry run: the action was not carried out".to_owned()]
        }
        (Verdict::Uphold, CaseStatus::Review) => carry_out(cx, &case).await,
        (Verdict::Overturn, CaseStatus::Acted) => undo(cx, &case).await,
        _ => Vec::new(),
    };
    if let Ok(adjustments) = cx.runtime.moderation_strictness(&case.tenant_id, &case.scope).await
        && let Some((_, adjustment)) = adjustments.iter().find(|(c, _)| *c == case.category)
    {
        notes.push(format!("strictness of {} is now {adjustment:+.2}", case.category));
    }
    let body = json!({"content": case_text(&case, &notes), "components": [], "allowed_mentions": no_pings()});
    if let Err(error) = cx.api.edit_original(interaction, &body).await {
        tracing::warn!(%error, case = id, "could not show a moderation verdict");
    }
}

/// A staff member's decision on a held call, through the one approval path (never by the
/// person who asked, once, only for the exact call shown).
async fn decide(cx: &Context, interaction: &Interaction, member: &Member, id: &str, approve: bool) {
    if !member.principal.is_admin() {
        follow_up_private(cx, interaction, "Only administrators decide approvals.").await;
        return;
    }
    let by = member.principal.subject();
    let note = format!("via Discord by {}", member.identity.display);
    let text = match cx.runtime.decide(&member.principal.tenant, id, approve, &by, &note).await {
        Ok(report) => {
            deliver_decided(cx, &report).await;
            format!(
                "{} `{id}` by {} — run `{}` is {}",
                if approve { "✅ Approved" } else { "⛔ Denied" },
                member.identity.display,
                report.chain_id,
                report.status.as_str()
            )
        }
        Err(error) => {
            follow_up_private(cx, interaction, &format!("⚠️ {error}")).await;
            return;
        }
    };
    let body = json!({"content": text, "components": [], "allowed_mentions": no_pings()});
    if let Err(error) = cx.api.edit_original(interaction, &body).await {
        tracing::warn!(%error, "could not show an approval decision");
    }
}

/// The answer of a run that waited for an approval, in the DM of the person who asked, once
/// the decision let it finish.
async fn deliver_decided(cx: &Context, report: &runtime::agent::RunReport) {
    if domain::agent::ChainStatus::OPEN.contains(&report.status) {
        return;
    }
    let Ok(Some(requester)) = cx.runtime.run_requester(&report.tenant, &report.chain_id).await else { return };
    let Ok(accounts) = cx.runtime.channel_staff(&report.tenant, Channel::Discord, 0).await else { return };
    for account in accounts.iter().filter(|a| requester == format!("user:{}", a.user_id)) {
        // Someone who only ever mentioned the bot in a guild gets a DM opened for the answer.
        let dm = match account.chat_id.clone() {
            Some(dm) => dm,
            None => match cx.api.dm_channel(&account.external_id).await {
                Ok(dm) => dm,
                Err(error) => {
                    tracing::warn!(%error, "could not open a DM to deliver a decided run's answer");
                    continue;
                }
            },
        };
        let dm = dm.as_str();
        let answer = match report.answer.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(answer) => Piece::Markdown(answer.to_owned()),
            None => Piece::Ready(format!("The run ended ({}) without an answer.", report.status.as_str())),
        };
        let seal = seal_embed(&cx.runtime, &report.tenant, &report.chain_id).await;
        post_parts(cx, dm, &[answer], None, Some(&seal)).await;
    }
}

/// Shows calls waiting for an approval in the staff channel, with buttons to decide; each
/// approval once (claimed in the store, so by one replica).
pub(crate) async fn announce_approvals(cx: &Context) -> Result<(), String> {
    let Some(staff) = cx.settings.staff_channel.as_deref() else { return Ok(()) };
    let tenant = &cx.settings.tenant;
    let waiting =
        cx.runtime.approvals(tenant, Some(domain::agent::ApprovalStatus::Pending)).await.map_err(|e| e.to_string())?;
    for approval in waiting {
        let key = format!("approval:{}", approval.id);
        if !cx.runtime.claim_channel_update(tenant, Channel::Discord, &key).await.map_err(|e| e.to_string())? {
            continue;
        }
        let params: String = approval.params.chars().take(800).collect();
        let text = format!(
            "🔐 **Approval needed** (admins)\nTool `{}` in run `{}`, step {}\n```json\n{}\n```\nWhy: {}\nExpires {}",
            approval.tool,
            approval.chain_id,
            approval.step,
            params.replace("```", "'''"),
            approval.reason,
            approval.expires_at.to_rfc3339()
        );
        let components = json!([{"type": 1, "components": [
            {"type": 2, "style": 3, "label": "Approve", "custom_id": format!("{APPROVE_DATA}{}", approval.id)},
            {"type": 2, "style": 4, "label": "Deny", "custom_id": format!("{DENY_DATA}{}", approval.id)},
        ]}]);
        let body = json!({"content": text, "components": components, "allowed_mentions": no_pings()});
        if let Err(error) = cx.api.post(staff, &body).await {
            tracing::warn!(%error, approval = %approval.id, "could not ask staff for an approval on Discord");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_and_their_options_are_read() {
        let data = json!({"name": "nexus", "options": [{"type": 1, "name": "ask",
                          "options": [{"type": 3, "name": "prompt", "value": "hello"}]}]});
        assert_eq!(subcommand(&data), Some(("ask".into(), vec![("prompt".into(), "hello".into())])));
        assert_eq!(subcommand(&json!({"name": "other", "options": []})), None);
        assert_eq!(
            subcommand(&json!({"name": "nexus", "options": [{"type": 1, "name": "help"}]})),
            Some(("help".into(), vec![]))
        );
    }

    #[test]
    fn mentions_read_as_names() {
        let alice = User { id: "11".into(), username: "alice".into(), global_name: Some("Alice".into()), bot: false };
        assert_eq!(
            readable(" hi <@11> and <@!11>, see <#22> <@&33> <@44> ", &[alice]),
            "hi @Alice and @Alice, see #channel @role @someone"
        );
    }

    #[test]
    fn long_answers_split_under_discord_s_limit() {
        let long = (0..30).map(|i| format!("Paragraph {i}. {}", "word ".repeat(40))).collect::<Vec<_>>().join("\n\n");
        let parts = discord_parts(&[Piece::Markdown(long.clone())]);
        assert!(parts.len() >= 3, "{}", parts.len());
        assert!(parts.iter().all(|p| !p.trim().is_empty() && p.chars().count() <= text::DISCORD_LIMIT));
        assert_eq!(parts.join("\n\n").split_whitespace().count(), long.split_whitespace().count(), "nothing lost");
    }
}
