//! `meshc check` output formats and exit codes, through the real binary.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;

use mesh_test_support::run_meshc;
use serde_json::Value;

/// A mesh with one error (E0005 at 6:5) and one warning (W0002 at 3:30).
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.mesh"),
        "// Ünïcode before the error: columns count characters.\nservice cart {\n  port 80 subset v1 { version = \"v1\" }\n}\nroute cart {\n  rule r { split { cart.v1 50% } }\n}\n",
    )
    .unwrap();
    dir
}

fn warnings_only() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.mesh"), "retry unused { attempts 2 }\n").unwrap();
    dir
}

#[test]
fn json_has_every_field_with_one_based_character_positions() {
    let dir = fixture();
    let out = run_meshc(&["check", "--format", "json", "shop.mesh"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["errors"], 1);
    assert_eq!(
        doc["warnings"], 0,
        "unused-subset lint waits for an error-free mesh"
    );
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "E0005");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "shop.mesh");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(6), Some(12))
    );
    assert_eq!(
        (d["end_line"].as_u64(), d["end_column"].as_u64()),
        (Some(6), Some(17))
    );
    assert!(d["message"].as_str().unwrap().contains("50%"));
    assert_eq!(d["labels"][1]["message"], "50%");
    assert_eq!(
        (
            d["labels"][1]["line"].as_u64(),
            d["labels"][1]["column"].as_u64()
        ),
        (Some(6), Some(28))
    );
    assert!(d["help"].as_str().unwrap().contains("50% is missing"));
}

#[test]
fn github_format_is_workflow_commands() {
    let dir = fixture();
    let out = run_meshc(&["check", "--format", "github", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().unwrap();
    assert!(
        line.starts_with("::error file=./shop.mesh,line=6,col=12,endLine=6,endColumn=17,title=E0005::split weights add up to 50%25, not 100%25%0Ahelp: "),
        "{line}"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn sarif_is_a_2_1_0_log_code_scanning_accepts() {
    let dir = fixture();
    let out = run_meshc(&["check", "--format", "sarif", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "meshc");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| r["id"].is_string()
        && r["help"]["text"].is_string()
        && r["shortDescription"]["text"].is_string()));
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "E0005");
    assert_eq!(result["level"], "error");
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "E0005");
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "shop.mesh");
    assert_eq!(location["region"]["startLine"], 6);
    assert_eq!(location["region"]["startColumn"], 12);
    assert_eq!(run["columnKind"], "unicodeCodePoints");
}

#[test]
fn warnings_pass_unless_denied_and_clean_output_is_empty() {
    let dir = warnings_only();
    let out = run_meshc(&["check", "."], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 errors, 1 warning"));
    let denied = run_meshc(&["check", "--deny-warnings", "."], dir.path());
    assert_eq!(denied.status.code(), Some(1));
    let json = run_meshc(
        &["check", "--format", "json", "--deny-warnings", "."],
        dir.path(),
    );
    assert_eq!(json.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        (doc["errors"].as_u64(), doc["warnings"].as_u64()),
        (Some(0), Some(1))
    );

    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("c.mesh"), "service a { port 80 }\n").unwrap();
    let out = run_meshc(&["check", "--format", "github", "."], clean.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let bad = run_meshc(&["check", "--format", "xml", "."], clean.path());
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn imports_resolve_std_and_relative_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mesh")).unwrap();
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    std::fs::write(
        dir.path().join("shared/profiles.mesh"),
        "retry quick { attempts 2 per_try_timeout 100ms }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("mesh/app.mesh"),
        "import \"std/retry\"\nimport \"../shared/profiles.mesh\"\nservice a { port 80 }\nroute a {\n  timeout 5s\n  retry idempotent\n  rule r { to a retry quick }\n}\n",
    )
    .unwrap();
    let out = run_meshc(&["check", "mesh"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("checked 2 files: 0 errors, 0 warnings"),
        "{err}"
    );
}

/// The authorization matrix fixture of `mesh-compiler` (`compiler/tests/authz_matrix.rs`)
/// is clean even with `--deny-warnings`.
#[test]
fn the_authz_fixture_checks_clean_with_deny_warnings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compiler");
    let output = run_meshc(
        &["check", "--deny-warnings", "tests/fixtures/authz.mesh"],
        &root,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("checked 1 file: 0 errors, 0 warnings"),
        "{stderr}"
    );
}

/// Two files: `b.mesh` routes `cart` a second time (E0010 at 3:15) after `a.mesh` (which
/// loads first) did, with non-ASCII text before the error on its line.
fn two_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.mesh"),
        "service cart { port 80 }\nroute cart { timeout 1s }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.mesh"),
        "// Ünïcödé\n\n/* é */ route cart { timeout 2s }\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_label_in_another_file_is_shown_in_that_file_in_every_format() {
    let dir = two_files();
    let human = run_meshc(&["check", "."], dir.path());
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8(human.stderr).unwrap();
    // The primary snippet, at a character column (`é` is two bytes), then the other
    // file's own snippet with the label the diagnostic used to drop.
    let primary = text
        .find("╭─[./b.mesh:3:15]")
        .unwrap_or_else(|| panic!("{text}"));
    let related = text
        .find("╭─[./a.mesh:2:1]")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(primary < related, "{text}");
    assert!(text.contains("╰── first route"), "{text}");

    let out = run_meshc(&["check", "--format", "json", "."], dir.path());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "E0010");
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("./b.mesh"), Some(3), Some(15))
    );
    let label = &d["labels"][1];
    assert_eq!(label["message"], "first route");
    assert_eq!(
        (
            label["file"].as_str(),
            label["line"].as_u64(),
            label["column"].as_u64()
        ),
        (Some("./a.mesh"), Some(2), Some(1))
    );

    let out = run_meshc(&["check", "--format", "sarif", "."], dir.path());
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let related = &log["runs"][0]["results"][0]["relatedLocations"][0];
    assert_eq!(related["message"]["text"], "first route");
    assert_eq!(
        related["physicalLocation"]["artifactLocation"]["uri"],
        "a.mesh"
    );
    assert_eq!(related["physicalLocation"]["region"]["startLine"], 2);
}

