//! What the Telegram bot does with each update: who wrote (a linked user, a stranger let in or
//! refused), which command, and the answer — a run in the member's conversation, gated and
//! sealed like any other, with the seal at its foot.
//!
//! Updates reach one worker per chat, so a chat's messages are answered in order. Answers are
//! sent as Telegram HTML, split under 4096 UTF-16 units, one message after the other; a
//! message Telegram cannot parse is sent again as plain text; `retry_after` is waited out; a
//! person who blocked the bot is marked so broadcasts skip them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::channel::{Broadcast, BroadcastProgress, Channel, ChannelIdentity, Delivery, DeliveryStatus};
use runtime::Runtime;
use runtime::channels::{Account, Admitted, ChannelError, Member};
use runtime::chat::ChatError;
use tokio::sync::mpsc;

use super::TelegramSettings;
use super::api::{ApiError, BotApi, Button, CallbackQuery, Message, Update};
use crate::i18n::{Locale, Say, say, say_with};
use crate::text::{self, Measure, Piece};

/// How long a chat's worker waits for another update before it ends.
const WORKER_IDLE: Duration = Duration::from_secs(300);
/// The typing indicator lasts ~5 s; it is sent again this often while a run works.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// The longest a typing indicator is kept up for one answer.
const TYPING_AT_MOST: Duration = Duration::from_secs(600);
/// Pause between the parts of one long answer (Telegram allows ~1 message/s per chat).
const PART_GAP: Duration = Duration::from_millis(350);
/// Attempts to send one message through flood control and network errors.
const SEND_ATTEMPTS: u32 = 5;
/// Callback data prefix of the persona menu.
const PERSONA_DATA: &str = "p:";
/// Callback data prefixes of approval buttons: `a:y:<approval id>`, `a:n:<approval id>`.
const APPROVE_DATA: &str = "a:y:";
const DENY_DATA: &str = "a:n:";
/// Above every level: [`Runtime::channel_staff`] then finds admins only.
const ADMINS_ONLY: u8 = domain::tenant::UserLevel::MAX + 1;

/// What every handler needs.
#[derive(Clone)]
pub(super) struct Context {
    pub runtime: Arc<Runtime>,
    pub settings: Arc<TelegramSettings>,
    pub api: BotApi,
    /// The bot's username (without `@`), to tell commands meant for it in groups.
    pub bot_username: String,
}

impl Context {
    pub fn new(runtime: &Arc<Runtime>, settings: &Arc<TelegramSettings>, api: &BotApi, me: &super::api::User) -> Self {
        Context {
            runtime: runtime.clone(),
            settings: settings.clone(),
            api: api.clone(),
            bot_username: me.username.clone().unwrap_or_default(),
        }
    }
}

/// One worker per chat, started on demand.
pub(super) struct Workers {
    context: Context,
    chats: Mutex<HashMap<i64, mpsc::UnboundedSender<Update>>>,
}

impl Workers {
    pub fn new(context: Context) -> Self {
        Workers { context, chats: Mutex::new(HashMap::new()) }
    }

    pub fn dispatch(&self, update: Update) {
        let Some(chat) = chat_of(&update) else {
            tracing::debug!(update = update.update_id, "a Telegram update with nothing to handle");
            return;
        };
        // `/cancel` must not wait behind the run it is meant to stop: it is handled at once.
        if let Some(message) = update.message.as_ref().filter(|m| is_cancel(m, &self.context.bot_username)) {
            let (context, message) = (self.context.clone(), message.clone());
            runtime::tasks::spawn("telegram-cancel", async move { handle_message(&context, message).await });
            return;
        }
        let mut chats = self.chats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let update = match chats.get(&chat) {
            Some(tx) => match tx.send(update) {
                Ok(()) => return,
                // The chat's worker ended (idle): start another.
                Err(mpsc::error::SendError(update)) => update,
            },
            None => update,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // A fresh channel's receiver is alive: this send cannot fail.
        let _ = tx.send(update);
        chats.insert(chat, tx);
        runtime::tasks::spawn("telegram-chat", work(self.context.clone(), rx));
    }
}

/// Whether a message is the `/cancel` command addressed to this bot.
fn is_cancel(message: &Message, bot_username: &str) -> bool {
    message.text.as_deref().and_then(|text| parse_command(text, bot_username)).is_some_and(|(name, _)| name == "cancel")
}

fn chat_of(update: &Update) -> Option<i64> {
    if let Some(message) = &update.message {
        return Some(message.chat.id);
    }
    update.callback_query.as_ref().map(|q| q.message.as_ref().map_or(q.from.id, |m| m.chat.id))
}

async fn work(context: Context, mut updates: mpsc::UnboundedReceiver<Update>) {
    while let Ok(Some(update)) = tokio::time::timeout(WORKER_IDLE, updates.recv()).await {
        let id = update.update_id;
        if let Some(message) = update.message {
            handle_message(&context, message).await;
        } else if let Some(query) = update.callback_query {
            handle_callback(&context, query).await;
        }
        tracing::debug!(update = id, "handled a Telegram update");
    }
}

/// A command addressed to this bot: its name (lower case) and the rest of the text.
fn parse_command<'a>(text: &'a str, bot_username: &str) -> Option<(String, &'a str)> {
    let text = text.trim_start();
    let rest = text.strip_prefix('/')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (name, target) = word.split_once('@').unwrap_or((word, ""));
    if !target.is_empty() && !target.eq_ignore_ascii_case(bot_username) {
        return None;
    }
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some((name.to_ascii_lowercase(), args.trim()))
}

