//! Contract for chat channels: identities with their user (admitted together), staff found by
//! level or role, link codes used once and only before they expire, update claims won once,
//! cursors and leases.

use domain::channel::{Channel, ChannelIdentity, LinkCode};
use domain::moderation::{ModAction, ModerationCase};
use domain::tenant::{Role, User, UserLevel};
use domain::{ConversationId, Timestamp, UserId};
use store::test_support::backends;

use crate::contract::with_tenants;

fn user(tenant: &domain::TenantId, level: u8, role: Role) -> User {
    User {
        id: UserId::generate(),
        tenant_id: tenant.clone(),
        name: format!("user at {level}"),
        level: UserLevel::new(level).expect("level"),
        role,
        created_at: Timestamp::from_micros(1),
    }
}

fn identity(user: &User, external: &str) -> ChannelIdentity {
    ChannelIdentity {
        tenant_id: user.tenant_id.clone(),
        channel: Channel::Telegram,
        external_id: external.into(),
        user_id: user.id.clone(),
        display: format!("@{external}"),
        chat_id: Some(external.into()),
        locale: None,
        persona: None,
        conversation_id: None,
        blocked_at: None,
        created_at: Timestamp::from_micros(2),
    }
}

#[tokio::test]
async fn identities_are_admitted_with_their_user_saved_and_staff_found() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["chan-a", "chan-b"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        let stranger = user(t, 0, Role::Member);
        let admitted = identity(&stranger, "100");
        store.admit_channel_user(&stranger, &admitted).await.expect("admit");
        assert_eq!(store.user(t, &stranger.id).await.expect("user"), Some(stranger.clone()), "{}", db.backend);
        assert_eq!(store.channel_identity(t, Channel::Telegram, "100").await.expect("read"), Some(admitted.clone()));
        assert_eq!(store.channel_identity(other, Channel::Telegram, "100").await.expect("read"), None, "per tenant");
        assert_eq!(store.channel_identity(t, Channel::Discord, "100").await.expect("read"), None, "per channel");
        // A second admission of the same account is a conflict and creates no second user.
        let again = user(t, 0, Role::Member);
        let refused = store.admit_channel_user(&again, &identity(&again, "100")).await;
        assert!(matches!(refused, Err(domain::ports::StoreError::Conflict { .. })), "{refused:?}");
        assert_eq!(store.user(t, &again.id).await.expect("user"), None, "nothing half-written ({})", db.backend);

        let mut changed = admitted.clone();
        changed.locale = Some("it".into());
        changed.persona = Some("researcher".into());
        changed.conversation_id = Some(ConversationId::generate());
        changed.blocked_at = Some(Timestamp::from_micros(9));
        store.save_channel_identity(&changed).await.expect("save");
        assert_eq!(store.channel_identity(t, Channel::Telegram, "100").await.expect("read"), Some(changed));

        let architect = user(t, 3, Role::Member);
        let admin = user(t, 0, Role::Admin);
        for (u, external) in [(&architect, "300"), (&admin, "400")] {
            store.insert_user(u).await.expect("user");
            store.save_channel_identity(&identity(u, external)).await.expect("link");
        }
        let staff = store.channel_staff(t, Channel::Telegram, 3).await.expect("staff");
        let mut found: Vec<&str> = staff.iter().map(|i| i.external_id.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, ["300", "400"], "level 3 and above, or admins ({})", db.backend);
        assert_eq!(store.channel_staff(t, Channel::Telegram, 0).await.expect("all").len(), 3);
    }
}

#[tokio::test]
async fn link_codes_work_once_and_only_before_they_expire() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["codes"]).await;
        let t = &tenants[0];
        let store = &db.store;
        let owner = user(t, 2, Role::Member);
        store.insert_user(&owner).await.expect("user");
        let code = LinkCode {
            code_hash: "h1".into(),
            tenant_id: t.clone(),
            user_id: owner.id.clone(),
            created_at: Timestamp::from_micros(100),
            expires_at: Timestamp::from_micros(200),
        };
        store.insert_link_code(&code).await.expect("insert");
        let late = LinkCode { code_hash: "h2".into(), ..code.clone() };
        store.insert_link_code(&late).await.expect("insert");
        assert_eq!(store.take_link_code("nope", Timestamp::from_micros(150)).await.expect("take"), None);
        assert_eq!(store.take_link_code("h1", Timestamp::from_micros(150)).await.expect("take"), Some(code));
        assert_eq!(
            store.take_link_code("h1", Timestamp::from_micros(151)).await.expect("take"),
            None,
            "used ({})",
            db.backend
        );
        assert_eq!(store.take_link_code("h2", Timestamp::from_micros(200)).await.expect("take"), None, "expired");
    }
}

