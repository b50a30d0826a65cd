//! The `mesh-lsp` binary: the language server on standard input and output. Editors start
//! it directly or through `meshc lsp`, which links the same [`mesh_lsp::run`].

fn main() -> std::process::ExitCode {
    mesh_lsp::run(std::env::args_os().skip(1))
}
