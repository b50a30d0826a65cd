//! `meshc test`, through the real binary: the examples' tests pass (exit 0, each test
//! listed); deliberately wrong expectations fail (exit 1) with a report at each
//! expectation's span showing expected against actual — decision with the deciding policy
//! ids, rule, backend, timeout, retries — snapshotted; a mesh with errors runs no test.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_test_support::{run_meshc, text, workspace_root as root};

/// The frozen bookinfo fixture with `edits` (`from` → `to`, each `from` present exactly once),
/// written to a new temporary directory as `bookinfo.mesh`.
fn bookinfo_with(edits: &[(&str, &str)]) -> tempfile::TempDir {
    let mut src = std::fs::read_to_string(
        root().join("compiler/tests/fixtures/frozen-bookinfo/bookinfo.mesh"),
    )
    .unwrap();
    for (from, to) in edits {
        assert_eq!(src.matches(from).count(), 1, "`{from}` must occur once");
        src = src.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bookinfo.mesh"), src).unwrap();
    dir
}

#[test]
fn the_examples_tests_pass() {
    let output = run_meshc(&["test", "examples"], &root());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let (result, tests) = lines.split_last().unwrap();
    assert!(tests.len() >= 10, "{stdout}");
    assert!(
        tests
            .iter()
            .all(|l| l.starts_with("test ") && l.ends_with(" ... ok")),
        "{stdout}"
    );
    assert_eq!(
        *result,
        format!("test result: {} passed, 0 failed", tests.len())
    );
}

#[test]
fn the_unchanged_copy_passes_too() {
    // The control for the failing cases below: the copy itself is fine.
    let dir = bookinfo_with(&[]);
    let output = run_meshc(&["test", "bookinfo.mesh"], dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
}

#[test]
fn wrong_expectations_fail_at_their_spans_with_what_actually_happened() {
    let dir = bookinfo_with(&[
        (
            "expect allow, rule jason, backend reviews.v2",
            "expect deny, rule canary, backend reviews.v1, timeout 1s, retries 3",
        ),
        (
            "    expect deny\n  }\n",
            "    expect allow\n  }\n  test \"debug requests are refused\" {\n    request GET \"/reviews/0\" from productpage to reviews header \"x-debug\" = \"1\"\n    expect allow, backend reviews.v1 only\n  }\n",
        ),
    ]);
    let output = run_meshc(&["test", "bookinfo.mesh"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr, "");

    // What each failure must say, independently of the snapshot's layout.
    for needle in [
        "test jason is routed to v2 and allowed ... FAILED",
        "test ratings may not read reviews ... FAILED",
        "test debug requests are refused ... FAILED",
        "test result: 0 passed, 3 failed",
        // The case's span: file, line and column of the expectation.
        "╭─[bookinfo.mesh:64:12]",
        "expected deny, got allow by bookinfo.mesh:55 allow from bookinfo/productpage",
        "expected rule canary, got rule jason",
        "expected backend reviews.v1, got backend reviews.v2",
        "expected timeout 1s, got timeout 2s",
        "expected retries 3, got retries 2",
        "expected allow, got deny (no policy allows it)",
        "expected allow, got deny by bookinfo.mesh:59 deny from any",
        "expected backend reviews.v1 only, got backend reviews.v1 90%, reviews.v3 10%",
        "the request was: allow by bookinfo.mesh:55 allow from bookinfo/productpage, rule jason, backend reviews.v2",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    insta::assert_snapshot!("test-failures-bookinfo", stdout);
}

const AUDITED: &str = r#"service web { port http 8080 }
service cart {
  port http 8080
  subset v2 { version = "v2" }
}
route cart {
  rule beta when header("x-beta") == "1" { to cart.v2 }
}
policy cart {
  mode audit
  allow from web { methods [GET] }
}
test "no rule matches a plain request" {
  request GET "/" from web to cart
  expect allow, rule none, backend cart only
}
test "a beta request matches a rule" {
  request GET "/" from web to cart header "x-beta" = "1"
  expect rule none
}
test "audit denies and lets through" {
  request POST "/" from web to cart
  expect allow
}
"#;

#[test]
fn rule_none_expects_no_rule_and_audit_mode_results_say_audit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audited.mesh"), AUDITED).unwrap();
    let output = run_meshc(&["test", "audited.mesh"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    for needle in [
        "test no rule matches a plain request ... ok",
        "test a beta request matches a rule ... FAILED",
        "expected no rule, got rule beta",
        "test audit denies and lets through ... FAILED",
        "expected allow, got deny (no policy allows it) (mode audit: let through)",
        "the request was: allow by audited.mesh:11 allow from default/web (mode audit), rule beta",
        "test result: 1 passed, 2 failed",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
}

#[test]
fn a_mesh_with_errors_runs_no_test() {
    let dir = bookinfo_with(&[("allow from productpage {", "allow from productpag {")]);
    let output = run_meshc(&["test", "bookinfo.mesh"], dir.path());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "", "tests ran on a mesh with errors");
    for needle in [
        "E0002",
        "bookinfo.mesh:55:16",
        "productpage",
        "checked 1 file: 1 error",
        "error: tests not run: the mesh has errors",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
}

#[test]
fn unreadable_paths_are_trouble_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_meshc(&["test", "nowhere"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stdout), "");
    assert!(!text(&output.stderr).is_empty());
}
