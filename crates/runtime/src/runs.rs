//! Starting and watching runs, the same way for every front-end (HTTP, the console, chat
//! channels).
//!
//! [`Runtime::start_run`] admits a request — the task's bounds, the tenant's monthly budget and
//! its chain limit — and drives the run on a task of its own, detached from the caller: a
//! client that hangs up never stops a run. [`Runtime::watch_run`] is a transport-neutral stream
//! of one run's numbered events: what happened so far, then live events, re-attachable from any
//! sequence number without gaps or repeats while this process holds the run's history. A run
//! this process has no history of (driven by another replica, or before a restart) is described
//! from its stored state and watched there until it finishes.

use std::sync::Arc;
use std::time::Duration;

use domain::agent::ActionStatus;
use domain::{ChainId, TenantId};
use engine::machine::{Event, SealKind};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot};

use crate::Runtime;
use crate::agent::{AgentError, RunReport, RunRequest};
use crate::chain_events::ChainEvent;

/// The longest task a run accepts, in characters.
pub const MAX_TASK_CHARS: usize = 32_000;

/// How often a watched run this process does not drive is re-read from the store.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// A run started by [`Runtime::start_run`]. Dropping the handle leaves the run going.
pub struct RunHandle {
    tenant: TenantId,
    chain_id: ChainId,
    outcome: oneshot::Receiver<Result<RunReport, AgentError>>,
    runtime: Arc<Runtime>,
}

impl RunHandle {
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// Waits until the run finishes or parks on an approval.
    pub async fn finished(self) -> Result<RunReport, AgentError> {
        self.outcome.await.unwrap_or_else(|_| Err(AgentError::Stopped { chain: self.chain_id.to_string() }))
    }

    /// The run's events from its first, live; a run that fails ends with an `error` event.
    pub fn events(self) -> RunEvents {
        let (history, live) = self.runtime.attach_events(&self.tenant, &self.chain_id);
        RunEvents {
            source: Source::Live { live, outcome: Some(self.outcome) },
            history: history.unwrap_or_default().into_iter(),
            next_seq: 0,
            after: None,
            tenant: self.tenant,
            chain: self.chain_id,
            runtime: self.runtime,
            done: false,
        }
    }
}

/// One event of a run and its number within the run (from 0), for resuming a watch.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedEvent {
    pub seq: u64,
    pub event: Event,
}

/// Where events come from once the history is replayed.
enum Source {
    /// This process's live feed; `outcome` reports a run that failed (started by this watch).
    Live { live: broadcast::Receiver<ChainEvent>, outcome: Option<oneshot::Receiver<Result<RunReport, AgentError>>> },
    /// The stored run, re-read until it finishes (driven elsewhere, or before a restart).
    Stored,
    /// Nothing follows the history (the run had finished).
    Nothing,
}

/// A watch over one run's events ([`Runtime::watch_run`], [`RunHandle::events`]). Ends after the
/// run's `chain_completed` event, after an `error` event, or when the runtime stops.
pub struct RunEvents {
    tenant: TenantId,
    chain: ChainId,
    history: std::vec::IntoIter<Event>,
    source: Source,
    next_seq: u64,
    /// Events up to and including this number were seen already.
    after: Option<u64>,
    runtime: Arc<Runtime>,
    done: bool,
}

