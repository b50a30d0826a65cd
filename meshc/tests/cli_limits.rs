//! Rate limits, circuit breaking and outlier ejection through the real `meshc` binary
//! (LANGUAGE.md §10), on the small mesh in `tests/fixtures/limits`: `meshc test` passes
//! its `rate_limit` expectations (by name and by position), reports wrong ones at their
//! spans with the limits that actually applied (snapshotted), `meshc explain` lists the
//! limits a request counts against (human and JSON), and `meshc compile` writes
//! the limits into the contract's fields — the callee's `inbound.rate_limits` and each
//! caller's outbound `limits`/`outlier`, with Envoy's defaults for missing members.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_config::Config;
use mesh_test_support::{run_meshc, text, workspace_root as root};
use serde_json::{Value, json};

const FIXTURE: &str = "compiler/tests/fixtures/limits";

/// The fixture with `edits` (`from` → `to`, each `from` present exactly once), written to
/// a new temporary directory as `limits.mesh`.
fn fixture_with(edits: &[(&str, &str)]) -> tempfile::TempDir {
    let mut src = std::fs::read_to_string(root().join(FIXTURE).join("limits.mesh")).unwrap();
    for (from, to) in edits {
        assert_eq!(src.matches(from).count(), 1, "`{from}` must occur once");
        src = src.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("limits.mesh"), src).unwrap();
    dir
}

#[test]
fn the_fixture_is_clean_formatted_and_its_tests_pass() {
    let output = run_meshc(&["check", "--deny-warnings", FIXTURE], &root());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = run_meshc(&["fmt", "--check", FIXTURE], &root());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let output = run_meshc(&["test", FIXTURE], &root());
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        "test search limits ... ok\ntest catalog has no rate limit ... ok\ntest result: 2 passed, 0 failed\n"
    );
}