#[test]
fn a_long_retry_chain_lists_its_hops_and_shows_only_each_retrys_lines() {
    // s0 → s1 → … → s299, each called by the one before; s1, s150 and s299 retry
    // (3 × 3 × 2 = 18 tries of s299). Every service is 8 lines apart from the next.
    let mut src = String::new();
    for i in 0..300_u32 {
        let attempts = match i {
            1 | 150 => "3",
            299 => "2",
            _ => "1",
        };
        src.push_str(&format!("service s{i} {{ port 80 }}\n"));
        src.push_str(&format!(
            "route s{i} {{\n  retry {{ attempts {attempts} }}\n}}\n"
        ));
        match i.checked_sub(1) {
            Some(caller) => src.push_str(&format!("policy s{i} {{\n  allow from s{caller}\n}}\n")),
            None => src.push_str("\n\n\n"),
        }
        src.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chain.mesh"), src).unwrap();
    let out = run_meshc(&["check", "--format", "json", "chain.mesh"], dir.path());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["diagnostics"].as_array().map(Vec::len),
        Some(1),
        "{doc}"
    );
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "W0004");
    assert_eq!(
        d["message"],
        "retries multiply along s0 → s1 → (148 more without retries) → s150 → (148 more without retries) → s299: 3 × 3 × 2 = 18 tries of s299 per request"
    );
    let out = run_meshc(&["check", "chain.mesh"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stderr).unwrap();
    // Three snippets of a few lines each, not the 2,400 lines between the retries.
    assert_eq!(text.matches("╭─[chain.mesh:").count(), 3, "{text}");
    assert!(
        text.lines().count() < 45,
        "{} lines:\n{text}",
        text.lines().count()
    );
}

#[test]
fn an_import_inside_a_namespace_is_one_syntax_error_and_the_namespace_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ns.mesh"),
        "namespace n {\n  import \"std/retry\"\n  service a { port 80 }\n}\nroute n/a { rule r { to n/b } }\n",
    )
    .unwrap();
    let out = run_meshc(&["check", "--format", "json", "ns.mesh"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<(&str, u64)> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["line"].as_u64().unwrap()))
        .collect();
    // The import, once; then the namespace's service is known (`n/b` is not).
    assert_eq!(codes, [("E0001", 2), ("E0002", 5)], "{doc}");
    let import = &doc["diagnostics"][0];
    assert!(
        !import["message"].as_str().unwrap().contains("`import`,"),
        "{import}"
    );
    assert!(
        import["help"].as_str().unwrap().contains("top level"),
        "{import}"
    );
}
