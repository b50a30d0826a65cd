//! Argument parsing and dispatch: one module per subcommand, one exit-code enum.

mod check;
mod fmt;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mesh_compiler::report::Style;

/// Exit codes shared by every subcommand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything is fine.
    Ok = 0,
    /// The input has problems (errors, unformatted files, failing tests).
    Findings = 1,
    /// Usage or I/O problems: nothing could be judged.
    Trouble = 2,
}

#[derive(Parser)]
#[command(
    name = "meshc",
    version,
    about = "The mesh policy compiler: check, format and compile .mesh files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check .mesh files and report every problem.
    Check {
        /// Files or directories (searched recursively for *.mesh).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
        /// How to report: human (stderr), or json, sarif, github (stdout).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Rewrite .mesh files in the canonical layout.
    Fmt {
        /// Report files that are not formatted (exit 1) instead of rewriting them.
        #[arg(long)]
        check: bool,
        /// Files or directories (searched recursively for *.mesh).
        #[arg(default_value = ".")]
        paths: Vec<PathBuf>,
    },
}

/// Output formats of `meshc check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// miette's graphical report, colour on a terminal.
    Human,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0 for code scanning.
    Sarif,
    /// GitHub Actions workflow commands.
    Github,
}

/// Parses the command line and runs the subcommand.
pub fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    let style = Style::detect(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    let exit = match cli.command {
        Command::Check {
            paths,
            format,
            deny_warnings,
        } => check::run(&paths, format, deny_warnings, style),
        Command::Fmt { check, paths } => fmt::run(&paths, check, style),
    };
    std::process::ExitCode::from(exit as u8)
}
