//! `meshc fmt` and `meshc check` driven as a user would: the real binary on real files.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_test_support::{run_meshc, stderr};
use std::path::Path;
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MESSY: &str = "service a{port 80   // the port\n}\n";
const TIDY: &str = "service a {\n  port 80  // the port\n}\n";
const BROKEN: &str = "service b {\n  prot 80\n}\n";

#[test]
fn fmt_check_lists_unformatted_files_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/messy.mesh"), MESSY).unwrap();
    std::fs::write(dir.path().join("tidy.mesh"), TIDY).unwrap();
    std::fs::write(dir.path().join("notes.txt"), MESSY).unwrap();
    let out = run_meshc(&["fmt", "--check", "."], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "./sub/messy.mesh");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/messy.mesh")).unwrap(),
        MESSY
    );
}

#[test]
fn fmt_rewrites_files_in_place_and_then_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("messy.mesh"), MESSY).unwrap();
    let out = run_meshc(&["fmt"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("messy.mesh")).unwrap(),
        TIDY
    );
    let again = run_meshc(&["fmt", "--check", "messy.mesh"], dir.path());
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).is_empty());
}

#[test]
fn a_comment_after_a_blank_line_keeps_one_blank_line_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let spaced =
        "service a {\n  port 80\n\n\n  // the admin port\n  port 81\n}\n\n\n// b\nservice b {}\n";
    let tidy =
        "service a {\n  port 80\n\n  // the admin port\n  port 81\n}\n\n// b\nservice b {}\n";
    std::fs::write(dir.path().join("spaced.mesh"), spaced).unwrap();
    let out = run_meshc(&["fmt", "spaced.mesh"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("spaced.mesh")).unwrap(),
        tidy
    );
    let again = run_meshc(&["fmt", "--check", "spaced.mesh"], dir.path());
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn fmt_leaves_files_with_syntax_errors_untouched_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.mesh"), BROKEN).unwrap();
    std::fs::write(dir.path().join("messy.mesh"), MESSY).unwrap();
    let out = run_meshc(&["fmt", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("E0001"), "{err}");
    assert!(err.contains("did you mean `port`?"), "{err}");
    assert!(
        err.contains("broken.mesh: not formatted: it has syntax errors"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("broken.mesh")).unwrap(),
        BROKEN
    );
    // The good file next to it is still formatted.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("messy.mesh")).unwrap(),
        TIDY
    );
}

#[test]
fn check_exit_codes_clean_errors_and_trouble() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tidy.mesh"), TIDY).unwrap();
    let clean = run_meshc(&["check", "tidy.mesh"], dir.path());
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(stderr(&clean).contains("checked 1 file: 0 errors, 0 warnings"));

    std::fs::write(dir.path().join("broken.mesh"), BROKEN).unwrap();
    let errors = run_meshc(&["check", "."], dir.path());
    assert_eq!(errors.status.code(), Some(1));
    let err = stderr(&errors);
    assert!(err.contains("broken.mesh:2:3"), "{err}");
    assert!(
        err.contains("checked 2 files: 1 error, 0 warnings"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "NO_COLOR output has escape codes: {err}"
    );

    let missing = run_meshc(&["check", "does-not-exist"], dir.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("does-not-exist"));

    let usage = run_meshc(&["check", "--no-such-flag"], dir.path());
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_examples_are_formatted_and_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fmt = run_meshc(&["fmt", "--check", "examples"], &root);
    assert_eq!(
        fmt.status.code(),
        Some(0),
        "{}{}",
        stdout(&fmt),
        stderr(&fmt)
    );
    let check = run_meshc(&["check", "examples"], &root);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}
