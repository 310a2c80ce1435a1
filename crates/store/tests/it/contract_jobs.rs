//! Contract for background work: jobs stored once per idempotency key, claimed oldest-due
//! first by exactly one worker under a per-tenant cap, held under leases only their owner
//! renews or ends, retried, requeued when their worker stops answering, cancelled and pruned;
//! schedules fired by compare-and-set with their job; equipment switched off per tenant.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::TenantId;
use domain::Timestamp;
use domain::job::{Job, JobFilter, JobKind, JobOutcome, JobState, MissedRuns, Schedule, schedule_key};
use domain::ports::{Store, StoreError};
use store::test_support::backends;
use tokio::task::JoinSet;

use crate::contract::with_tenants;

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

fn job(tenant: &TenantId, n: u32, run_at: i64) -> Job {
    Job::pending(
        tenant.clone(),
        format!("job_{n:020x}"),
        JobKind::AgentTask,
        format!(r#"{{"n":{n}}}"#),
        ts(run_at),
        3,
        "user:u1".into(),
        ts(i64::from(n)),
    )
}

fn schedule(tenant: &TenantId, n: u32, name: &str, next_run_at: Option<i64>) -> Schedule {
    Schedule {
        tenant_id: tenant.clone(),
        id: format!("sch_{n:020x}"),
        name: name.into(),
        cron: "0 * * * *".into(),
        timezone: "Europe/Rome".into(),
        kind: JobKind::Equipment,
        payload: r#"{"equipment":"digest"}"#.into(),
        enabled: true,
        missed: MissedRuns::Skip,
        next_run_at: next_run_at.map(ts),
        last_run_at: None,
        created_by: "user:u1".into(),
        created_at: ts(1),
        updated_at: ts(1),
    }
}

/// Claims until nothing is claimable; the ids claimed, in order.
async fn claim_all(store: &Arc<dyn Store>, owner: &str, now: i64, cap: u32) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(j) = store.claim_job(owner, ts(now), ts(now + 1_000), cap).await.expect("claim") {
        ids.push(j.id);
    }
    ids
}

#[tokio::test]
async fn jobs_are_stored_once_per_idempotency_key_and_listed_newest_first() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["jobs-a", "jobs-b"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        let keyed = Job { idempotency_key: Some("k1".into()), ..job(t, 1, 10) };
        assert!(store.insert_job(&keyed).await.expect("insert"), "{}", db.backend);
        let again = Job { idempotency_key: Some("k1".into()), ..job(t, 2, 10) };
        assert!(!store.insert_job(&again).await.expect("insert again"), "same key: nothing stored ({})", db.backend);
        assert_eq!(store.job(t, &again.id).await.expect("read"), None, "{}", db.backend);
        assert_eq!(store.job(t, &keyed.id).await.expect("read"), Some(keyed.clone()), "{}", db.backend);
        assert_eq!(store.job(other, &keyed.id).await.expect("read"), None, "per tenant ({})", db.backend);
        let elsewhere = Job { idempotency_key: Some("k1".into()), ..job(other, 3, 10) };
        assert!(store.insert_job(&elsewhere).await.expect("insert"), "keys are per tenant ({})", db.backend);
        for n in [4, 5] {
            assert!(store.insert_job(&job(t, n, 10)).await.expect("insert"), "no key, no dedup ({})", db.backend);
        }
        let equipment = Job { kind: JobKind::Equipment, schedule_id: Some("sch_1".into()), ..job(t, 6, 10) };
        assert!(store.insert_job(&equipment).await.expect("insert"));

        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        let all = store.jobs(t, &JobFilter::default(), 10).await.expect("list");
        assert_eq!(ids(all), [6, 5, 4, 1].map(|n| job(t, n, 0).id), "newest first ({})", db.backend);
        let two = store.jobs(t, &JobFilter::default(), 2).await.expect("list");
        assert_eq!(two.len(), 2, "limit ({})", db.backend);
        let by_kind = JobFilter { kind: Some(JobKind::Equipment), ..JobFilter::default() };
        assert_eq!(ids(store.jobs(t, &by_kind, 10).await.expect("list")), [equipment.id.as_str()], "{}", db.backend);
        let by_schedule = JobFilter { schedule_id: Some("sch_1".into()), ..JobFilter::default() };
        assert_eq!(ids(store.jobs(t, &by_schedule, 10).await.expect("list")), [equipment.id.as_str()]);
        store.claim_job("w", ts(10), ts(100), 10).await.expect("claim").expect("one due");
        let running = JobFilter { states: vec![JobState::Running], ..JobFilter::default() };
        assert_eq!(ids(store.jobs(t, &running, 10).await.expect("list")), [keyed.id.as_str()], "{}", db.backend);
        let either = JobFilter { states: vec![JobState::Running, JobState::Pending], ..JobFilter::default() };
        assert_eq!(store.jobs(t, &either, 10).await.expect("list").len(), 4, "{}", db.backend);
        let none = JobFilter { states: vec![JobState::Failed], ..JobFilter::default() };
        assert!(store.jobs(t, &none, 10).await.expect("list").is_empty(), "{}", db.backend);
    }
}

