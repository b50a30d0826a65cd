//! `meshc diff OLD NEW` / `meshc diff --git REV PATH [--format json] [--deny widen]`:
//! which requests change authorization decision or route between two versions of a mesh,
//! per workload, with example requests (the engine is `mesh_compiler::diff`). Exit 0 when
//! nothing changes, 1 when something does (with `--deny widen`: only when some request
//! is allowed that was not), 2 when the versions cannot be compared (I/O, a version with
//! errors, a bad revision).

mod git;
mod render;

use std::path::{Path, PathBuf};

use mesh_compiler::Checked;
use mesh_compiler::report::Style;

use super::{Exit, report_human};

/// What to compare and how to report it.
pub struct Request {
    pub paths: Vec<PathBuf>,
    pub git: Option<String>,
    pub json: bool,
    pub deny_widen: bool,
}

pub fn run(request: &Request, style: Style) -> Exit {
    match compare(request, style) {
        Ok(exit) => exit,
        Err(message) => {
            eprintln!("error: {message}");
            Exit::Trouble
        }
    }
}

fn compare(request: &Request, style: Style) -> Result<Exit, String> {
    // The old version's files, when read from git, live as long as this.
    let checkout;
    let (old, new) = match (&request.git, request.paths.as_slice()) {
        (None, [old, new]) => (old.clone(), new.clone()),
        (Some(rev), [path]) => {
            checkout = git::at_revision(rev, path)?;
            (checkout.path.clone(), path.clone())
        }
        (None, _) => return Err("give two paths, OLD and NEW, or one path with --git REV".into()),
        (Some(_), _) => return Err("with --git REV, give one path: the new version".into()),
    };
    let old_label = match &request.git {
        Some(rev) => format!("{} at {rev}", new.display()),
        None => old.display().to_string(),
    };
    let old = check("old", &old, &old_label, style)?;
    let new = check("new", &new, &new.display().to_string(), style)?;
    let diff = mesh_compiler::diff::diff(&old, &new).map_err(|e| e.to_string())?;
    if request.json {
        let text = serde_json::to_string_pretty(&diff).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", render::human(&diff));
    }
    if request.deny_widen {
        if diff.widens() {
            let widened: usize = diff.workloads.iter().map(|w| w.widened()).sum();
            eprintln!(
                "error: the new version widens access ({widened} decision change{} to allow)",
                if widened == 1 { "" } else { "s" }
            );
            return Ok(Exit::Findings);
        }
        return Ok(Exit::Ok);
    }
    Ok(if diff.changed() {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// Loads and checks one version; its errors are shown and stop the comparison.
fn check(side: &str, path: &Path, label: &str, style: Style) -> Result<Checked, String> {
    let checked = mesh_compiler::check_paths(&[path.to_path_buf()])
        .map_err(|e| format!("the {side} version ({label}): {e}"))?;
    if checked.errors() > 0 {
        report_human(&checked, style);
        return Err(format!(
            "the {side} version ({label}) has errors: nothing compared"
        ));
    }
    Ok(checked)
}
