//! What the bots say, in English and Italian. A person's language is the one they chose
//! (`/lang`), else the one their app reports, else English. Placeholders are `{name}`.

/// A language the channels speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    It,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::It];

    /// `it…` is Italian; anything else English.
    pub fn from_code(code: Option<&str>) -> Locale {
        match code.map(str::trim) {
            Some(code) if code.to_ascii_lowercase().starts_with("it") => Locale::It,
            _ => Locale::En,
        }
    }

    /// The chosen language if any, else the app's.
    pub fn pick(chosen: Option<&str>, reported: Option<&str>) -> Locale {
        match chosen {
            Some(code) => Locale::from_code(Some(code)),
            None => Locale::from_code(reported),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::It => "it",
        }
    }
}

/// Every sentence the bots say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    Help,
    Welcome,
    Refused,
    StaffRefusedNotice,
    Linked,
    BadCode,
    OtherTenantCode,
    LinkUsage,
    LangSet,
    LangUsage,
    AskUsage,
    NoAnswer,
    Failed,
    Busy,
    Cancelled,
    NothingRunning,
    ChoosePersona,
    PersonaSet,
    PersonaAny,
    UnknownPersona,
    NoPersonas,
    StatusTitle,
    CostLine,
    Sealed,
    UnknownCommand,
    Unavailable,
    ApprovalNeeded,
    ApproveButton,
    DenyButton,
    Approved,
    Denied,
    DecisionRefused,
    AdminsOnly,
    WaitingApproval,
    EndedWithout,
    BroadcastUsage,
    BroadcastQueued,
    BroadcastNotAllowed,
    BroadcastDone,
    IngestUsage,
    IngestNotAllowed,
    IngestStored,
    IngestDuplicate,
    IngestFailed,
}

