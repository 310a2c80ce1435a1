//! Community moderation as the runtime runs it: a message the adapter's pre-screen flagged is
//! judged by a governed model call (on the tenant's budget, recorded like any gateway call),
//! the confidence gate decides between acting, dry run and the staff review queue, and the
//! case is stored and sealed as a `moderation` ledger entry with the message's digest, the
//! decision and who or what took it. Staff verdicts go through [`Runtime::review_case`]: once
//! per case, sealed, and feeding the category's bounded strictness adjustment.
//!
//! The adapter carries the actions out on its platform; this module never does platform I/O.

use domain::TenantId;
use domain::Timestamp;
use domain::ledger::{EntryDraft, EntryKind};
use domain::moderation::{
    self, CaseStatus, DECISION_PROMPT, Decision, Flag, Gate, ModAction, ModerationCase, STRICTNESS_BOUND, Verdict,
};
use domain::ports::StoreError;
use domain::tenant::UserLevel;
use rand::Rng as _;
use serde_json::json;
use sha2::Digest as _;

use crate::Runtime;
use crate::auth::Principal;
use crate::llm::{Caller, ChatRequest, Message};

/// How a community is moderated (per guild).
#[derive(Debug, Clone)]
pub struct ModerationPolicy {
    pub rules: moderation::ScreenRules,
    /// The confidence the model needs before anything is done without a person.
    pub threshold: f64,
    /// The model asked (a gateway model name: `nexus/trivial`, `ollama/llama3.2`, …).
    pub model: String,
    /// Decide and record, but never act.
    pub dry_run: bool,
    /// Actions that always wait for staff, however sure the model is.
    pub needs_approval: Vec<ModAction>,
    /// The level from which a linked user is staff (decides cases, is never moderated).
    pub staff_level: u8,
}

impl Default for ModerationPolicy {
    fn default() -> Self {
        ModerationPolicy {
            rules: moderation::ScreenRules::default(),
            threshold: 0.8,
            model: "nexus/trivial".into(),
            dry_run: false,
            needs_approval: vec![ModAction::Kick, ModAction::Ban],
            staff_level: UserLevel::ARCHITECT.get(),
        }
    }
}

/// A flagged message, as the adapter saw it.
#[derive(Debug, Clone)]
pub struct Flagged {
    pub tenant: TenantId,
    /// The platform (`discord`).
    pub channel: String,
    /// The community (guild id).
    pub scope: String,
    /// Where it was posted (channel id).
    pub place: String,
    pub message_id: String,
    pub author_id: String,
    pub author: String,
    pub text: String,
    pub flags: Vec<Flag>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("no moderation case {0}")]
    NoCase(String),
    #[error("case {0} was decided already")]
    Decided(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] crate::LedgerError),
}

/// What moderation made of a flagged message.
#[derive(Debug, Clone)]
pub enum Judged {
    /// The model found nothing wrong, and was sure: no case.
    Clear { reason: String },
    /// A case: acted on, dry run, or waiting for staff (see its status and action).
    Case(Box<ModerationCase>),
}

impl Runtime {
    /// Judges a flagged message: the model's decision, the gate, the stored and sealed case.
    pub async fn moderate(&self, policy: &ModerationPolicy, flagged: Flagged) -> Result<Judged, ModerationError> {
        let adjustments = self.store().moderation_strictness(&flagged.tenant, &flagged.scope).await?;
        let caller = Caller {
            tenant: flagged.tenant.clone(),
            key_id: None,
            subject: Some(format!("channel:{}:moderation", flagged.channel)),
            durable: false,
        };
        let reasons: Vec<String> = flagged.flags.iter().map(|f| format!("{}: {}", f.rule, f.detail)).collect();
        let request = ChatRequest {
            model: policy.model.clone(),
            system: Some(DECISION_PROMPT.to_owned()),
            messages: vec![Message::user(format!(
                "Flagged for: {}\nMessage by {}:\n<<<\n{}\n>>>",
                reasons.join("; "),
                flagged.author,
                flagged.text
            ))],
            tools: Vec::new(),
            max_tokens: 300,
            temperature: Some(0.0),
            stop: Vec::new(),
        };
        let (decision, decided_by, unsure) = match self.gateway_complete(&caller, &policy.model, request).await {
            Ok((response, meta)) => match moderation::parse_decision(&response.content) {
                Ok(decision) => (Some(decision), format!("model:{}/{}", meta.provider, meta.model), None),
                Err(reason) => (
                    None,
                    format!("model:{}/{}", meta.provider, meta.model),
                    Some(format!("the model's answer was not a decision ({reason})")),
                ),
            },
            Err(error) => (None, "prescreen".to_owned(), Some(format!("the model could not be asked ({error})"))),
        };
        let category = decision.as_ref().map_or_else(|| "unsure".to_owned(), |d| d.category.clone());
        let adjustment = adjustments.iter().find(|(c, _)| *c == category).map_or(0.0, |(_, a)| *a);
        let threshold = moderation::effective_threshold(policy.threshold, adjustment);
        let (status, action) = match moderation::gate(decision.as_ref(), threshold, &policy.needs_approval) {
            Gate::Clear => {
                let reason = decision.map(|d| d.reason).unwrap_or_default();
                return Ok(Judged::Clear { reason });
            }
            Gate::Act(action) if policy.dry_run => (CaseStatus::DryRun, action),
            Gate::Act(action) => (CaseStatus::Acted, action),
            Gate::Review(action) => (CaseStatus::Review, action),
        };
        let now = Timestamp::now();
        let case = ModerationCase {
            id: format!("mod_{:x}{:06x}", now.as_micros(), rand::thread_rng().gen_range(0..0x0100_0000u32)),
            tenant_id: flagged.tenant.clone(),
            channel: flagged.channel,
            scope: flagged.scope,
            place: flagged.place,
            message_id: flagged.message_id,
            author_id: flagged.author_id,
            author: flagged.author,
            digest: hex::encode(sha2::Sha256::digest(flagged.text.as_bytes())),
            excerpt: flagged.text.chars().take(300).collect(),
            flags: flagged.flags.iter().map(|f| f.rule.to_owned()).collect(),
            category,
            severity: decision.as_ref().map_or_else(|| "unknown".to_owned(), |d| d.severity.clone()),
            action,
            confidence: decision.as_ref().map(|d| d.confidence),
            threshold,
            reason: match (&decision, unsure) {
                (_, Some(unsure)) => unsure,
                (Some(Decision { reason, .. }), None) => reason.clone(),
                (None, None) => String::new(),
            },
            decided_by,
            status,
            reviewed_by: None,
            reviewed_at: None,
            created_at: now,
        };
        // Sealed first: nothing is stored, shown or done for a decision the ledger did not take.
        self.ledger()
            .append(
                &case.tenant_id,
                EntryDraft {
                    kind: EntryKind::Moderation,
                    chain_id: None,
                    payload: json!({
                        "event": "decided", "case_id": case.id, "channel": case.channel, "scope": case.scope,
                        "place": case.place, "message_id": case.message_id, "author_id": case.author_id,
                        "message_sha256": case.digest, "flags": reasons, "decision": decision,
                        "threshold": case.threshold, "action": case.action, "status": case.status,
                        "decided_by": case.decided_by, "reason": case.reason,
                    }),
                },
            )
            .await?;
        self.store().insert_moderation_case(&case).await?;
        metrics::counter!("nexus_moderation_cases_total", "status" => case.status.as_str()).increment(1);
        Ok(Judged::Case(Box::new(case)))
    }

