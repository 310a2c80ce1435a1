//! The agent's storage contract on every backend: runs, approvals (decided once, never after
//! expiry, never across tenants) and drift counts.

use domain::agent::{ApprovalStatus, ChainStatus};
use domain::ports::{Approval, RunFilter, StoreError, StoredRun};
use domain::{ChainId, TenantId, Timestamp};
use store::test_support::backends;

fn status(status: ChainStatus) -> RunFilter {
    RunFilter { status: Some(status), ..RunFilter::default() }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("id")
}

fn run(t: &TenantId, chain: &str, status: ChainStatus, at: i64) -> StoredRun {
    StoredRun {
        tenant_id: t.clone(),
        chain_id: ChainId::parse(chain).expect("id"),
        task: "do it".into(),
        status,
        state: format!("{{\"status\":\"{status}\"}}"),
        created_at: Timestamp::from_micros(at),
        updated_at: Timestamp::from_micros(at),
        owner: Some("instance-1".into()),
        personas: Vec::new(),
        context: None,
    }
}

#[tokio::test]
async fn runs_are_saved_replaced_and_found_by_status() {
    for db in backends().await {
        let (a, b) = (tenant("a"), tenant("b"));
        db.store.save_run(&run(&a, "c1", ChainStatus::Executing, 1)).await.expect("save");
        db.store.save_run(&run(&a, "c2", ChainStatus::AwaitingApproval, 2)).await.expect("save");
        db.store.save_run(&run(&b, "c3", ChainStatus::Completed, 3)).await.expect("save");
        let mut updated = run(&a, "c1", ChainStatus::Completed, 1);
        updated.updated_at = Timestamp::from_micros(9);
        db.store.save_run(&updated).await.expect("replace");

        let c1 = ChainId::parse("c1").expect("id");
        assert_eq!(db.store.run(&a, &c1).await.expect("read"), Some(updated.clone()), "{}", db.backend);
        assert_eq!(db.store.run(&b, &c1).await.expect("read"), None, "runs are tenant-scoped");
        let listed: Vec<String> = db
            .store
            .runs(&a, &RunFilter::default(), 10)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.chain_id.to_string())
            .collect();
        assert_eq!(listed, ["c2", "c1"], "newest first");
        let open = db
            .store
            .runs_with_status(&[ChainStatus::Executing, ChainStatus::AwaitingApproval])
            .await
            .expect("by status");
        assert_eq!(open.iter().map(|r| r.chain_id.to_string()).collect::<Vec<_>>(), ["c2"]);
    }
}

#[tokio::test]
async fn a_runs_context_is_stored_once_and_read_back_with_every_save_after() {
    for db in backends().await {
        let a = tenant("a");
        let c1 = ChainId::parse("c1").expect("id");
        let first = StoredRun { context: Some("{\"personas\":[1]}".into()), ..run(&a, "c1", ChainStatus::Planning, 1) };
        db.store.save_run(&first).await.expect("first save");
        // Later saves carry no context: what is stored stays.
        let later = run(&a, "c1", ChainStatus::Executing, 1);
        db.store.save_run(&later).await.expect("later save");
        let read = db.store.run(&a, &c1).await.expect("read").expect("stored");
        assert_eq!(
            (read.status, read.context.as_deref()),
            (ChainStatus::Executing, Some("{\"personas\":[1]}")),
            "{}",
            db.backend
        );
        let listed = db.store.runs(&a, &RunFilter::default(), 10).await.expect("list");
        assert_eq!(listed.iter().map(|r| r.context.as_deref()).collect::<Vec<_>>(), [Some("{\"personas\":[1]}")]);
        let open = db.store.runs_with_status(&[ChainStatus::Executing]).await.expect("open");
        assert_eq!(open.iter().map(|r| r.context.as_deref()).collect::<Vec<_>>(), [Some("{\"personas\":[1]}")]);
        // A context given again replaces it; a run stored without one reads back without one.
        db.store.save_run(&StoredRun { context: Some("{}".into()), ..later }).await.expect("replace");
        assert_eq!(db.store.run(&a, &c1).await.expect("read").and_then(|r| r.context).as_deref(), Some("{}"));
        db.store.save_run(&run(&a, "c2", ChainStatus::Planning, 2)).await.expect("no context");
        let c2 = db.store.run(&a, &ChainId::parse("c2").expect("id")).await.expect("read").expect("stored");
        assert_eq!(c2.context, None);
        // Runs are tenant-scoped, and so are their contexts.
        db.store.save_run(&run(&tenant("b"), "c1", ChainStatus::Planning, 3)).await.expect("other tenant");
        let other = db.store.run(&tenant("b"), &c1).await.expect("read").expect("stored");
        assert_eq!(other.context, None);
    }
}

