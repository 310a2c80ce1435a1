//! The pages show the tenant's own data: the overview's counts, keys created and revoked, the
//! ledger with its checkpoint, a tampered ledger in red, approvals with their calls shown
//! exactly, and the Italian interface.

use domain::agent::ApprovalStatus;
use domain::ports::Approval;
use domain::tenant::Role;
use domain::{ChainId, TenantId, Timestamp};

use crate::support::spawn;

#[tokio::test]
async fn keys_are_created_listed_and_revoked_and_the_ledger_shows_each_change() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    app.user("other", "olga@other.test", Role::Admin, 3).await;
    let browser = app.signed_in("ada@acme.test").await;
    let csrf = browser.csrf().await;
    let created =
        browser.post("/keys", &[("csrf", &csrf), ("name", "ci bot"), ("level", "1"), ("role", "member")]).await;
    assert_eq!(created.status(), 200);
    let html = created.text().await.expect("body");
    let secret = html.split("id=\"new-secret\">").nth(1).and_then(|s| s.split('<').next()).expect("secret").to_owned();
    let principal = app.runtime.auth().authenticate(&secret).await.expect("the new key works");
    let id = principal.key_id().expect("key").to_string();

    let list = browser.page("/keys").await;
    assert!(list.contains("ci bot") && list.contains(&format!("data-key=\"{id}\"")));
    let revoked = browser.post(&format!("/keys/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status(), 303);
    assert!(app.runtime.auth().authenticate(&secret).await.is_err(), "revoked from the console");
    assert!(browser.page("/keys").await.contains("badge revoked"));

    let too_high = browser.post("/keys", &[("csrf", &csrf), ("name", "x"), ("level", "9"), ("role", "member")]).await;
    assert_eq!(too_high.status(), 422, "a field error, as the API answers it");
    assert!(too_high.text().await.expect("body").contains("level"));

    let ledger = browser.page("/ledger?kind=admin_change").await;
    assert!(ledger.contains("admin_change"), "{ledger}");
    let first = browser.page("/ledger/entries/0").await;
    assert!(first.contains("web_user.created"), "entry detail shows its canonical content");
    // Its proof bundle checks offline against the ledger's key, as `nexus verify --bundle` does.
    app.runtime.ledger().checkpoint(&TenantId::parse("acme").expect("t")).await.expect("checkpoint");
    let bundle = browser.get("/ledger/entries/0/bundle").await;
    assert_eq!(bundle.status(), 200);
    assert!(bundle.headers()["content-disposition"].to_str().expect("ascii").contains("entry-0.json"));
    let bundle = ledger::bundle::ProofBundle::from_json(&bundle.text().await.expect("json")).expect("a bundle");
    let key = app.runtime.ledger().signer().verifier();
    bundle.verify(Some(key)).expect("the bundle verifies against the ledger's key");

    // Another tenant sees none of it.
    let olga = app.signed_in("olga@other.test").await;
    assert!(!olga.page("/keys").await.contains("ci bot"));
    assert!(!olga.page("/ledger").await.contains("api_key.created"));
    assert_eq!(olga.post(&format!("/keys/{id}/revoke"), &[("csrf", &olga.csrf().await)]).await.status(), 404);
}

#[tokio::test]
async fn the_overview_counts_the_tenant_s_day_and_month() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    app.db
        .store
        .insert_cost(&domain::cost::CostRecord {
            tenant_id: tenant.clone(),
            chain_id: None,
            seal_id: None,
            api_key_id: None,
            subject: None,
            provider: Some("openai".into()),
            model: "gpt-4o-mini".into(),
            input_tokens: 1200,
            output_tokens: 34,
            cost_usd: 1.5,
            timestamp: Timestamp::now(),
        })
        .await
        .expect("cost");
    let now = Timestamp::now();
    let run = domain::ports::StoredRun {
        tenant_id: tenant.clone(),
        chain_id: ChainId::generate(),
        task: "t".into(),
        status: domain::agent::ChainStatus::Completed,
        state: "{}".into(),
        created_at: now,
        updated_at: now,
        owner: None,
        personas: Vec::new(),
        context: None,
    };
    app.db.store.save_run(&run).await.expect("run");
    let browser = app.signed_in("ada@acme.test").await;
    let html = browser.page("/").await;
    assert!(html.contains("1234"), "tokens this month: {html}");
    assert!(html.contains("$1.50"), "spend this month");
    assert!(html.contains("gpt-4o-mini") && html.contains("openai"), "spend by model and provider");
    assert!(html.contains("class=\"h100\""), "today's bar is the tallest");
    let runs = html.split("id=\"runs-per-day\"").nth(1).expect("runs per day").split("</div>").next().expect("chart");
    assert_eq!(runs.matches("<span").count(), 30, "thirty days");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let bar = format!("class=\"h100\" data-percent=\"100\" title=\"{today}: 1\"");
    assert!(runs.contains(&bar), "today's run: {runs}");
    assert!(html.contains("id=\"verdicts-per-day\""), "gate verdicts per day");
}