#[tokio::test]
async fn claims_take_the_oldest_due_job_first() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["claim-a", "claim-b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        // Inserted out of order; two due at 20 are ordered by creation.
        for j in [job(a, 1, 30), job(b, 2, 10), job(a, 4, 20), job(b, 3, 20), job(a, 5, 100)] {
            store.insert_job(&j).await.expect("insert");
        }
        assert_eq!(store.claim_job("w1", ts(5), ts(1_000), 10).await.expect("claim"), None, "nothing due yet");
        let first = store.claim_job("w1", ts(50), ts(1_000), 10).await.expect("claim").expect("due");
        assert_eq!(first.id, job(b, 2, 0).id, "earliest run_at first ({})", db.backend);
        assert_eq!(first.state, JobState::Running, "{}", db.backend);
        assert_eq!(first.lease_owner.as_deref(), Some("w1"));
        assert_eq!(first.lease_until, Some(ts(1_000)));
        assert_eq!(first.attempts, 1);
        assert_eq!(first.started_at, Some(ts(50)));
        assert_eq!(first.updated_at, ts(50));
        assert!(!first.cancel_requested);
        assert_eq!(
            store.job(b, &first.id).await.expect("read"),
            Some(first.clone()),
            "claim returns the row as stored"
        );
        let rest = claim_all(&db.store, "w1", 50, 10).await;
        assert_eq!(rest, [3, 4, 1].map(|n| job(a, n, 0).id), "then by run_at, then creation ({})", db.backend);
        let late = store.claim_job("w1", ts(100), ts(1_000), 10).await.expect("claim").expect("due at 100");
        assert_eq!(late.id, job(a, 5, 0).id, "{}", db.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_job_is_claimed_by_exactly_one_of_many_concurrent_claimers() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["race-a", "race-b"]).await;
        for n in 0..24u32 {
            let tenant = &tenants[(n % 2) as usize];
            db.store.insert_job(&job(tenant, n, i64::from(n))).await.expect("insert");
        }
        let mut claimers = JoinSet::new();
        for w in 0..8 {
            let store = db.store.clone();
            claimers.spawn(async move { (format!("w{w}"), claim_all(&store, &format!("w{w}"), 100, 100).await) });
        }
        let results = claimers.join_all().await;
        let mut owners: HashMap<String, String> = HashMap::new();
        for (owner, ids) in results {
            for id in ids {
                if let Some(previous) = owners.insert(id.clone(), owner.clone()) {
                    panic!("{id} claimed by {previous} and {owner} ({})", db.backend);
                }
            }
        }
        assert_eq!(owners.len(), 24, "every job claimed ({})", db.backend);
        for (id, owner) in &owners {
            let stored = found_in(&db.store, &tenants, id).await;
            assert_eq!(
                stored.lease_owner.as_deref(),
                Some(owner.as_str()),
                "{id} held by its claimer ({})",
                db.backend
            );
            assert_eq!(stored.attempts, 1, "{id} claimed once ({})", db.backend);
        }
    }
}

