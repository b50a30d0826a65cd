//! `meshc fmt [--check] [PATH...]`: rewrite files in the canonical layout, or list the
//! ones that are not. Files with syntax errors are reported and left untouched.

use std::path::PathBuf;

use mesh_compiler::files::{mesh_files, read_source};
use mesh_compiler::report::{Style, render};
use mesh_lang::SourceFile;

use super::Exit;

pub fn run(paths: &[PathBuf], check: bool, style: Style) -> Exit {
    let files = match mesh_files(paths) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let mut exit = Exit::Ok;
    for path in files {
        let src = match read_source(&path) {
            Ok(src) => src,
            Err(err) => {
                eprintln!("error: {err}");
                exit = Exit::Trouble;
                continue;
            }
        };
        let formatted = match mesh_lang::format_source(&src) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                let source = SourceFile::new(path.display().to_string(), src.as_str());
                eprint!("{}", render(&diagnostics, &source, style));
                eprintln!("{}: not formatted: it has syntax errors", path.display());
                if exit == Exit::Ok {
                    exit = Exit::Findings;
                }
                continue;
            }
        };
        if formatted == src {
            continue;
        }
        if check {
            println!("{}", path.display());
            if exit == Exit::Ok {
                exit = Exit::Findings;
            }
        } else if let Err(err) = std::fs::write(&path, formatted) {
            eprintln!("error: {}: {err}", path.display());
            exit = Exit::Trouble;
        }
    }
    exit
}