/// The text of the element with `id`, HTML entities decoded.
fn element_text(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).expect("element");
    let text = html[start..].split_once('>').expect("tag").1.split('<').next().expect("text");
    text.replace("&#34;", "\"").replace("&#39;", "'").replace("&#60;", "<").replace("&#62;", ">").replace("&#38;", "&")
}

#[tokio::test]
async fn a_kept_checkpoint_is_checked_against_the_ledger_as_it_is_now() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    app.user("other", "eve@other.test", Role::Admin, 3).await;
    let ada = app.signed_in("ada@acme.test").await;
    let csrf = ada.csrf().await;
    let tenant = TenantId::parse("acme").expect("tenant");
    ada.post("/keys", &[("csrf", &csrf), ("name", "one"), ("level", "0"), ("role", "member")]).await;
    app.runtime.ledger().checkpoint(&tenant).await.expect("checkpoint");
    let kept = element_text(&ada.page("/ledger").await, "signed-note");
    assert!(kept.contains("acme"), "the signed note names the tenant's log: {kept}");
    // The ledger grows after the checkpoint was kept.
    ada.post("/keys", &[("csrf", &csrf), ("name", "two"), ("level", "0"), ("role", "member")]).await;
    app.runtime.ledger().checkpoint(&tenant).await.expect("checkpoint");

    let checked = ada.post("/ledger/consistency", &[("csrf", &csrf), ("checkpoint", &kept)]).await;
    assert_eq!(checked.status(), 200);
    let page = checked.text().await.expect("page");
    assert!(page.contains("id=\"ledger-ok\""), "{page}");
    assert!(!page.contains("id=\"ledger-bad\""));

    // A forged checkpoint (its size changed) fails the signature; the form keeps what was sent.
    let forged = kept.replacen('\n', "0\n", 2);
    let page =
        ada.post("/ledger/consistency", &[("csrf", &csrf), ("checkpoint", &forged)]).await.text().await.expect("page");
    assert!(page.contains("id=\"ledger-bad\""), "{page}");

    // Another tenant's person cannot check (or learn anything of) acme's log with it.
    let eve = app.signed_in("eve@other.test").await;
    let eve_csrf = eve.csrf().await;
    let page = eve
        .post("/ledger/consistency", &[("csrf", &eve_csrf), ("checkpoint", &kept)])
        .await
        .text()
        .await
        .expect("page");
    let alert = page.split("id=\"ledger-bad\"").nth(1).expect("refused");
    assert!(alert.contains("expected"), "refused for the log it names: {alert}");
    assert!(!page.contains("id=\"ledger-ok\""));

    // Without the session's token nothing is checked.
    assert_eq!(ada.post("/ledger/consistency", &[("csrf", "nope"), ("checkpoint", &kept)]).await.status(), 403);
}