/// The job `id` of whichever of `tenants` has it.
async fn found_in(store: &Arc<dyn Store>, tenants: &[TenantId], id: &str) -> Job {
    for t in tenants {
        if let Some(j) = store.job(t, id).await.expect("read") {
            return j;
        }
    }
    panic!("no job {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenant_cap_holds_under_concurrent_claims() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["busy", "quiet"]).await;
        let (busy, quiet) = (tenants[0].clone(), tenants[1].clone());
        for n in 0..10u32 {
            db.store.insert_job(&job(&busy, n, i64::from(n))).await.expect("insert");
        }
        // Due after all of the busy tenant's jobs: claimed only because of the cap.
        db.store.insert_job(&job(&quiet, 100, 50)).await.expect("insert");

        // Eight claimers at once, each claiming once and holding what it got.
        let mut claimers = JoinSet::new();
        for w in 0..8 {
            let store = db.store.clone();
            claimers
                .spawn(async move { store.claim_job(&format!("w{w}"), ts(100), ts(10_000), 2).await.expect("claim") });
        }
        let claimed: Vec<Job> = claimers.join_all().await.into_iter().flatten().collect();
        let of = |t: &TenantId| claimed.iter().filter(|j| &j.tenant_id == t).count();
        assert_eq!(of(&busy), 2, "the busy tenant is held to its cap ({})", db.backend);
        assert_eq!(of(&quiet), 1, "another tenant's job is still claimed ({})", db.backend);
        let running = JobFilter { states: vec![JobState::Running], ..JobFilter::default() };
        assert_eq!(db.store.jobs(&busy, &running, 100).await.expect("list").len(), 2, "{}", db.backend);

        // Then workers that finish what they claim: never more than two of the tenant's at once.
        for j in &claimed {
            let owner = j.lease_owner.clone().expect("held");
            let done = JobOutcome::Completed { result: "{}".into() };
            assert!(db.store.finish_job(&j.tenant_id, &j.id, &owner, &done, ts(100)).await.expect("finish"));
        }
        let (holding, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut workers = JoinSet::new();
        for w in 0..8 {
            let (store, holding, most) = (db.store.clone(), holding.clone(), most.clone());
            workers.spawn(async move {
                let owner = format!("v{w}");
                let mut done = 0;
                while let Some(j) = store.claim_job(&owner, ts(200), ts(10_000), 2).await.expect("claim") {
                    let now_holding = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now_holding, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    holding.fetch_sub(1, Ordering::SeqCst);
                    let outcome = JobOutcome::Completed { result: "{}".into() };
                    assert!(store.finish_job(&j.tenant_id, &j.id, &owner, &outcome, ts(200)).await.expect("finish"));
                    done += 1;
                }
                done
            });
        }
        let finished: usize = workers.join_all().await.into_iter().sum();
        assert_eq!(finished, 8, "the remaining eight jobs all ran ({})", db.backend);
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "at most two held at once, saw {} ({})",
            most.load(Ordering::SeqCst),
            db.backend
        );
        let completed = JobFilter { states: vec![JobState::Completed], ..JobFilter::default() };
        assert_eq!(db.store.jobs(&busy, &completed, 100).await.expect("list").len(), 10, "{}", db.backend);
    }
}