#[tokio::test]
async fn updates_are_claimed_once_and_cursors_and_leases_kept() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["claims"]).await;
        let t = &tenants[0];
        let store = &db.store;
        let at = Timestamp::from_micros(1_000);
        assert!(store.claim_channel_update(t, Channel::Telegram, "42:1", at).await.expect("claim"));
        assert!(!store.claim_channel_update(t, Channel::Telegram, "42:1", at).await.expect("claim"), "{}", db.backend);
        assert!(store.claim_channel_update(t, Channel::Discord, "42:1", at).await.expect("claim"), "per channel");
        // Many claimers at once: exactly one wins.
        let racers = (0..8).map(|_| store.claim_channel_update(t, Channel::Telegram, "42:2", at));
        let won = futures_util::future::join_all(racers).await.into_iter().filter(|r| matches!(r, Ok(true))).count();
        assert_eq!(won, 1, "{}", db.backend);
        assert_eq!(store.prune_channel_updates(Timestamp::from_micros(1_001)).await.expect("prune"), 3);
        assert!(store.claim_channel_update(t, Channel::Telegram, "42:1", at).await.expect("claim"), "forgotten");

        assert_eq!(store.channel_cursor(t, Channel::Telegram).await.expect("cursor"), None);
        store.set_channel_cursor(t, Channel::Telegram, "42:10", at).await.expect("set");
        store.set_channel_cursor(t, Channel::Telegram, "42:11", at).await.expect("set");
        assert_eq!(store.channel_cursor(t, Channel::Telegram).await.expect("cursor").as_deref(), Some("42:11"));

        let (t0, t1) = (Timestamp::from_micros(0), Timestamp::from_micros(10));
        let bot = format!("telegram:{}", t.as_str());
        assert_eq!(store.lease_channel(&bot, "a", t0, t1).await.expect("lease"), "a");
        assert_eq!(
            store.lease_channel(&bot, "b", Timestamp::from_micros(5), Timestamp::from_micros(15)).await.expect("lease"),
            "a",
            "held ({})",
            db.backend
        );
        assert_eq!(
            store.lease_channel(&bot, "a", Timestamp::from_micros(6), Timestamp::from_micros(20)).await.expect("lease"),
            "a",
            "renewed"
        );
        assert_eq!(
            store
                .lease_channel(&bot, "b", Timestamp::from_micros(21), Timestamp::from_micros(30))
                .await
                .expect("lease"),
            "b",
            "expired: taken over"
        );
    }
}

#[tokio::test]
async fn broadcast_recipients_are_taken_once_and_a_broadcast_closes_once() {
    use domain::channel::{Broadcast, DeliveryStatus};
    for db in backends().await {
        let tenants = with_tenants(&db, &["casts"]).await;
        let t = &tenants[0];
        let store = &db.store;
        let broadcast = Broadcast {
            id: "bc_1".into(),
            tenant_id: t.clone(),
            channel: Channel::Telegram,
            body: "Hello".into(),
            min_level: 0,
            created_by: "user:u".into(),
            notify_chat: Some("5".into()),
            created_at: Timestamp::from_micros(10),
            finished_at: None,
        };
        let recipients: Vec<(String, String)> = (0..3).map(|i| (format!("{i}"), format!("chat{i}"))).collect();
        store.insert_broadcast(&broadcast, &recipients).await.expect("insert");
        let pending = store.pending_deliveries(t, Channel::Telegram, 10).await.expect("pending");
        assert_eq!(pending.len(), 3, "{}", db.backend);
        assert_eq!(pending[0].body, "Hello");
        assert!(store.pending_deliveries(t, Channel::Discord, 10).await.expect("pending").is_empty());
        let at = Timestamp::from_micros(20);
        assert!(store.take_delivery(t, "bc_1", "0", at).await.expect("take"));
        assert!(!store.take_delivery(t, "bc_1", "0", at).await.expect("take"), "taken once ({})", db.backend);
        store.finish_delivery(t, "bc_1", "0", DeliveryStatus::Delivered, None, at).await.expect("finish");
        assert!(!store.finish_broadcast(t, "bc_1", at).await.expect("close"), "recipients still pending");
        assert!(store.take_delivery(t, "bc_1", "1", at).await.expect("take"));
        store.finish_delivery(t, "bc_1", "1", DeliveryStatus::Blocked, Some("blocked"), at).await.expect("finish");
        // The third is taken and never finished (its sender died): it is not sent again.
        assert!(store.take_delivery(t, "bc_1", "2", at).await.expect("take"));
        assert!(store.pending_deliveries(t, Channel::Telegram, 10).await.expect("pending").is_empty());
        assert!(store.finish_broadcast(t, "bc_1", at).await.expect("close"));
        assert!(!store.finish_broadcast(t, "bc_1", at).await.expect("close"), "closed once ({})", db.backend);
        let (stored, progress) = store.broadcast(t, "bc_1").await.expect("read").expect("found");
        assert_eq!(stored.finished_at, Some(at));
        assert_eq!((progress.delivered, progress.blocked, progress.sending, progress.pending), (1, 1, 1, 0));
        assert_eq!(progress.total(), 3);
    }
}