/// The sentence in the language.
pub fn say(locale: Locale, what: Say) -> &'static str {
    use Say::*;
    match (locale, what) {
        (Locale::En, Help) => {
            "I am Nexus, an accountable assistant: every answer is a sealed run you can verify.\n\n\
/ask <i>question</i> — ask (in a private chat, just write)\n/status — providers, budget, queue\n/cost — what you and your team spent\n\
/persona — choose who answers\n/lang it|en — language\n/cancel — stop your running task\n/link <i>CODE</i> — link this account to your Nexus user\n/broadcast <i>text</i> — to everyone (level 3+)\n/ingest — a document into the knowledge base (level 3+)\n/help — this message"
        }
        (Locale::It, Help) => {
            "Sono Nexus, un assistente responsabile: ogni risposta è un'esecuzione sigillata e verificabile.\n\n\
/ask <i>domanda</i> — chiedi (in chat privata basta scrivere)\n/status — provider, budget, coda\n/cost — quanto avete speso tu e il tuo team\n\
/persona — scegli chi risponde\n/lang it|en — lingua\n/cancel — ferma l'attività in corso\n/link <i>CODICE</i> — collega questo account al tuo utente Nexus\n/broadcast <i>testo</i> — a tutti (livello 3+)\n/ingest — un documento nella base di conoscenza (livello 3+)\n/help — questo messaggio"
        }
        (Locale::En, Welcome) => "Welcome! You can start asking right away. /help lists what I can do.",
        (Locale::It, Welcome) => "Benvenuto! Puoi iniziare subito a chiedere. /help elenca cosa so fare.",
        (Locale::En, Refused) => {
            "Sorry, this assistant is private. Ask an administrator for a link code, then send /link CODE."
        }
        (Locale::It, Refused) => {
            "Mi dispiace, questo assistente è privato. Chiedi un codice a un amministratore, poi invia /link CODICE."
        }
        (Locale::En, StaffRefusedNotice) => {
            "{who} (account {id}) wrote to the bot and was refused. To let them in, make them a user and a code: nexus users link-code --tenant {tenant} --email …"
        }
        (Locale::It, StaffRefusedNotice) => {
            "{who} (account {id}) ha scritto al bot ed è stato respinto. Per farlo entrare, crea un utente e un codice: nexus users link-code --tenant {tenant} --email …"
        }
        (Locale::En, Linked) => "Linked: this account now speaks for {name} (level {level}).",
        (Locale::It, Linked) => "Collegato: questo account ora parla per {name} (livello {level}).",
        (Locale::En, BadCode) => "That code is unknown, already used or expired. Ask for a new one.",
        (Locale::It, BadCode) => "Codice sconosciuto, già usato o scaduto. Chiedine uno nuovo.",
        (Locale::En, OtherTenantCode) => "That code belongs to another workspace.",
        (Locale::It, OtherTenantCode) => "Quel codice appartiene a un altro spazio di lavoro.",
        (Locale::En, LinkUsage) => "Send /link followed by the code you were given, e.g. /link K7M2QX9P.",
        (Locale::It, LinkUsage) => "Invia /link seguito dal codice ricevuto, ad esempio /link K7M2QX9P.",
        (Locale::En, LangSet) => "I will speak English.",
        (Locale::It, LangSet) => "Parlerò italiano.",
        (Locale::En, LangUsage) => "Choose a language: /lang en or /lang it.",
        (Locale::It, LangUsage) => "Scegli una lingua: /lang it oppure /lang en.",
        (Locale::En, AskUsage) => "Write your question after /ask, e.g. /ask what changed today?",
        (Locale::It, AskUsage) => "Scrivi la domanda dopo /ask, ad esempio /ask cosa è cambiato oggi?",
        (Locale::En, NoAnswer) => "(The run finished without an answer.)",
        (Locale::It, NoAnswer) => "(L'esecuzione è terminata senza una risposta.)",
        (Locale::En, Failed) => "I could not answer: {reason}",
        (Locale::It, Failed) => "Non sono riuscito a rispondere: {reason}",
        (Locale::En, Busy) => "I am still answering your previous message; /cancel stops it.",
        (Locale::It, Busy) => "Sto ancora rispondendo al messaggio precedente; /cancel lo ferma.",
        (Locale::En, Cancelled) => "Stopped your running task.",
        (Locale::It, Cancelled) => "Ho fermato l'attività in corso.",
        (Locale::En, NothingRunning) => "Nothing of yours is running.",
        (Locale::It, NothingRunning) => "Non hai nulla in esecuzione.",
        (Locale::En, ChoosePersona) => "Who should answer? Choosing starts a new conversation.",
        (Locale::It, ChoosePersona) => "Chi deve rispondere? La scelta avvia una nuova conversazione.",
        (Locale::En, PersonaSet) => "Now talking to {persona}. A new conversation starts.",
        (Locale::It, PersonaSet) => "Ora parli con {persona}. Inizia una nuova conversazione.",
        (Locale::En, PersonaAny) => "any (the planner picks)",
        (Locale::It, PersonaAny) => "qualsiasi (sceglie il pianificatore)",
        (Locale::En, UnknownPersona) => "There is no active persona called {persona}.",
        (Locale::It, UnknownPersona) => "Non esiste una persona attiva chiamata {persona}.",
        (Locale::En, NoPersonas) => "The agent is not enabled here, so there are no personas to choose.",
        (Locale::It, NoPersonas) => "L'agente non è attivo qui, quindi non ci sono persone da scegliere.",
        (Locale::En, StatusTitle) => "Status",
        (Locale::It, StatusTitle) => "Stato",
        (Locale::En, CostLine) => "This month you spent ${mine}; your team spent ${tenant} of ${budget} ({percent}%).",
        (Locale::It, CostLine) => {
            "Questo mese hai speso ${mine}; il tuo team ha speso ${tenant} su ${budget} ({percent}%)."
        }
        (Locale::En, Sealed) => "sealed",
        (Locale::It, Sealed) => "sigillato",
        (Locale::En, UnknownCommand) => "I do not know that command. /help lists the ones I do.",
        (Locale::It, UnknownCommand) => "Non conosco quel comando. /help elenca quelli che conosco.",
        (Locale::En, Unavailable) => "Something went wrong on my side; please try again in a moment.",
        (Locale::It, Unavailable) => "Qualcosa è andato storto da parte mia; riprova tra poco.",
        (Locale::En, ApprovalNeeded) => {
            "🛑 <b>Approval needed</b>\nRun <code>{chain}</code>, step {step}: <b>{tool}</b>\n<pre>{params}</pre>\n{reason}\nExpires {expires}; unanswered means denied."
        }
        (Locale::It, ApprovalNeeded) => {
            "🛑 <b>Serve un'approvazione</b>\nEsecuzione <code>{chain}</code>, passo {step}: <b>{tool}</b>\n<pre>{params}</pre>\n{reason}\nScade {expires}; senza risposta vale come negata."
        }
        (Locale::En, ApproveButton) => "✅ Approve",
        (Locale::It, ApproveButton) => "✅ Approva",
        (Locale::En, DenyButton) => "❌ Deny",
        (Locale::It, DenyButton) => "❌ Nega",
        (Locale::En, Approved) => "Approved: run <code>{chain}</code> goes on ({status}).",
        (Locale::It, Approved) => "Approvato: l'esecuzione <code>{chain}</code> prosegue ({status}).",
        (Locale::En, Denied) => "Denied: run <code>{chain}</code> will not make that call ({status}).",
        (Locale::It, Denied) => "Negato: l'esecuzione <code>{chain}</code> non farà quella chiamata ({status}).",
        (Locale::En, DecisionRefused) => "That decision was not taken: {reason}",
        (Locale::It, DecisionRefused) => "Decisione non presa: {reason}",
        (Locale::En, AdminsOnly) => "Only the workspace's admins decide approvals.",
        (Locale::It, AdminsOnly) => "Solo gli amministratori decidono le approvazioni.",
        (Locale::En, WaitingApproval) => "⏳ This needs an admin's approval first; the answer follows their decision.",
        (Locale::It, WaitingApproval) => {
            "⏳ Serve prima l'approvazione di un amministratore; la risposta arriva dopo la decisione."
        }
        (Locale::En, EndedWithout) => "The run ended {status} without an answer.",
        (Locale::It, EndedWithout) => "L'esecuzione è terminata ({status}) senza una risposta.",
        (Locale::En, BroadcastUsage) => {
            "Write the message after /broadcast; /broadcast @3 TEXT sends only to level 3 and above."
        }
        (Locale::It, BroadcastUsage) => {
            "Scrivi il messaggio dopo /broadcast; /broadcast @3 TESTO lo invia solo dal livello 3 in su."
        }
        (Locale::En, BroadcastQueued) => {
            "📣 Broadcast <code>{id}</code> queued for {count} people; I will tell you when it is done."
        }
        (Locale::It, BroadcastQueued) => {
            "📣 Diffusione <code>{id}</code> in coda per {count} persone; ti avviso quando è finita."
        }
        (Locale::En, BroadcastNotAllowed) => "Only users at level 3 or above, and admins, may broadcast.",
        (Locale::It, BroadcastNotAllowed) => {
            "Solo gli utenti dal livello 3 in su, e gli amministratori, possono diffondere messaggi."
        }
        (Locale::En, BroadcastDone) => {
            "📣 Broadcast <code>{id}</code> finished: delivered {delivered}, blocked the bot {blocked}, failed {failed}."
        }
        (Locale::It, BroadcastDone) => {
            "📣 Diffusione <code>{id}</code> finita: consegnati {delivered}, bot bloccato {blocked}, falliti {failed}."
        }
        (Locale::En, IngestUsage) => {
            "Send a document (text, Markdown, HTML or PDF) with the caption /ingest, or reply /ingest to one; \
             /ingest public|internal|restricted|confidential sets who may read it (default internal)."
        }
        (Locale::It, IngestUsage) => {
            "Invia un documento (testo, Markdown, HTML o PDF) con didascalia /ingest, o rispondi /ingest a un documento; \
             /ingest public|internal|restricted|confidential sceglie chi può leggerlo (predefinito internal)."
        }
        (Locale::En, IngestNotAllowed) => "Only users at level 3 or above, and admins, may add to the knowledge base.",
        (Locale::It, IngestNotAllowed) => {
            "Solo gli utenti dal livello 3 in su, e gli amministratori, possono aggiungere alla base di conoscenza."
        }
        (Locale::En, IngestStored) => {
            "📚 <b>{file}</b> is in the knowledge base: {chunks} passages, readable at {access}."
        }
        (Locale::It, IngestStored) => {
            "📚 <b>{file}</b> è nella base di conoscenza: {chunks} passaggi, leggibile a livello {access}."
        }
        (Locale::En, IngestDuplicate) => "📚 <b>{file}</b> was already in the knowledge base; nothing changed.",
        (Locale::It, IngestDuplicate) => "📚 <b>{file}</b> era già nella base di conoscenza; nulla è cambiato.",
        (Locale::En, IngestFailed) => "⚠️ <b>{file}</b> could not be added: {reason}",
        (Locale::It, IngestFailed) => "⚠️ <b>{file}</b> non è stato aggiunto: {reason}",
    }
}