#[tokio::test]
async fn leases_are_renewed_and_jobs_finished_only_by_their_owner() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["lease"]).await;
        let t = &tenants[0];
        let store = &db.store;
        store.insert_job(&job(t, 1, 0)).await.expect("insert");
        let j = store.claim_job("w1", ts(10), ts(100), 5).await.expect("claim").expect("due");
        assert_eq!(store.renew_job(t, &j.id, "w1", ts(200)).await.expect("renew"), Some(false), "{}", db.backend);
        assert_eq!(store.job(t, &j.id).await.expect("read").and_then(|j| j.lease_until), Some(ts(200)));
        assert_eq!(store.renew_job(t, &j.id, "w2", ts(900)).await.expect("renew"), None, "a stranger ({})", db.backend);
        assert_eq!(store.job(t, &j.id).await.expect("read").and_then(|j| j.lease_until), Some(ts(200)), "unchanged");

        let done = JobOutcome::Completed { result: r#"{"ok":true}"#.into() };
        assert!(!store.finish_job(t, &j.id, "w2", &done, ts(50)).await.expect("finish"), "a stranger ({})", db.backend);
        assert_eq!(
            store.job(t, &j.id).await.expect("read").map(|j| j.state),
            Some(JobState::Running),
            "{}",
            db.backend
        );
        assert!(store.finish_job(t, &j.id, "w1", &done, ts(60)).await.expect("finish"), "{}", db.backend);
        let after = store.job(t, &j.id).await.expect("read").expect("exists");
        assert_eq!(after.state, JobState::Completed, "{}", db.backend);
        assert_eq!(after.result.as_deref(), Some(r#"{"ok":true}"#));
        assert_eq!((after.finished_at, after.updated_at), (Some(ts(60)), ts(60)));
        assert_eq!((after.lease_owner, after.lease_until), (None, None), "lease cleared ({})", db.backend);
        assert!(!store.finish_job(t, &j.id, "w1", &done, ts(70)).await.expect("finish"), "ended once ({})", db.backend);
        assert_eq!(store.renew_job(t, &j.id, "w1", ts(300)).await.expect("renew"), None, "ended ({})", db.backend);
    }
}

#[tokio::test]
async fn a_failure_with_retry_goes_back_to_pending_until_attempts_run_out() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["retry"]).await;
        let t = &tenants[0];
        let store = &db.store;
        store.insert_job(&Job { max_attempts: 2, ..job(t, 1, 0) }).await.expect("insert");
        let j = store.claim_job("w1", ts(10), ts(100), 5).await.expect("claim").expect("due");
        let fail = JobOutcome::Failed { error: "timeout".into(), retry_at: Some(ts(500)) };
        assert!(store.finish_job(t, &j.id, "w1", &fail, ts(20)).await.expect("finish"), "{}", db.backend);
        let pending = store.job(t, &j.id).await.expect("read").expect("exists");
        assert_eq!(pending.state, JobState::Pending, "attempts remain ({})", db.backend);
        assert_eq!(pending.run_at, ts(500));
        assert_eq!(pending.last_error.as_deref(), Some("timeout"));
        assert_eq!(
            (pending.lease_owner, pending.lease_until, pending.finished_at),
            (None, None, None),
            "{}",
            db.backend
        );
        assert_eq!(
            store.claim_job("w2", ts(400), ts(1_000), 5).await.expect("claim"),
            None,
            "backoff ({})",
            db.backend
        );
        let second = store.claim_job("w2", ts(500), ts(1_000), 5).await.expect("claim").expect("due again");
        assert_eq!(second.attempts, 2, "{}", db.backend);
        let fail = JobOutcome::Failed { error: "timeout again".into(), retry_at: Some(ts(900)) };
        assert!(store.finish_job(t, &j.id, "w2", &fail, ts(600)).await.expect("finish"));
        let failed = store.job(t, &j.id).await.expect("read").expect("exists");
        assert_eq!(failed.state, JobState::Failed, "attempts used up ({})", db.backend);
        assert_eq!(failed.finished_at, Some(ts(600)));
        assert_eq!(failed.last_error.as_deref(), Some("timeout again"));
        assert_eq!(failed.run_at, ts(500), "not rescheduled ({})", db.backend);

        // Without retry_at a failure is final at once.
        store.insert_job(&job(t, 2, 0)).await.expect("insert");
        let k = store.claim_job("w1", ts(1_000), ts(2_000), 5).await.expect("claim").expect("due");
        let fatal = JobOutcome::Failed { error: "bad payload".into(), retry_at: None };
        assert!(store.finish_job(t, &k.id, "w1", &fatal, ts(1_001)).await.expect("finish"));
        let k = store.job(t, &k.id).await.expect("read").expect("exists");
        assert_eq!((k.state, k.attempts, k.finished_at), (JobState::Failed, 1, Some(ts(1_001))), "{}", db.backend);
    }
}

