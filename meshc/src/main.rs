//! `meshc`: the command line of the mesh. The compiler itself is the `mesh-compiler`
//! library; this crate adds what a command line needs around it — argument parsing, the
//! `meshc up` supervisor, Kubernetes apply, identity issuance and the language server —
//! so that the library stays free of async runtimes, Kubernetes and TLS.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
