//! `meshc lsp` is the language server, linked in-process: it answers the protocol on its
//! own stdin/stdout (no `mesh-lsp` binary needed beside it) and reports the server's
//! version like `mesh-lsp --version`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::process::Command;

use mesh_test_support::lsp::{Client, uri};
use serde_json::json;

#[test]
fn meshc_lsp_serves_the_protocol_itself() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("a.mesh"), "service a { port http 0 }\n").unwrap();
    // An empty directory as the executable's home: nothing to delegate to.
    let alone = tempfile::tempdir().unwrap();
    let meshc = alone.path().join("meshc");
    let built = mesh_test_support::meshc();
    std::fs::hard_link(&built, &meshc)
        .or_else(|_| std::fs::copy(&built, &meshc).map(drop))
        .unwrap();
    let mut client = Client::start_with(&meshc, &["lsp", "--stdio"]);
    let init = client.initialize(&root, json!({}));
    assert_eq!(init["serverInfo"]["name"], "mesh-lsp");
    // The workspace is checked on start: the file on disk gets its diagnostics.
    let diagnostics = client.diagnostics(&uri(&root.join("a.mesh")), |d| !d.is_empty());
    assert_eq!(diagnostics[0]["code"], "E0006");
    client.shutdown();
}

#[test]
fn meshc_lsp_version_is_the_servers() {
    let output = Command::new(mesh_test_support::meshc())
        .args(["lsp", "--version"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("mesh-lsp "), "{stdout}");
}
