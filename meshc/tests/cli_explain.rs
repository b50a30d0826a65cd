//! `meshc explain`, through the real binary on the bookinfo example: the human report
//! (snapshotted) and the JSON report (asserted field by field: the matched rule and the
//! earlier rules that did not match, backends and weights, timeout, retry, the verdict and
//! the deciding policy ids with their source locations) for allowed and denied requests,
//! a header that changes the matched rule, a request no rule matches, and bad input
//! (unknown services, malformed headers and paths) refused with a clear error and exit 2.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::process::Command;

use mesh_test_support::{run_meshc, workspace_root as root};
use serde_json::{Value, json};

/// The mesh the tests ask about: a frozen copy of an earlier bookinfo example, so the
/// examples can change without rewriting these expectations.
const FIXTURE: &str = "compiler/tests/fixtures/frozen-bookinfo";

/// `meshc explain FIXTURE ARGS...`, which must succeed; its stdout.
fn explain(args: &[&str]) -> String {
    let mut all = vec!["explain", FIXTURE];
    all.extend_from_slice(args);
    let output = run_meshc(&all, &root());
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stderr, "");
    stdout
}

/// `meshc explain FIXTURE ARGS... --format json`, parsed.
fn explain_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    serde_json::from_str(&explain(&all)).unwrap()
}

const ALLOW_PRODUCTPAGE: &str =
    "compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh:55 allow from bookinfo/productpage";
const DENY_DEBUG: &str = "compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh:59 deny from any";

#[test]
fn human_report_of_an_allowed_request() {
    let out = explain(&[
        "--from",
        "productpage",
        "--to",
        "reviews",
        "GET",
        "/reviews/1",
        "-H",
        "end-user: jason",
    ]);
    assert!(out.contains("rule jason: matched"), "{out}");
    assert!(
        out.contains(&format!("ALLOW — allowed by policy {ALLOW_PRODUCTPAGE}")),
        "{out}"
    );
    insta::assert_snapshot!("explain-allowed-jason", out);
}

#[test]
fn human_report_of_a_denied_request() {
    let out = explain(&[
        "--from",
        "bookinfo/ratings",
        "--to",
        "bookinfo/reviews",
        "GET",
        "/reviews/1",
    ]);
    assert!(out.contains("rule jason: did not match"), "{out}");
    assert!(out.contains("rule canary: matched"), "{out}");
    assert!(
        out.contains("DENY — no policy allows this request"),
        "{out}"
    );
    insta::assert_snapshot!("explain-denied-ratings", out);
}

#[test]
fn json_report_of_an_allowed_request_through_the_canary_split() {
    let v = explain_json(&[
        "--from",
        "productpage",
        "--to",
        "reviews",
        "GET",
        "/reviews/1?page=2",
    ]);
    assert_eq!(
        v["request"],
        json!({"method": "GET", "path": "/reviews/1?page=2", "from": "bookinfo/productpage",
               "to": "bookinfo/reviews", "headers": []})
    );
    let route = &v["route"];
    assert_eq!(route["rule"], "canary");
    // The earlier rule is listed with its condition and why it was passed over.
    assert_eq!(
        route["rules"],
        json!([
            {"name": "jason", "when": "header(\"end-user\") == \"jason\"", "matched": false, "status": "did not match"},
            {"name": "canary", "when": "path starts_with \"/reviews\"", "matched": true, "status": "matched"},
        ])
    );
    assert_eq!(
        route["backends"],
        json!([
            {"backend": "bookinfo/reviews.v1", "weight": "90%"},
            {"backend": "bookinfo/reviews.v3", "weight": "10%"},
        ])
    );
    assert_eq!(route["timeout_us"], 2_000_000);
    assert_eq!(
        route["retry"],
        json!({"profile": "careful", "attempts": 3, "per_try_timeout_us": 250_000})
    );
    assert_eq!(
        v["authorization"],
        json!({
            "decision": "allow",
            "enforced": true,
            "allowed": true,
            "policies": [ALLOW_PRODUCTPAGE],
            "reason": format!("allowed by policy {ALLOW_PRODUCTPAGE}"),
        })
    );
}

#[test]
fn json_report_of_requests_denied_by_a_deny_and_by_no_allow() {
    // A deny overrides the allow that would let productpage in; it names itself.
    let v = explain_json(&[
        "--from",
        "productpage",
        "--to",
        "reviews",
        "GET",
        "/reviews/1",
        "-H",
        "X-Debug: 1",
    ]);
    assert_eq!(v["request"]["headers"], json!([["x-debug", "1"]]));
    assert_eq!(
        v["authorization"],
        json!({
            "decision": "deny",
            "enforced": true,
            "allowed": false,
            "policies": [DENY_DEBUG],
            "reason": format!("denied by policy {DENY_DEBUG}"),
        })
    );
    // The route is reported all the same.
    assert_eq!(v["route"]["rule"], "canary");

    // A method the allow does not list: nothing allows it, no policy is named.
    let v = explain_json(&[
        "--from",
        "productpage",
        "--to",
        "reviews",
        "POST",
        "/reviews/1",
    ]);
    assert_eq!(v["authorization"]["decision"], "deny");
    assert_eq!(v["authorization"]["policies"], json!([]));
    assert_eq!(
        v["authorization"]["reason"],
        "no policy allows this request"
    );

    // A service without a policy gets the mesh's default.
    let v = explain_json(&["--from", "reviews", "--to", "details", "GET", "/"]);
    assert_eq!(v["authorization"]["decision"], "deny");
    assert_eq!(
        v["authorization"]["policies"],
        json!(["default_policy deny"])
    );
    assert_eq!(v["route"]["rules"], json!([]));
    assert_eq!(v["route"]["rule"], Value::Null);
    assert_eq!(
        v["route"]["backends"],
        json!([{"backend": "bookinfo/details", "weight": "100%"}])
    );
    assert_eq!(v["route"]["timeout_us"], Value::Null);
    assert_eq!(v["route"]["retry"], Value::Null);
}

