//! `meshc import` driven as a user would: each fixture under `import/tests/fixtures/`
//! (Istio's bookinfo tasks, Gateway API GAMMA routes) is imported by the real binary, the
//! result is format-checked, checked, and run with the fixture's `tests.mesh`, which
//! asserts the behaviour the API documents. Then the diagnostics: malformed YAML,
//! unknown kinds, and each family of what cannot be expressed.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mesh_test_support::{meshc, run_meshc, stderr, workspace_root};

fn fixtures() -> PathBuf {
    workspace_root().join("import/tests/fixtures")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Imports `inputs` (relative to the fixtures) with `meshc import -o`, then checks and
/// tests the result beside the fixture `name`'s `tests.mesh`; returns the imported text.
fn import_check_and_test(name: &str, inputs: &[&str]) -> String {
    import_into(&tempfile::tempdir().unwrap(), name, inputs)
}

/// [`import_check_and_test`] in `dir`, which keeps the mesh for more commands.
fn import_into(dir: &tempfile::TempDir, name: &str, inputs: &[&str]) -> String {
    let out = dir.path().join("imported.mesh");
    let mut args = vec!["import"];
    args.extend(inputs);
    let out_arg = out.display().to_string();
    args.extend(["-o", &out_arg]);
    let import = run_meshc(&args, &fixtures());
    assert_eq!(import.status.code(), Some(0), "{}", stderr(&import));
    assert!(stdout(&import).is_empty());
    assert!(import.stderr.is_empty(), "{}", stderr(&import));
    let imported = std::fs::read_to_string(&out).unwrap();
    std::fs::copy(
        fixtures().join(name).join("tests.mesh"),
        dir.path().join("tests.mesh"),
    )
    .unwrap();
    let fmt = run_meshc(&["fmt", "--check", "imported.mesh"], dir.path());
    assert_eq!(fmt.status.code(), Some(0), "not formatted:\n{imported}");
    let check = run_meshc(&["check", "."], dir.path());
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{imported}",
        stderr(&check)
    );
    let test = run_meshc(&["test", "."], dir.path());
    assert_eq!(
        test.status.code(),
        Some(0),
        "{}{}\n{imported}",
        stdout(&test),
        stderr(&test)
    );
    assert!(stdout(&test).contains("0 failed"), "{}", stdout(&test));
    imported
}

/// Warnings `meshc check` reports on the imported mesh and its tests.
fn warnings(dir_inputs: &[&str], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported.mesh");
    let out_arg = out.display().to_string();
    let mut args = vec!["import"];
    args.extend(dir_inputs);
    args.extend(["-o", &out_arg]);
    assert_eq!(run_meshc(&args, &fixtures()).status.code(), Some(0));
    std::fs::copy(
        fixtures().join(name).join("tests.mesh"),
        dir.path().join("tests.mesh"),
    )
    .unwrap();
    stderr(&run_meshc(&["check", "."], dir.path()))
}

const DR: &str = "destination-rule-all.yaml";

#[test]
fn bookinfo_all_v1_routes_every_service_to_v1() {
    import_check_and_test("all-v1", &[DR, "all-v1/virtual-service-all-v1.yaml"]);
}

#[test]
fn bookinfo_50_50_shift_splits_reviews_between_v1_and_v3() {
    let mesh = import_check_and_test(
        "shift-50-50",
        &[DR, "shift-50-50/virtual-service-reviews-50-v3.yaml"],
    );
    insta::assert_snapshot!("shift_50_50", mesh);
}

#[test]
fn bookinfo_80_20_shift_splits_reviews_between_v1_and_v2() {
    let mesh = import_check_and_test(
        "shift-80-20",
        &[DR, "shift-80-20/virtual-service-reviews-80-20.yaml"],
    );
    assert!(
        mesh.contains("reviews.v1 80%") && mesh.contains("reviews.v2 20%"),
        "{mesh}"
    );
}

#[test]
fn bookinfo_test_v2_sends_jason_to_v2() {
    let mesh = import_check_and_test(
        "test-v2",
        &[DR, "test-v2/virtual-service-reviews-test-v2.yaml"],
    );
    insta::assert_snapshot!("test_v2", mesh);
}

/// The `fault` of each rule of `caller`'s compiled route to `service` (`default/NAME`).
fn compiled_faults(dir: &Path, caller: &str, service: &str) -> Vec<serde_json::Value> {
    let out = run_meshc(&["compile", "imported.mesh", "-o", "out"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("out/default/{caller}.json"))).unwrap(),
    )
    .unwrap();
    let services = config["outbound"]["services"].as_array().unwrap();
    let route = services
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("{caller} has no route to {service}"));
    route["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fault"].clone())
        .collect()
}

#[test]
fn bookinfo_ratings_delay_for_jason() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = import_into(
        &dir,
        "ratings-delay",
        &[DR, "ratings-delay/virtual-service-ratings-test-delay.yaml"],
    );
    insta::assert_snapshot!("ratings_delay", mesh);
    // What the agent of a caller runs: jason's rule delays every request by 7s, the
    // other rule injects nothing.
    let faults = compiled_faults(dir.path(), "reviews", "default/ratings");
    assert_eq!(faults[0]["delay"]["delay_us"], 7_000_000, "{faults:?}");
    assert_eq!(faults[0]["delay"]["percent_milli"], 100_000, "{faults:?}");
    assert!(faults[1].is_null(), "{faults:?}");
}