#[tokio::test]
async fn runs_page_by_cursor_and_filter_by_time_and_text() {
    for db in backends().await {
        let a = tenant("a");
        // Two runs share a creation time: the chain id breaks the tie, so no page skips one.
        for (chain, at) in [("c0", 10), ("c1", 20), ("c2", 20), ("c3", 30), ("c4", 40)] {
            let mut stored = run(&a, chain, ChainStatus::Completed, at);
            stored.task = format!("Email 100% of the BOARD_{chain}");
            stored.personas = match chain {
                "c1" => vec!["analyst".into(), "data_bot".into()],
                "c3" => vec!["data-bot".into()],
                _ => Vec::new(),
            };
            db.store.save_run(&stored).await.expect("save");
        }
        let ids = |runs: Vec<StoredRun>| runs.into_iter().map(|r| r.chain_id.to_string()).collect::<Vec<_>>();
        let first = db.store.runs(&a, &RunFilter::default(), 2).await.expect("first page");
        assert_eq!(ids(first.clone()), ["c4", "c3"], "{}", db.backend);
        let mut pages = ids(first.clone());
        let mut cursor = first.last().map(|r| (r.created_at, r.chain_id.clone()));
        while let Some(before) = cursor.take() {
            let page =
                db.store.runs(&a, &RunFilter { before: Some(before), ..RunFilter::default() }, 2).await.expect("page");
            cursor = page.last().map(|r| (r.created_at, r.chain_id.clone()));
            pages.extend(ids(page));
        }
        assert_eq!(pages, ["c4", "c3", "c2", "c1", "c0"], "{}: every run once, in order", db.backend);

        let window = RunFilter {
            since: Some(Timestamp::from_micros(20)),
            until: Some(Timestamp::from_micros(40)),
            ..RunFilter::default()
        };
        assert_eq!(ids(db.store.runs(&a, &window, 10).await.expect("window")), ["c3", "c2", "c1"]);
        let text = |t: &str| RunFilter { text: Some(t.into()), ..RunFilter::default() };
        assert_eq!(ids(db.store.runs(&a, &text("board_c2"), 10).await.expect("text")), ["c2"], "{}", db.backend);
        assert_eq!(db.store.runs(&a, &text("100%"), 10).await.expect("percent").len(), 5, "% is literal");
        assert!(db.store.runs(&a, &text("100%%"), 10).await.expect("no match").is_empty());
        assert!(db.store.runs(&a, &text("board!c2"), 10).await.expect("escape char").is_empty());
        assert_eq!(db.store.runs(&a, &text("  "), 10).await.expect("blank").len(), 5, "blank text filters nothing");

        let persona = |p: &str| RunFilter { persona: Some(p.into()), ..RunFilter::default() };
        assert_eq!(ids(db.store.runs(&a, &persona("data_bot"), 10).await.expect("persona")), ["c1"], "{}", db.backend);
        assert_eq!(ids(db.store.runs(&a, &persona("analyst"), 10).await.expect("persona")), ["c1"]);
        assert_eq!(ids(db.store.runs(&a, &persona("data-bot"), 10).await.expect("persona")), ["c3"], "_ is literal");
        assert!(db.store.runs(&a, &persona("data"), 10).await.expect("persona").is_empty(), "whole names only");
        let back = db.store.run(&a, &ChainId::parse("c1").expect("id")).await.expect("read").expect("stored");
        assert_eq!(back.personas, ["analyst", "data_bot"], "{}", db.backend);
    }
}

#[tokio::test]
async fn a_status_filter_applies_before_the_limit() {
    for db in backends().await {
        let (a, b) = (tenant("a"), tenant("b"));
        // Oldest to newest: three completed runs, then four failed ones (and another tenant's).
        let statuses = [ChainStatus::Completed; 3].into_iter().chain([ChainStatus::Failed; 4]);
        for (i, status) in statuses.enumerate() {
            let at = i64::try_from(i).expect("small");
            db.store.save_run(&run(&a, &format!("c{i}"), status, at)).await.expect("save");
        }
        db.store.save_run(&run(&b, "other", ChainStatus::Completed, 99)).await.expect("save");
        let chains = |runs: Vec<StoredRun>| runs.into_iter().map(|r| r.chain_id.to_string()).collect::<Vec<_>>();
        let completed = db.store.runs(&a, &status(ChainStatus::Completed), 2).await.expect("list");
        assert_eq!(chains(completed), ["c2", "c1"], "{}: newest completed first, as many as asked", db.backend);
        let failed = db.store.runs(&a, &status(ChainStatus::Failed), 10).await.expect("list");
        assert_eq!(chains(failed), ["c6", "c5", "c4", "c3"]);
        assert!(db.store.runs(&a, &status(ChainStatus::Cancelled), 10).await.expect("list").is_empty());
        assert_eq!(db.store.runs(&a, &RunFilter::default(), 3).await.expect("list").len(), 3);
    }
}

