//! Contract for conversations: per owner, numbered messages, search by any message (wildcards
//! taken literally), deletion with the messages.

use domain::chat::{ChatMessage, ChatRole, ChatTarget, Conversation};
use domain::{ConversationId, Timestamp};
use store::test_support::backends;

use crate::contract::with_tenants;

fn conversation(tenant: &domain::TenantId, owner: &str, title: &str, at: i64) -> Conversation {
    Conversation {
        id: ConversationId::generate(),
        tenant_id: tenant.clone(),
        owner: owner.into(),
        title: title.into(),
        target: ChatTarget::Model("gpt-4o-mini".into()),
        created_at: Timestamp::from_micros(at),
        updated_at: Timestamp::from_micros(at),
    }
}

fn turn(c: &Conversation, role: ChatRole, content: &str, at: i64) -> ChatMessage {
    ChatMessage {
        conversation_id: c.id.clone(),
        seq: 0,
        role,
        content: content.into(),
        chain_id: None,
        model: (role == ChatRole::Assistant).then(|| "gpt-4o-mini".to_owned()),
        created_at: Timestamp::from_micros(at),
    }
}

#[tokio::test]
async fn conversations_are_per_owner_numbered_searchable_and_deleted_whole() {
    for db in backends().await {
        let tenants = with_tenants(&db, &["chat"]).await;
        let t = &tenants[0];
        let store = &db.store;
        let first = conversation(t, "user:ada", "Budget questions", 10);
        let second = conversation(t, "user:ada", "Travel", 20);
        let bobs = conversation(t, "user:bob", "Budget too", 30);
        for c in [&first, &second, &bobs] {
            store.insert_conversation(c).await.expect("insert");
        }
        let a = store
            .append_message(t, &turn(&first, ChatRole::User, "What is 100% of the budget?", 40))
            .await
            .expect("append");
        let b = store.append_message(t, &turn(&first, ChatRole::Assistant, "All of it.", 50)).await.expect("append");
        assert_eq!((a.seq, b.seq), (1, 2), "{}", db.backend);
        store.append_message(t, &turn(&second, ChatRole::User, "Trains to Rome", 15)).await.expect("append");

        let listed = store.conversations(t, "user:ada", None, 10).await.expect("list");
        assert_eq!(
            listed.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(),
            ["Budget questions", "Travel"],
            "most recently active first ({})",
            db.backend
        );
        assert_eq!(listed[0].updated_at, Timestamp::from_micros(50));
        let found = store.conversations(t, "user:ada", Some("ROME"), 10).await.expect("search");
        assert_eq!(found.iter().map(|c| &c.id).collect::<Vec<_>>(), [&second.id]);
        let percent = store.conversations(t, "user:ada", Some("100%"), 10).await.expect("search");
        assert_eq!(percent.len(), 1, "a literal %: {}", db.backend);
        assert!(store.conversations(t, "user:ada", Some("_"), 10).await.expect("search").is_empty(), "a literal _");
        assert!(store.conversation(t, "user:bob", &first.id).await.expect("read").is_none(), "not bob's");

        let messages = store.messages(t, &first.id).await.expect("messages");
        assert_eq!(
            messages.iter().map(|m| (m.seq, m.role)).collect::<Vec<_>>(),
            [(1, ChatRole::User), (2, ChatRole::Assistant)]
        );
        assert_eq!(messages[1].model.as_deref(), Some("gpt-4o-mini"));

        assert!(!store.delete_conversation(t, "user:bob", &first.id).await.expect("not bob's to delete"));
        assert!(store.delete_conversation(t, "user:ada", &first.id).await.expect("delete"));
        assert!(store.messages(t, &first.id).await.expect("messages").is_empty(), "{}", db.backend);
        assert!(store.conversation(t, "user:ada", &first.id).await.expect("read").is_none());
    }
}
