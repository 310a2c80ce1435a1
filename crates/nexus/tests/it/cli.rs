//! Seeding, verifying, checkpoints and offline proofs through the CLI, on every backend.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{Env, assert_clean_failure, tamper};

async fn envs() -> Vec<Env> {
    let mut all = vec![Env::sqlite()];
    if let Some(url) = store::test_support::postgres_schema_url().await {
        all.push(Env::with_database(url));
    }
    all
}

#[tokio::test]
async fn first_start_lays_out_the_data_directory() {
    let env = Env::sqlite();
    env.ok(&["seed"]);
    let data = env.data_dir();
    assert!(data.join("nexus.db").is_file());
    assert!(data.join("workspace").is_dir());
    let key = data.join("keys").join("ledger.ed25519.pem");
    assert_eq!(std::fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&data).expect("dir").permissions().mode() & 0o777, 0o700);
}

#[tokio::test]
async fn seed_is_idempotent_and_the_result_verifies() {
    for env in envs().await {
        let first = env.ok(&["seed"]);
        assert!(first.contains("created personas: researcher, analyst, creator, communicator, operator"), "{first}");
        assert!(env.ok(&["seed"]).contains("already seeded"));
        let verified = env.ok(&["verify"]);
        assert!(verified.contains("ok: tenant demo: 6 entries"), "{verified}");
        assert!(env.ok(&["verify", "--tenant", "demo"]).contains("6 entries"));
    }
}

#[tokio::test]
async fn proofs_verify_offline_and_only_with_the_right_key() {
    for env in envs().await {
        env.ok(&["seed"]);
        let note = env.ok(&["ledger", "checkpoint", "--tenant", "demo"]);
        assert!(note.starts_with("nexus.local/ledger/demo\n6\n"), "{note}");
        let bundle = env.path("proof.json");
        env.ok(&["ledger", "proof", "--tenant", "demo", "--index", "3", "--out", bundle.to_str().expect("utf-8")]);
        let public = env.path("ledger.pub.pem");
        std::fs::write(&public, env.ok(&["ledger", "public-key"])).expect("save public key");

        // Offline: another data directory, no database at all.
        let auditor = Env::sqlite();
        let args =
            ["verify", "--bundle", bundle.to_str().expect("utf-8"), "--public-key", public.to_str().expect("utf-8")];
        let out = auditor.ok(&args);
        assert!(out.contains("entry #3 of tenant demo is included in the signed checkpoint of size 6"), "{out}");
        assert!(!auditor.data_dir().join("nexus.db").exists(), "verifying a bundle opens no database");

        // A bundle checked against another ledger's key fails.
        let other = Env::sqlite();
        other.ok(&["seed"]);
        let other_key = other.path("other.pub.pem");
        std::fs::write(&other_key, other.ok(&["ledger", "public-key"])).expect("save");
        let out = auditor.run(&[
            "verify",
            "--bundle",
            bundle.to_str().expect("utf-8"),
            "--public-key",
            other_key.to_str().expect("utf-8"),
        ]);
        assert_clean_failure(&out, 1, "signed by another key");

        // An edited bundle fails.
        let text = std::fs::read_to_string(&bundle).expect("read bundle").replace("persona.created", "persona.deleted");
        let edited = env.path("edited.json");
        std::fs::write(&edited, text).expect("write");
        let out = auditor.run(&["verify", "--bundle", edited.to_str().expect("utf-8")]);
        assert_clean_failure(&out, 1, "altered");

        // A kept checkpoint is consistent with the database.
        let kept = env.path("checkpoint.txt");
        std::fs::write(&kept, &note).expect("keep checkpoint");
        assert!(env.ok(&["verify", "--checkpoint", kept.to_str().expect("utf-8")]).contains("consistent"));
    }
}

#[tokio::test]
async fn verify_names_the_first_bad_entry_and_exits_1() {
    for env in envs().await {
        env.ok(&["seed"]);
        tamper(
            &env.url(),
            "UPDATE ledger_entries SET payload = replace(payload, 'analyst', 'analysT') WHERE tenant_id = 'demo' AND idx = 2",
        )
        .await;
        for args in [&["verify"][..], &["verify", "--tenant", "demo"][..]] {
            let out = env.run(args);
            assert_clean_failure(&out, 1, "tenant demo: entry #2");
        }
    }
}

#[tokio::test]
async fn keys_are_shown_once_stored_as_hashes_and_revocable() {
    for env in envs().await {
        let secret = env.ok(&["keys", "create", "--name", "ci-bot", "--level", "3"]).trim().to_owned();
        assert!(secret.starts_with("nxs_") && secret.len() == 36, "{secret}");
        let listed = env.ok(&["keys", "list"]);
        assert!(listed.contains("ci-bot") && listed.contains("active") && !listed.contains(&secret), "{listed}");
        let id = listed.split(" | ").next().expect("id").trim().to_owned();
        assert_clean_failure(&env.run(&["keys", "create", "--name", "x", "--level", "9"]), 2, "level");
        assert!(env.ok(&["keys", "revoke", &id]).contains("revoked"));
        assert!(env.ok(&["keys", "list"]).contains("revoked"));
        assert_clean_failure(&env.run(&["keys", "revoke", &id]), 2, "no active key");
        // Creation and revocation are admin entries in the ledger, and it still verifies.
        assert!(env.ok(&["verify", "--tenant", "demo"]).contains("2 entries"));
    }
}
