//! Persona editing: admins only, the API's contract checks with the field named on the form
//! (values kept, nothing changed), a new version and a ledger entry per saved change.

use domain::tenant::Role;

use crate::support::{search_model, spawn_with_agent};

fn persona_id(setup: &str, name: &str) -> String {
    let before = setup.split(&format!("<strong>{name}</strong>")).next().expect("listed");
    before.rsplit("/setup/personas/").next().and_then(|s| s.split('"').next()).expect("an edit link").to_owned()
}

#[tokio::test]
async fn admins_edit_personas_with_every_bad_field_named_and_members_cannot() {
    let openai = search_model().await;
    let app = spawn_with_agent(&openai).await;
    app.user("demo", "ada@demo.test", Role::Admin, 3).await;
    app.user("demo", "bob@demo.test", Role::Member, 3).await;
    let bob = app.signed_in("bob@demo.test").await;
    assert_eq!(bob.get("/setup/personas/new").await.status(), 403);
    assert!(!bob.page("/setup").await.contains("/setup/personas/"), "members see no edit links");

    let ada = app.signed_in("ada@demo.test").await;
    let csrf = ada.csrf().await;
    let setup = ada.page("/setup").await;
    let id = persona_id(&setup, "researcher");
    let form = ada.page(&format!("/setup/personas/{id}")).await;
    assert!(form.contains("value=\"knowledge_search\" checked"), "its tools are ticked: {form}");

    let edit = |threshold: &'static str, ttl: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", "researcher".to_owned()),
            ("description", "Looks things up <carefully>".to_owned()),
            ("allowed_tools", "knowledge_search".to_owned()),
            ("allowed_tools", "compute_stats".to_owned()),
            ("resource_scopes", "kb:*\n\n web:* \n".to_owned()),
            ("intent_patterns", "search\nlook up".to_owned()),
            ("max_ttl_seconds", ttl.to_owned()),
            ("risk_tolerance", "low".to_owned()),
            ("trust_tier", "established".to_owned()),
            ("intent_threshold", threshold.to_owned()),
            ("on_low_intent", "block".to_owned()),
            ("is_active", "on".to_owned()),
        ]
    };
    let post = |path: String, form: Vec<(&'static str, String)>| {
        ada.client.post(ada.url(&path)).header("sec-fetch-site", "same-origin").form(&form).send()
    };
    let path = format!("/setup/personas/{id}");

    let bad = post(path.clone(), edit("1.5", "120")).await.expect("post");
    assert_eq!(bad.status(), 422);
    let page = bad.text().await.expect("page");
    let alert = page.split("id=\"persona-error\"").nth(1).expect("the error on the form");
    assert!(alert.contains("intent_threshold"), "{alert}");
    assert!(page.contains("Looks things up &#60;carefully&#62;"), "what was typed is kept, escaped");
    let bad = post(path.clone(), edit("0.5", "forever")).await.expect("post").text().await.expect("page");
    assert!(bad.split("id=\"persona-error\"").nth(1).is_some_and(|a| a.contains("max_ttl_seconds")), "{bad}");
    assert!(ada.page("/setup").await.contains("<td>1</td>"), "nothing changed: still version 1");

    let saved = post(path.clone(), edit("0.5", "300")).await.expect("post");
    assert_eq!(saved.status(), 303);
    let setup = ada.page("/setup").await;
    let row = setup.split(&format!("/setup/personas/{id}")).nth(1).expect("row").split("</tr>").next().expect("row");
    assert!(row.contains("knowledge_search, compute_stats") && row.contains("kb:*, web:*"), "{row}");
    assert!(row.contains("0.50") && row.contains("300 s") && row.contains("<td>2</td>"), "{row}");
    let ledger = ada.page("/ledger?kind=admin_change").await;
    assert!(ledger.contains("admin_change"), "the change is in the ledger");

    // New personas: a bad name and a taken name are named; a good one is listed.
    let mut new = edit("0.75", "120");
    new[1].1 = "Not A Name".into();
    let page = post("/setup/personas".into(), new.clone()).await.expect("post");
    assert_eq!(page.status(), 422);
    assert!(page.text().await.expect("page").contains("name"));
    new[1].1 = "researcher".into();
    let taken = post("/setup/personas".into(), new.clone()).await.expect("post");
    assert_eq!(taken.status(), 409);
    new[1].1 = "scout".into();
    new[3].1 = "no_such_tool".into();
    let unknown = post("/setup/personas".into(), new.clone()).await.expect("post").text().await.expect("page");
    assert!(unknown.contains("allowed_tools") && unknown.contains("no_such_tool"), "{unknown}");
    new[3].1 = "compute_stats".into();
    assert_eq!(post("/setup/personas".into(), new).await.expect("post").status(), 303);
    assert!(ada.page("/setup").await.contains("<strong>scout</strong>"));

    // Without the token, nothing is saved.
    let mut forged = edit("0.9", "120");
    forged[0].1 = "forged".into();
    assert_eq!(post(path, forged).await.expect("post").status(), 403);
}
