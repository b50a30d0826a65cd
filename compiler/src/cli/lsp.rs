//! `meshc lsp`: starts the language server. `mesh-lsp` links this crate, so `meshc` cannot
//! link it back; it runs the `mesh-lsp` binary installed beside itself instead, handing
//! over standard input and output.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use super::Exit;

/// Where `mesh-lsp` should be: next to the running `meshc`.
fn server_path() -> Result<PathBuf, std::io::Error> {
    let exe = std::env::current_exe()?;
    let name = format!("mesh-lsp{}", std::env::consts::EXE_SUFFIX);
    Ok(exe.with_file_name(name))
}

pub fn run(args: &[OsString]) -> Exit {
    let path = match server_path() {
        Ok(path) => path,
        Err(err) => {
            eprintln!("error: cannot locate meshc itself: {err}");
            return Exit::Trouble;
        }
    };
    let mut command = Command::new(&path);
    command.args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Only returns on failure.
        let err = command.exec();
        eprintln!(
            "error: cannot start {}: {err} (build it with `cargo build -p mesh-lsp`)",
            path.display()
        );
        Exit::Trouble
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) if status.success() => Exit::Ok,
        Ok(_) => Exit::Findings,
        Err(err) => {
            eprintln!(
                "error: cannot start {}: {err} (build it with `cargo build -p mesh-lsp`)",
                path.display()
            );
            Exit::Trouble
        }
    }
}
