//! The old version of `meshc diff --git REV PATH`: every `.mesh` file of the repository at
//! REV (imports may reach outside PATH) written to a temporary directory, and PATH's place
//! in it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of a revision, removed when dropped.
pub struct Checkout {
    /// Where PATH is in the checkout.
    pub path: PathBuf,
    /// Keeps the directory alive.
    _dir: tempfile::TempDir,
}

/// Runs `git ARGS` in `dir`; its standard output, or what went wrong.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// The `.mesh` files of the repository holding `path`, as they were at `rev`.
pub fn at_revision(rev: &str, path: &Path) -> Result<Checkout, String> {
    let absolute = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = if absolute.is_dir() {
        absolute.as_path()
    } else {
        absolute.parent().unwrap_or(&absolute)
    };
    let top = git(dir, &["rev-parse", "--show-toplevel"])
        .map_err(|e| format!("--git needs a git repository: {}: {e}", path.display()))?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim());
    let top = top.canonicalize().unwrap_or(top);
    let relative = absolute
        .strip_prefix(&top)
        .map_err(|_| format!("{} is not inside {}", path.display(), top.display()))?;
    let commit = format!("{rev}^{{commit}}");
    git(&top, &["rev-parse", "--verify", "--quiet", &commit])
        .map_err(|_| format!("`{rev}` is not a revision of {}", top.display()))?;
    let listing = git(
        &top,
        &["ls-tree", "-r", "-z", "--name-only", "--full-tree", rev],
    )?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
    for name in listing.split(|b| *b == 0) {
        let name = String::from_utf8_lossy(name);
        if !name.ends_with(".mesh") {
            continue;
        }
        let bytes = git(&top, &["show", &format!("{rev}:{name}")])?;
        let target = dir.path().join(&*name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let path = dir.path().join(relative);
    if !path.exists() {
        return Err(format!(
            "{} has no .mesh files at revision {rev}",
            relative.display()
        ));
    }
    Ok(Checkout { path, _dir: dir })
}
