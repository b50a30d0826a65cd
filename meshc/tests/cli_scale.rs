//! `meshc test` and `meshc explain` build only the configs a question needs, so their
//! memory grows with the mesh, not with its square (issue #19). On a generated
//! 2,000-service mesh (one test per service) both run under a 1 GiB address-space limit
//! (`ulimit -v`); giving every workload every service as an outbound neighbour, as they
//! once did, needs millions of outbound entries here and fails under that limit.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;
use std::process::{Command, Output};

use mesh_test_support::{meshc, synthetic, text};

const SERVICES: usize = 2_000;
/// KiB of address space: the debug binary's mappings plus the checked mesh fit easily.
const LIMIT_KIB: u32 = 1024 * 1024;

/// `meshc ARGS...` in `dir` under `ulimit -v LIMIT_KIB`.
fn meshc_limited(args: &[&str], dir: &Path) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\""))
        .arg(meshc())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn test_and_explain_of_a_large_mesh_fit_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.mesh"), synthetic::generate(SERVICES)).unwrap();

    let output = meshc_limited(&["test", "."], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.ends_with(&format!("test result: {SERVICES} passed, 0 failed\n")),
        "{}",
        stdout.lines().last().unwrap_or_default()
    );
    assert_eq!(stdout.lines().count(), SERVICES + 1);

    let output = meshc_limited(
        &[
            "explain",
            ".",
            "--from",
            "ns-3/svc-8",
            "--to",
            "ns-3/svc-7",
            "GET",
            "/api/x",
            "-H",
            "x-beta: 1",
            "--format",
            "json",
        ],
        dir.path(),
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let explained: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(explained["route"]["rule"], "beta", "{stdout}");
    assert_eq!(explained["authorization"]["decision"], "allow", "{stdout}");
}