fn account_of(message: &Message, user: &super::api::User) -> Account {
    let private = message.chat.kind == "private";
    Account {
        channel: Channel::Telegram,
        external_id: user.id.to_string(),
        display: user.display(),
        private_chat: private.then(|| message.chat.id.to_string()),
    }
}

async fn handle_message(cx: &Context, message: Message) {
    let Some(from) = message.from.clone() else { return };
    if from.is_bot {
        return;
    }
    let Some(text) = message.text.clone().or_else(|| message.caption.clone()) else { return };
    let private = message.chat.kind == "private";
    if !private && !cx.settings.allowed_chats.is_empty() && !cx.settings.allowed_chats.contains(&message.chat.id) {
        tracing::debug!(chat = message.chat.id, "a Telegram group outside channels.telegram.allowed_chats");
        return;
    }
    let command = parse_command(&text, &cx.bot_username);
    let reported = from.language_code.as_deref();
    let account = account_of(&message, &from);
    let chat = message.chat.id;
    let reply_to = (!private).then_some(message.message_id);

    // Linking works before the account is known: it is how a stranger gets in.
    let link_code = match &command {
        Some((name, args)) if name == "link" => Some(*args),
        Some((name, args)) if name == "start" && !args.is_empty() => Some(*args),
        _ => None,
    };
    if let Some(code) = link_code {
        link(cx, &account, chat, code, reported).await;
        return;
    }

    let mut member = match cx.runtime.channel_member(&cx.settings.tenant, &account, cx.settings.admission).await {
        Ok(Admitted::Member { member, new }) => {
            if new {
                tracing::info!(account = %account.external_id, display = %account.display, "a Telegram stranger was let in at level 0");
                let locale = Locale::pick(None, reported);
                send_html(cx, chat, say(locale, Say::Welcome), None).await;
            }
            *member
        }
        Ok(Admitted::Refused) => {
            refuse(cx, &account, chat, reported, private).await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, "could not tell who wrote to the Telegram bot");
            send_html(cx, chat, say(Locale::pick(None, reported), Say::Unavailable), reply_to).await;
            return;
        }
    };
    let locale = Locale::pick(member.identity.locale.as_deref(), reported);
    match command {
        Some((name, args)) => match name.as_str() {
            "start" | "help" => send_html(cx, chat, say(locale, Say::Help), reply_to).await,
            "lang" => set_language(cx, &mut member, chat, args, locale).await,
            "ask" if args.is_empty() => send_html(cx, chat, say(locale, Say::AskUsage), reply_to).await,
            "ask" => ask(cx, &mut member, chat, args, locale, reply_to).await,
            "status" => status(cx, &member, chat, locale, reply_to).await,
            "cost" => cost(cx, &member, chat, locale, reply_to).await,
            "cancel" => cancel(cx, &member, chat, locale, reply_to).await,
            "persona" => persona(cx, &mut member, chat, args, locale).await,
            "broadcast" => broadcast(cx, &member, chat, args, locale).await,
            "ingest" => ingest(cx, &member, &message, args, locale).await,
            _ if private => send_html(cx, chat, say(locale, Say::UnknownCommand), None).await,
            _ => {}
        },
        None if private => ask(cx, &mut member, chat, &text, locale, None).await,
        None => {
            // In groups the bot answers what is addressed to it: a mention or a reply to it.
            let mention = format!("@{}", cx.bot_username);
            let replied = message.reply_to_message.as_ref().and_then(|m| m.from.as_ref()).is_some_and(|u| {
                u.is_bot && u.username.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&cx.bot_username))
            });
            if !cx.bot_username.is_empty() && text.contains(&mention) {
                let question = text.replace(&mention, " ");
                ask(cx, &mut member, chat, question.trim(), locale, reply_to).await;
            } else if replied {
                ask(cx, &mut member, chat, &text, locale, reply_to).await;
            }
        }
    }
}