/// Sets a column to a value no build writes, as a damaged or hand-edited database would hold.
async fn corrupt(db: &store::test_support::TestDatabase, sql: &str) {
    match db.backend {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect("update");
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect("update");
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn a_stored_status_no_build_writes_is_an_invalid_row_naming_its_column() {
    for db in backends().await {
        let a = tenant("a");
        db.store.save_run(&run(&a, "c1", ChainStatus::Executing, 1)).await.expect("save");
        db.store.insert_approval(&approval(&a, "ap1", 1_000)).await.expect("insert");
        corrupt(&db, "UPDATE runs SET status = 'complete'").await;
        corrupt(&db, "UPDATE approvals SET status = 'aproved'").await;
        let c1 = ChainId::parse("c1").expect("id");
        match db.store.run(&a, &c1).await {
            Err(StoreError::InvalidRow { what: "runs.status", reason }) => {
                assert!(reason.contains("\"complete\""), "{}: {reason}", db.backend);
            }
            other => panic!("{}: expected an invalid runs.status, got {other:?}", db.backend),
        }
        assert!(matches!(
            db.store.approvals(&a, None).await,
            Err(StoreError::InvalidRow { what: "approvals.status", .. })
        ));
    }
}

#[tokio::test]
async fn runs_are_claimed_by_compare_and_set_and_instances_heartbeat() {
    for db in backends().await {
        let a = tenant("a");
        let c1 = ChainId::parse("c1").expect("id");
        db.store.save_run(&run(&a, "c1", ChainStatus::Executing, 1)).await.expect("save");
        assert!(
            !db.store.claim_run(&a, &c1, Some("someone-else"), "instance-2").await.expect("claim"),
            "{}",
            db.backend
        );
        assert!(db.store.claim_run(&a, &c1, Some("instance-1"), "instance-2").await.expect("claim"));
        assert!(!db.store.claim_run(&a, &c1, Some("instance-1"), "instance-3").await.expect("claim"), "one winner");
        assert_eq!(db.store.run(&a, &c1).await.expect("read").and_then(|r| r.owner).as_deref(), Some("instance-2"));
        assert!(!db.store.claim_run(&tenant("b"), &c1, Some("instance-2"), "x").await.expect("claim"), "tenant-scoped");

        assert_eq!(db.store.last_heartbeat("instance-2").await.expect("read"), None);
        db.store.heartbeat("instance-2", Timestamp::from_micros(5)).await.expect("beat");
        db.store.heartbeat("instance-2", Timestamp::from_micros(9)).await.expect("beat");
        assert_eq!(db.store.last_heartbeat("instance-2").await.expect("read"), Some(Timestamp::from_micros(9)));
        db.store.heartbeat("old", Timestamp::from_micros(1)).await.expect("beat");
        db.store.heartbeat("fresh", Timestamp::from_micros(100)).await.expect("beat");
        db.store.forget_instances("instance-2", Timestamp::from_micros(50)).await.expect("forget");
        assert_eq!(db.store.last_heartbeat("instance-2").await.expect("read"), None, "the stopping instance");
        assert_eq!(db.store.last_heartbeat("old").await.expect("read"), None, "long silent");
        assert!(db.store.last_heartbeat("fresh").await.expect("read").is_some());
    }
}

fn approval(t: &TenantId, id: &str, expires: i64) -> Approval {
    Approval {
        id: id.into(),
        tenant_id: t.clone(),
        chain_id: ChainId::parse("c1").expect("id"),
        step: 0,
        tool: "send_email".into(),
        params: "{\"to\":\"ada@example.com\"}".into(),
        call_digest: "d".repeat(64),
        reason: "requires approval".into(),
        requested_by: Some("alice".into()),
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        note: None,
        created_at: Timestamp::from_micros(10),
        expires_at: Timestamp::from_micros(expires),
    }
}

#[tokio::test]
async fn approvals_are_decided_once_before_expiry_within_their_tenant() {
    for db in backends().await {
        let (a, b) = (tenant("a"), tenant("b"));
        db.store.insert_approval(&approval(&a, "ap1", 1_000)).await.expect("insert");
        db.store.insert_approval(&approval(&a, "ap2", 50)).await.expect("insert");
        assert_eq!(
            db.store.approvals(&a, Some(ApprovalStatus::Pending)).await.expect("list").len(),
            2,
            "{}",
            db.backend
        );
        assert!(db.store.approvals(&b, None).await.expect("list").is_empty());

        assert!(
            !db.store
                .decide_approval(&b, "ap1", ApprovalStatus::Approved, "mallory", "", Timestamp::from_micros(20))
                .await
                .expect("decide")
        );
        assert!(
            db.store
                .decide_approval(&a, "ap1", ApprovalStatus::Approved, "bob", "ok", Timestamp::from_micros(20))
                .await
                .expect("decide")
        );
        assert!(
            !db.store
                .decide_approval(&a, "ap1", ApprovalStatus::Denied, "bob", "", Timestamp::from_micros(21))
                .await
                .expect("decide"),
            "single use"
        );
        assert!(
            !db.store
                .decide_approval(&a, "ap2", ApprovalStatus::Approved, "bob", "", Timestamp::from_micros(60))
                .await
                .expect("decide"),
            "expired"
        );

        let decided = db.store.approval(&a, "ap1").await.expect("read").expect("exists");
        assert_eq!((decided.status, decided.decided_by.as_deref()), (ApprovalStatus::Approved, Some("bob")));
        assert_eq!(db.store.approvals(&a, Some(ApprovalStatus::Approved)).await.expect("list").len(), 1);
        assert_eq!(db.store.approval(&b, "ap1").await.expect("read"), None);
    }
}

#[tokio::test]
async fn drift_counts_accumulate_per_tenant_persona_and_tool() {
    for db in backends().await {
        let (a, b) = (tenant("a"), tenant("b"));
        for fp in ["f1", "f1", "f2"] {
            db.store.record_action(&a, "analyst", "file_read", fp).await.expect("record");
        }
        db.store.record_action(&b, "analyst", "file_read", "f1").await.expect("record");
        assert_eq!(
            db.store.action_counts(&a, "analyst", "file_read").await.expect("counts"),
            vec![("f1".to_owned(), 2), ("f2".to_owned(), 1)],
            "{}",
            db.backend
        );
        assert!(db.store.action_counts(&a, "analyst", "file_write").await.expect("counts").is_empty());
    }
}

#[tokio::test]
async fn companion_rows_commit_with_their_ledger_batch_or_not_at_all() {
    use domain::ledger::{EntryDraft, EntryKind};
    use domain::ports::{ActionSample, Companions};
    for db in backends().await {
        let a = tenant("a");
        let draft = EntryDraft { kind: EntryKind::ModelCall, chain_id: None, payload: serde_json::json!({"n": 1}) };
        let first = ledger::encoding::seal_draft(&a, 0, &draft, Timestamp::from_micros(1), String::new());
        let companions = |chain: &str| Companions {
            runs: vec![StoredRun {
                context: Some("{\"tools\":[]}".into()),
                ..run(&a, chain, ChainStatus::Executing, 1)
            }],
            costs: Vec::new(),
            actions: vec![ActionSample {
                tenant_id: a.clone(),
                persona: "p".into(),
                tool: "t".into(),
                fingerprint: "f".into(),
            }],
        };
        db.store.append_with(std::slice::from_ref(&first), &companions("c1")).await.expect("append");
        let c1 = db.store.run(&a, &ChainId::parse("c1").expect("id")).await.expect("read");
        assert_eq!(c1.and_then(|r| r.context).as_deref(), Some("{\"tools\":[]}"), "{}", db.backend);
        // Index 0 is taken: the batch fails, and its companions are not written either.
        assert!(db.store.append_with(std::slice::from_ref(&first), &companions("c2")).await.is_err());
        assert!(db.store.run(&a, &ChainId::parse("c2").expect("id")).await.expect("read").is_none(), "all or nothing");
        assert_eq!(db.store.action_counts(&a, "p", "t").await.expect("counts"), vec![("f".to_owned(), 1)]);
        // Companions alone (no entry) commit too.
        db.store.append_with(&[], &companions("c3")).await.expect("write");
        assert!(db.store.run(&a, &ChainId::parse("c3").expect("id")).await.expect("read").is_some());
    }
}
