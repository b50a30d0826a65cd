//! `meshc lsp`: the language server, linked in-process. `mesh-lsp` depends only on the
//! compiler library, so `meshc` can depend on it; `meshc lsp ARGS` behaves exactly like
//! the `mesh-lsp ARGS` binary (both call [`mesh_lsp::run`]).

use std::ffi::OsString;
use std::process::ExitCode;

/// Serves the protocol on stdin/stdout (or prints the version for `--version`).
pub fn run(args: Vec<OsString>) -> ExitCode {
    mesh_lsp::run(args)
}