#[tokio::test]
async fn an_expired_lease_is_requeued_taken_over_once_and_fails_when_attempts_run_out() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["expire"]).await;
        let t = &tenants[0];
        let store = &db.store;
        store.insert_job(&Job { max_attempts: 2, ..job(t, 1, 0) }).await.expect("insert");
        let j = store.claim_job("w1", ts(10), ts(100), 5).await.expect("claim").expect("due");
        assert!(store.requeue_expired_jobs(ts(100)).await.expect("requeue").is_empty(), "not before ({})", db.backend);
        let requeued = store.requeue_expired_jobs(ts(150)).await.expect("requeue");
        assert_eq!(requeued.len(), 1, "{}", db.backend);
        let r = &requeued[0];
        assert_eq!((r.id.as_str(), r.state, r.run_at), (j.id.as_str(), JobState::Pending, ts(150)), "{}", db.backend);
        assert_eq!(r.last_error.as_deref(), Some("its worker stopped answering (lease expired)"));
        assert_eq!((r.lease_owner.as_deref(), r.lease_until, r.finished_at), (None, None, None));
        assert_eq!(store.job(t, &j.id).await.expect("read").as_ref(), Some(r), "returned as stored ({})", db.backend);

        let taken = store.claim_job("w2", ts(160), ts(300), 5).await.expect("claim").expect("claimable again");
        assert_eq!((taken.lease_owner.as_deref(), taken.attempts), (Some("w2"), 2), "{}", db.backend);
        assert_eq!(store.claim_job("w3", ts(160), ts(300), 5).await.expect("claim"), None, "once ({})", db.backend);
        assert_eq!(store.renew_job(t, &j.id, "w1", ts(400)).await.expect("renew"), None, "w1 lost it ({})", db.backend);
        let done = JobOutcome::Completed { result: "{}".into() };
        assert!(!store.finish_job(t, &j.id, "w1", &done, ts(170)).await.expect("finish"), "{}", db.backend);

        let failed = store.requeue_expired_jobs(ts(301)).await.expect("requeue");
        assert_eq!(failed.len(), 1, "{}", db.backend);
        assert_eq!((failed[0].state, failed[0].finished_at), (JobState::Failed, Some(ts(301))), "{}", db.backend);
        let message = failed[0].last_error.clone().unwrap_or_default();
        assert!(message.contains("lease") && message.contains("2 attempts"), "{message:?} ({})", db.backend);
        assert!(store.requeue_expired_jobs(ts(10_000)).await.expect("requeue").is_empty(), "{}", db.backend);

        // A job asked to stop whose worker then went silent ends cancelled.
        store.insert_job(&job(t, 2, 0)).await.expect("insert");
        let c = store.claim_job("w1", ts(400), ts(500), 5).await.expect("claim").expect("due");
        store.cancel_job(t, &c.id, "no longer needed", ts(410)).await.expect("cancel");
        let ended = store.requeue_expired_jobs(ts(501)).await.expect("requeue");
        assert_eq!(ended.len(), 1, "{}", db.backend);
        assert_eq!((ended[0].state, ended[0].finished_at), (JobState::Cancelled, Some(ts(501))), "{}", db.backend);
    }
}

#[tokio::test]
async fn cancelling_is_immediate_when_pending_and_a_request_to_stop_when_running() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["cancel", "cancel-other"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        store.insert_job(&job(t, 1, 0)).await.expect("insert");
        store.insert_job(&job(t, 2, 50)).await.expect("insert");
        let running = store.claim_job("w1", ts(10), ts(100), 5).await.expect("claim").expect("due");

        let pending_id = job(t, 2, 0).id;
        assert_eq!(store.cancel_job(other, &pending_id, "x", ts(20)).await.expect("cancel"), None, "per tenant");
        let cancelled =
            store.cancel_job(t, &pending_id, "changed my mind", ts(20)).await.expect("cancel").expect("exists");
        assert_eq!(cancelled.state, JobState::Cancelled, "{}", db.backend);
        assert_eq!((cancelled.finished_at, cancelled.updated_at), (Some(ts(20)), ts(20)));
        assert_eq!(cancelled.last_error.as_deref(), Some("changed my mind"));
        assert_eq!(
            store.claim_job("w2", ts(60), ts(100), 5).await.expect("claim"),
            None,
            "not claimable ({})",
            db.backend
        );

        let asked = store.cancel_job(t, &running.id, "stop", ts(30)).await.expect("cancel").expect("exists");
        assert_eq!((asked.state, asked.cancel_requested), (JobState::Running, true), "{}", db.backend);
        assert_eq!(asked.finished_at, None);
        assert_eq!(store.renew_job(t, &running.id, "w1", ts(200)).await.expect("renew"), Some(true), "{}", db.backend);
        let stop = JobOutcome::Cancelled { reason: "stop".into() };
        assert!(store.finish_job(t, &running.id, "w1", &stop, ts(40)).await.expect("finish"), "{}", db.backend);
        let stopped = store.job(t, &running.id).await.expect("read").expect("exists");
        assert_eq!((stopped.state, stopped.finished_at), (JobState::Cancelled, Some(ts(40))), "{}", db.backend);
        assert_eq!(stopped.last_error.as_deref(), Some("stop"));

        let again = store.cancel_job(t, &running.id, "again", ts(99)).await.expect("cancel");
        assert_eq!(again, Some(stopped), "a finished job is left as it is ({})", db.backend);
        assert_eq!(store.cancel_job(t, "job_missing", "x", ts(99)).await.expect("cancel"), None, "{}", db.backend);
    }
}

