//! `meshc check [PATH...] [--format F] [--deny-warnings]`: load, check and lint a mesh;
//! report every finding. Exit 0 without errors (and, with `--deny-warnings`, without
//! warnings), 1 otherwise, 2 when the files cannot be read.

use std::path::PathBuf;

use mesh_compiler::output;
use mesh_compiler::report::Style;

use super::{Exit, Format, report_human};

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
        Format::Human => report_human(&checked, style),
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