async fn link(cx: &Context, account: &Account, chat: i64, code: &str, reported: Option<&str>) {
    let locale = Locale::pick(None, reported);
    if code.trim().is_empty() {
        send_html(cx, chat, say(locale, Say::LinkUsage), None).await;
        return;
    }
    let text = match cx.runtime.link_account(&cx.settings.tenant, account, code).await {
        Ok(member) => {
            let locale = Locale::pick(member.identity.locale.as_deref(), reported);
            say_with(
                locale,
                Say::Linked,
                &[("name", &text::escape_html(&member.user.name)), ("level", &member.user.level.get().to_string())],
            )
        }
        Err(ChannelError::BadCode) => say(locale, Say::BadCode).to_owned(),
        Err(ChannelError::OtherTenant) => say(locale, Say::OtherTenantCode).to_owned(),
        Err(error) => {
            tracing::error!(%error, "could not link a Telegram account");
            say(locale, Say::Unavailable).to_owned()
        }
    };
    send_html(cx, chat, &text, None).await;
}

/// A stranger in a closed channel: a plain refusal, and the tenant's admins told (once a day
/// per account).
async fn refuse(cx: &Context, account: &Account, chat: i64, reported: Option<&str>, private: bool) {
    tracing::info!(account = %account.external_id, display = %account.display, "refused a Telegram stranger (channel closed)");
    if private {
        send_html(cx, chat, say(Locale::pick(None, reported), Say::Refused), None).await;
    }
    let day = domain::Timestamp::now().as_micros() / 86_400_000_000;
    let key = format!("refused:{}:{day}", account.external_id);
    match cx.runtime.claim_channel_update(&cx.settings.tenant, Channel::Telegram, &key).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "could not record a refusal notice");
            return;
        }
    }
    let staff = match cx.runtime.channel_staff(&cx.settings.tenant, Channel::Telegram, 5).await {
        Ok(staff) => staff,
        Err(error) => {
            tracing::warn!(%error, "could not find the admins to tell of a refused stranger");
            return;
        }
    };
    for admin in staff {
        let Some(admin_chat) = admin.chat_id.as_deref().and_then(|c| c.parse::<i64>().ok()) else { continue };
        let locale = Locale::pick(admin.locale.as_deref(), None);
        let notice = say_with(
            locale,
            Say::StaffRefusedNotice,
            &[
                ("who", &text::escape_html(&account.display)),
                ("id", &account.external_id),
                ("tenant", cx.settings.tenant.as_str()),
            ],
        );
        send_html(cx, admin_chat, &notice, None).await;
    }
}

async fn set_language(cx: &Context, member: &mut Member, chat: i64, args: &str, locale: Locale) {
    let chosen = match args.trim().to_ascii_lowercase().as_str() {
        "it" | "italiano" => Locale::It,
        "en" | "english" => Locale::En,
        _ => {
            send_html(cx, chat, say(locale, Say::LangUsage), None).await;
            return;
        }
    };
    member.identity.locale = Some(chosen.code().to_owned());
    if let Err(error) = cx.runtime.save_channel_identity(&member.identity).await {
        tracing::error!(%error, "could not save a Telegram user's language");
        send_html(cx, chat, say(locale, Say::Unavailable), None).await;
        return;
    }
    send_html(cx, chat, say(chosen, Say::LangSet), None).await;
}

/// A turn in the member's conversation: the reply is a run (or a governed model call); the
/// typing indicator shows while it works; the answer goes out with its seal.
async fn ask(cx: &Context, member: &mut Member, chat: i64, question: &str, locale: Locale, reply_to: Option<i64>) {
    let conversation = match cx.runtime.channel_conversation(member).await {
        Ok(conversation) => conversation,
        Err(ChannelError::Chat(ChatError::Invalid(reason))) => {
            send_html(cx, chat, &say_with(locale, Say::Failed, &[("reason", &text::escape_html(&reason))]), reply_to)
                .await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, "could not open a Telegram user's conversation");
            send_html(cx, chat, say(locale, Say::Unavailable), reply_to).await;
            return;
        }
    };
    let watch = match cx.runtime.say_watched(&member.principal, &conversation.id, question).await {
        Ok(watch) => watch,
        Err(ChatError::Busy) => {
            send_html(cx, chat, say(locale, Say::Busy), reply_to).await;
            return;
        }
        Err(ChatError::Invalid(reason)) => {
            send_html(cx, chat, &say_with(locale, Say::Failed, &[("reason", &text::escape_html(&reason))]), reply_to)
                .await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, "could not start a Telegram user's turn");
            send_html(cx, chat, say(locale, Say::Unavailable), reply_to).await;
            return;
        }
    };
    let typing = runtime::tasks::spawn("telegram-typing", keep_typing(cx.api.clone(), chat));
    let outcome = crate::reply::wait_reply(watch).await;
    typing.abort();
    match outcome {
        Ok(message) => {
            let tenant = &member.principal.tenant;
            let mut pieces = if crate::reply::awaits_approval(&cx.runtime, tenant, &message).await {
                // Parked in the database: the answer follows the admin's decision.
                vec![Piece::Ready(say(locale, Say::WaitingApproval).to_owned())]
            } else if message.content.trim().is_empty() {
                vec![Piece::Ready(say(locale, Say::NoAnswer).to_owned())]
            } else {
                vec![Piece::Markdown(message.content.clone())]
            };
            if let Some(chain) = &message.chain_id {
                pieces.push(Piece::Ready(seal_footer(cx, tenant, chain, locale).await));
            }
            send_answer(cx, chat, &pieces, reply_to, Some(&member.identity)).await;
        }
        Err(reason) => {
            send_html(cx, chat, &say_with(locale, Say::Failed, &[("reason", &text::escape_html(&reason))]), reply_to)
                .await;
        }
    }
}