#[tokio::test]
async fn retrying_makes_failed_and_cancelled_jobs_pending_again() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["again"]).await;
        let t = &tenants[0];
        let store = &db.store;
        store.insert_job(&Job { max_attempts: 1, ..job(t, 1, 0) }).await.expect("insert");
        store.insert_job(&job(t, 2, 0)).await.expect("insert");
        store.insert_job(&job(t, 3, 1_000)).await.expect("insert");
        let j = store.claim_job("w1", ts(10), ts(100), 5).await.expect("claim").expect("due");
        let fail = JobOutcome::Failed { error: "boom".into(), retry_at: None };
        store.finish_job(t, &j.id, "w1", &fail, ts(20)).await.expect("finish");
        let cancelled = store.cancel_job(t, &job(t, 2, 0).id, "x", ts(20)).await.expect("cancel").expect("exists");

        let retried = store.retry_job(t, &j.id, ts(30)).await.expect("retry").expect("exists");
        assert_eq!((retried.state, retried.attempts, retried.run_at), (JobState::Pending, 0, ts(30)), "{}", db.backend);
        assert_eq!(
            (retried.finished_at, retried.lease_owner.as_deref(), retried.cancel_requested),
            (None, None, false)
        );
        let retried_cancel = store.retry_job(t, &cancelled.id, ts(31)).await.expect("retry").expect("exists");
        assert_eq!(retried_cancel.state, JobState::Pending, "{}", db.backend);
        let again = store.claim_job("w2", ts(40), ts(100), 5).await.expect("claim").expect("claimable");
        assert_eq!((again.id.as_str(), again.attempts), (j.id.as_str(), 1), "{}", db.backend);

        let pending_id = job(t, 3, 0).id;
        let before = store.job(t, &pending_id).await.expect("read");
        assert_eq!(store.retry_job(t, &pending_id, ts(50)).await.expect("retry"), before, "pending unchanged");
        let held = store.job(t, &j.id).await.expect("read");
        assert_eq!(store.retry_job(t, &j.id, ts(50)).await.expect("retry"), held, "running unchanged ({})", db.backend);
        assert_eq!(store.retry_job(t, "job_missing", ts(50)).await.expect("retry"), None, "{}", db.backend);
    }
}

#[tokio::test]
async fn pruning_forgets_only_jobs_finished_before_the_cutoff() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["prune"]).await;
        let t = &tenants[0];
        let store = &db.store;
        for n in 1..=4 {
            store.insert_job(&job(t, n, 0)).await.expect("insert");
        }
        let done = JobOutcome::Completed { result: "{}".into() };
        let a = store.claim_job("w", ts(1), ts(1_000), 9).await.expect("claim").expect("due");
        store.finish_job(t, &a.id, "w", &done, ts(10)).await.expect("finish");
        let b = store.claim_job("w", ts(1), ts(1_000), 9).await.expect("claim").expect("due");
        store.finish_job(t, &b.id, "w", &done, ts(500)).await.expect("finish");
        store.cancel_job(t, &job(t, 3, 0).id, "x", ts(20)).await.expect("cancel");
        // Job 4 stays pending.
        assert_eq!(store.prune_jobs(ts(100)).await.expect("prune"), 2, "{}", db.backend);
        let left: HashSet<String> =
            store.jobs(t, &JobFilter::default(), 10).await.expect("list").into_iter().map(|j| j.id).collect();
        assert_eq!(left, HashSet::from([b.id.clone(), job(t, 4, 0).id]), "{}", db.backend);
        assert_eq!(store.prune_jobs(ts(100)).await.expect("prune"), 0, "{}", db.backend);
    }
}

