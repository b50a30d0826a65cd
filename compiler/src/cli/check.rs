//! `meshc check [PATH...]`: load, check and lint a mesh; report every finding.

use std::path::PathBuf;

use mesh_compiler::report::{Style, render};

use super::Exit;

pub fn run(paths: &[PathBuf], style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    for file in &checked.loaded.files {
        let diagnostics: Vec<_> = checked
            .findings
            .iter()
            .filter(|f| f.file == file.id)
            .map(|f| f.diagnostic.clone())
            .collect();
        if !diagnostics.is_empty() {
            eprint!("{}", render(&diagnostics, &file.source, style));
        }
    }
    let files = checked.loaded.files.iter().filter(|f| !f.is_std).count();
    let (errors, warnings) = (checked.errors(), checked.warnings());
    eprintln!(
        "checked {files} file{}: {errors} error{}, {warnings} warning{}",
        plural(files),
        plural(errors),
        plural(warnings)
    );
    if errors > 0 { Exit::Findings } else { Exit::Ok }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
