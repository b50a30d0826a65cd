//! Opaque TCP through the real `meshc` binary (LANGUAGE.md §10), on the small mesh in
//! `tests/fixtures/tcp`: `meshc test` passes its `connect` and `request` cases, reports
//! wrong connection expectations at their spans with what happened (snapshotted), and
//! `meshc explain --connect PORT` tells the rule or whole service, the backends, the
//! connect and idle timeouts and the decision on the `TCP` action, in human and JSON form.
//! On the mixed service a path-conditioned deny does not deny the tcp port, and an allow
//! narrowed by `ports` allows only its port.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_test_support::{run_meshc, text, workspace_root as root};
use serde_json::Value;

const FIXTURE: &str = "compiler/tests/fixtures/tcp";

/// The fixture with `edits` (`from` → `to`, each `from` present exactly once), written to
/// a new temporary directory as `tcp.mesh`.
fn fixture_with(edits: &[(&str, &str)]) -> tempfile::TempDir {
    let mut src = std::fs::read_to_string(root().join(FIXTURE).join("tcp.mesh")).unwrap();
    for (from, to) in edits {
        assert_eq!(src.matches(from).count(), 1, "`{from}` must occur once");
        src = src.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tcp.mesh"), src).unwrap();
    dir
}

/// `meshc explain FIXTURE ARGS...`, which must succeed; its stdout.
fn explain(args: &[&str]) -> String {
    let mut all = vec!["explain", FIXTURE];
    all.extend_from_slice(args);
    let output = run_meshc(&all, &root());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr, "");
    stdout
}

fn explain_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&explain(&all)).unwrap()
}

#[test]
fn the_fixture_is_clean_and_its_tests_pass() {
    let output = run_meshc(&["check", "--deny-warnings", FIXTURE], &root());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = run_meshc(&["test", FIXTURE], &root());
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        "test ledger connections ... ok\ntest warehouse mixes http and tcp ... ok\ntest result: 2 passed, 0 failed\n"
    );
}

#[test]
fn wrong_connection_expectations_fail_at_their_spans() {
    let dir = fixture_with(&[
        (
            "    connect \"5432\" from warehouse to ledger\n    expect deny\n",
            "    connect \"5432\" from warehouse to ledger\n    expect allow\n",
        ),
        (
            "expect allow, backend ledger.replica only",
            "expect deny, backend ledger.primary",
        ),
        (
            "    connect \"9000\" from orders to warehouse\n    expect allow, backend warehouse only\n",
            "    connect \"9000\" from orders to warehouse\n    expect deny\n",
        ),
    ]);
    let output = run_meshc(&["test", "tcp.mesh"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr, "");
    for needle in [
        "test ledger connections ... FAILED",
        "test warehouse mixes http and tcp ... FAILED",
        "test result: 0 passed, 2 failed",
        "expected allow, got deny (no policy allows it)",
        "expected deny, got allow by tcp.mesh:46 allow from shop/orders, shop/billing",
        "expected backend ledger.primary, got backend ledger.replica",
        "the connection was: allow by tcp.mesh:46 allow from shop/orders, shop/billing, rule billing-reads, backend ledger.replica",
        // The path-conditioned deny does not apply to the tcp port.
        "expected deny, got allow by tcp.mesh:52 allow from shop/orders",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    insta::assert_snapshot!("test-failures-tcp", stdout);
}

#[test]
fn explain_a_connection_routed_by_its_caller() {
    let out = explain(&["--from", "billing", "--to", "ledger", "--connect", "5432"]);
    insta::assert_snapshot!("explain-connect-billing-ledger", out);
    let json = explain_json(&["--from", "orders", "--to", "ledger", "--connect", "5432"]);
    assert_eq!(json["connection"]["port"], 5432);
    assert_eq!(json["route"]["rule"], "default");
    assert_eq!(
        json["route"]["rules"][0]["status"], "did not match",
        "{json:#}"
    );
    assert_eq!(json["route"]["rules"][1]["name"], "default");
    assert_eq!(
        json["route"]["backends"][0]["backend"],
        "shop/ledger.primary"
    );
    assert_eq!(json["route"]["backends"][0]["weight"], "90%");
    assert_eq!(json["route"]["backends"][1]["weight"], "10%");
    assert_eq!(json["route"]["connect_timeout_us"], 1_000_000);
    assert_eq!(json["route"]["idle_timeout_us"], 1_800_000_000u64);
    assert_eq!(json["authorization"]["decision"], "allow");
}

#[test]
fn on_a_mixed_service_l7_rules_apply_to_http_only_and_ports_narrow_allows() {
    // orders: allowed on both ports, denied on /admin over HTTP only.
    let json = explain_json(&["--from", "orders", "--to", "warehouse", "--connect", "9000"]);
    assert_eq!(json["authorization"]["decision"], "allow", "{json:#}");
    assert_eq!(
        json["route"]["rules"][0]["status"],
        "HTTP only (reads the request)"
    );
    assert_eq!(json["route"]["rule"], Value::Null);
    assert_eq!(json["route"]["backends"][0]["backend"], "shop/warehouse");
    let json = explain_json(&["--from", "orders", "--to", "warehouse", "GET", "/admin/x"]);
    assert_eq!(json["authorization"]["decision"], "deny");
    // billing: its allow names port 9000, so HTTP on 8080 is refused.
    let json = explain_json(&[
        "--from",
        "billing",
        "--to",
        "warehouse",
        "--connect",
        "9000",
    ]);
    assert_eq!(json["authorization"]["decision"], "allow");
    let json = explain_json(&["--from", "billing", "--to", "warehouse", "GET", "/api/x"]);
    assert_eq!(json["authorization"]["decision"], "deny");
    assert_eq!(json["route"]["rule"], "api");
}

#[test]
fn explain_refuses_ports_that_are_not_tcp_ports_of_the_callee() {
    for (port, message) in [
        ("8080", "port 8080 of shop/warehouse is not a tcp port"),
        (
            "5433",
            "shop/warehouse has no port 5433 (its ports: 8080, 9000)",
        ),
    ] {
        let output = run_meshc(
            &[
                "explain",
                FIXTURE,
                "--from",
                "orders",
                "--to",
                "warehouse",
                "--connect",
                port,
            ],
            &root(),
        );
        assert_eq!(output.status.code(), Some(2));
        assert!(
            text(&output.stderr).contains(message),
            "{}",
            text(&output.stderr)
        );
    }
    // `--connect` replaces METHOD PATH.
    let output = run_meshc(
        &[
            "explain",
            FIXTURE,
            "--from",
            "orders",
            "--to",
            "warehouse",
            "--connect",
            "9000",
            "GET",
            "/",
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(2));
}