#[tokio::test]
async fn schedules_have_unique_names_and_are_found_by_id_or_name() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["sched", "sched-other"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        let nightly = schedule(t, 1, "nightly", Some(100));
        let hourly = schedule(t, 2, "hourly", Some(50));
        store.insert_schedule(&nightly).await.expect("insert");
        store.insert_schedule(&hourly).await.expect("insert");
        let clash = store.insert_schedule(&schedule(t, 3, "nightly", None)).await;
        assert!(
            matches!(&clash, Err(StoreError::Conflict { what }) if what.contains("nightly")),
            "{clash:?} ({})",
            db.backend
        );
        store.insert_schedule(&schedule(other, 4, "nightly", None)).await.expect("names are per tenant");

        assert_eq!(store.schedule(t, &nightly.id).await.expect("by id"), Some(nightly.clone()), "{}", db.backend);
        assert_eq!(store.schedule(t, "nightly").await.expect("by name"), Some(nightly.clone()), "{}", db.backend);
        assert_eq!(store.schedule(other, &nightly.id).await.expect("by id"), None, "per tenant ({})", db.backend);
        assert_eq!(store.schedule(t, "weekly").await.expect("by name"), None);
        let names: Vec<String> = store.schedules(t).await.expect("list").into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["hourly", "nightly"], "by name ({})", db.backend);

        assert!(store.delete_schedule(t, &hourly.id).await.expect("delete"), "{}", db.backend);
        assert!(!store.delete_schedule(t, &hourly.id).await.expect("delete"), "gone ({})", db.backend);
        assert_eq!(store.schedule(t, "hourly").await.expect("read"), None, "{}", db.backend);
    }
}

