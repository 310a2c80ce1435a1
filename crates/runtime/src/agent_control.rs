//! Watching and steering runs from outside: attaching to a run's numbered events, cancelling
//! it, and measuring gate 2 (intent similarity) with the loaded embedding model.

use domain::agent::ApprovalStatus;
use domain::{ChainId, TenantId};
use engine::machine::{Event, Run};

use crate::Runtime;
use crate::agent::{AgentError, RunReport, report};

/// How often a model call in flight looks for a cancel of its run.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

impl Runtime {
    /// A run's events so far and the live feed from that moment (see [`crate::chain_events`]).
    /// `None` history: this process has not seen the run's events (use its stored report).
    pub fn attach_events(
        &self,
        tenant: &TenantId,
        chain: &ChainId,
    ) -> (Option<Vec<Event>>, tokio::sync::broadcast::Receiver<crate::chain_events::ChainEvent>) {
        self.chain_events.attach(tenant, chain)
    }

    /// Live events of every run, numbered per chain.
    pub fn subscribe_chains(&self) -> tokio::sync::broadcast::Receiver<crate::chain_events::ChainEvent> {
        self.chain_events.subscribe()
    }

    /// Asks a run to stop: a run this process drives stops before its next action (a model
    /// call in flight is dropped, not waited for); a run parked on an approval is cancelled at
    /// once. Returns the run's report afterwards.
    pub async fn cancel_run(&self, tenant: &TenantId, chain: &ChainId, by: &str) -> Result<RunReport, AgentError> {
        let (mut run, record, user) = self.load_run(tenant, chain).await?;
        let mut record = crate::run_state::to_save(record, &run)?;
        if run.is_finished() {
            return Ok(report(tenant, &run));
        }
        if self.active.lock().unwrap_or_else(|p| p.into_inner()).contains(chain) {
            self.cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(chain.clone());
            return Ok(report(tenant, &run));
        }
        if !self.claim(&record).await? {
            return Err(AgentError::DrivenElsewhere { chain: chain.to_string() });
        }
        let parked = run.awaiting_approval().is_some();
        let (_, events) = run.cancel(format!("cancelled by {by}"));
        self.publish(tenant, chain, events);
        self.save(&run, &mut record, user.as_deref()).await?;
        if parked {
            // The call it waited on will never run: close its approval as denied.
            for approval in self.store.approvals(tenant, Some(ApprovalStatus::Pending)).await? {
                if &approval.chain_id == chain {
                    self.store
                        .decide_approval(
                            tenant,
                            &approval.id,
                            ApprovalStatus::Denied,
                            by,
                            "run cancelled",
                            domain::Timestamp::now(),
                        )
                        .await?;
                }
            }
        }
        Ok(report(tenant, &run))
    }

    /// Gate 2's measure: the best cosine similarity between the task with the actual call
    /// (tool and arguments, not the model's stated intent) and the persona's intent patterns.
    /// `None` (the gate skips) without an embedding model or patterns.
    pub(crate) async fn intent_similarity(&self, run: &Run, step: usize) -> Option<f64> {
        self.embedder()?;
        let record = run.steps.get(step)?;
        let persona = run.context.personas.iter().find(|p| p.name == record.persona)?;
        if persona.intent_patterns.is_empty() {
            return None;
        }
        let call = format!("{}\nAction: {} with {}", run.task, record.tool, record.params);
        let mut texts = vec![call];
        texts.extend(persona.intent_patterns.iter().cloned());
        match self.embed(texts).await {
            Ok(Some(vectors)) => {
                let (call, patterns) = vectors.split_first()?;
                patterns.iter().map(|p| f64::from(domain::embed::cosine(call, p))).reduce(f64::max)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "intent similarity could not be measured; gate 2 skips");
                None
            }
        }
    }

    pub(crate) fn cancel_requested(&self, chain: &ChainId) -> bool {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(chain)
    }

    /// Runs `work` unless the run is cancelled first (then `None`, and the cancel is taken).
    /// The cancel is looked for every [`CANCEL_POLL`].
    pub(crate) async fn unless_cancelled<T>(&self, chain: &ChainId, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return Some(done),
                () = tokio::time::sleep(CANCEL_POLL) => {
                    if self.cancel_requested(chain) {
                        return None;
                    }
                }
            }
        }
    }
}