async fn keep_typing(api: BotApi, chat: i64) {
    let started = std::time::Instant::now();
    while started.elapsed() < TYPING_AT_MOST {
        if let Err(error) = api.send_chat_action(chat, "typing").await {
            tracing::debug!(%error, "could not show the typing indicator");
        }
        tokio::time::sleep(TYPING_EVERY).await;
    }
}

/// `🔏 sealed <fingerprint> · run <chain>`: the run's last ledger entry, which anyone can
/// look up and prove.
async fn seal_footer(cx: &Context, tenant: &domain::TenantId, chain: &domain::ChainId, locale: Locale) -> String {
    match crate::reply::seal(&cx.runtime, tenant, chain).await {
        Some((fingerprint, index)) => {
            format!("🔏 {} <code>{fingerprint}</code> #{index} · run <code>{chain}</code>", say(locale, Say::Sealed))
        }
        None => format!("🔏 run <code>{chain}</code>"),
    }
}

async fn status(cx: &Context, member: &Member, chat: i64, locale: Locale, reply_to: Option<i64>) {
    let tenant = &member.principal.tenant;
    let mut lines = vec![format!("<b>{}</b>", say(locale, Say::StatusTitle))];
    lines.extend(crate::status::lines(&cx.runtime, tenant, text::escape_html).await);
    send_html(cx, chat, &lines.join("\n"), reply_to).await;
}

async fn cost(cx: &Context, member: &Member, chat: i64, locale: Locale, reply_to: Option<i64>) {
    let tenant = &member.principal.tenant;
    let now = domain::Timestamp::now();
    let subject = member.principal.subject();
    let (usage, budget) =
        match (cx.runtime.usage(tenant, now.month_start(), now).await, cx.runtime.budgets().status(tenant).await) {
            (Ok(usage), Ok(budget)) => (usage, budget),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!(%error, "could not read spending for /cost");
                send_html(cx, chat, say(locale, Say::Unavailable), reply_to).await;
                return;
            }
        };
    let mine: f64 =
        usage.iter().filter(|row| row.subject.as_deref() == Some(subject.as_str())).map(|row| row.cost_usd).sum();
    let line = say_with(
        locale,
        Say::CostLine,
        &[
            ("mine", &money(mine)),
            ("tenant", &money(budget.spent_usd)),
            ("budget", &format!("{:.2}", budget.limit_usd)),
            ("percent", &format!("{:.0}", budget.fraction * 100.0)),
        ],
    );
    send_html(cx, chat, &line, reply_to).await;
}

/// Dollars as people read them: cents, or the first significant digits of tiny amounts.
fn money(usd: f64) -> String {
    if usd == 0.0 {
        "0".to_owned()
    } else if usd >= 0.01 {
        format!("{usd:.2}")
    } else {
        format!("{usd:.6}")
    }
}

async fn cancel(cx: &Context, member: &Member, chat: i64, locale: Locale, reply_to: Option<i64>) {
    let stopped = match &member.identity.conversation_id {
        Some(id) => match cx.runtime.cancel_reply(&member.principal, id).await {
            Ok(stopped) => stopped,
            Err(error) => {
                tracing::warn!(%error, "could not cancel a Telegram user's run");
                false
            }
        },
        None => false,
    };
    send_html(cx, chat, say(locale, if stopped { Say::Cancelled } else { Say::NothingRunning }), reply_to).await;
}

async fn persona(cx: &Context, member: &mut Member, chat: i64, args: &str, locale: Locale) {
    if !args.is_empty() {
        choose_persona(cx, member, chat, args, locale).await;
        return;
    }
    // Personas of the agent first, then the gateway's models (a model answers directly: no
    // run, no tools, but still governed, on the budget and in the ledger).
    let choices = match cx.runtime.chat_targets(&member.principal).await {
        Ok(targets) => targets
            .into_iter()
            .map(|t| match t {
                domain::chat::ChatTarget::Agent(p) => (p.clone().unwrap_or_default(), p),
                domain::chat::ChatTarget::Model(m) => (format!("model:{m}"), Some(format!("🧠 {m}"))),
            })
            .collect::<Vec<_>>(),
        Err(error) => {
            tracing::error!(%error, "could not list personas for /persona");
            send_html(cx, chat, say(locale, Say::Unavailable), None).await;
            return;
        }
    };
    if choices.is_empty() {
        send_html(cx, chat, say(locale, Say::NoPersonas), None).await;
        return;
    }
    let buttons: Vec<Button> = choices
        .into_iter()
        .filter_map(|(value, label)| {
            let data = format!("{PERSONA_DATA}{value}");
            // Telegram refuses callback data over 64 bytes.
            (data.len() <= 64).then(|| Button {
                text: label.unwrap_or_else(|| say(locale, Say::PersonaAny).to_owned()),
                callback_data: data,
            })
        })
        .collect();
    let rows: Vec<Vec<Button>> = buttons.chunks(2).map(<[Button]>::to_vec).collect();
    let outgoing = say(locale, Say::ChoosePersona);
    if let Err(error) = send_one(cx, chat, outgoing, outgoing, Some(&rows), None).await {
        tracing::warn!(%error, "could not send the persona menu");
    }
}

