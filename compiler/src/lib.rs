//! `mesh-compiler`: everything `meshc` does with `.mesh` files beyond parsing them —
//! loading a mesh with its imports, resolving and type-checking it, linting it, and
//! reporting what it found.

pub mod cedar;
pub mod diag;
pub mod diff;
pub mod emit;
pub mod files;
pub mod ir;
pub mod lint;
pub mod load;
pub mod lower;
pub mod output;
pub mod report;
pub mod resolve;
pub mod testing;

use std::path::PathBuf;

use diag::Finding;
use load::Loaded;

/// A checked mesh: its files, its meaning, and every finding.
#[derive(Debug)]
pub struct Checked {
    /// The loaded files.
    pub loaded: Loaded,
    /// The checked mesh (complete only when there are no errors).
    pub mesh: ir::Mesh,
    /// The mesh's Cedar schema and policies.
    pub cedar: cedar::CedarOutput,
    /// Every diagnostic, sorted by file and position.
    pub findings: Vec<Finding>,
}

impl Checked {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.is_error()).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
}

/// Loads and checks every `.mesh` file under `paths`.
pub fn check_paths(paths: &[PathBuf]) -> Result<Checked, files::FilesError> {
    Ok(check_loaded(load::load(paths)?))
}

/// Checks a loaded mesh.
pub fn check_loaded(mut loaded: Loaded) -> Checked {
    let mut findings = std::mem::take(&mut loaded.findings);
    let mesh = lower::lower(&loaded, &mut findings);
    let complete = !findings.iter().any(Finding::is_error);
    lint::run(&mesh, &loaded, complete, &mut findings);
    let cedar = cedar::generate(&mesh, &loaded, &mut findings);
    findings.sort_by(|a, b| {
        (a.file, a.diagnostic.span.start, a.diagnostic.code).cmp(&(
            b.file,
            b.diagnostic.span.start,
            b.diagnostic.code,
        ))
    });
    findings.dedup();
    Checked {
        loaded,
        mesh,
        cedar,
        findings,
    }
}

/// Runs every stage and every renderer on one in-memory file, for the fuzzer and the
/// no-panic tests; returns the number of findings.
pub fn fuzz_check(src: &str) -> usize {
    let checked = check_loaded(load::load_sources(vec![(
        "fuzz.mesh".into(),
        src.to_string(),
    )]));
    let _ = output::json(&checked.loaded, &checked.findings);
    let _ = output::sarif(&checked.loaded, &checked.findings);
    let _ = output::github(&checked.loaded, &checked.findings);
    let _ = report::render_findings(
        &checked.loaded,
        &checked.findings,
        report::Style {
            color: false,
            width: 80,
        },
    );
    checked.findings.len()
}
