//! `meshc check [PATH...]`: read every file and report its problems.

use std::path::PathBuf;

use mesh_compiler::files::{mesh_files, read_source};
use mesh_compiler::report::{Style, render};
use mesh_lang::{Severity, SourceFile};

use super::Exit;

pub fn run(paths: &[PathBuf], style: Style) -> Exit {
    let files = match mesh_files(paths) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let (mut errors, mut warnings) = (0usize, 0usize);
    for path in &files {
        let src = match read_source(path) {
            Ok(src) => src,
            Err(err) => {
                eprintln!("error: {err}");
                return Exit::Trouble;
            }
        };
        let parsed = mesh_lang::parse(&src);
        if parsed.diagnostics.is_empty() {
            continue;
        }
        let source = SourceFile::new(path.display().to_string(), src.as_str());
        eprint!("{}", render(&parsed.diagnostics, &source, style));
        for d in &parsed.diagnostics {
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
        }
    }
    eprintln!(
        "checked {} file{}: {errors} error{}, {warnings} warning{}",
        files.len(),
        plural(files.len()),
        plural(errors),
        plural(warnings)
    );
    if errors > 0 { Exit::Findings } else { Exit::Ok }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