#[tokio::test]
async fn the_ledger_filters_by_day() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let ada = app.signed_in("ada@acme.test").await;
    let csrf = ada.csrf().await;
    ada.post("/keys", &[("csrf", &csrf), ("name", "one"), ("level", "0"), ("role", "member")]).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let shown = ada.page(&format!("/ledger?since={today}&until={today}")).await;
    assert!(shown.contains("admin_change"), "today's entries: {shown}");
    let none = ada.page("/ledger?until=2001-01-01").await;
    assert!(!none.contains("<td>admin_change</td>"), "{none}");
    let bad = ada.get("/ledger?since=yesterday").await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn a_tampered_ledger_is_shown_in_red_naming_the_entry() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let browser = app.signed_in("ada@acme.test").await;
    let csrf = browser.csrf().await;
    for name in ["one", "two", "three"] {
        browser.post("/keys", &[("csrf", &csrf), ("name", name), ("level", "0"), ("role", "member")]).await;
    }
    let tenant = TenantId::parse("acme").expect("tenant");
    app.runtime.ledger().checkpoint(&tenant).await.expect("checkpoint");
    let good = browser.page("/ledger/verify").await;
    assert!(good.contains("id=\"ledger-ok\""), "{good}");
    assert!(!good.contains("id=\"ledger-bad\""));

    let path = app.db.url.trim_start_matches("sqlite://").to_owned();
    let mut db =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}")).await.expect("open");
    // As an attacker with the database file would: the append-only trigger goes first.
    sqlx::query("DROP TRIGGER ledger_entries_no_update").execute(&mut db).await.expect("drop trigger");
    sqlx::query("UPDATE ledger_entries SET payload = replace(payload, 'two', 'TWO') WHERE tenant_id = 'acme'")
        .execute(&mut db)
        .await
        .expect("tamper");
    let bad = browser.page("/ledger/verify").await;
    assert!(bad.contains("id=\"ledger-bad\""), "{bad}");
    let message = bad.split("id=\"ledger-bad\"").nth(1).expect("alert");
    assert!(message.contains("entry #2") || message.contains("#2"), "names the first bad entry: {message}");
}

#[tokio::test]
async fn approvals_show_the_call_exactly_and_only_to_admins() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let now = Timestamp::now();
    app.db
        .store
        .insert_approval(&Approval {
            id: "ap-1".into(),
            tenant_id: tenant,
            chain_id: ChainId::generate(),
            step: 0,
            tool: "send_email".into(),
            params: r#"{"to":"boss@example.com","body":"pay \u202etxt.exe <b>now</b>"}"#.into(),
            call_digest: "d".into(),
            reason: "send_email needs approval".into(),
            requested_by: Some("key:someone".into()),
            status: ApprovalStatus::Pending,
            decided_by: None,
            decided_at: None,
            note: None,
            created_at: now,
            expires_at: Timestamp::from_micros(now.as_micros() + 3_600_000_000),
        })
        .await
        .expect("approval");
    let browser = app.signed_in("ada@acme.test").await;
    let html = browser.page("/approvals").await;
    assert!(html.contains("data-approval=\"ap-1\""));
    assert!(html.contains("\\u{202e}txt.exe"), "the bidirectional override is shown, not obeyed: {html}");
    assert!(!html.contains("<b>now</b>"), "markup in parameters is text");
    assert!(html.contains("boss@example.com"));
}

#[tokio::test]
async fn the_interface_speaks_italian_by_browser_or_by_choice() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let browser = app.browser();
    let login = browser
        .client
        .get(browser.url("/login"))
        .header("accept-language", "it-IT,it;q=0.9")
        .send()
        .await
        .expect("get");
    let login = login.text().await.expect("body");
    assert!(login.contains("lang=\"it\"") && login.contains("Accedi"), "{login}");

    let browser = app.signed_in("ada@acme.test").await;
    assert!(!browser.page("/").await.contains("Panoramica"), "English by default");
    let csrf = browser.csrf().await;
    let chosen = browser.post("/language", &[("csrf", &csrf), ("lang", "it")]).await;
    assert_eq!(chosen.status(), 303);
    let overview = browser.page("/").await;
    assert!(overview.contains("Panoramica") && overview.contains("Esecuzioni oggi"), "{overview}");
    assert!(browser.page("/ledger").await.contains("Registro"));
}

