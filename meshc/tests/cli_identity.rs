//! `meshc identity init|issue`, through the real binary: the CA and workload certificates
//! it writes load as the agent loads them (chain, SPIFFE id, validity, key match), private
//! keys are mode 0600, an existing CA is never replaced without `--force`, and bad input
//! (trust domain, TTL, missing or foreign CA) is refused with a clear error and no files.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use mesh_identity::{Ca, Identity};
use mesh_test_support::{run_meshc, stderr, workspace_root as root};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn init(dir: &Path) {
    let out = run_meshc(&["identity", "init", dir.to_str().unwrap()], &root());
    assert!(out.status.success(), "{}", stderr(&out));
}

fn issue(ca: &Path, out: &Path, extra: &[&str]) -> Output {
    issue_in(ca, out, "cluster.local", extra)
}

fn issue_in(ca: &Path, out: &Path, trust_domain: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "identity",
        "issue",
        "--ca",
        ca.to_str().unwrap(),
        "--trust-domain",
        trust_domain,
        "--namespace",
        "bookinfo",
        "--service-account",
        "reviews",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_meshc(&args, &root())
}

#[test]
fn init_writes_a_loadable_ca_with_a_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    init(&dir);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    let ca = Ca::load(&dir).unwrap();
    assert!(ca.not_after() > SystemTime::now() + Duration::from_secs(365 * 24 * 3600));
}

#[test]
fn init_refuses_to_replace_a_ca_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    init(&dir);
    let before = std::fs::read(dir.join("ca.pem")).unwrap();

    let again = run_meshc(&["identity", "init", dir.to_str().unwrap()], &root());
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already holds a CA"),
        "{}",
        stderr(&again)
    );
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), before);

    let forced = run_meshc(
        &["identity", "init", "--force", dir.to_str().unwrap()],
        &root(),
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), before);
    Ca::load(&dir).unwrap();
}

#[test]
fn issue_writes_an_identity_the_agent_can_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, out) = (tmp.path().join("ca"), tmp.path().join("reviews"));
    init(&ca);
    let output = issue(&ca, &out, &["--ttl", "2h"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("spiffe://cluster.local/ns/bookinfo/sa/reviews"),
        "{}",
        stderr(&output)
    );
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    assert_eq!(
        std::fs::read(out.join("ca.pem")).unwrap(),
        std::fs::read(ca.join("ca.pem")).unwrap()
    );

    let identity = Identity::load(&out).unwrap();
    assert_eq!(
        identity.spiffe_id().to_string(),
        "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    );
    let ttl = identity
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        ttl > Duration::from_secs(2 * 3600 - 120) && ttl <= Duration::from_secs(2 * 3600),
        "{ttl:?}"
    );
}

#[test]
fn issue_defaults_to_a_day() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, out) = (tmp.path().join("ca"), tmp.path().join("w"));
    init(&ca);
    assert!(issue(&ca, &out, &[]).status.success());
    let ttl = Identity::load(&out)
        .unwrap()
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(ttl > Duration::from_secs(23 * 3600), "{ttl:?}");
}

#[test]
fn certificates_from_another_ca_do_not_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, other, out) = (
        tmp.path().join("ca"),
        tmp.path().join("other"),
        tmp.path().join("w"),
    );
    init(&ca);
    init(&other);
    assert!(issue(&ca, &out, &[]).status.success());
    std::fs::copy(other.join("ca.pem"), out.join("ca.pem")).unwrap();
    assert!(Identity::load(&out).is_err());
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    init(&ca);
    let cases = [
        ("bad ttl", "cluster.local", "24", "has no unit"),
        ("short ttl", "cluster.local", "30s", "shorter than a minute"),
        ("unknown unit", "cluster.local", "3w", "unknown unit"),
        ("bad trust domain", "Bad Domain", "24h", "Bad Domain"),
    ];
    for (name, trust_domain, ttl, expected) in cases {
        let out = tmp.path().join(name.replace(' ', "-"));
        let output = issue_in(&ca, &out, trust_domain, &["--ttl", ttl]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{name}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{name}: wrote {}", out.display());
    }

    let missing = tmp.path().join("no-ca");
    let out = tmp.path().join("w");
    let output = issue(&missing, &out, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("ca.pem"), "{}", stderr(&output));
    assert!(!out.exists());

    std::fs::write(ca.join("ca-key.pem"), "not a key").unwrap();
    let output = issue(&ca, &out, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("ca-key.pem"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}
