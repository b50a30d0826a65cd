//! `meshc check [PATH...] [--format F] [--deny-warnings]`: load, check and lint a mesh;
//! report every finding. Exit 0 without errors (and, with `--deny-warnings`, without
//! warnings), 1 otherwise, 2 when the files cannot be read.

use std::path::PathBuf;

use mesh_compiler::output;
use mesh_compiler::report::{Style, render};

use super::{Exit, Format};

pub fn run(paths: &[PathBuf], format: Format, deny_warnings: bool, style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let (errors, warnings) = (checked.errors(), checked.warnings());
    match format {
        Format::Human => {
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
            eprintln!(
                "checked {files} file{}: {errors} error{}, {warnings} warning{}",
                plural(files),
                plural(errors),
                plural(warnings)
            );
        }
        Format::Json => print!("{}", output::json(&checked.loaded, &checked.findings)),
        Format::Sarif => print!("{}", output::sarif(&checked.loaded, &checked.findings)),
        Format::Github => print!("{}", output::github(&checked.loaded, &checked.findings)),
    }
    if errors > 0 || (deny_warnings && warnings > 0) {
        Exit::Findings
    } else {
        Exit::Ok
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