#[tokio::test]
async fn usage_is_grouped_against_the_budget_and_exported_as_csv() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    app.user("acme", "mo@acme.test", Role::Member, 0).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let people = app.runtime.web_users(&tenant).await.expect("people");
    let ada_id = people.iter().find(|u| u.email == "ada@acme.test").expect("ada").user.id.clone();
    for (model, cost) in [("gpt-4o-mini", 0.25), ("=cmd|' /C calc'!A0", 0.5)] {
        app.db
            .store
            .insert_cost(&domain::cost::CostRecord {
                tenant_id: tenant.clone(),
                chain_id: None,
                seal_id: None,
                api_key_id: None,
                subject: (cost < 0.3).then(|| format!("user:{ada_id}")),
                provider: Some("openai".into()),
                model: model.into(),
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: cost,
                timestamp: Timestamp::now(),
            })
            .await
            .expect("cost");
    }
    let browser = app.signed_in("ada@acme.test").await;
    let html = browser.page("/usage?days=7").await;
    assert!(html.contains("id=\"total-calls\">2<"), "{html}");
    assert!(html.contains("id=\"total-cost\">$0.75<"), "{html}");
    assert!(html.contains("gpt-4o-mini"));

    let csv = browser.get("/usage.csv?days=7").await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers()["content-disposition"].to_str().expect("ascii").starts_with("attachment"));
    let body = csv.text().await.expect("csv");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "day,model,provider,api_key_id,chain_id,subject,calls,input_tokens,output_tokens,cost_usd");
    assert_eq!(lines.len(), 3, "{body}");
    assert!(body.contains(&format!(",gpt-4o-mini,openai,,,user:{ada_id},1,10,5,0.250000")), "{body}");

    // Spend per person: admins see everyone's, by email; members only their own.
    let person = html.split("data-section=\"usage.by_person\"").nth(1).expect("a per-person table");
    let person = person.split("</table>").next().expect("table");
    assert!(person.contains("<code>ada@acme.test</code>") && person.contains("<code>-</code>"), "{person}");
    let mo = app.signed_in("mo@acme.test").await;
    let theirs = mo.page("/usage?days=7").await;
    let person = theirs.split("data-section=\"usage.by_person\"").nth(1).unwrap_or_default();
    assert!(!person.contains("ada@acme.test"), "a member sees no one else's spend: {theirs}");
    let theirs = mo.get("/usage.csv?days=7").await.text().await.expect("csv");
    assert!(!theirs.contains(&ada_id.to_string()) && theirs.contains(",other,"), "{theirs}");
    assert!(body.contains("'=cmd"), "a formula is never a formula in a spreadsheet: {body}");

    let bad = browser.get("/usage?days=0").await;
    assert_eq!(bad.status(), 422);
    let bad = browser.get("/usage?days=many").await;
    assert_eq!(bad.status(), 400, "a malformed query is a 400 page");
    assert!(bad.text().await.expect("body").contains("invalid query"));
}