#[test]
fn wrong_rate_limit_expectations_fail_with_the_limits_that_applied() {
    let dir = fixture_with(&[
        // `GET /` counts against limit 1 only.
        (
            "    request GET \"/\" from frontend to search\n    expect allow, rate_limit 1\n",
            "    request GET \"/\" from frontend to search\n    expect allow, rate_limit queries\n",
        ),
        // The crawler's limit (3) does not apply to the frontend.
        (
            "expect allow, rate_limit 1, rate_limit queries, rate_limit 2",
            "expect allow, rate_limit queries, rate_limit 3",
        ),
        // A denied request is never rate limited.
        (
            "    request GET \"/admin\" from crawler to search\n    expect deny\n",
            "    request GET \"/admin\" from crawler to search\n    expect rate_limit 1\n",
        ),
    ]);
    let output = run_meshc(&["test", "limits.mesh"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr, "");
    for needle in [
        "test search limits ... FAILED",
        "test catalog has no rate limit ... ok",
        "test result: 1 passed, 1 failed",
        "expected rate_limit queries, got counts against rate limits 1",
        "expected rate_limit 3, got counts against rate limits 1, queries",
        "expected rate_limit 1, got deny by limits.mesh:33 deny from shop/crawler: not rate limited",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    insta::assert_snapshot!("test-failures-limits", stdout);
}

#[test]
fn an_unknown_limit_is_an_error_with_a_suggestion() {
    let dir = fixture_with(&[(
        "expect allow, rate_limit queries, rate_limit 3",
        "expect allow, rate_limit querys, rate_limit 4",
    )]);
    let output = run_meshc(&["check", "--format", "json", "limits.mesh"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let found: Value = serde_json::from_str(&stdout).unwrap();
    let diagnostics = found["diagnostics"].as_array().unwrap();
    let codes: Vec<&str> = diagnostics
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["E0002", "E0002"], "{stdout}");
    assert_eq!(diagnostics[0]["help"], "did you mean `queries`?");
    assert_eq!(
        diagnostics[1]["message"],
        "the policy of `search` has no rate limit `4`"
    );
}

#[test]
fn compile_writes_the_limits_into_the_contract() {
    let out = tempfile::tempdir().unwrap();
    let output = run_meshc(
        &["compile", FIXTURE, "-o", out.path().to_str().unwrap()],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let read = |name: &str| -> Value {
        let bytes = std::fs::read(out.path().join("shop").join(name)).unwrap();
        // What the agent loads: the loader refuses zero rates, bursts and limits.
        Config::from_json(&bytes).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let search = read("search.json");
    assert_eq!(
        search["inbound"]["rate_limits"],
        json!([
            { "name": "1", "requests": 100, "period_us": 1_000_000, "burst": 200,
              "per_caller": false, "when": null },
            { "name": "queries", "requests": 10, "period_us": 1_000_000, "burst": 10,
              "per_caller": true,
              "when": { "text": { "attr": "path", "op": "starts_with", "value": "/search" } } },
            { "name": "3", "requests": 30, "period_us": 60_000_000, "burst": 1,
              "per_caller": false,
              "when": { "source": { "services": ["shop/crawler"], "negated": false } } }
        ])
    );
    let frontend = read("frontend.json");
    let services = frontend["outbound"]["services"].as_array().unwrap();
    let catalog = services
        .iter()
        .find(|s| s["service"] == "shop/catalog")
        .unwrap();
    assert_eq!(
        catalog["limits"],
        json!({ "max_connections": 100, "max_pending": 50, "max_requests": 200 })
    );
    // interval and base_ejection are not written: Envoy's 10 s and 30 s.
    assert_eq!(
        catalog["outlier"],
        json!({ "consecutive_5xx": 3, "interval_us": 10_000_000,
                "base_ejection_us": 30_000_000, "max_ejected_milli": 50_000 })
    );
    let search_entry = services
        .iter()
        .find(|s| s["service"] == "shop/search")
        .unwrap();
    assert!(search_entry.get("limits").is_none() && search_entry.get("outlier").is_none());
    // A service without rate limits writes none.
    assert!(read("catalog.json")["inbound"].get("rate_limits").is_none());
}

#[test]
fn explain_names_the_rate_limits_a_request_counts_against() {
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", FIXTURE];
        all.extend_from_slice(args);
        let output = run_meshc(&all, &root());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let human = explain(&["--from", "crawler", "--to", "search", "GET", "/search"]);
    assert!(
        human.ends_with(
            "rate limits (shop/search):\n  1: 100/s, burst 200, all callers together\n  queries: 10/s, burst 10, per caller\n  3: 30/m, burst 1, all callers together\n"
        ),
        "{human}"
    );
    let denied = explain(&["--from", "crawler", "--to", "search", "GET", "/admin"]);
    assert!(
        denied.ends_with("  none: only allowed requests are rate limited\n"),
        "{denied}"
    );
    let json: Value = serde_json::from_str(&explain(&[
        "--from", "frontend", "--to", "search", "GET", "/search", "--format", "json",
    ]))
    .unwrap();
    let names: Vec<&str> = json["rate_limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["1", "queries"]);
    // A callee without limits explains as before: no `rate_limits` key.
    let json: Value = serde_json::from_str(&explain(&[
        "--from", "frontend", "--to", "catalog", "GET", "/", "--format", "json",
    ]))
    .unwrap();
    assert!(json.get("rate_limits").is_none(), "{json:#}");
}

#[test]
fn audit_mode_keeps_the_limits() {
    let dir = fixture_with(&[(
        "    allow from frontend, crawler\n",
        "    mode audit\n    allow from frontend, crawler\n",
    )]);
    let out = tempfile::tempdir().unwrap();
    let output = run_meshc(
        &["compile", "limits.mesh", "-o", out.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let bytes = std::fs::read(out.path().join("shop/search.json")).unwrap();
    let search: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(search["inbound"]["authz"]["mode"], "audit");
    assert_eq!(
        search["inbound"]["rate_limits"].as_array().unwrap().len(),
        3
    );
}

/// `source` in a rate limit's condition is decided by the callee's agent from the
/// caller's certificate (namespace and service account): a caller with its own
/// `identity` is still the service the condition names.
#[test]
fn a_source_condition_names_callers_with_their_own_identity() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.mesh"),
        r#"namespace shop {
  service web {
    port http 8080
    identity "web-sa"
  }
  service api {
    port http 8080
  }
  service search {
    port http 8080
  }
  policy search {
    allow from web, api
    rate_limit browsers 5/s when source == web
  }
  test "only web's calls count against browsers" {
    request GET "/q" from web to search
    expect allow, rate_limit browsers
    request GET "/q" from api to search
    expect allow
  }
}
"#,
    )
    .unwrap();
    let output = run_meshc(&["test", "mesh.mesh"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    // And the compiled condition names web as its certificate does.
    let out = dir.path().join("out");
    let output = run_meshc(
        &["compile", "mesh.mesh", "-o", out.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(0));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("shop/search.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["inbound"]["rate_limits"][0]["when"]["source"]["services"],
        serde_json::json!(["shop/web-sa"])
    );
}
