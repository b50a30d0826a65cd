//! Gateways and telemetry through the real `meshc` binary (LANGUAGE.md §10), on the
//! fixture `compiler/tests/fixtures/gateway` (the reference's examples as written, and the
//! services they route to): `meshc check` finds nothing, `meshc test` runs cases from the
//! gateway and into it, and `meshc compile` writes a gateway config the agent's loader
//! accepts, with absolute certificate paths, listed in `index.json`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::Config;
use mesh_test_support::{run_meshc, text, workspace_root as root};
use serde_json::Value;

const FIXTURE: &str = "compiler/tests/fixtures/gateway";

#[test]
fn the_fixture_checks_clean_and_its_tests_pass() {
    let output = run_meshc(&["check", "--deny-warnings", FIXTURE], &root());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = run_meshc(&["test", FIXTURE], &root());
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.ends_with("test result: 3 passed, 0 failed\n"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_gateway_expectation_fails_with_what_the_gateway_did() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(root().join(FIXTURE).join("services.mesh")).unwrap();
    let src = src.replacen(
        "header \"host\" = \"other.example.com\"\n    expect deny",
        "header \"host\" = \"other.example.com\"\n    expect allow",
        1,
    );
    std::fs::write(dir.path().join("services.mesh"), src).unwrap();
    let spec = std::fs::read_to_string(root().join(FIXTURE).join("spec.mesh")).unwrap();
    std::fs::write(dir.path().join("spec.mesh"), spec).unwrap();
    let output = run_meshc(&["test", "."], dir.path());
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("test requests from outside enter the gateway ... FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("404 (no host entry serves \"other.example.com\")"),
        "{stdout}"
    );
}

#[test]
fn compile_writes_the_gateway_config_and_lists_it() {
    let out = tempfile::tempdir().unwrap();
    let output = run_meshc(
        &["compile", FIXTURE, "-o", out.path().to_str().unwrap()],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).starts_with("compiled 3 workloads and 1 gateway into "),
        "{}",
        text(&output.stderr)
    );
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("index.json")).unwrap())
            .unwrap();
    let gateways = index["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0]["gateway"], "default/public");
    assert_eq!(
        gateways[0]["identity"],
        "spiffe://cluster.local/ns/default/sa/ingress"
    );
    assert_eq!(gateways[0]["listeners"], serde_json::json!([8443]));
    let bytes = std::fs::read(out.path().join("default/public.json")).unwrap();
    assert_eq!(gateways[0]["bytes"], bytes.len());
    let config = Config::from_json(&bytes).unwrap();
    let gateway = config.gateway().unwrap();
    let tls = gateway.listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        std::path::PathBuf::from(&tls.cert),
        root().join(FIXTURE).join("certs/public.pem")
    );
    // Services' configs carry the mesh's telemetry.
    let frontend: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("shop/frontend.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(frontend["mesh"]["telemetry"]["tracing_milli"], 10_000);
    assert_eq!(frontend["mesh"]["telemetry"]["access_log"], "json");
}

#[test]
fn explain_asks_as_the_gateway() {
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", FIXTURE];
        all.extend_from_slice(args);
        let output = run_meshc(&all, &root());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let allowed = explain(&[
        "--from",
        "gateway/public",
        "--to",
        "shop/catalog",
        "GET",
        "/items",
    ]);
    assert!(
        allowed.starts_with("GET /items from default/public to shop/catalog"),
        "{allowed}"
    );
    assert!(allowed.contains("ALLOW"), "{allowed}");
    let denied: Value = serde_json::from_str(&explain(&[
        "--from",
        "default/public",
        "--to",
        "shop/catalog",
        "POST",
        "/items",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(denied["request"]["from"], "default/public");
    assert_eq!(denied["authorization"]["decision"], "deny");
}
