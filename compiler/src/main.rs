//! `meshc`: the command line of the mesh policy compiler.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
