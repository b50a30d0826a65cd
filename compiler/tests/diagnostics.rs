//! The diagnostic catalog, case by case: every file (or directory) in `tests/diagnostics/`
//! is named after the code it triggers and says on its first line where:
//! `// expect: [FILE] CODE SEVERITY LINE:COLUMN`. The test asserts that exact finding and
//! snapshots the rendered output of the whole case; another checks that every code of
//! `DIAGNOSTICS.md` has a case.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};

use mesh_compiler::check_paths;
use mesh_compiler::report::{Style, render_findings};
use mesh_lang::Severity;

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/diagnostics")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    cases
}

struct Expectation {
    file: Option<String>,
    code: String,
    severity: Severity,
    line: usize,
    column: usize,
}

fn expectation(case: &Path) -> Expectation {
    let first_file = if case.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(case)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.remove(0)
    } else {
        case.to_path_buf()
    };
    let text = std::fs::read_to_string(&first_file).unwrap();
    let header = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("// expect: ")
        .unwrap_or_else(|| {
            panic!(
                "{}: first line must be `// expect: [FILE] CODE SEVERITY LINE:COL`",
                first_file.display()
            )
        });
    let mut words: Vec<&str> = header.split_whitespace().collect();
    let file = (words.len() == 4).then(|| words.remove(0).to_string());
    let (line, column) = words[2].split_once(':').unwrap();
    Expectation {
        file,
        code: words[0].to_string(),
        severity: match words[1] {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            other => panic!("unknown severity {other}"),
        },
        line: line.parse().unwrap(),
        column: column.parse().unwrap(),
    }
}

#[test]
fn every_case_reports_its_code_at_its_position_and_renders_as_snapshotted() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let expected = expectation(&case);
        let checked = check_paths(std::slice::from_ref(&case)).unwrap();
        let rendered = render_findings(
            &checked.loaded,
            &checked.findings,
            Style {
                color: false,
                width: 80,
            },
        );
        let mut found = Vec::new();
        for finding in &checked.findings {
            let file = checked.loaded.file(finding.file).unwrap();
            let d = &finding.diagnostic;
            let (line, column) = file.source.line_col(d.span.start);
            found.push((file.source.name.clone(), d.code, d.severity, line, column));
        }
        let hit = found.iter().any(|(file, code, severity, line, column)| {
            expected
                .file
                .as_ref()
                .is_none_or(|f| file.ends_with(f.as_str()))
                && *code == expected.code
                && *severity == expected.severity
                && (*line, *column) == (expected.line, expected.column)
        });
        if !hit {
            failures.push(format!(
                "{name}: expected {} {:?} at {}:{} in {:?}, found {found:?}\n{rendered}",
                expected.code, expected.severity, expected.line, expected.column, expected.file
            ));
        }
        if !found.iter().all(|(_, code, ..)| *code == expected.code) {
            failures.push(format!(
                "{name}: unexpected extra findings {found:?}\n{rendered}"
            ));
        }
        insta::assert_snapshot!(name, rendered);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_code_in_the_catalog_has_a_case_and_every_case_is_in_the_catalog() {
    let catalog = std::fs::read_to_string("DIAGNOSTICS.md").unwrap();
    let documented: std::collections::BTreeSet<String> = catalog
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let covered: std::collections::BTreeSet<String> =
        cases().iter().map(|c| expectation(c).code).collect();
    assert!(documented.len() >= 15, "catalog has only {documented:?}");
    assert_eq!(documented, covered, "catalog codes vs. cases");
}

#[test]
fn the_catalog_in_code_matches_the_catalog_document() {
    let catalog = std::fs::read_to_string("DIAGNOSTICS.md").unwrap();
    for (code, title, help) in mesh_compiler::diag::CATALOG {
        assert!(
            catalog.contains(&format!("## {code} {title}\n")),
            "DIAGNOSTICS.md lacks `## {code} {title}`"
        );
        assert!(!help.is_empty());
    }
    let headings = catalog.lines().filter(|l| l.starts_with("## ")).count();
    assert_eq!(headings, mesh_compiler::diag::CATALOG.len());
}

#[test]
fn the_standard_library_and_the_examples_check_without_any_finding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("uses-std.mesh"),
        "import \"std/retry\"\nimport \"std/zero-trust\"\n",
    )
    .unwrap();
    let checked = check_paths(&[dir.path().to_path_buf(), PathBuf::from("../examples")]).unwrap();
    assert!(checked.loaded.files.iter().filter(|f| f.is_std).count() == 2);
    assert_eq!(checked.findings, []);
    assert_eq!(checked.mesh.mtls, mesh_compiler::ir::Mtls::Strict);
    assert_eq!(
        checked.mesh.name, "bookinfo",
        "the user's mesh block names the mesh"
    );
}
