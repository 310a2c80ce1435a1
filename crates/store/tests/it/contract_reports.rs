//! Contract for the API's read side: filtered ledger pages and usage grouped for reports.

use domain::cost::CostRecord;
use domain::ledger::EntryKind;
use domain::ports::RecordFilter;
use domain::{ApiKeyId, ChainId, Timestamp};
use store::test_support::backends;

use crate::contract::{records, tenant_id, with_tenants};

const DAY: i64 = 86_400_000_000;

#[tokio::test]
async fn ledger_pages_are_newest_first_filtered_and_tenant_scoped() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let chain = ChainId::generate();
        db.store.append_records(&records(a, 0, 4, None)).await.expect("append");
        db.store.append_records(&records(a, 4, 3, Some(&chain))).await.expect("append chain");
        db.store.append_records(&records(b, 0, 2, None)).await.expect("append b");

        let page = db.store.records_page(a, &RecordFilter::default(), 3).await.expect("page");
        let indexes: Vec<u64> = page.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [6, 5, 4], "{}", db.backend);
        let next = RecordFilter { before: Some(4), ..Default::default() };
        let indexes: Vec<u64> =
            db.store.records_page(a, &next, 10).await.expect("next").iter().map(|r| r.index).collect();
        assert_eq!(indexes, [3, 2, 1, 0], "{}", db.backend);

        let of_chain = RecordFilter { chain: Some(chain.clone()), ..Default::default() };
        assert_eq!(db.store.records_page(a, &of_chain, 10).await.expect("chain").len(), 3);
        assert!(db.store.records_page(b, &of_chain, 10).await.expect("other tenant").is_empty());

        let by_time = RecordFilter {
            since: Some(Timestamp::from_micros(2)),
            until: Some(Timestamp::from_micros(4)),
            ..Default::default()
        };
        let indexes: Vec<u64> =
            db.store.records_page(a, &by_time, 10).await.expect("time").iter().map(|r| r.index).collect();
        assert_eq!(indexes, [3, 2], "{}", db.backend);

        let approvals = RecordFilter { kind: Some(EntryKind::Approval), ..Default::default() };
        assert!(db.store.records_page(a, &approvals, 10).await.expect("kind").is_empty());
        let calls = RecordFilter { kind: Some(EntryKind::ModelCall), ..Default::default() };
        assert_eq!(db.store.records_page(a, &calls, 10).await.expect("kind").len(), 7);
    }
}

#[tokio::test]
async fn usage_groups_by_day_model_key_and_chain() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let key = ApiKeyId::generate();
        let chain = ChainId::generate();
        let cost =
            |tenant: &domain::TenantId, at: i64, model: &str, key: Option<&ApiKeyId>, chain: Option<&ChainId>| {
                CostRecord {
                    tenant_id: tenant.clone(),
                    chain_id: chain.cloned(),
                    seal_id: None,
                    api_key_id: key.cloned(),
                    subject: None,
                    provider: Some("openai".into()),
                    model: model.into(),
                    input_tokens: 10,
                    output_tokens: 5,
                    cost_usd: 0.5,
                    timestamp: Timestamp::from_micros(at),
                }
            };
        for record in [
            cost(a, 1, "gpt-4o-mini", Some(&key), None),
            cost(a, 2, "gpt-4o-mini", Some(&key), None),
            cost(a, DAY + 1, "gpt-4o-mini", Some(&key), None),
            cost(a, DAY + 2, "claude-haiku", None, Some(&chain)),
            cost(b, 3, "gpt-4o-mini", None, None),
        ] {
            db.store.insert_cost(&record).await.expect("insert cost");
        }
        let rows = db.store.usage(a, Timestamp::from_micros(0), Timestamp::from_micros(2 * DAY)).await.expect("usage");
        assert_eq!(rows.len(), 3, "{}: {rows:?}", db.backend);
        let first = &rows[0];
        assert_eq!((first.day, first.model.as_str(), first.calls), (0, "gpt-4o-mini", 2), "{}", db.backend);
        assert_eq!((first.input_tokens, first.output_tokens), (20, 10));
        assert!((first.cost_usd - 1.0).abs() < 1e-9);
        assert_eq!(first.api_key_id.as_ref(), Some(&key));
        assert!(rows.iter().any(|r| r.day == 1 && r.chain_id.as_ref() == Some(&chain) && r.api_key_id.is_none()));
        let window =
            db.store.usage(a, Timestamp::from_micros(DAY), Timestamp::from_micros(DAY + 2)).await.expect("window");
        assert_eq!(window.len(), 1, "until is exclusive: {window:?}");
    }
}

