//! `meshc compile PATH... -o OUT`: check the mesh, then write one config per workload
//! (`OUT/NAMESPACE/SERVICE.json`), the Cedar schema (`OUT/mesh.cedarschema`) and the index
//! (`OUT/index.json`). Nothing is written when the mesh has errors. Files are replaced
//! atomically (written aside, then renamed), so agents watching them never read half a
//! file; files whose bytes do not change are not touched.

use std::path::{Path, PathBuf};

use mesh_compiler::report::Style;

use super::{Exit, report_human};

pub fn run(paths: &[PathBuf], out: &Path, style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if checked.errors() > 0 {
        report_human(&checked, style);
        eprintln!("error: not compiled: the mesh has errors; nothing was written");
        return Exit::Findings;
    }
    if checked.warnings() > 0 {
        report_human(&checked, style);
    }
    let files = mesh_compiler::emit::files(&checked.mesh, &checked.cedar);
    let mut written = 0usize;
    for (relative, text) in &files {
        let path = out.join(relative);
        match write_if_changed(&path, text.as_bytes()) {
            Ok(changed) => written += usize::from(changed),
            Err(err) => {
                eprintln!("error: {}: {err}", path.display());
                return Exit::Trouble;
            }
        }
    }
    let gateways = match checked.mesh.gateways.len() {
        0 => String::new(),
        1 => " and 1 gateway".to_string(),
        n => format!(" and {n} gateways"),
    };
    eprintln!(
        "compiled {} workload{}{gateways} into {} ({written} file{} written)",
        checked.mesh.services.len(),
        if checked.mesh.services.len() == 1 {
            ""
        } else {
            "s"
        },
        out.display(),
        if written == 1 { "" } else { "s" }
    );
    Exit::Ok
}

/// Replaces `path` with `bytes` atomically unless it already holds them.
pub(super) fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let aside = path.with_extension("tmp~");
    std::fs::write(&aside, bytes)?;
    std::fs::rename(&aside, path)?;
    Ok(true)
}