async fn choose_persona(cx: &Context, member: &mut Member, chat: i64, name: &str, locale: Locale) {
    let name = name.trim();
    let wanted = if name.is_empty() || name == "any" { None } else { Some(name.to_owned()) };
    let target = match name.strip_prefix("model:") {
        Some(model) => domain::chat::ChatTarget::Model(model.trim().to_owned()),
        None => domain::chat::ChatTarget::Agent(wanted.clone()),
    };
    let allowed = cx.runtime.chat_targets(&member.principal).await.map(|t| t.contains(&target)).unwrap_or(false);
    if !allowed {
        let text = say_with(locale, Say::UnknownPersona, &[("persona", &text::escape_html(name))]);
        send_html(cx, chat, &text, None).await;
        return;
    }
    member.identity.persona = wanted.clone();
    member.identity.conversation_id = None;
    if let Err(error) = cx.runtime.save_channel_identity(&member.identity).await {
        tracing::error!(%error, "could not save a Telegram user's persona");
        send_html(cx, chat, say(locale, Say::Unavailable), None).await;
        return;
    }
    let shown = match wanted.as_deref() {
        Some(choice) => choice.strip_prefix("model:").map_or_else(|| choice.to_owned(), |m| format!("🧠 {m}")),
        None => say(locale, Say::PersonaAny).to_owned(),
    };
    send_html(cx, chat, &say_with(locale, Say::PersonaSet, &[("persona", &text::escape_html(&shown))]), None).await;
}

async fn handle_callback(cx: &Context, query: CallbackQuery) {
    // Always answered, or the person's app keeps spinning.
    if let Err(error) = cx.api.answer_callback_query(&query.id, None).await {
        tracing::debug!(%error, "could not answer a Telegram callback query");
    }
    let Some(data) = query.data.as_deref() else { return };
    let Some(message) = query.message.as_ref() else { return };
    let account = account_of(message, &query.from);
    let reported = query.from.language_code.as_deref();
    let mut member = match cx.runtime.channel_member(&cx.settings.tenant, &account, cx.settings.admission).await {
        Ok(Admitted::Member { member, .. }) => *member,
        Ok(Admitted::Refused) => return,
        Err(error) => {
            tracing::error!(%error, "could not tell who pressed a Telegram button");
            return;
        }
    };
    let locale = Locale::pick(member.identity.locale.as_deref(), reported);
    if let Some(name) = data.strip_prefix(PERSONA_DATA) {
        let name = if name.is_empty() { "any" } else { name };
        choose_persona(cx, &mut member, message.chat.id, name, locale).await;
    } else if let Some(id) = data.strip_prefix(APPROVE_DATA) {
        decide(cx, member, message.chat.id, id, true, locale);
    } else if let Some(id) = data.strip_prefix(DENY_DATA) {
        decide(cx, member, message.chat.id, id, false, locale);
    }
}

/// A staff member's decision on a held call, through the one approval path (never by the
/// person who asked, once, only for the exact call shown). The run goes on on its own task.
fn decide(cx: &Context, member: Member, chat: i64, id: &str, approve: bool, locale: Locale) {
    let cx = cx.clone();
    let id = id.to_owned();
    runtime::tasks::spawn("telegram-approval", async move {
        let text = if !member.principal.is_admin() {
            say(locale, Say::AdminsOnly).to_owned()
        } else {
            let by = member.principal.subject();
            let note = format!("via Telegram by {}", member.identity.display);
            let decided = cx.runtime.decide(&member.principal.tenant, &id, approve, &by, &note).await;
            match decided {
                Ok(report) => {
                    deliver_decided(&cx, &report).await;
                    say_with(
                        locale,
                        if approve { Say::Approved } else { Say::Denied },
                        &[("chain", report.chain_id.as_str()), ("status", report.status.as_str())],
                    )
                }
                Err(error) => {
                    say_with(locale, Say::DecisionRefused, &[("reason", &text::escape_html(&error.to_string()))])
                }
            }
        };
        send_html(&cx, chat, &text, None).await;
    });
}