    /// A staff member's verdict on a case: only staff (level `staff_level`+ or admins), once
    /// per case; sealed; teaches the category's strictness. Returns the decided case and the
    /// status it had before.
    pub async fn review_case(
        &self,
        principal: &Principal,
        staff_level: u8,
        id: &str,
        verdict: Verdict,
    ) -> Result<(ModerationCase, CaseStatus), ModerationError> {
        if principal.level.get() < staff_level && !principal.is_admin() {
            return Err(ModerationError::NotAllowed(format!(
                "only staff (level {staff_level} or above, and admins) decide moderation cases"
            )));
        }
        let tenant = &principal.tenant;
        let mut case =
            self.store().moderation_case(tenant, id).await?.ok_or_else(|| ModerationError::NoCase(id.to_owned()))?;
        let before = case.status;
        if !before.is_open() {
            return Err(ModerationError::Decided(id.to_owned()));
        }
        let now = Timestamp::now();
        let step = moderation::strictness_step(verdict, &case);
        case.status = verdict.status();
        case.reviewed_by = Some(principal.subject());
        case.reviewed_at = Some(now);
        if !self.store().review_moderation_case(&case).await? {
            return Err(ModerationError::Decided(id.to_owned()));
        }
        // The verdict is taken (once): from here a failure is reported, never a reason to skip
        // what the verdict asks the adapter to do.
        let adjustment = if step == 0.0 {
            None
        } else {
            match self
                .store()
                .adjust_moderation_strictness(tenant, &case.scope, &case.category, step, STRICTNESS_BOUND, now)
                .await
            {
                Ok(adjustment) => Some(adjustment),
                Err(error) => {
                    tracing::warn!(%error, case = %case.id, "could not move the category's strictness");
                    None
                }
            }
        };
        let sealed = self
            .ledger()
            .append(
                tenant,
                EntryDraft {
                    kind: EntryKind::Moderation,
                    chain_id: None,
                    payload: json!({
                        "event": "reviewed", "case_id": case.id, "verdict": verdict, "by": case.reviewed_by,
                        "status_before": before, "status": case.status, "action": case.action,
                        "message_sha256": case.digest, "category": case.category,
                        "strictness_adjustment": adjustment,
                    }),
                },
            )
            .await;
        if let Err(error) = sealed {
            tracing::error!(%error, case = %case.id, "a moderation verdict was taken but could not be sealed");
        }
        metrics::counter!("nexus_moderation_reviews_total", "verdict" => verdict.as_str()).increment(1);
        Ok((case, before))
    }

    pub async fn moderation_case(&self, tenant: &TenantId, id: &str) -> Result<Option<ModerationCase>, StoreError> {
        self.store().moderation_case(tenant, id).await
    }

    pub async fn moderation_cases(
        &self,
        tenant: &TenantId,
        status: Option<CaseStatus>,
        limit: u32,
    ) -> Result<Vec<ModerationCase>, StoreError> {
        self.store().moderation_cases(tenant, status, limit).await
    }

    /// Each category's strictness adjustment in a community (what staff verdicts taught).
    pub async fn moderation_strictness(
        &self,
        tenant: &TenantId,
        scope: &str,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        self.store().moderation_strictness(tenant, scope).await
    }
}
