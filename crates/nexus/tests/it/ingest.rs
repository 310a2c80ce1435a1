//! `nexus ingest` end to end on every backend: a folder with good and bad files is ingested
//! file by file, failures are reported and counted without stopping the rest, and what was
//! stored is checked in the database.

use domain::TenantId;
use store::DatabaseUrl;

use crate::support::Env;

const HANDBOOK: &[u8] = include_bytes!("../../../knowledge/tests/fixtures/handbook.pdf");

async fn envs() -> Vec<Env> {
    let mut all = vec![Env::sqlite()];
    if let Some(url) = store::test_support::postgres_schema_url().await {
        all.push(Env::with_database(url));
    }
    all
}

#[tokio::test]
async fn a_folder_is_ingested_file_by_file_and_failures_are_counted() {
    for env in envs().await {
        let folder = env.path("docs");
        std::fs::create_dir_all(folder.join("manuals")).expect("folders");
        std::fs::write(folder.join("guide.md"), "# Ledger guide\n\nEvery action is **sealed** in the ledger.\n")
            .expect("write");
        std::fs::write(
            folder.join("page.html"),
            "<html><head><title>Approvals</title><script>x()</script></head><body><p>Approvals expire.</p></body></html>",
        )
        .expect("write");
        std::fs::write(folder.join("fake.pdf"), "I am only pretending to be a PDF").expect("write");
        std::fs::write(folder.join("empty.txt"), "").expect("write");
        std::fs::write(folder.join(".hidden.md"), "never read").expect("write");
        std::fs::write(folder.join("manuals").join("handbook.pdf"), HANDBOOK).expect("write");
        let folder_arg = folder.to_str().expect("utf-8");

        let out = env.run(&["ingest", folder_arg, "--namespace", "docs", "--access", "public"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "a file failed: {stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let name = |file: &str| format!("{folder_arg}/{file}");
        assert!(stdout.contains(&format!("stored  {} (1 chunk)", name("guide.md"))), "{stdout}");
        assert!(stdout.contains(&format!("stored  {} (1 chunk)", name("page.html"))), "{stdout}");
        assert!(stdout.contains(&format!("stored  {}", name("manuals/handbook.pdf"))), "{stdout}");
        assert!(
            stderr.contains(&format!("failed  {}: not a PDF: it does not start with %PDF-", name("fake.pdf"))),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("failed  {}: the file is empty", name("empty.txt"))), "{stderr}");
        assert!(!stdout.contains("hidden") && !stderr.contains("hidden"), "hidden files are skipped");
        assert!(
            stdout.contains("ingested into demo/docs: 3 stored (3 chunks), 0 already present, 2 failed"),
            "{stdout}"
        );

        // What the database holds: the three good files, extracted, with their metadata.
        let store = store::open(&DatabaseUrl::parse(&env.url()).expect("url")).await.expect("open");
        let demo = TenantId::parse("demo").expect("id");
        let documents = store.documents(&demo, Some("docs")).await.expect("documents");
        let mut stored: Vec<(String, String, String)> = documents
            .iter()
            .map(|d| {
                (d.source.clone(), d.metadata["format"].as_str().unwrap_or("").to_owned(), d.access_level.to_string())
            })
            .collect();
        stored.sort();
        assert_eq!(
            stored,
            vec![
                (name("guide.md"), "markdown".to_owned(), "public".to_owned()),
                (name("manuals/handbook.pdf"), "pdf".to_owned(), "public".to_owned()),
                (name("page.html"), "html".to_owned(), "public".to_owned()),
            ]
        );
        let page = documents.iter().find(|d| d.source.ends_with("page.html")).expect("page");
        assert_eq!((page.content.as_str(), page.metadata["title"].as_str()), ("Approvals expire.", Some("Approvals")));
        store.close().await;

        // Again: nothing new, the same two failures; one good file alone succeeds.
        let again = env.run(&["ingest", folder_arg, "--namespace", "docs"]);
        assert_eq!(again.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&again.stdout).contains("0 stored (0 chunks), 3 already present, 2 failed"));
        let one = env.ok(&["ingest", &name("guide.md"), "--namespace", "docs"]);
        assert!(one.contains("same    ") && one.contains("0 failed"), "{one}");

        let missing = env.run(&["ingest", &name("nope.md"), "--namespace", "docs"]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.md: No such file"), "a missing path fails");
        let bad_level = env.run(&["ingest", folder_arg, "--namespace", "docs", "--access", "secret"]);
        assert_eq!(bad_level.status.code(), Some(2), "a usage error");
    }
}