/// The answer of a run that waited for an approval, to the person who asked, in each private
/// chat of theirs with the bot, once the decision let it finish.
async fn deliver_decided(cx: &Context, report: &runtime::agent::RunReport) {
    if domain::agent::ChainStatus::OPEN.contains(&report.status) {
        return;
    }
    let requester = match cx.runtime.run_requester(&report.tenant, &report.chain_id).await {
        Ok(Some(requester)) => requester,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, chain = %report.chain_id, "could not find who asked for a decided run");
            return;
        }
    };
    let accounts = match cx.runtime.channel_staff(&report.tenant, Channel::Telegram, 0).await {
        Ok(accounts) => accounts,
        Err(error) => {
            tracing::warn!(%error, "could not find the Telegram account of who asked for a decided run");
            return;
        }
    };
    for account in accounts.iter().filter(|a| requester == format!("user:{}", a.user_id)) {
        let Some(chat) = account.chat_id.as_deref().and_then(|c| c.parse::<i64>().ok()) else { continue };
        let locale = Locale::pick(account.locale.as_deref(), None);
        let answer = match report.answer.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(answer) => Piece::Markdown(answer.to_owned()),
            None => Piece::Ready(say_with(locale, Say::EndedWithout, &[("status", report.status.as_str())])),
        };
        let footer = Piece::Ready(seal_footer(cx, &report.tenant, &report.chain_id, locale).await);
        send_answer(cx, chat, &[answer, footer], None, Some(account)).await;
    }
}

/// Tells the tenant's admins on Telegram of calls waiting for an approval, with buttons to
/// decide. Each approval is announced once to each admin (claimed in the store, so by one replica).
pub(super) async fn announce_approvals(cx: &Context) -> Result<(), String> {
    let tenant = &cx.settings.tenant;
    let waiting =
        cx.runtime.approvals(tenant, Some(domain::agent::ApprovalStatus::Pending)).await.map_err(|e| e.to_string())?;
    if waiting.is_empty() {
        return Ok(());
    }
    let admins = cx.runtime.channel_staff(tenant, Channel::Telegram, ADMINS_ONLY).await.map_err(|e| e.to_string())?;
    for approval in waiting {
        for admin in &admins {
            let Some(chat) = admin.chat_id.as_deref().and_then(|c| c.parse::<i64>().ok()) else { continue };
            if approval.requested_by.as_deref() == Some(format!("user:{}", admin.user_id).as_str()) {
                continue;
            }
            // Once per approval and admin (by one replica): an admin who links while the call
            // still waits is asked too.
            let key = format!("approval:{}:{}", approval.id, admin.user_id);
            if !cx.runtime.claim_channel_update(tenant, Channel::Telegram, &key).await.map_err(|e| e.to_string())? {
                continue;
            }
            let locale = Locale::pick(admin.locale.as_deref(), None);
            let params: String = approval.params.chars().take(800).collect();
            let text = say_with(
                locale,
                Say::ApprovalNeeded,
                &[
                    ("tool", &text::escape_html(&approval.tool)),
                    ("chain", approval.chain_id.as_str()),
                    ("step", &approval.step.to_string()),
                    ("params", &text::escape_html(&params)),
                    ("reason", &text::escape_html(&approval.reason)),
                    ("expires", &approval.expires_at.to_rfc3339()),
                ],
            );
            let yes = format!("{APPROVE_DATA}{}", approval.id);
            let no = format!("{DENY_DATA}{}", approval.id);
            let keyboard = (yes.len() <= 64).then(|| {
                vec![vec![
                    Button { text: say(locale, Say::ApproveButton).to_owned(), callback_data: yes },
                    Button { text: say(locale, Say::DenyButton).to_owned(), callback_data: no },
                ]]
            });
            let plain = text::strip_tags(&text);
            if let Err(error) = send_one(cx, chat, &text, &plain, keyboard.as_deref(), None).await {
                tracing::warn!(%error, approval = %approval.id, "could not ask an admin for an approval on Telegram");
            }
        }
    }
    Ok(())
}

/// A short message already in Telegram HTML.
async fn send_html(cx: &Context, chat: i64, html: &str, reply_to: Option<i64>) {
    send_answer(cx, chat, &[Piece::Ready(html.to_owned())], reply_to, None).await;
}

/// Sends an answer: split under the limit, in order, each part as HTML or, if refused, as
/// plain text. A person who blocked the bot is marked (when `identity` is theirs).
async fn send_answer(
    cx: &Context,
    chat: i64,
    pieces: &[Piece],
    reply_to: Option<i64>,
    identity: Option<&ChannelIdentity>,
) {
    let parts = text::split(pieces, text::TELEGRAM_LIMIT, Measure::Utf16, text::telegram_html);
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(PART_GAP).await;
        }
        match send_one(cx, chat, &part.text, &part.plain, None, if n == 0 { reply_to } else { None }).await {
            Ok(()) => {}
            Err(ApiError::Forbidden(reason)) => {
                tracing::info!(chat, %reason, "a Telegram user blocked the bot or left the chat");
                if let Some(identity) = identity.filter(|i| i.chat_id.as_deref() == Some(chat.to_string().as_str())) {
                    let mut blocked = identity.clone();
                    blocked.blocked_at = Some(domain::Timestamp::now());
                    if let Err(error) = cx.runtime.save_channel_identity(&blocked).await {
                        tracing::warn!(%error, "could not mark a Telegram user as having blocked the bot");
                    }
                }
                return;
            }
            Err(error) => {
                tracing::error!(%error, chat, part = n, "could not send a Telegram message; the rest of the answer is dropped");
                return;
            }
        }
    }
}

