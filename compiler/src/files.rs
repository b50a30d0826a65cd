//! Finding `.mesh` files: the paths given on the command line, directories walked
//! recursively, in a stable order so every run reports the same way.

use std::path::{Path, PathBuf};

/// A failure to read the file system.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FilesError {
    /// The path that could not be read.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Every `*.mesh` file at or below `paths`, sorted and without duplicates. A path that is
/// a file is taken whatever its extension; hidden directories and `target/` are skipped.
pub fn mesh_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FilesError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| FilesError {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(path, &mut found, 0)?;
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// How deep directories are walked: a symlink loop ends here.
const MAX_DEPTH: usize = 64;

fn walk(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) -> Result<(), FilesError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FilesError {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| FilesError {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type().map_err(|source| FilesError {
            path: path.clone(),
            source,
        })?;
        // A symlink to a directory is walked too: a Kubernetes ConfigMap volume (how the
        // injector gets the sources) links each top-level entry into `..data/`.
        if file_type.is_dir() || (file_type.is_symlink() && path.is_dir()) {
            if !name.starts_with('.') && name != "target" && depth < MAX_DEPTH {
                walk(&path, found, depth + 1)?;
            }
        } else if path.extension().is_some_and(|ext| ext == "mesh") {
            found.push(path);
        }
    }
    Ok(())
}

/// Reads a file as UTF-8.
pub fn read_source(path: &Path) -> Result<String, FilesError> {
    std::fs::read_to_string(path).map_err(|source| FilesError {
        path: path.to_path_buf(),
        source,
    })
}
