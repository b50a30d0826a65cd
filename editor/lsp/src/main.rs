//! The `mesh-lsp` binary: the language server on standard input and output. Editors start
//! it directly or through `meshc lsp`.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args()
        .skip(1)
        .any(|a| a == "--version" || a == "-V")
    {
        println!("mesh-lsp {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    mesh_lsp::serve_stdio().await;
}