/// Sends one message: HTML first, plain text if Telegram cannot parse it; waits out
/// `retry_after` and retries network errors, a bounded number of times.
async fn send_one(
    cx: &Context,
    chat: i64,
    html: &str,
    plain: &str,
    keyboard: Option<&[Vec<Button>]>,
    reply_to: Option<i64>,
) -> Result<(), ApiError> {
    let mut as_html = true;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let text = if as_html { html } else { plain };
        match cx.api.send_message(chat, text, as_html, keyboard, reply_to).await {
            Ok(_) => return Ok(()),
            Err(error) if as_html && error.is_parse_error() => {
                tracing::warn!(%error, "Telegram could not parse a formatted message; sending it as plain text");
                as_html = false;
            }
            Err(ApiError::RetryAfter(wait)) if attempt < SEND_ATTEMPTS => tokio::time::sleep(wait).await,
            Err(ApiError::Network(_) | ApiError::TimedOut(_) | ApiError::Server(..)) if attempt < SEND_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// `/broadcast [@LEVEL] TEXT`: queued for every reachable account (of users at LEVEL or
/// above); only users at level 3 or above, and admins.
async fn broadcast(cx: &Context, member: &Member, chat: i64, args: &str, locale: Locale) {
    let (min_level, body) = match args.strip_prefix('@').and_then(|rest| rest.split_once(char::is_whitespace)) {
        Some((level, body)) => match level.parse::<u8>() {
            Ok(level) => (level, body.trim()),
            Err(_) => (0, args),
        },
        None => (0, args),
    };
    if body.is_empty() {
        send_html(cx, chat, say(locale, Say::BroadcastUsage), None).await;
        return;
    }
    let started =
        cx.runtime.start_broadcast(&member.principal, Channel::Telegram, body, min_level, Some(chat.to_string())).await;
    let text = match started {
        Ok((broadcast, recipients)) => {
            say_with(locale, Say::BroadcastQueued, &[("id", &broadcast.id), ("count", &recipients.to_string())])
        }
        Err(ChannelError::NotAllowed(_)) => say(locale, Say::BroadcastNotAllowed).to_owned(),
        Err(ChannelError::Invalid(reason) | ChannelError::InvalidField { reason, .. }) => {
            say_with(locale, Say::Failed, &[("reason", &text::escape_html(&reason))])
        }
        Err(error) => {
            tracing::error!(%error, "could not queue a broadcast");
            say(locale, Say::Unavailable).to_owned()
        }
    };
    send_html(cx, chat, &text, None).await;
}

/// The largest file the Bot API lets a bot download.
const MAX_DOCUMENT_BYTES: u64 = 20 * 1024 * 1024;

/// `/ingest [access]` as a document's caption or in reply to one: the file goes into the
/// tenant's knowledge base (namespace `default`), judged as `nexus ingest` judges a file, at
/// an access level no higher than the sender may read. Users at level 3 or above, and admins.
async fn ingest(cx: &Context, member: &Member, message: &Message, args: &str, locale: Locale) {
    use domain::knowledge::AccessLevel;
    let chat = message.chat.id;
    let reply_to = Some(message.message_id);
    let document =
        message.document.as_ref().or_else(|| message.reply_to_message.as_ref().and_then(|m| m.document.as_ref()));
    let Some(document) = document else {
        send_html(cx, chat, say(locale, Say::IngestUsage), reply_to).await;
        return;
    };
    if member.principal.level < domain::tenant::UserLevel::ARCHITECT && !member.principal.is_admin() {
        send_html(cx, chat, say(locale, Say::IngestNotAllowed), reply_to).await;
        return;
    }
    let file = document.file_name.clone().unwrap_or_else(|| "document".to_owned());
    let failed = |reason: String| {
        say_with(
            locale,
            Say::IngestFailed,
            &[("file", &text::escape_html(&file)), ("reason", &text::escape_html(&reason))],
        )
    };
    let access = match args.split_whitespace().next() {
        None => AccessLevel::Internal,
        Some(word) => match word.parse::<AccessLevel>() {
            Ok(level) => level,
            Err(_) => {
                send_html(cx, chat, say(locale, Say::IngestUsage), reply_to).await;
                return;
            }
        },
    };
    if access > member.principal.max_access() {
        let reason = format!(
            "you may not store documents at {} (at most {})",
            access.as_str(),
            member.principal.max_access().as_str()
        );
        send_html(cx, chat, &failed(reason), reply_to).await;
        return;
    }
    if document.file_size.is_some_and(|n| n > MAX_DOCUMENT_BYTES) {
        send_html(cx, chat, &failed(format!("larger than {} MB", MAX_DOCUMENT_BYTES / 1024 / 1024)), reply_to).await;
        return;
    }
    let typing = runtime::tasks::spawn("telegram-typing", keep_typing(cx.api.clone(), chat));
    let outcome = match cx.api.download(&document.file_id, MAX_DOCUMENT_BYTES).await {
        Ok(bytes) => {
            let metadata = serde_json::json!({"uploaded_by": member.principal.subject(), "channel": "telegram"});
            cx.runtime
                .knowledge()
                .ingest_file(
                    &member.principal.tenant,
                    "default",
                    &file,
                    document.mime_type.as_deref(),
                    &bytes,
                    access,
                    metadata,
                )
                .await
                .map_err(|e| e.to_string())
        }
        Err(error) => Err(format!("could not download it from Telegram ({error})")),
    };
    typing.abort();
    let reply = match outcome {
        Ok(stored) if stored.new => say_with(
            locale,
            Say::IngestStored,
            &[("file", &text::escape_html(&file)), ("chunks", &stored.chunks.to_string()), ("access", access.as_str())],
        ),
        Ok(_) => say_with(locale, Say::IngestDuplicate, &[("file", &text::escape_html(&file))]),
        Err(reason) => {
            tracing::info!(%reason, file, "a Telegram document was not ingested");
            failed(reason)
        }
    };
    send_html(cx, chat, &reply, reply_to).await;
}

/// Sends one broadcast to one recipient; its outcome.
pub(super) async fn deliver(cx: &Context, delivery: &Delivery) -> (DeliveryStatus, Option<String>) {
    let Ok(chat) = delivery.chat_id.parse::<i64>() else {
        return (DeliveryStatus::Failed, Some(format!("not a Telegram chat: {}", delivery.chat_id)));
    };
    let parts = text::split(
        &[Piece::Markdown(delivery.body.clone())],
        text::TELEGRAM_LIMIT,
        Measure::Utf16,
        text::telegram_html,
    );
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(PART_GAP).await;
        }
        match send_one(cx, chat, &part.text, &part.plain, None, None).await {
            Ok(()) => {}
            Err(ApiError::Forbidden(reason)) => return (DeliveryStatus::Blocked, Some(reason)),
            Err(error) => return (DeliveryStatus::Failed, Some(error.to_string())),
        }
    }
    (DeliveryStatus::Delivered, None)
}

