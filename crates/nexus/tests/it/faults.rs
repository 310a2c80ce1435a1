//! Broken inputs give one clear line, a non-zero exit and no panic.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{Env, assert_clean_failure};

fn seeded() -> Env {
    let env = Env::sqlite();
    env.ok(&["seed"]);
    env
}

#[test]
fn a_corrupt_or_truncated_database_is_named() {
    let env = seeded();
    let db = env.data_dir().join("nexus.db");
    let bytes = std::fs::read(&db).expect("read db");

    std::fs::write(&db, &bytes[..bytes.len() / 2]).expect("truncate");
    assert_clean_failure(&env.run(&["verify"]), 2, "nexus.db");

    std::fs::write(&db, vec![0x5a; bytes.len()]).expect("overwrite");
    for args in [&["verify"][..], &["seed"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        assert_clean_failure(&env.run(args), 2, "corrupt");
    }
}

#[test]
fn a_missing_database_is_not_created_by_verify() {
    let env = Env::sqlite();
    assert_clean_failure(&env.run(&["verify"]), 2, "does not exist");
    assert!(!env.data_dir().join("nexus.db").exists());
}

#[test]
fn missing_wrong_or_exposed_signing_keys_are_refused() {
    let env = seeded();
    let key = env.data_dir().join("keys").join("ledger.ed25519.pem");
    let saved = env.path("saved.pem");
    std::fs::rename(&key, &saved).expect("move key away");
    assert_clean_failure(&env.run(&["seed"]), 2, "is missing");
    assert!(!key.exists(), "no new key is made over signed checkpoints");

    let other = seeded();
    std::fs::copy(other.data_dir().join("keys").join("ledger.ed25519.pem"), &key).expect("wrong key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_clean_failure(&env.run(&["seed"]), 2, "did not sign the checkpoints");
    assert_clean_failure(&env.run(&["verify"]), 1, "signed by another key");

    std::fs::rename(&saved, &key).expect("restore key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_clean_failure(&env.run(&["seed"]), 2, "chmod 600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    env.ok(&["verify"]);
}

#[test]
fn an_unreachable_postgres_is_named() {
    let env = Env::with_database("postgres://nexus:secret@127.0.0.1:9/nexus".into());
    let out = env.run(&["seed"]);
    assert_clean_failure(&out, 2, "database unavailable (postgres://nexus:***@127.0.0.1:9/nexus)");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
}

#[test]
fn malformed_configuration_names_the_file_and_setting() {
    let env = Env::sqlite();
    let file = env.path("nexus.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:1\"\nport = 9\n").expect("write");
    assert_clean_failure(&env.run(&["seed"]), 2, "line 3");
    std::fs::write(&file, "[ledger\n").expect("write");
    assert_clean_failure(&env.run(&["seed"]), 2, "nexus.toml");
    std::fs::write(&file, "[server]\nlisten = \"everywhere\"\n").expect("write");
    assert_clean_failure(&env.run(&["serve"]), 2, "server.listen");
    std::fs::remove_file(&file).expect("remove");
    let out = env.command(&["seed"]).env("NEXUS_LISTN", "x").output().expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NEXUS_LISTN") && stderr.contains("did you mean NEXUS_LISTEN"), "{stderr}");
}

#[test]
fn malformed_proof_bundles_and_unknown_entries_are_refused() {
    let env = seeded();
    let bundle = env.path("bundle.json");
    for text in ["", "{", "{\"format\": 1}", "[]"] {
        std::fs::write(&bundle, text).expect("write");
        assert_clean_failure(&env.run(&["verify", "--bundle", bundle.to_str().expect("utf-8")]), 2, "bundle.json");
    }
    assert_clean_failure(&env.run(&["verify", "--bundle", "/nonexistent/bundle.json"]), 2, "/nonexistent/bundle.json");
    assert_clean_failure(&env.run(&["ledger", "proof", "--tenant", "demo", "--index", "99"]), 2, "no ledger entry #99");
    assert_clean_failure(&env.run(&["ledger", "checkpoint", "--tenant", "nobody"]), 2, "no ledger entries");
}