#[test]
fn bookinfo_ratings_abort_for_jason() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = import_into(
        &dir,
        "ratings-abort",
        &[DR, "ratings-abort/virtual-service-ratings-test-abort.yaml"],
    );
    assert!(mesh.contains("abort 500 100%"), "{mesh}");
    let faults = compiled_faults(dir.path(), "reviews", "default/ratings");
    assert_eq!(faults[0]["abort"]["status"], 500, "{faults:?}");
    assert_eq!(faults[0]["abort"]["percent_milli"], 100_000, "{faults:?}");
    assert!(faults[1].is_null(), "{faults:?}");
}

#[test]
fn bookinfo_request_timeouts() {
    let mesh = import_check_and_test("timeouts", &[DR, "timeouts/virtual-service-timeouts.yaml"]);
    assert!(
        mesh.contains("timeout 500ms") && mesh.contains("delay 2s 100%"),
        "{mesh}"
    );
}

#[test]
fn bookinfo_retries() {
    let mesh = import_check_and_test("retries", &[DR, "retries/virtual-service-retries.yaml"]);
    assert!(
        mesh.contains("on [5xx, connect_failure, refused_stream]"),
        "{mesh}"
    );
}

#[test]
fn bookinfo_allow_nothing_denies_everything() {
    import_check_and_test("authz-deny-all", &["authz-deny-all/allow-nothing.yaml"]);
}

#[test]
fn bookinfo_viewer_policies_allow_exactly_the_documented_calls() {
    let mesh = import_check_and_test("authz-viewers", &["authz-viewers/viewers.yaml"]);
    insta::assert_snapshot!("authz_viewers", mesh);
}

#[test]
fn with_the_application_manifests_policies_name_the_services() {
    let mesh = import_check_and_test(
        "authz-viewers-app",
        &["bookinfo-app.yaml", DR, "authz-viewers/viewers.yaml"],
    );
    assert!(mesh.contains("identity \"bookinfo-productpage\""), "{mesh}");
    assert!(mesh.contains("port http 9080"), "{mesh}");
    assert!(mesh.contains("allow from productpage {"), "{mesh}");
    assert!(!mesh.contains("service bookinfo-productpage"), "{mesh}");
}

#[test]
fn explicit_deny_refuses_get_without_the_admin_token() {
    import_check_and_test("authz-deny", &["authz-deny/deny-method-get.yaml"]);
}

#[test]
fn gamma_httproute_shift() {
    import_check_and_test("gamma-shift", &["gamma-shift/reviews-50-v3.yaml"]);
}

#[test]
fn gamma_httproute_orders_matches_by_precedence() {
    let mesh = import_check_and_test("gamma-test-v2", &["gamma-test-v2/reviews-test-v2.yaml"]);
    insta::assert_snapshot!("gamma_test_v2", mesh);
}

#[test]
fn gamma_grpcroute_routes_methods() {
    let mesh = import_check_and_test("grpc-route", &["grpc-route/greeter.yaml"]);
    assert!(mesh.contains("port grpc 50051"), "{mesh}");
}

#[test]
fn istio_imports_check_without_warnings_but_unused_subsets() {
    let err = warnings(
        &[DR, "test-v2/virtual-service-reviews-test-v2.yaml"],
        "test-v2",
    );
    for line in err.lines().filter(|l| l.contains("W0")) {
        assert!(line.contains("W0002"), "{err}");
    }
}

/// `meshc import -` with `yaml` on stdin, in `dir`.
fn import_stdin(yaml: &str, extra: &[&str], dir: &Path) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(meshc())
        .arg("import")
        .args(extra)
        .arg("-")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn stdin_goes_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        std::fs::read_to_string(fixtures().join("test-v2/virtual-service-reviews-test-v2.yaml"))
            .unwrap();
    let out = import_stdin(&yaml, &[], dir.path());
    // The subsets are not defined without the DestinationRules: reported, still written.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("route reviews {"), "{}", stdout(&out));
    assert!(stderr(&out).contains("I0004"), "{}", stderr(&out));
}

#[test]
fn malformed_yaml_writes_nothing_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = import_stdin(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: [a, b\n",
        &["-o", "out.mesh"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("I0001"), "{}", stderr(&out));
    assert!(!dir.path().join("out.mesh").exists());
}

#[test]
fn unknown_kinds_write_nothing_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = import_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews\n",
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    insta::assert_snapshot!("unknown_kind", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn inexpressible_fields_are_reported_with_their_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - match:
    - sourceLabels: {app: productpage}
      method: {exact: FETCH}
    corsPolicy: {allowOrigins: [{exact: '*'}]}
    route:
    - destination: {host: reviews}
    timeout: 3s
    mirorr: {host: reviews}
";
    let out = import_stdin(yaml, &[], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    insta::assert_snapshot!("inexpressible", err);
    assert!(err.contains("I0003") && err.contains("I0004") && err.contains("I0005"));
    // What could be expressed is written, and is a valid mesh.
    std::fs::write(dir.path().join("a.mesh"), stdout(&out)).unwrap();
    let check = run_meshc(&["check", "a.mesh"], dir.path());
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(stdout(&out).contains("timeout 3s"));
}