#[test]
fn a_header_changes_the_matched_rule() {
    let args = [
        "--from",
        "productpage",
        "--to",
        "reviews",
        "GET",
        "/reviews/1",
    ];
    let without = explain_json(&args);
    let mut with_header = args.to_vec();
    with_header.extend(["-H", "end-user: jason"]);
    let with = explain_json(&with_header);
    assert_eq!(without["route"]["rule"], "canary");
    assert_eq!(with["route"]["rule"], "jason");
    // Once a rule matches, later rules are not tried and not listed.
    assert_eq!(
        with["route"]["rules"],
        json!([{"name": "jason", "when": "header(\"end-user\") == \"jason\"", "matched": true, "status": "matched"}])
    );
    assert_eq!(
        with["route"]["backends"],
        json!([{"backend": "bookinfo/reviews.v2", "weight": "100%"}])
    );
    // The value must match exactly.
    let mut other = args.to_vec();
    other.extend(["-H", "end-user: jasonx"]);
    assert_eq!(explain_json(&other)["route"]["rule"], "canary");
}

#[test]
fn a_request_no_rule_matches_goes_to_the_whole_service() {
    let v = explain_json(&["--from", "productpage", "--to", "reviews", "GET", "/other"]);
    assert_eq!(v["route"]["rule"], Value::Null);
    let statuses: Vec<&Value> = v["route"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["matched"])
        .collect();
    assert_eq!(statuses, [&json!(false), &json!(false)]);
    assert_eq!(
        v["route"]["backends"],
        json!([{"backend": "bookinfo/reviews", "weight": "100%"}])
    );
    // The route's timeout and retry still apply.
    assert_eq!(v["route"]["timeout_us"], 2_000_000);
    assert_eq!(v["route"]["retry"]["attempts"], 3);
    // /other is outside the allow's paths.
    assert_eq!(v["authorization"]["decision"], "deny");

    let human = explain(&["--from", "productpage", "--to", "reviews", "GET", "/other"]);
    assert!(
        human.contains("no rule matched: the request goes to the whole service"),
        "{human}"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let cases: [(&[&str], &str); 9] = [
        (
            &["--from", "nobody", "--to", "reviews", "GET", "/"],
            "error: no service `nobody` in this mesh\n",
        ),
        (
            &["--from", "productpage", "--to", "reveiws", "GET", "/"],
            "error: no service `reveiws` in this mesh; did you mean `reviews`?\n",
        ),
        (
            &["--from", "prodcutpage", "--to", "reviews", "GET", "/"],
            "error: no service `prodcutpage` in this mesh; did you mean `productpage`?\n",
        ),
        (
            &["--from", "productpage", "--to", "reviews", "GTE", "/"],
            "error: `GTE` is not an HTTP method: did you mean `GET`?\n",
        ),
        (
            &["--from", "productpage", "--to", "reviews", "BREW", "/"],
            "error: `BREW` is not an HTTP method: methods are GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE\n",
        ),
        (
            &[
                "--from",
                "productpage",
                "--to",
                "reviews",
                "GET",
                "/",
                "-H",
                "end-user=jason",
            ],
            "error: header `end-user=jason` is not `Name: value`",
        ),
        (
            &[
                "--from",
                "productpage",
                "--to",
                "reviews",
                "GET",
                "/",
                "-H",
                ": jason",
            ],
            "error: header `: jason` is not `Name: value`",
        ),
        (
            &[
                "--from",
                "productpage",
                "--to",
                "reviews",
                "GET",
                "/",
                "-H",
                "end user: jason",
            ],
            "error: header `end user: jason` is not `Name: value`",
        ),
        (
            &[
                "--from",
                "productpage",
                "--to",
                "reviews",
                "GET",
                "reviews/1",
            ],
            "error: path `reviews/1` must start with `/`",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["explain", FIXTURE];
        all.extend_from_slice(args);
        let output = run_meshc(&all, &root());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed a report");
    }

    // Missing arguments are usage errors too.
    let output = run_meshc(
        &["explain", FIXTURE, "--from", "productpage", "GET", "/"],
        &root(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--to"));
}

#[test]
fn a_mesh_with_errors_is_reported_not_explained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.mesh"),
        "service cart { port 80 }\npolicy cart { allow from nobody }\n",
    )
    .unwrap();
    let output = Command::new(mesh_test_support::meshc())
        .args([
            "explain",
            "broken.mesh",
            "--from",
            "cart",
            "--to",
            "cart",
            "GET",
            "/",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("E0002"));
}