fn case(tenant: &domain::TenantId, id: &str, at: i64, status: domain::moderation::CaseStatus) -> ModerationCase {
    ModerationCase {
        id: id.into(),
        tenant_id: tenant.clone(),
        channel: "discord".into(),
        scope: "guild-1".into(),
        place: "chan-9".into(),
        message_id: format!("msg-{id}"),
        author_id: "555".into(),
        author: "spammer".into(),
        digest: "ab".repeat(32),
        excerpt: "FREE NITRO".into(),
        flags: vec!["links".into(), "word".into()],
        category: "spam".into(),
        severity: "high".into(),
        action: ModAction::Delete,
        confidence: Some(0.93),
        threshold: 0.8,
        reason: "link spam".into(),
        decided_by: "model:openai/gpt-4o-mini".into(),
        status,
        reviewed_by: None,
        reviewed_at: None,
        created_at: Timestamp::from_micros(at),
    }
}

#[tokio::test]
async fn moderation_cases_are_decided_once_and_strictness_stays_bounded() {
    use domain::moderation::CaseStatus;
    for db in backends().await {
        let tenants = with_tenants(&db, &["mod-a", "mod-b"]).await;
        let (t, other) = (&tenants[0], &tenants[1]);
        let store = &db.store;
        let acted = case(t, "c1", 10, CaseStatus::Acted);
        let review = case(t, "c2", 20, CaseStatus::Review);
        store.insert_moderation_case(&acted).await.expect("insert");
        store.insert_moderation_case(&review).await.expect("insert");
        let duplicate = store.insert_moderation_case(&acted).await;
        assert!(matches!(duplicate, Err(domain::ports::StoreError::Conflict { .. })), "{duplicate:?}");
        assert_eq!(store.moderation_case(t, "c1").await.expect("read"), Some(acted.clone()), "{}", db.backend);
        assert_eq!(store.moderation_case(other, "c1").await.expect("read"), None, "per tenant");
        let all = store.moderation_cases(t, None, 10).await.expect("list");
        assert_eq!(all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c2", "c1"], "newest first");
        let waiting = store.moderation_cases(t, Some(CaseStatus::Review), 10).await.expect("list");
        assert_eq!(waiting, vec![review.clone()]);

        let mut overturned = acted.clone();
        overturned.status = CaseStatus::Overturned;
        overturned.reviewed_by = Some("user:staff".into());
        overturned.reviewed_at = Some(Timestamp::from_micros(30));
        assert!(store.review_moderation_case(&overturned).await.expect("review"));
        let mut upheld = acted.clone();
        upheld.status = CaseStatus::Upheld;
        assert!(!store.review_moderation_case(&upheld).await.expect("review"), "the first verdict wins");
        assert_eq!(store.moderation_case(t, "c1").await.expect("read"), Some(overturned));

        let at = Timestamp::from_micros(40);
        for _ in 0..6 {
            store.adjust_moderation_strictness(t, "guild-1", "spam", 0.05, 0.2, at).await.expect("adjust");
        }
        let down = store.adjust_moderation_strictness(t, "guild-1", "scam", -0.05, 0.2, at).await.expect("adjust");
        assert!((down + 0.05).abs() < 1e-9, "{down}");
        let strictness = store.moderation_strictness(t, "guild-1").await.expect("read");
        assert_eq!(strictness.len(), 2);
        assert_eq!(strictness[0].0, "scam");
        assert_eq!(strictness[1].0, "spam");
        assert!((strictness[1].1 - 0.2).abs() < 1e-9, "bounded: {strictness:?} ({})", db.backend);
        assert!(store.moderation_strictness(t, "guild-2").await.expect("read").is_empty(), "per scope");
    }
}
