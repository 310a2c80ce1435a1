//! The knowledge page: several files uploaded at once with a result each (a bad one failing
//! alone), documents listed by namespace, a query showing its mode and scores, deletion, the
//! CSRF token required before anything is stored, and reads limited by the person's level.

use domain::tenant::Role;
use reqwest::multipart::{Form, Part};

use crate::support::{App, Browser, spawn};

async fn upload(
    browser: &Browser,
    csrf: &str,
    namespace: &str,
    access: &str,
    files: &[(&str, &str, &[u8])],
) -> reqwest::Response {
    let mut form = Form::new()
        .text("csrf", csrf.to_owned())
        .text("namespace", namespace.to_owned())
        .text("access_level", access.to_owned());
    for (name, mime, bytes) in files {
        form =
            form.part("file", Part::bytes(bytes.to_vec()).file_name((*name).to_owned()).mime_str(mime).expect("mime"));
    }
    browser
        .client
        .post(browser.url("/knowledge/upload"))
        .header("sec-fetch-site", "same-origin")
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

async fn people(app: &App) -> (Browser, Browser) {
    app.user("demo", "ada@demo.test", Role::Member, 5).await;
    app.user("demo", "bob@demo.test", Role::Member, 0).await;
    (app.signed_in("ada@demo.test").await, app.signed_in("bob@demo.test").await)
}

#[tokio::test]
async fn files_are_uploaded_each_with_its_result_found_by_a_query_and_deleted() {
    let app = spawn().await;
    let (ada, _) = people(&app).await;
    let csrf = ada.csrf().await;
    let files: [(&str, &str, &[u8]); 3] = [
        (
            "ledger.md",
            "text/markdown",
            b"# The ledger\n\nEvery action is sealed in a tamper-evident ledger with signed checkpoints.",
        ),
        ("gates.txt", "text/plain", b"Four gates check each call: scope, intent, time to live and drift."),
        ("broken.pdf", "application/pdf", b"this is not a PDF at all"),
    ];
    let response = upload(&ada, &csrf, "handbook", "internal", &files).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("id=\"upload-results\""), "{page}");
    for (file, status) in [("ledger.md", "stored"), ("gates.txt", "stored"), ("broken.pdf", "failed")] {
        let row = page.split(&format!("data-file=\"{file}\"")).nth(1).expect("a row per file");
        let row = row.split("</li>").next().expect("row");
        assert!(row.contains(&format!("badge {status}")), "{file} {status}: {row}");
    }
    assert!(page.contains("handbook"), "the namespace is listed: {page}");

    // The same file again is a duplicate, not a second document.
    let again = upload(&ada, &csrf, "handbook", "internal", &files[..1]).await.text().await.expect("page");
    assert!(again.contains("badge duplicate"), "{again}");

    let found = ada.page("/knowledge?namespace=handbook&q=tamper-evident+ledger").await;
    assert!(
        found.contains("id=\"mode\">lexical<") || found.contains("id=\"mode\">hybrid<"),
        "the mode is shown: {found}"
    );
    let hits = found.split("class=\"hit\"").skip(1).collect::<Vec<_>>();
    assert!(!hits.is_empty(), "{found}");
    assert!(
        hits[0].contains("ledger.md") && hits[0].contains("class=\"score\""),
        "best first, with its score: {}",
        hits[0]
    );

    let listed = ada.page("/knowledge?namespace=handbook").await;
    let id = listed.split("data-document=\"").nth(1).and_then(|s| s.split('"').next()).expect("a document").to_owned();
    assert_eq!(listed.matches("data-document=\"").count(), 2, "two documents: {listed}");
    let deleted = ada.post(&format!("/knowledge/documents/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status(), 303);
    let listed = ada.page("/knowledge?namespace=handbook").await;
    assert_eq!(listed.matches("data-document=\"").count(), 1, "{listed}");
    let gone = ada.post(&format!("/knowledge/documents/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn an_upload_without_the_token_stores_nothing_and_bad_fields_are_named() {
    let app = spawn().await;
    let (ada, _) = people(&app).await;
    let file: [(&str, &str, &[u8]); 1] = [("a.txt", "text/plain", b"some text")];
    let forged = upload(&ada, "not-the-token", "default", "internal", &file).await;
    assert_eq!(forged.status(), 403);
    assert!(!ada.page("/knowledge").await.contains("data-document"), "nothing was stored");

    let csrf = ada.csrf().await;
    let bad = upload(&ada, &csrf, "no spaces allowed", "internal", &file).await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("page").contains("namespace"), "the field is named");
    let bad = upload(&ada, &csrf, "default", "secret", &file).await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.expect("page").contains("access_level"));
    let none = upload(&ada, &csrf, "default", "internal", &[]).await;
    assert_eq!(none.status(), 422);
}

#[tokio::test]
async fn a_query_reads_only_what_the_persons_level_may_read() {
    let app = spawn().await;
    let (ada, bob) = people(&app).await;
    let csrf = ada.csrf().await;
    let file: [(&str, &str, &[u8]); 1] =
        [("salaries.txt", "text/plain", b"The confidential salary bands are reviewed yearly.")];
    assert_eq!(upload(&ada, &csrf, "default", "confidential", &file).await.status(), 200);
    let q = "/knowledge?q=salary+bands";
    assert!(ada.page(q).await.contains("salaries.txt"), "level 5 reads confidential passages");
    let bob_sees = bob.page(q).await;
    assert!(bob_sees.contains("id=\"mode\""), "the query ran");
    assert!(!bob_sees.contains("class=\"hit\""), "level 0 reads no confidential passage: {bob_sees}");
}
