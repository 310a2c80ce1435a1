//! `file_read` and `file_write`: confined to the workspace whatever the path says.

use std::os::unix::fs::symlink;

use serde_json::json;
use tools::builtin::{FileRead, FileWrite};
use tools::{Tool, ToolError};

use crate::support::{context, failed, invalid_param, refused};

#[tokio::test]
async fn written_files_read_back() {
    let workspace = tempfile::tempdir().unwrap();
    let ctx = context(workspace.path());
    let written = FileWrite.call(&ctx, json!({"path": "notes/2024/q1.txt", "content": "héllo\n"})).await.unwrap();
    assert_eq!(written["bytes_written"], 7);
    assert_eq!(std::fs::read_to_string(workspace.path().join("notes/2024/q1.txt")).unwrap(), "héllo\n");

    let read = FileRead.call(&ctx, json!({"path": "/workspace/notes/2024/q1.txt"})).await.unwrap();
    assert_eq!(read["content"], "héllo\n");
    assert_eq!(read["truncated"], false);

    FileWrite.call(&ctx, json!({"path": "notes/2024/q1.txt", "content": "replaced"})).await.unwrap();
    let read = FileRead.call(&ctx, json!({"path": "./notes/x/../2024/q1.txt"})).await.unwrap();
    assert_eq!(read["content"], "replaced");
}

#[tokio::test]
async fn append_adds_to_the_end() {
    let workspace = tempfile::tempdir().unwrap();
    let ctx = context(workspace.path());
    FileWrite.call(&ctx, json!({"path": "log.txt", "content": "one\n", "append": true})).await.unwrap();
    FileWrite.call(&ctx, json!({"path": "log.txt", "content": "two\n", "append": true})).await.unwrap();
    let read = FileRead.call(&ctx, json!({"path": "log.txt"})).await.unwrap();
    assert_eq!(read["content"], "one\ntwo\n");
}

#[tokio::test]
async fn a_missing_workspace_is_created() {
    let parent = tempfile::tempdir().unwrap();
    let ctx = context(&parent.path().join("tenants/a/workspace"));
    FileWrite.call(&ctx, json!({"path": "first.txt", "content": "x"})).await.unwrap();
    assert!(parent.path().join("tenants/a/workspace/first.txt").is_file());
}

#[tokio::test]
async fn reads_are_capped() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("big.txt"), "a".repeat(5_000)).unwrap();
    let ctx = context(workspace.path());
    let read = FileRead.call(&ctx, json!({"path": "big.txt", "max_bytes": 100})).await.unwrap();
    assert_eq!(read["content"].as_str().unwrap().len(), 100);
    assert_eq!((read["truncated"].as_bool(), read["size"].as_u64()), (Some(true), Some(5_000)));
    assert_eq!(invalid_param(FileRead.call(&ctx, json!({"path": "big.txt", "max_bytes": 0})).await), "max_bytes");
}

#[tokio::test]
async fn paths_cannot_leave_the_workspace() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let ctx = context(workspace.path());
    let escaping = [
        "../escape".to_owned(),
        "a/../../escape".to_owned(),
        "/workspace/../etc/passwd".to_owned(),
        format!("../{}/secret.txt", outside.path().file_name().unwrap().to_str().unwrap()),
    ];
    for path in &escaping {
        let message = refused(FileRead.call(&ctx, json!({"path": path})).await);
        assert!(message.contains("outside the workspace"), "{path}: {message}");
        refused(FileWrite.call(&ctx, json!({"path": path, "content": "x"})).await);
    }
    for path in ["/etc/passwd", "/tmp/x", "/workspace-evil/x"] {
        refused(FileRead.call(&ctx, json!({"path": path})).await);
        refused(FileWrite.call(&ctx, json!({"path": path, "content": "x"})).await);
    }
    assert!(!workspace.path().parent().unwrap().join("escape").exists());
}

#[tokio::test]
async fn symlinks_cannot_lead_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    let workspace = tempfile::tempdir().unwrap();
    symlink(outside.path().join("secret.txt"), workspace.path().join("link.txt")).unwrap();
    symlink(outside.path(), workspace.path().join("outdir")).unwrap();
    symlink("../../../../../../../../etc/passwd", workspace.path().join("relative.txt")).unwrap();
    let ctx = context(workspace.path());

    for path in ["link.txt", "outdir/secret.txt", "relative.txt"] {
        let message = refused(FileRead.call(&ctx, json!({"path": path})).await);
        assert!(message.contains(path), "{message}");
    }
    for path in ["link.txt", "outdir/new.txt", "outdir/sub/new.txt"] {
        refused(FileWrite.call(&ctx, json!({"path": path, "content": "pwned"})).await);
    }
    assert_eq!(std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(), "secret");
    assert!(!outside.path().join("new.txt").exists() && !outside.path().join("sub").exists());

    std::fs::write(workspace.path().join("target.txt"), "inside").unwrap();
    symlink("target.txt", workspace.path().join("inner-link.txt")).unwrap();
    let read = FileRead.call(&ctx, json!({"path": "inner-link.txt"})).await.unwrap();
    assert_eq!(read["content"], "inside");
}

#[tokio::test]
async fn a_missing_file_fails_naming_the_path() {
    let workspace = tempfile::tempdir().unwrap();
    let (message, transient) =
        failed(FileRead.call(&context(workspace.path()), json!({"path": "nope/missing.txt"})).await);
    assert!(message.contains("nope/missing.txt"), "{message}");
    assert!(!transient);
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let workspace = tempfile::tempdir().unwrap();
    let ctx = context(workspace.path());
    let huge = "x".repeat(10 * 1024 * 1024 + 1);
    let cases = [
        (FileWrite.call(&ctx, json!({"path": "big.txt", "content": huge})).await, "content"),
        (FileWrite.call(&ctx, json!({"path": "a.txt"})).await, "content"),
        (FileWrite.call(&ctx, json!({"path": "a.txt", "content": "x", "append": "yes"})).await, "append"),
        (FileWrite.call(&ctx, json!({"path": "", "content": "x"})).await, "path"),
        (FileRead.call(&ctx, json!({"path": "a\u{0}b"})).await, "path"),
        (FileRead.call(&ctx, json!({"file": "a.txt"})).await, "file"),
    ];
    for (result, param) in cases {
        assert_eq!(invalid_param(result), param);
    }
    assert!(!workspace.path().join("big.txt").exists());
    let directory = FileRead.call(&ctx, json!({"path": "/workspace"})).await;
    assert!(matches!(directory, Err(ToolError::Failed { transient: false, .. })), "{directory:?}");
}
