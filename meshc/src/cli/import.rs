//! `meshc import [FILE...|-] [-o FILE]`: Istio and Gateway API YAML to a formatted `.mesh`
//! (the translation is the `mesh-import` library). Every field that cannot be expressed
//! is reported with its YAML path; the mesh is still written. Exit 0 when everything was
//! expressed, 1 when something was not, 2 when nothing was written (malformed YAML, an
//! unknown kind, I/O).

use std::io::Read;
use std::path::{Path, PathBuf};

use mesh_compiler::report::{Style, render};
use mesh_import::{Input, import};
use mesh_lang::SourceFile;

use super::Exit;

pub fn run(files: &[PathBuf], out: Option<&Path>, style: Style) -> Exit {
    let mut inputs = Vec::new();
    for file in files {
        match read(file) {
            Ok(input) => inputs.push(input),
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::Trouble;
            }
        }
    }
    let outcome = match import(&inputs) {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let mut count = 0;
    for (input, diagnostics) in inputs.iter().zip(&outcome.diagnostics) {
        if !diagnostics.is_empty() {
            count += diagnostics.len();
            let source = SourceFile::new(input.name.clone(), input.text.as_str());
            eprint!("{}", render(diagnostics, &source, style));
        }
    }
    let Some(mesh) = &outcome.mesh else {
        eprintln!("nothing imported: the input has errors");
        return Exit::Trouble;
    };
    match out {
        Some(path) if path != Path::new("-") => {
            if let Err(err) = std::fs::write(path, mesh) {
                eprintln!("error: {}: {err}", path.display());
                return Exit::Trouble;
            }
        }
        _ => print!("{mesh}"),
    }
    if count == 0 {
        Exit::Ok
    } else {
        let plural = if count == 1 { "" } else { "s" };
        eprintln!("imported with {count} field{plural} not expressed: see above");
        Exit::Findings
    }
}

fn read(file: &Path) -> Result<Input, String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| format!("cannot read stdin: {err}"))?;
        return Ok(Input::new("stdin", text));
    }
    let text = std::fs::read_to_string(file).map_err(|err| format!("{}: {err}", file.display()))?;
    Ok(Input::new(file.display().to_string(), text))
}