impl RunEvents {
    /// The next event, or `None` once the watch is over.
    pub async fn next(&mut self) -> Option<NumberedEvent> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.history.next() {
                let seq = self.next_seq;
                self.next_seq += 1;
                if matches!(event, Event::ChainCompleted { .. }) {
                    // The run is over: nothing can follow.
                    self.done = true;
                }
                if self.after.is_some_and(|after| seq <= after) {
                    continue;
                }
                return Some(NumberedEvent { seq, event });
            }
            match &mut self.source {
                Source::Nothing => self.done = true,
                Source::Stored => {
                    if let Err(error) = self.refresh_from_store().await {
                        self.done = true;
                        return Some(NumberedEvent {
                            seq: self.next_seq,
                            event: Event::Error { message: error.to_string() },
                        });
                    }
                }
                Source::Live { .. } => return self.next_live().await,
            }
        }
    }

    /// Waits, re-reads the stored run and queues the events it gained since the last read (the
    /// events of a stored run only ever grow at the end: see [`events_of_report`]).
    async fn refresh_from_store(&mut self) -> Result<(), AgentError> {
        tokio::time::sleep(POLL_EVERY).await;
        let report = self.runtime.run_report(&self.tenant, &self.chain).await?;
        let seen = usize::try_from(self.next_seq).unwrap_or(usize::MAX);
        self.history = events_of_report(&report).into_iter().skip(seen).collect::<Vec<_>>().into_iter();
        if report.status.is_terminal() {
            self.source = Source::Nothing;
        }
        Ok(())
    }

    async fn next_live(&mut self) -> Option<NumberedEvent> {
        let Source::Live { live, outcome } = &mut self.source else { return None };
        loop {
            let received = match outcome.as_mut() {
                Some(pending) => tokio::select! {
                    received = live.recv() => received,
                    finished = pending => {
                        *outcome = None;
                        if let Ok(Err(error)) = finished {
                            self.done = true;
                            return Some(NumberedEvent { seq: self.next_seq, event: Event::Error { message: error.to_string() } });
                        }
                        continue;
                    }
                },
                None => live.recv().await,
            };
            match received {
                Ok(e) if e.chain_id == self.chain && e.tenant == self.tenant => {
                    if e.seq < self.next_seq || self.after.is_some_and(|after| e.seq <= after) {
                        continue;
                    }
                    self.next_seq = e.seq + 1;
                    if matches!(e.event, Event::ChainCompleted { .. }) {
                        self.done = true;
                    }
                    return Some(NumberedEvent { seq: e.seq, event: e.event });
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    let message = format!(
                        "this watch fell behind by {missed} events; watch run {} again from event {}",
                        self.chain,
                        self.next_seq.saturating_sub(1)
                    );
                    return Some(NumberedEvent { seq: self.next_seq, event: Event::Error { message } });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl Runtime {
    /// Admits `request` and starts it on its own task. Refused before anything runs when the
    /// task is blank or longer than [`MAX_TASK_CHARS`], the tenant's monthly budget is spent,
    /// or its chain limit is reached. A blank `persona` means none (the engine picks per step).
    pub async fn start_run(self: &Arc<Self>, mut request: RunRequest) -> Result<RunHandle, AgentError> {
        let task = request.task.trim();
        if task.is_empty() {
            return Err(AgentError::InvalidTask("task must not be empty".into()));
        }
        if task.chars().count() > MAX_TASK_CHARS {
            return Err(AgentError::InvalidTask(format!("task is longer than {MAX_TASK_CHARS} characters")));
        }
        request.task = task.to_owned();
        request.persona = request.persona.filter(|p| !p.trim().is_empty());
        self.budgets().check(&request.tenant).await?;
        self.limits().chain(&request.tenant).await?;
        let chain_id = request.chain_id.get_or_insert_with(ChainId::generate).clone();
        let tenant = request.tenant.clone();
        self.chain_events.open(&tenant, &chain_id);
        let (sender, outcome) = oneshot::channel();
        let runtime = Arc::clone(self);
        crate::tasks::spawn("run", async move {
            // Nobody waiting is normal: the caller went away, the run goes on.
            let _ = sender.send(runtime.execute(request).await);
        });
        Ok(RunHandle { tenant, chain_id, outcome, runtime: Arc::clone(self) })
    }

    /// Watches a run's events, skipping those numbered up to `after` (a client re-attaching
    /// after a disconnect passes the last number it saw).
    pub async fn watch_run(
        self: &Arc<Self>,
        tenant: &TenantId,
        chain: &ChainId,
        after: Option<u64>,
    ) -> Result<RunEvents, AgentError> {
        let (history, live) = self.attach_events(tenant, chain);
        let (history, source) = match history {
            Some(history) => (history, Source::Live { live, outcome: None }),
            None => {
                let report = self.run_report(tenant, chain).await?;
                let source = if report.status.is_terminal() { Source::Nothing } else { Source::Stored };
                (events_of_report(&report), source)
            }
        };
        Ok(RunEvents {
            tenant: tenant.clone(),
            chain: chain.clone(),
            history: history.into_iter(),
            source,
            next_seq: 0,
            after,
            runtime: Arc::clone(self),
            done: false,
        })
    }
}

/// Events that describe a stored run, for a watcher this process has no live history for. The
/// list only grows at its end as the run goes on — steps not yet started add nothing, and the
/// step in progress ends the list — so a watcher re-reading the run queues just the new tail.
/// Each step's seals are described from their fingerprints (an intent with the status it was
/// sealed with, as far as the stored step tells it); approval requests are not described, so a
/// held step's live history has one event more, and its intent seal said `awaiting_approval`.
pub fn events_of_report(report: &RunReport) -> Vec<Event> {
    let mut events = vec![Event::ChainStarted { chain_id: report.chain_id.to_string(), steps: report.steps.len() }];
    for step in &report.steps {
        if step.status == ActionStatus::Pending {
            break;
        }
        events.push(Event::StepStarted { step: step.index, persona: step.persona.clone(), tool: step.tool.clone() });
        for g in &step.gates {
            events.push(Event::GateResult {
                step: step.index,
                gate: g.gate_name.clone(),
                verdict: g.verdict,
                score: g.score,
                threshold: g.threshold,
            });
        }
        if let Some(fingerprint) = &step.intent_fingerprint {
            // The status the intent was sealed with: a blocked or held call says so; any other
            // had passed its gates and was about to run.
            let sealed_as = match step.status {
                ActionStatus::Blocked | ActionStatus::AwaitingApproval => step.status,
                _ => ActionStatus::Executing,
            };
            events.push(Event::SealCreated {
                step: step.index,
                seal_kind: SealKind::Intent,
                status: sealed_as,
                fingerprint: fingerprint.clone(),
                result_preview: String::new(),
            });
        }
        if !step.status.is_settled() {
            break;
        }
        // A call that ran is saved settled a moment before its result is sealed: until the
        // seal is stored (or the run ended without it) the step is not described as done, so
        // the described events only ever grow at the end.
        let ran = matches!(step.status, ActionStatus::Executed | ActionStatus::Failed);
        if ran && step.intent_fingerprint.is_some() && step.result_fingerprint.is_none() && !report.status.is_terminal()
        {
            break;
        }
        if let Some(fingerprint) = &step.result_fingerprint {
            events.push(Event::SealCreated {
                step: step.index,
                seal_kind: SealKind::Result,
                status: step.status,
                fingerprint: fingerprint.clone(),
                result_preview: step.result_preview.clone().unwrap_or_default(),
            });
        }
        events.push(Event::StepCompleted { step: step.index, status: step.status });
    }
    if report.status.is_terminal() {
        events.push(Event::ChainCompleted {
            chain_id: report.chain_id.to_string(),
            status: report.status,
            input_tokens: report.input_tokens,
            output_tokens: report.output_tokens,
            cost_usd: report.cost_usd,
        });
    }
    events
}
