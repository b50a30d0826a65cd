//! What the test suites of `meshc`, `mesh-lsp` and `mesh-e2e` had each written for
//! themselves: where the workspace and the built binaries are, running `meshc` as a user
//! would, reading its output, and a language-server client ([`lsp`]). A dev-dependency
//! only; a panic here is a test failure with its reason.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a panic is a failure report"
)]

pub mod lsp;
pub mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let support = Path::new(env!("CARGO_MANIFEST_DIR"));
    support.parent().unwrap().parent().unwrap().to_path_buf()
}

/// `target/<profile>/`, where cargo puts the workspace's binaries: the directory above
/// the running test executable (which lives in its `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The built binary `name` in [`bin_dir`]; fails the test, saying how to build it, when
/// it is not there.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --bins`; \
         `cargo test --workspace` builds them)",
        path.display()
    );
    path
}

/// The `meshc` binary under test: cargo's `CARGO_BIN_EXE_meshc` in `meshc`'s own tests,
/// else the one built beside the running test.
pub fn meshc() -> PathBuf {
    std::env::var_os("CARGO_BIN_EXE_meshc")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .unwrap_or_else(|| binary("meshc"))
}

/// `meshc ARGS...` run in `dir` without colours; its exit status and output.
pub fn run_meshc(args: &[&str], dir: &Path) -> Output {
    Command::new(meshc())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Output bytes as text, failing on invalid UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Every file under `dir`, by its `/`-separated path relative to `dir`, with its bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let key = path
                    .strip_prefix(base)
                    .unwrap()
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A process's stderr as text (invalid UTF-8 replaced), for assertion messages.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
