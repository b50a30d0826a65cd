//! `meshc diff`, through the real binary on copies of `examples/bookinfo` with hand-made
//! edits: each edit's changes are computed by hand here (which workload, which caller,
//! widened or narrowed, which route aspects, how many request classes, the example
//! request) and compared with the JSON report; the human report of one edit is compared
//! whole. Also: a reformatted copy is "no change" (exit 0), `--git REV` in a temporary
//! repository, `--deny widen`, inputs that cannot be compared (exit 2), and a generated
//! 2,000-service mesh where one policy changes.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;
use std::process::{Command, Output};

use mesh_test_support::{run_meshc, synthetic, text, workspace_root};
use serde_json::{Value, json};

/// The example's text.
fn bookinfo() -> String {
    std::fs::read_to_string(workspace_root().join("examples/bookinfo/bookinfo.mesh")).unwrap()
}

/// `text` with `from` replaced by `to`; `from` must occur once.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
    text.replace(from, to)
}

/// Writes `old` and `new` as `old/bookinfo.mesh` and `new/bookinfo.mesh` in `dir`.
fn write_pair(dir: &Path, old: &str, new: &str) {
    for (side, source) in [("old", old), ("new", new)] {
        std::fs::create_dir_all(dir.join(side)).unwrap();
        std::fs::write(dir.join(side).join("bookinfo.mesh"), source).unwrap();
    }
}

/// `meshc diff old new ARGS...` on the example and its edited copy.
fn diff(new: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), &bookinfo(), new);
    let mut all = vec!["diff", "old", "new"];
    all.extend_from_slice(args);
    run_meshc(&all, dir.path())
}

/// The JSON report of an edit, which must exit 1 (something changed).
fn diff_json(new: &str) -> Value {
    let output = diff(new, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The workloads of a JSON report, by name, with only the fields these tests compare.
fn summary(report: &Value) -> Value {
    let workloads = report["workloads"].as_array().unwrap();
    Value::Array(
        workloads
            .iter()
            .map(|w| {
                json!({
                    "workload": w["workload"],
                    "presence": w["presence"],
                    "decisions": w["decisions"].as_array().unwrap().iter().map(|d| json!({
                        "direction": d["direction"],
                        "caller": d["caller"],
                        "classes": d["classes"],
                        "example": example(&d["examples"][0]),
                    })).collect::<Vec<_>>(),
                    "routes": w["routes"].as_array().unwrap().iter().map(|r| json!({
                        "aspects": r["aspects"],
                        "old_rule": r["old"]["rule"],
                        "new_rule": r["new"]["rule"],
                        "classes": r["classes"],
                        "example": example(&r["examples"][0]),
                    })).collect::<Vec<_>>(),
                    "gained_access": w["gained_access"],
                    "lost_access": w["lost_access"],
                })
            })
            .collect(),
    )
}

/// `GET / [name: value, ...]`.
fn example(e: &Value) -> String {
    let headers: Vec<String> = e["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}: {}", h[0].as_str().unwrap(), h[1].as_str().unwrap()))
        .collect();
    format!(
        "{} {} [{}]",
        e["method"].as_str().unwrap(),
        e["path"].as_str().unwrap_or("-"),
        headers.join(", ")
    )
}

const RATINGS_POLICY: &str = "  policy ratings {
    allow from reviews {
      methods [GET]
    }
  }";