#[tokio::test]
async fn personas_and_tools_are_shown_with_what_is_missing() {
    let app = spawn().await;
    app.user("demo", "mo@demo.test", Role::Member, 0).await;
    let browser = app.signed_in("mo@demo.test").await;
    let html = browser.page("/setup").await;
    assert!(html.contains("researcher") && html.contains("communicator"), "the seeded personas: {html}");
    assert!(html.contains("id=\"no-agent\""), "without models the page says the agent is not configured");

    let openai = crate::support::search_model().await;
    let app = crate::support::spawn_with_agent(&openai).await;
    app.user("demo", "mo@demo.test", Role::Member, 0).await;
    let browser = app.signed_in("mo@demo.test").await;
    let html = browser.page("/setup").await;
    assert!(html.contains("data-tool=\"knowledge_search\""), "{html}");
    let email =
        html.split("data-tool=\"send_email\"").nth(1).and_then(|s| s.split("</tr>").next()).expect("send_email");
    assert!(email.contains("badge fail") && email.contains("SMTP"), "names the missing setting: {email}");
}

#[tokio::test]
async fn the_chain_list_filters_by_text_date_and_status_and_pages_by_cursor() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Member, 0).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../../runtime/tests/fixtures/runs/v2/done.json")).expect("fixture");
    let state = fixture["state"].to_string();
    let now = Timestamp::now().as_micros();
    let mut needle = None;
    for i in 0..120 {
        let chain = ChainId::generate();
        if i == 7 {
            needle = Some(chain.clone());
        }
        let at = Timestamp::from_micros(now - (120 - i) * 1_000_000);
        app.db
            .store
            .save_run(&domain::ports::StoredRun {
                tenant_id: tenant.clone(),
                chain_id: chain.clone(),
                task: if i == 7 { "Find the <needle>".into() } else { format!("Task number {i}") },
                status: domain::agent::ChainStatus::Completed,
                state: state.replace("fixture-chain", chain.as_str()),
                created_at: at,
                updated_at: at,
                owner: None,
                personas: if i % 3 == 0 { vec!["researcher".into()] } else { vec!["analyst".into()] },
                // A version-2 state carries its own context.
                context: None,
            })
            .await
            .expect("save");
    }
    let browser = app.signed_in("ada@acme.test").await;
    let researched = browser.page("/chains?persona=researcher").await;
    assert_eq!(researched.matches("data-chain=\"").count(), 40, "a third of the runs used the researcher");
    assert!(researched.contains("<option value=\"researcher\" selected>"), "the filter stays chosen");
    let mut seen = 0;
    let mut path = "/chains".to_owned();
    for _ in 0..10 {
        let html = browser.page(&path).await;
        seen += html.matches("data-chain=\"").count();
        let Some(next) = html.split("id=\"older\"").next().and_then(|h| h.rsplit("href=\"").next()) else { break };
        if !html.contains("id=\"older\"") {
            break;
        }
        // The href is HTML-escaped, as a browser reads it.
        path = next.split('"').next().expect("href").replace("&#38;", "&").replace("&amp;", "&");
    }
    assert_eq!(seen, 120, "every chain once across the pages");

    let found = browser.page("/chains?text=NEEDLE").await;
    assert_eq!(found.matches("data-chain=\"").count(), 1);
    let needle = needle.expect("needle");
    assert!(found.contains(&format!("data-chain=\"{needle}\"")), "the run whose task matches: {found}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let none = browser.page("/chains?until=2000-01-01").await;
    assert!(none.contains("id=\"no-chains\""));
    let all_today = browser.page(&format!("/chains?since={today}&until={today}&status=completed")).await;
    assert!(all_today.matches("data-chain=\"").count() > 0);
    let bad = browser.get("/chains?since=yesterday").await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("body").contains("since must be a date"));
    assert_eq!(browser.get("/chains?before=garbage").await.status(), 422);
}

