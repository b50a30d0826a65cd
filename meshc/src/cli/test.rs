//! `meshc test PATH...`: run every `test` block against the compiled configs, through the
//! same routing and authorization code the agent runs. Each failure is shown at its
//! expectation with what actually happened to the request or connection; exit 1 when any
//! case fails.

use std::path::PathBuf;

use mesh_compiler::ir::Probe;
use mesh_compiler::report::{Style, render};
use mesh_lang::Diagnostic;

use super::{Exit, report_human};

pub fn run(paths: &[PathBuf], style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if checked.errors() > 0 {
        report_human(&checked, style);
        eprintln!("error: tests not run: the mesh has errors");
        return Exit::Findings;
    }
    let results = match mesh_compiler::testing::run(&checked) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    for (test, result) in checked.mesh.tests.iter().zip(&results) {
        if result.passed() {
            passed += 1;
            println!("test {} ... ok", result.name);
            continue;
        }
        failed += 1;
        println!("test {} ... FAILED", result.name);
        for (case, outcome) in test.cases.iter().zip(&result.cases) {
            if outcome.failures.is_empty() {
                continue;
            }
            let Some(file) = checked.loaded.file(case.origin.file) else {
                continue;
            };
            let what = match case.probe {
                Probe::Request { .. } => "request",
                Probe::Connect { .. } => "connection",
            };
            let diagnostics: Vec<Diagnostic> = outcome
                .failures
                .iter()
                .map(|f| {
                    Diagnostic::error(
                        "test",
                        format!("expected {}, got {}", f.expected, f.actual),
                        f.origin.span,
                        format!("got {}", f.actual),
                    )
                    .with_label(
                        case.request.span,
                        format!("the {what} was: {}", outcome.actual),
                    )
                })
                .collect();
            print!("{}", render(&diagnostics, &file.source, style));
        }
    }
    println!("test result: {passed} passed, {failed} failed");
    if failed > 0 { Exit::Findings } else { Exit::Ok }
}