#[test]
fn a_new_allow_widens_access_for_its_caller_only() {
    let new = edit(
        &bookinfo(),
        RATINGS_POLICY,
        "  policy ratings {
    allow from reviews {
      methods [GET]
    }
    allow from details {
      methods [GET]
    }
  }",
    );
    let report = diff_json(&new);
    // ratings' policies name GET: methods fall in two classes (GET, the rest); callers in
    // four (reviews, details, an identity no policy names, anonymous). Only details' GET
    // changes.
    assert_eq!(
        summary(&report),
        json!([{
            "workload": "bookinfo/ratings",
            "presence": "both",
            "decisions": [{"direction": "widened", "caller": "bookinfo/details", "classes": 1, "example": "GET / []"}],
            "routes": [],
            "gained_access": ["bookinfo/details"],
            "lost_access": [],
        }])
    );
    let decision = &report["workloads"][0]["decisions"][0];
    assert_eq!(decision["identity"], "bookinfo/details");
    assert_eq!(decision["old_policies"], json!([]));
    assert_eq!(
        decision["new_policies"].as_array().unwrap().len(),
        1,
        "{decision}"
    );
    assert!(
        decision["new_policies"][0]
            .as_str()
            .unwrap()
            .ends_with("allow from bookinfo/details"),
        "{decision}"
    );
    let coverage = &report["workloads"][0]["coverage"];
    assert_eq!(coverage["authz_checked"], coverage["authz_total"]);

    // The human report, whole.
    let output = diff(&new, &[]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let policy = decision["new_policies"][0].as_str().unwrap();
    assert_eq!(
        stdout,
        format!(
            "bookinfo/ratings  1 decision widened, 0 narrowed\n\
             \n\
             bookinfo/ratings:\n  \
             DENY→ALLOW  GET / from bookinfo/details\n              \
             was: no policy; now: {policy}\n  \
             gains access: bookinfo/details\n\
             \n\
             1 workload changed: 1 decision widened, 0 narrowed, 0 route changes\n"
        )
    );
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn a_path_restriction_narrows_access_outside_its_paths() {
    let new = edit(
        &bookinfo(),
        "  policy details {
    allow from productpage {
      methods [GET]
    }",
        "  policy details {
    allow from productpage {
      methods [GET]
      paths [\"/details/*\"]
    }",
    );
    // Paths fall in two classes (under /details/ or not); productpage's GET outside
    // /details/ is refused now, and it keeps access below /details/.
    assert_eq!(
        summary(&diff_json(&new)),
        json!([{
            "workload": "bookinfo/details",
            "presence": "both",
            "decisions": [{"direction": "narrowed", "caller": "bookinfo/productpage", "classes": 1, "example": "GET / []"}],
            "routes": [],
            "gained_access": [],
            "lost_access": [],
        }])
    );
}

#[test]
fn shifted_weights_change_the_backends_of_the_shift_rule_only() {
    let new = edit(
        &bookinfo(),
        "        reviews.v1 50%
        reviews.v3 50%",
        "        reviews.v1 90%
        reviews.v3 10%",
    );
    let report = diff_json(&new);
    // `end-user` is absent, another value or `jason`: the first two take rule shift.
    assert_eq!(
        summary(&report),
        json!([{
            "workload": "bookinfo/reviews",
            "presence": "both",
            "decisions": [],
            "routes": [{"aspects": ["backends"], "old_rule": "shift", "new_rule": "shift", "classes": 2, "example": "GET / []"}],
            "gained_access": [],
            "lost_access": [],
        }])
    );
    let route = &report["workloads"][0]["routes"][0];
    assert_eq!(
        route["old"]["backends"],
        json!([
            ["bookinfo/reviews.v1", 50000],
            ["bookinfo/reviews.v3", 50000]
        ])
    );
    assert_eq!(
        route["new"]["backends"],
        json!([
            ["bookinfo/reviews.v1", 90000],
            ["bookinfo/reviews.v3", 10000]
        ])
    );
    assert_eq!(route["caller"], Value::Null);
}

#[test]
fn a_longer_timeout_changes_every_rule_of_the_route() {
    let new = edit(&bookinfo(), "    timeout 500ms\n", "    timeout 1s\n");
    let report = diff_json(&new);
    assert_eq!(
        summary(&report),
        json!([{
            "workload": "bookinfo/reviews",
            "presence": "both",
            "decisions": [],
            "routes": [
                {"aspects": ["timeout"], "old_rule": "shift", "new_rule": "shift", "classes": 2, "example": "GET / []"},
                {"aspects": ["timeout"], "old_rule": "jason", "new_rule": "jason", "classes": 1, "example": "GET / [end-user: jason]"},
            ],
            "gained_access": [],
            "lost_access": [],
        }])
    );
    assert_eq!(
        report["workloads"][0]["routes"][0]["old"]["timeout_us"],
        500_000
    );
    assert_eq!(
        report["workloads"][0]["routes"][0]["new"]["timeout_us"],
        1_000_000
    );
}

#[test]
fn a_header_rule_takes_the_requests_that_carry_the_header() {
    let new = edit(
        &bookinfo(),
        "    rule shift {",
        "    rule tester when header(\"x-tester\") == \"yes\" {
      to reviews.v3
    }
    rule shift {",
    );
    // jason's requests still match rule jason first; of the rest, those with
    // `x-tester: yes` (end-user absent or another value: 2 classes) go to v3 now.
    assert_eq!(
        summary(&diff_json(&new)),
        json!([{
            "workload": "bookinfo/reviews",
            "presence": "both",
            "decisions": [],
            "routes": [{"aspects": ["rule", "backends"], "old_rule": "shift", "new_rule": "tester", "classes": 2, "example": "GET / [x-tester: yes]"}],
            "gained_access": [],
            "lost_access": [],
        }])
    );
}

#[test]
fn a_reformatted_mesh_is_no_change() {
    let reformatted = format!(
        "// the same mesh, laid out differently\n\n{}",
        bookinfo()
            .replace("\n  ", "\n      ")
            .replace(" {\n", "   {\n\n")
    );
    let output = diff(&reformatted, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "no change\n");
    let output = diff(&reformatted, &["--format", "json"]);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report, json!({"workloads": []}));
}

#[test]
fn deny_widen_fails_only_when_access_widens() {
    let widened = edit(
        &bookinfo(),
        RATINGS_POLICY,
        "  policy ratings {\n    allow from reviews, productpage\n  }",
    );
    let output = diff(&widened, &["--deny", "widen"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("error: the new version widens access"),
        "{}",
        text(&output.stderr)
    );
    let narrowed = edit(
        &bookinfo(),
        RATINGS_POLICY,
        "  policy ratings {\n    allow from reviews {\n      methods [GET]\n      paths [\"/ratings/*\"]\n    }\n  }",
    );
    let output = diff(&narrowed, &["--deny", "widen"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("ALLOW→DENY"));
    // Without --deny, any change fails.
    assert_eq!(diff(&narrowed, &[]).status.code(), Some(1));
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        text(&status.stderr)
    );
}

#[test]
fn git_compares_a_path_with_its_version_at_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::create_dir_all(repo.join("mesh")).unwrap();
    std::fs::write(repo.join("mesh/bookinfo.mesh"), bookinfo()).unwrap();
    git(repo, &["init", "-q"]);
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "bookinfo"]);

    let output = run_meshc(&["diff", "--git", "HEAD", "mesh"], repo);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "no change\n");

    let widened = edit(
        &bookinfo(),
        RATINGS_POLICY,
        "  policy ratings {\n    allow from reviews, productpage {\n      methods [GET]\n    }\n  }",
    );
    std::fs::write(repo.join("mesh/bookinfo.mesh"), widened).unwrap();
    let output = run_meshc(&["diff", "--git", "HEAD", "mesh", "--format", "json"], repo);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let summary = summary(&report);
    assert_eq!(summary[0]["workload"], "bookinfo/ratings");
    assert_eq!(
        summary[0]["decisions"],
        json!([{"direction": "widened", "caller": "bookinfo/productpage", "classes": 1, "example": "GET / []"}])
    );

    let output = run_meshc(&["diff", "--git", "no-such-rev", "mesh"], repo);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("`no-such-rev` is not a revision"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn inputs_that_cannot_be_compared_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let broken = edit(&bookinfo(), "allow from reviews {", "allow from reveiws {");
    write_pair(dir.path(), &bookinfo(), &broken);
    let output = run_meshc(&["diff", "old", "new"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("E0002"), "{stderr}");
    assert!(
        stderr.contains("error: the new version (new) has errors: nothing compared"),
        "{stderr}"
    );
    assert_eq!(text(&output.stdout), "");

    let output = run_meshc(&["diff", "old", "missing"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).starts_with("error: the new version (missing): "),
        "{}",
        text(&output.stderr)
    );

    let output = run_meshc(&["diff", "old"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("give two paths"));

    // Outside a repository (the temporary directory is not in one).
    let output = run_meshc(&["diff", "--git", "HEAD", "old"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--git needs a git repository"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_large_mesh_reports_the_one_workload_that_changed() {
    let old = synthetic::generate(2_000);
    // Let ns-3/svc-8 DELETE under /api/ on ns-3/svc-7 as well.
    let at = old.find("namespace ns-3 {").unwrap();
    let (head, tail) = old.split_at(at);
    let new = format!(
        "{head}{}",
        tail.replacen(
            "allow from svc-8 {\n      methods [GET, POST]",
            "allow from svc-8 {\n      methods [GET, POST, DELETE]",
            1
        )
    );
    assert_ne!(new, old);
    let dir = tempfile::tempdir().unwrap();
    for (side, source) in [("old", &old), ("new", &new)] {
        std::fs::create_dir_all(dir.path().join(side)).unwrap();
        std::fs::write(dir.path().join(side).join("big.mesh"), source).unwrap();
    }
    let output = run_meshc(&["diff", "old", "new", "--format", "json"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // Methods: GET/POST, DELETE, the other standard ones, and non-standard ones; paths:
    // below /api/, below /admin (denied to all) and the rest. Only DELETE below /api/
    // from svc-8 changes.
    assert_eq!(
        summary(&report),
        json!([{
            "workload": "ns-3/svc-7",
            "presence": "both",
            "decisions": [{"direction": "widened", "caller": "ns-3/svc-8", "classes": 1, "example": "DELETE /api/ []"}],
            "routes": [],
            "gained_access": [],
            "lost_access": [],
        }])
    );
}

#[test]
fn opaque_tcp_connections_are_compared_per_port() {
    let new = edit(
        &bookinfo(),
        "    allow from ratings {\n      ports [27017]",
        "    allow from ratings, reviews {\n      ports [27017]",
    );
    // mongodb has one tcp port and no HTTP one: the change is reviews' connections.
    assert_eq!(
        summary(&diff_json(&new)),
        json!([{
            "workload": "bookinfo/mongodb",
            "presence": "both",
            "decisions": [{"direction": "widened", "caller": "bookinfo/reviews", "classes": 1, "example": "TCP - []"}],
            "routes": [],
            "gained_access": ["bookinfo/reviews"],
            "lost_access": [],
        }])
    );
}
