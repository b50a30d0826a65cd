//! `meshc manifests PATH... --ca DIR -o OUT`: everything the mesh needs in a cluster as
//! Kubernetes YAML, for GitOps. `-o -` writes one multi-document stream to stdout; `-o DIR`
//! writes one file per object (`DIR/NAMESPACE/KIND-NAME.yaml`, cluster-scoped objects in
//! `DIR/_cluster/`), replacing only files whose bytes change, and keeps the certificates
//! of Secrets already there while they are good so that re-running changes nothing.

use std::path::{Path, PathBuf};

use mesh_compiler::report::Style;
use mesh_kube::certs::{Issuer, SECRET_CERT_TTL};
use mesh_kube::manifests;

use super::{Exit, mesh_input};

pub fn run(paths: &[PathBuf], ca: &Path, out: &Path, style: Style) -> Exit {
    let mesh = match mesh_input::load(paths, style, "written") {
        Ok(mesh) => mesh,
        Err(exit) => return exit,
    };
    let ca = match mesh_input::load_ca(ca) {
        Ok(ca) => ca,
        Err(exit) => return exit,
    };
    let issuer = Issuer::new(&ca, SECRET_CERT_TTL);
    let to_stdout = out == Path::new("-");
    let existing = |namespace: &str, name: &str| {
        if to_stdout {
            return None;
        }
        let file = out.join(manifests::file_name(Some(namespace), "Secret", name));
        manifests::tls_data_from_yaml(&std::fs::read_to_string(file).ok()?)
    };
    let objects = match manifests::objects(&mesh, Some(&issuer), &existing) {
        Ok(objects) => objects,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if to_stdout {
        return match manifests::to_yaml(&objects) {
            Ok(text) => {
                print!("{text}");
                Exit::Ok
            }
            Err(err) => {
                eprintln!("error: {err}");
                Exit::Trouble
            }
        };
    }
    let files = match manifests::files(&objects) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let mut written = 0usize;
    for (relative, text) in &files {
        let path = out.join(relative);
        match super::compile::write_if_changed(&path, text.as_bytes()) {
            Ok(changed) => written += usize::from(changed),
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                return Exit::Trouble;
            }
        }
    }
    eprintln!(
        "wrote {} object{} of mesh {} into {} ({written} file{} changed)",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        mesh.name,
        out.display(),
        if written == 1 { "" } else { "s" }
    );
    Exit::Ok
}