/// The sentence with its placeholders filled.
pub fn say_with(locale: Locale, what: Say, values: &[(&str, &str)]) -> String {
    let mut text = say(locale, what).to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// The bot's commands and their descriptions, for the platform's command menu.
pub fn commands(locale: Locale) -> &'static [(&'static str, &'static str)] {
    match locale {
        Locale::En => &[
            ("ask", "Ask the assistant"),
            ("status", "Providers, budget and queue"),
            ("cost", "What you and your team spent"),
            ("persona", "Choose who answers"),
            ("lang", "Language: it or en"),
            ("cancel", "Stop your running task"),
            ("link", "Link this account to your Nexus user"),
            ("broadcast", "Send a message to everyone (level 3+)"),
            ("ingest", "Add a document to the knowledge base (level 3+)"),
            ("help", "What I can do"),
            ("start", "Start"),
        ],
        Locale::It => &[
            ("ask", "Chiedi all'assistente"),
            ("status", "Provider, budget e coda"),
            ("cost", "Quanto avete speso"),
            ("persona", "Scegli chi risponde"),
            ("lang", "Lingua: it o en"),
            ("cancel", "Ferma l'attività in corso"),
            ("link", "Collega questo account al tuo utente Nexus"),
            ("broadcast", "Invia un messaggio a tutti (livello 3+)"),
            ("ingest", "Aggiungi un documento alla conoscenza (livello 3+)"),
            ("help", "Cosa so fare"),
            ("start", "Inizia"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_picked_from_choice_then_app() {
        assert_eq!(Locale::pick(None, Some("it-IT")), Locale::It);
        assert_eq!(Locale::pick(Some("en"), Some("it")), Locale::En);
        assert_eq!(Locale::pick(None, None), Locale::En);
        assert_eq!(Locale::pick(None, Some("de")), Locale::En);
    }

    #[test]
    fn placeholders_are_filled_and_commands_fit_the_platform_rules() {
        let text = say_with(Locale::It, Say::Linked, &[("name", "Ada"), ("level", "3")]);
        assert_eq!(text, "Collegato: questo account ora parla per Ada (livello 3).");
        for locale in Locale::ALL {
            for (name, description) in commands(locale) {
                assert!((1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
                assert!((1..=256).contains(&description.chars().count()));
            }
        }
    }
}