/// Tells the sender a broadcast ended, and how it went.
pub(super) async fn report_broadcast(cx: &Context, broadcast: &Broadcast, progress: &BroadcastProgress) {
    tracing::info!(
        broadcast = %broadcast.id, delivered = progress.delivered, blocked = progress.blocked,
        failed = progress.failed, interrupted = progress.sending, "a Telegram broadcast finished"
    );
    let Some(chat) = broadcast.notify_chat.as_deref().and_then(|c| c.parse::<i64>().ok()) else { return };
    // In the sender's language: the account in the chat the broadcast was sent from.
    let locale = match cx.runtime.channel_staff(&broadcast.tenant_id, Channel::Telegram, 0).await {
        Ok(accounts) => accounts
            .iter()
            .find(|a| a.chat_id.as_deref() == broadcast.notify_chat.as_deref())
            .map_or(Locale::En, |a| Locale::pick(a.locale.as_deref(), None)),
        Err(error) => {
            tracing::debug!(%error, "could not read the sender's language; reporting in English");
            Locale::En
        }
    };
    let text = say_with(
        locale,
        Say::BroadcastDone,
        &[
            ("id", &broadcast.id),
            ("delivered", &progress.delivered.to_string()),
            ("blocked", &progress.blocked.to_string()),
            ("failed", &(progress.failed + progress.sending).to_string()),
        ],
    );
    send_html(cx, chat, &text, None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_for_this_bot_only() {
        assert_eq!(parse_command("/ask ciao mondo", "nexus_bot"), Some(("ask".into(), "ciao mondo")));
        assert_eq!(parse_command("/Ask@Nexus_Bot  x ", "nexus_bot"), Some(("ask".into(), "x")));
        assert_eq!(parse_command("/ask@other_bot x", "nexus_bot"), None);
        assert_eq!(parse_command("/status", "nexus_bot"), Some(("status".into(), "")));
        assert_eq!(parse_command("hello /ask", "nexus_bot"), None);
        assert_eq!(parse_command("/ ask", "nexus_bot"), None);
        assert_eq!(parse_command("/link\nK7M2", "nexus_bot"), Some(("link".into(), "K7M2")));
    }
}
