//! `meshc lsp` reaches the server: it runs the `mesh-lsp` installed beside `meshc`, which
//! then answers the protocol on the same stdin/stdout. Needs `meshc` built into the same
//! directory as `mesh-lsp` (as `cargo test --workspace` does); skipped with a message when
//! it is not there.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

mod common;

use std::path::Path;

use common::Client;
use serde_json::json;

#[test]
fn meshc_lsp_runs_the_server_beside_it() {
    let server = Path::new(env!("CARGO_BIN_EXE_mesh-lsp"));
    let meshc = server.with_file_name(format!("meshc{}", std::env::consts::EXE_SUFFIX));
    if !meshc.exists() {
        eprintln!(
            "SKIPPED: {} is not built (cargo build -p mesh-compiler)",
            meshc.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("a.mesh"), "service a { port http 0 }\n").unwrap();
    let mut client = Client::start_with(&meshc, &["lsp", "--stdio"]);
    let init = client.initialize(&root, json!({}));
    assert_eq!(init["serverInfo"]["name"], "mesh-lsp");
    // The workspace is checked on start: the file on disk gets its diagnostics.
    let diagnostics = client.diagnostics(&common::uri(&root.join("a.mesh")), |d| !d.is_empty());
    assert_eq!(diagnostics[0]["code"], "E0006");
    client.shutdown();
}