#[tokio::test]
async fn a_theme_chosen_in_the_footer_is_kept_by_the_browser() {
    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Member, 0).await;
    let ada = app.signed_in("ada@acme.test").await;
    let page = ada.page("/").await;
    assert!(!page.contains("data-theme="), "the system's theme by default");
    assert!(page.contains("<option value=\"auto\" selected>"), "{page}");
    let csrf = ada.csrf().await;
    let chosen = ada
        .client
        .post(ada.url("/theme"))
        .header("sec-fetch-site", "same-origin")
        .header("referer", ada.url("/ledger"))
        .form(&[("csrf", csrf.as_str()), ("theme", "dark")])
        .send()
        .await
        .expect("theme");
    assert_eq!(chosen.status(), 303);
    assert_eq!(chosen.headers()["location"], "/ledger", "back where the person was");
    let cookie = chosen.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.starts_with("nexus_theme=dark;") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(ada.page("/ledger").await.contains("data-theme=\"dark\""));
    ada.post("/theme", &[("csrf", &csrf), ("theme", "auto")]).await;
    assert!(!ada.page("/").await.contains("data-theme="), "back to the system's");
    assert_eq!(ada.post("/theme", &[("csrf", "forged"), ("theme", "dark")]).await.status(), 403);
}

#[tokio::test]
async fn the_overview_shows_each_providers_breaker_opening_after_failures() {
    let upstream = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503).set_body_string("overloaded"))
        .mount(&upstream)
        .await;
    let app = crate::support::spawn_with_agent(&upstream).await;
    app.user("demo", "ada@demo.test", Role::Member, 0).await;
    let ada = app.signed_in("ada@demo.test").await;
    let healthy = ada.page("/").await;
    let row = healthy
        .split("data-provider=\"openai\"")
        .nth(1)
        .expect("the provider is listed")
        .split("</tr>")
        .next()
        .expect("row");
    assert!(row.contains("badge closed") && row.contains("normal: gpt-4o-mini"), "{row}");

    for _ in 0..3 {
        let tenant = TenantId::parse("demo").expect("tenant");
        let request = runtime::agent::RunRequest {
            tenant,
            task: "what is the ledger?".into(),
            persona: None,
            qa_spec: None,
            user: None,
            chain_id: None,
            tier: None,
        };
        let handle = app.runtime.start_run(request).await.expect("started");
        if let Ok(report) = handle.finished().await {
            assert_eq!(report.status, domain::agent::ChainStatus::Failed, "the upstream fails every call");
        }
    }
    let open = ada.page("/").await;
    let row = open.split("data-provider=\"openai\"").nth(1).expect("listed").split("</tr>").next().expect("row");
    assert!(row.contains("badge open") && row.contains("next try in"), "{row}");
}

#[tokio::test]
async fn a_tainted_run_says_what_it_read_and_what_the_task_asked_to_change() {
    use engine::machine::{Run, RunContext};
    use engine::provenance::{Origin, Taint};

    let app = spawn().await;
    app.user("acme", "ada@acme.test", Role::Admin, 3).await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let context =
        RunContext { personas: Vec::new(), tools: Vec::new(), persona_override: None, qa_spec: None, max_steps: None };
    let mut run = Run::new(ChainId::generate(), "Summarise the page and email bob@example.com", context);
    run.provenance.envelope = Some(vec!["send_email".into()]);
    run.provenance.taint = Some(Taint { origin: Origin::Tool { step: 0, tool: "web_fetch".into(), trusted: false } });
    let now = Timestamp::now();
    let stored = domain::ports::StoredRun {
        tenant_id: tenant.clone(),
        chain_id: run.chain_id.clone(),
        task: run.task.clone(),
        status: domain::agent::ChainStatus::Completed,
        state: engine::machine::stored::encode(&run, None).expect("encode"),
        created_at: now,
        updated_at: now,
        owner: None,
        personas: Vec::new(),
        context: Some(engine::machine::stored::encode_context(&run.context).expect("context")),
    };
    app.db.store.save_run(&stored).await.expect("run");
    let html = app.signed_in("ada@acme.test").await.page(&format!("/chains/{}", run.chain_id)).await;
    assert!(html.contains("id=\"tainted\"") && html.contains("the output of step 0 (web_fetch, untrusted)"), "{html}");
    assert!(html.contains("what the task asked to change: send_email"), "{html}");
}