#[tokio::test]
async fn due_schedules_are_enabled_ones_earliest_first_across_tenants() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["due-a", "due-b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        store.insert_schedule(&schedule(a, 1, "late", Some(90))).await.expect("insert");
        store.insert_schedule(&schedule(b, 2, "early", Some(10))).await.expect("insert");
        store.insert_schedule(&schedule(a, 3, "middle", Some(50))).await.expect("insert");
        store.insert_schedule(&schedule(b, 4, "future", Some(500))).await.expect("insert");
        store.insert_schedule(&schedule(a, 5, "never", None)).await.expect("insert");
        store.insert_schedule(&Schedule { enabled: false, ..schedule(b, 6, "off", Some(5)) }).await.expect("insert");
        let ids = |found: Vec<Schedule>| found.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            ids(store.due_schedules(ts(100), 10).await.expect("due")),
            ["early", "middle", "late"],
            "{}",
            db.backend
        );
        assert_eq!(
            ids(store.due_schedules(ts(100), 2).await.expect("due")),
            ["early", "middle"],
            "limit ({})",
            db.backend
        );
        assert_eq!(ids(store.due_schedules(ts(50), 10).await.expect("due")), ["early", "middle"], "at or before now");

        assert!(
            store.set_schedule_enabled(b, &schedule(b, 6, "", None).id, true, Some(ts(7)), ts(60)).await.expect("on")
        );
        let on = store.schedule(b, "off").await.expect("read").expect("exists");
        assert_eq!((on.enabled, on.next_run_at, on.updated_at), (true, Some(ts(7)), ts(60)), "{}", db.backend);
        assert_eq!(
            ids(store.due_schedules(ts(50), 10).await.expect("due")),
            ["off", "early", "middle"],
            "{}",
            db.backend
        );
        assert!(store.set_schedule_enabled(a, &schedule(a, 3, "", None).id, false, None, ts(61)).await.expect("off"));
        let off = store.schedule(a, "middle").await.expect("read").expect("exists");
        assert_eq!((off.enabled, off.next_run_at), (false, None), "{}", db.backend);
        assert_eq!(ids(store.due_schedules(ts(50), 10).await.expect("due")), ["off", "early"], "{}", db.backend);
        assert!(
            !store.set_schedule_enabled(a, "sch_missing", true, None, ts(62)).await.expect("none"),
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn advancing_a_schedule_is_a_compare_and_set_with_its_job() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["advance"]).await;
        let t = &tenants[0];
        let store = &db.store;
        let s = schedule(t, 1, "hourly", Some(100));
        store.insert_schedule(&s).await.expect("insert");
        let fired = |n: u32| Job {
            schedule_id: Some(s.id.clone()),
            idempotency_key: Some(schedule_key(&s.id, ts(100))),
            created_by: format!("schedule:{}", s.id),
            ..job(t, n, 100)
        };
        assert!(
            store.advance_schedule(t, &s.id, ts(100), Some(ts(200)), Some(&fired(1)), ts(101)).await.expect("advance"),
            "{}",
            db.backend
        );
        let moved = store.schedule(t, &s.id).await.expect("read").expect("exists");
        assert_eq!((moved.next_run_at, moved.last_run_at, moved.updated_at), (Some(ts(200)), Some(ts(100)), ts(101)));
        assert_eq!(store.job(t, &fired(1).id).await.expect("read"), Some(fired(1)), "the job fired ({})", db.backend);

        // A second process planning the same run loses and enqueues nothing.
        assert!(
            !store.advance_schedule(t, &s.id, ts(100), Some(ts(200)), Some(&fired(2)), ts(102)).await.expect("advance"),
            "{}",
            db.backend
        );
        assert_eq!(store.job(t, &fired(2).id).await.expect("read"), None, "no second job ({})", db.backend);
        let by_schedule = JobFilter { schedule_id: Some(s.id.clone()), ..JobFilter::default() };
        assert_eq!(store.jobs(t, &by_schedule, 10).await.expect("list").len(), 1, "{}", db.backend);
        assert_eq!(store.schedule(t, &s.id).await.expect("read"), Some(moved.clone()), "unchanged ({})", db.backend);

        // Skipping a run (no job) moves the schedule but not its last run.
        assert!(store.advance_schedule(t, &s.id, ts(200), Some(ts(300)), None, ts(250)).await.expect("advance"));
        let skipped = store.schedule(t, &s.id).await.expect("read").expect("exists");
        assert_eq!((skipped.next_run_at, skipped.last_run_at), (Some(ts(300)), Some(ts(100))), "{}", db.backend);

        // A job whose key already exists is skipped, but the schedule still moves on.
        let duplicate = Job { idempotency_key: Some(schedule_key(&s.id, ts(100))), ..job(t, 3, 300) };
        assert!(store.advance_schedule(t, &s.id, ts(300), None, Some(&duplicate), ts(301)).await.expect("advance"));
        assert_eq!(store.job(t, &duplicate.id).await.expect("read"), None, "{}", db.backend);
        let last = store.schedule(t, &s.id).await.expect("read").expect("exists");
        assert_eq!((last.next_run_at, last.last_run_at), (None, Some(ts(300))), "{}", db.backend);
        assert!(!store.advance_schedule(t, "sch_missing", ts(300), None, None, ts(302)).await.expect("advance"));
    }
}

#[tokio::test]
async fn equipment_is_switched_off_and_on_per_tenant() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["equip", "equip-other"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        assert!(store.disabled_equipment(t).await.expect("read").is_empty(), "{}", db.backend);
        store.set_equipment_enabled(t, "weather", false, ts(1)).await.expect("off");
        store.set_equipment_enabled(t, "digest", false, ts(2)).await.expect("off");
        store.set_equipment_enabled(t, "rss", true, ts(3)).await.expect("on");
        assert_eq!(store.disabled_equipment(t).await.expect("read"), ["digest", "weather"], "{}", db.backend);
        assert!(store.disabled_equipment(other).await.expect("read").is_empty(), "per tenant ({})", db.backend);
        store.set_equipment_enabled(t, "weather", true, ts(4)).await.expect("on again");
        store.set_equipment_enabled(t, "digest", false, ts(5)).await.expect("off again");
        assert_eq!(store.disabled_equipment(t).await.expect("read"), ["digest"], "{}", db.backend);
    }
}
