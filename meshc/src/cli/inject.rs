//! `meshc inject [FILE|-] --mesh PATH... --image IMAGE [--mode capture|proxy-env]`: reads
//! workload manifests (multi-document YAML) and writes them to stdout with the
//! `mesh-agent` sidecar added (and, in capture mode, the `mesh-init` init container).
//! Exit 1 when a workload cannot be injected (its service account is not an identity of
//! the mesh), 2 when the input cannot be read.

use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_compiler::report::Style;
use mesh_kube::KubeError;
use mesh_kube::inject::{self, Options};

use super::{Exit, mesh_input};

pub fn run(file: &Path, mesh: &[PathBuf], options: &Options, style: Style) -> Exit {
    let mesh = match mesh_input::load(mesh, style, "injected") {
        Ok(mesh) => mesh,
        Err(exit) => return exit,
    };
    let (text, what) = if file == Path::new("-") {
        let mut text = String::new();
        if let Err(err) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("error: cannot read stdin: {err}");
            return Exit::Trouble;
        }
        (text, "stdin".to_string())
    } else {
        match std::fs::read_to_string(file) {
            Ok(text) => (text, file.display().to_string()),
            Err(err) => {
                eprintln!("error: {}: {err}", file.display());
                return Exit::Trouble;
            }
        }
    };
    match inject::inject(&text, &what, &mesh, options) {
        Ok(out) => {
            print!("{out}");
            Exit::Ok
        }
        Err(err @ (KubeError::Inject { .. } | KubeError::Shape { .. })) => {
            eprintln!("error: {err}");
            Exit::Findings
        }
        Err(err) => {
            eprintln!("error: {err}");
            Exit::Trouble
        }
    }
}
