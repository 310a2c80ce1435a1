//! Approvals: listing, deciding (once, never by the requester, only for the exact call the run
//! waits on), expiring undecided requests as denials, and applying decisions a crash left
//! unapplied. Every state change is a ledger entry.

use domain::agent::{ApprovalStatus, ChainStatus};
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::{Approval, StoredRun};
use domain::{TenantId, Timestamp};
use engine::machine::{Input, Run};
use serde_json::{Value, json};

use crate::Runtime;
use crate::agent::{AgentError, RunReport, report};
use crate::run_state::{readable, to_save};

impl Runtime {
    /// Continues, as denied, every run whose approval expired undecided (deny by default).
    /// Safe to call while runs execute: it only touches runs parked on an approval.
    pub async fn expire_due_approvals(&self) -> Result<usize, AgentError> {
        let mut expired = 0;
        for stored in self.store.runs_with_status(&[ChainStatus::AwaitingApproval]).await? {
            let tenant = stored.tenant_id.clone();
            let Some((mut run, user)) = readable(&stored) else { continue };
            let mut record = StoredRun { owner: Some(self.instance.clone()), ..to_save(stored, &run)? };
            let Some(_driving) = self.begin_driving(&run.chain_id) else { continue };
            if self.expire_if_due(&tenant, &mut run, &mut record, user.as_deref()).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// A tenant's approvals, newest first; pending ones past their expiry show as `expired`.
    pub async fn approvals(
        &self,
        tenant: &TenantId,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<Approval>, AgentError> {
        let now = Timestamp::now();
        let all = self.store.approvals(tenant, None).await?;
        Ok(all
            .into_iter()
            .map(|mut a| {
                if a.status == ApprovalStatus::Pending && a.expires_at <= now {
                    a.status = ApprovalStatus::Expired;
                }
                a
            })
            .filter(|a| status.is_none_or(|s| a.status == s))
            .collect())
    }

    pub async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Approval, AgentError> {
        self.store
            .approval(tenant, id)
            .await?
            .ok_or_else(|| AgentError::NoSuchApproval { tenant: tenant.clone(), id: id.to_owned() })
    }

    /// Approves or denies a pending call, once, and resumes its run.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        id: &str,
        approve: bool,
        by: &str,
        note: &str,
    ) -> Result<RunReport, AgentError> {
        let approval = self.approval(tenant, id).await?;
        let same = |a: &str, b: &str| a.trim().to_lowercase() == b.trim().to_lowercase();
        if approval.requested_by.as_deref().is_some_and(|requester| same(requester, by)) {
            return Err(AgentError::SelfApproval { by: by.to_owned() });
        }
        let (mut run, record, user) = self.load_run(tenant, &approval.chain_id).await?;
        let mut record = to_save(record, &run)?;
        record.owner = Some(self.instance.clone());
        let Some(_driving) = self.begin_driving(&run.chain_id) else {
            return Err(AgentError::ApprovalClosed(id.to_owned()));
        };
        self.decide_loaded(tenant, &approval, &mut run, &mut record, user, approve, by, note).await?;
        Ok(report(tenant, &run))
    }

    #[allow(clippy::too_many_arguments)] // the approval, its run, and the decision
    async fn decide_loaded(
        &self,
        tenant: &TenantId,
        approval: &Approval,
        run: &mut Run,
        record: &mut StoredRun,
        user: Option<String>,
        approve: bool,
        by: &str,
        note: &str,
    ) -> Result<(), AgentError> {
        let id = approval.id.as_str();
        let step = approval.step as usize;
        if run.awaiting_approval() != Some(step) {
            return Err(AgentError::ApprovalClosed(id.to_owned()));
        }
        // The decision covers exactly the call that was shown: same tool, same parameters.
        let pending = &run.steps[step];
        if engine::machine::call_digest(&run.chain_id, step, &pending.tool, &pending.params) != approval.call_digest {
            return Err(AgentError::ApprovalMismatch(id.to_owned()));
        }
        // Single use: only one decision can move the row out of `pending`, and never after expiry.
        let status = if approve { ApprovalStatus::Approved } else { ApprovalStatus::Denied };
        if !self.store.decide_approval(tenant, id, status, by, note, Timestamp::now()).await? {
            return Err(AgentError::ApprovalClosed(id.to_owned()));
        }
        self.seal_approval(tenant, approval, status.as_str(), by, note).await?;
        let next = run.advance(Input::ApprovalDecided { approved: approve, by: by.to_owned(), note: note.to_owned() });
        self.drive(tenant, run, next, record, user.as_deref(), false).await
    }

    /// Moves a run parked on an approval along when its approval is settled: expired
    /// undecided (denied by default), or decided while the run was not resumed (a crash between
    /// the decision and the resume). Returns whether the run moved.
    pub(crate) async fn expire_if_due(
        &self,
        tenant: &TenantId,
        run: &mut Run,
        record: &mut StoredRun,
        user: Option<&str>,
    ) -> Result<bool, AgentError> {
        let Some(step) = run.awaiting_approval() else { return Ok(false) };
        let approvals = self.store.approvals(tenant, None).await?;
        let Some(approval) = approvals.into_iter().find(|a| a.chain_id == run.chain_id && a.step as usize == step)
        else {
            return Ok(false);
        };
        let (approved, by, note) = match approval.status {
            ApprovalStatus::Pending => {
                if approval.expires_at > Timestamp::now() {
                    return Ok(false);
                }
                let at = Timestamp::from_micros(approval.expires_at.as_micros() - 1);
                let expired = ApprovalStatus::Expired;
                if !self.store.decide_approval(tenant, &approval.id, expired, "system", "expired", at).await? {
                    // Someone decided first (a person, or another sweeper): that decision drives
                    // the run.
                    return Ok(false);
                }
                self.seal_approval(tenant, &approval, expired.as_str(), "system", "no decision before expiry").await?;
                (false, "expiry".to_owned(), "no decision in time".to_owned())
            }
            // A fresh decision belongs to whoever made it; only one left unapplied for a minute
            // means its process died before resuming the run.
            _ if approval.decided_at.is_some_and(|at| at.as_micros() > Timestamp::now().as_micros() - 60_000_000) => {
                return Ok(false);
            }
            decided => {
                let sealed = self.store.chain_records(tenant, &run.chain_id).await?.iter().any(|r| {
                    r.kind == EntryKind::Approval
                        && serde_json::from_str::<Value>(&r.payload).is_ok_and(|p| {
                            p["approval_id"] == approval.id.as_str() && p["decision"] == decided.as_str()
                        })
                });
                let by = approval.decided_by.clone().unwrap_or_else(|| "system".to_owned());
                let note = approval.note.clone().unwrap_or_default();
                if !sealed {
                    self.seal_approval(tenant, &approval, decided.as_str(), &by, &note).await?;
                }
                let by = if decided == ApprovalStatus::Expired { "expiry".to_owned() } else { by };
                (decided == ApprovalStatus::Approved, by, note)
            }
        };
        let next = run.advance(Input::ApprovalDecided { approved, by, note });
        self.drive(tenant, run, next, record, user, false).await?;
        Ok(true)
    }

    /// Seals a step of an approval's life: `requested`, or the status it was decided to.
    pub(crate) async fn seal_approval(
        &self,
        tenant: &TenantId,
        a: &Approval,
        decision: &str,
        by: &str,
        note: &str,
    ) -> Result<(), AgentError> {
        let payload = json!({
            "approval_id": a.id, "step": a.step, "tool": a.tool, "call_digest": a.call_digest,
            "decision": decision, "by": by, "note": note,
        });
        self.ledger
            .append(tenant, EntryDraft { kind: EntryKind::Approval, chain_id: Some(a.chain_id.clone()), payload })
            .await?;
        Ok(())
    }
}
