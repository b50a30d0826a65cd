//! `mesh-lsp`: the language server for `.mesh` files. It runs the compiler's own loading,
//! resolution and checking ([`mesh_compiler::check_loaded`]) on the workspace with the
//! editor's unsaved buffers, and answers the editor from the result: diagnostics,
//! hover, navigation, rename, completion, symbols, semantic tokens, quick fixes and
//! formatting (the `meshc fmt` code).
//!
//! The feature modules are plain functions over an [`analysis::Analysis`], so tests and
//! the no-panic replay can call them without the protocol; [`server`] wires them to
//! `tower-lsp-server`.

pub mod actions;
pub mod analysis;
pub mod completion;
pub mod diagnostics;
pub mod format;
pub mod hover;
pub mod index;
pub mod navigate;
pub mod semantic;
pub mod server;
pub mod signature;
pub mod state;
pub mod symbols;
pub mod text;
pub mod tokens;
pub mod workspace;

use std::ffi::OsString;
use std::process::ExitCode;

use tower_lsp_server::{LspService, Server as Transport};

/// What `mesh-lsp ARGS...` and `meshc lsp ARGS...` do (`args` without the program name):
/// print the version for `--version` or `-V`, otherwise serve the protocol on standard
/// input and output until the client exits. Other arguments (editors pass `--stdio`) are
/// accepted and ignored.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    if args.into_iter().any(|a| a == "--version" || a == "-V") {
        println!("mesh-lsp {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the language server's runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(serve_stdio());
    ExitCode::SUCCESS
}

/// Serves the protocol on standard input and output until the client exits.
pub async fn serve_stdio() {
    let (service, socket) = LspService::new(server::Server::new);
    Transport::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .concurrency_level(1)
        .serve(service)
        .await;
}