#[tokio::test]
async fn the_overview_counts_today_and_this_month_per_tenant() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        // Ledger times in `records` are 0.. µs: counting from 2 leaves entries 2 and 3.
        let mut entries = records(a, 0, 4, None);
        let intent = domain::ledger::EntryDraft {
            kind: EntryKind::SealIntent,
            chain_id: None,
            payload: serde_json::json!({"tool": "t"}),
        };
        let parent = entries[3].fingerprint.clone();
        entries.push(ledger::encoding::seal_draft(a, 4, &intent, Timestamp::from_micros(4), parent));
        db.store.append_records(&entries).await.expect("append");
        db.store.append_records(&records(b, 0, 2, None)).await.expect("append b");
        let now = Timestamp::now();
        let month = now.month_start();
        let spent = |tenant: &domain::TenantId, at: Timestamp| CostRecord {
            tenant_id: tenant.clone(),
            chain_id: None,
            seal_id: None,
            api_key_id: None,
            subject: None,
            provider: None,
            model: "m".into(),
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: 0.25,
            timestamp: at,
        };
        db.store.insert_cost(&spent(a, now)).await.expect("cost");
        db.store.insert_cost(&spent(a, now)).await.expect("cost");
        db.store.insert_cost(&spent(a, Timestamp::from_micros(month.as_micros() - 1))).await.expect("last month");
        db.store.insert_cost(&spent(b, now)).await.expect("cost b");

        let overview = db.store.overview(a, Timestamp::from_micros(2), month).await.expect("overview");
        assert_eq!(overview.tokens_month, 240, "{}: {overview:?}", db.backend);
        assert!((overview.spend_month_usd - 0.5).abs() < 1e-9, "{}: {overview:?}", db.backend);
        assert_eq!((overview.runs_today, overview.approvals_waiting), (0, 0));
        // Entries 0–3 are model calls; 4 is the one action, and none is a refusal.
        assert_eq!((overview.actions_today, overview.blocked_today), (1, 0), "{}", db.backend);
        let earlier = db.store.overview(a, Timestamp::from_micros(5), month).await.expect("later day");
        assert_eq!(earlier.actions_today, 0, "counted from the day's start only");
        let none = db.store.overview(&tenant_id("nobody"), Timestamp::from_micros(0), month).await.expect("empty");
        assert_eq!(none, domain::cost::Overview::default());
    }
}

#[tokio::test]
async fn activity_counts_runs_actions_and_refusals_per_day() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["a", "b"]).await;
        let (a, b) = (&tenants[0], &tenants[1]);
        let draft =
            |kind| domain::ledger::EntryDraft { kind, chain_id: None, payload: serde_json::json!({"tool": "t"}) };
        // Day 1: two actions and a refusal; day 3: one refusal. A model call counts for nothing.
        let plan = [
            (EntryKind::SealIntent, DAY + 5),
            (EntryKind::SealIntent, DAY + 6),
            (EntryKind::GateDecision, DAY + 7),
            (EntryKind::ModelCall, DAY + 8),
            (EntryKind::GateDecision, 3 * DAY + 1),
        ];
        let mut entries: Vec<domain::ledger::LedgerRecord> = Vec::new();
        for (i, (kind, at)) in plan.into_iter().enumerate() {
            let parent = entries.last().map(|e| e.fingerprint.clone()).unwrap_or_default();
            entries.push(ledger::encoding::seal_draft(a, i as u64, &draft(kind), Timestamp::from_micros(at), parent));
        }
        db.store.append_records(&entries).await.expect("append");
        for (chain, at) in [("r1", DAY + 1), ("r2", 2 * DAY + 1), ("r3", 2 * DAY + 2)] {
            let run = domain::ports::StoredRun {
                tenant_id: a.clone(),
                chain_id: domain::ChainId::parse(chain).expect("id"),
                task: "t".into(),
                status: domain::agent::ChainStatus::Completed,
                state: "{}".into(),
                created_at: Timestamp::from_micros(at),
                updated_at: Timestamp::from_micros(at),
                owner: None,
                personas: Vec::new(),
                context: None,
            };
            db.store.save_run(&run).await.expect("run");
        }
        let days: Vec<(i64, u64, u64, u64)> = db
            .store
            .activity(a, Timestamp::from_micros(DAY))
            .await
            .expect("activity")
            .into_iter()
            .map(|d| (d.day, d.runs, d.actions, d.refusals))
            .collect();
        assert_eq!(days, [(1, 1, 2, 1), (2, 2, 0, 0), (3, 0, 0, 1)], "{}", db.backend);
        assert!(db.store.activity(b, Timestamp::from_micros(0)).await.expect("b").is_empty(), "per tenant");
        let later = db.store.activity(a, Timestamp::from_micros(2 * DAY)).await.expect("later");
        assert_eq!(later.first().map(|d| d.day), Some(2), "counted from `since` only");
    }
}
