//! The workspace model: which `.mesh` texts make up which mesh. Every `*.mesh` under a
//! workspace folder is one mesh (as `meshc check FOLDER` sees it); open buffers take the
//! place of their file on disk (unsaved text wins); an open file outside every folder is a
//! mesh of its own (plus what it imports).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which files are checked together.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Every file under a workspace folder.
    Folder(PathBuf),
    /// One open file outside every folder.
    Single(PathBuf),
}

/// An open buffer.
#[derive(Clone, Debug)]
pub struct Buffer {
    /// Its current text.
    pub text: String,
    /// The client's version number.
    pub version: i32,
}

/// Workspace folders, the `.mesh` files found on disk, and the open buffers.
#[derive(Debug, Default)]
pub struct Workspace {
    folders: Vec<PathBuf>,
    disk: BTreeMap<PathBuf, String>,
    open: BTreeMap<PathBuf, Buffer>,
}

/// Makes `path` absolute and canonical when it exists, so one file has one name.
pub fn normalize(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Workspace {
    /// Adds a workspace folder and reads every `.mesh` file below it. Unreadable files are
    /// skipped (returned as messages for the log).
    pub fn add_folder(&mut self, folder: &Path) -> Vec<String> {
        let folder = normalize(folder);
        let mut problems = Vec::new();
        if !self.folders.contains(&folder) {
            self.folders.push(folder.clone());
            // Longest first, so a nested folder wins for its files.
            self.folders
                .sort_by_key(|f| std::cmp::Reverse(f.components().count()));
        }
        match mesh_compiler::files::mesh_files(std::slice::from_ref(&folder)) {
            Ok(files) => {
                for path in files {
                    if let Err(problem) = self.reload(&path) {
                        problems.push(problem);
                    }
                }
            }
            Err(err) => problems.push(err.to_string()),
        }
        problems
    }

    /// Removes a workspace folder and the disk files only it held.
    pub fn remove_folder(&mut self, folder: &Path) {
        let folder = normalize(folder);
        self.folders.retain(|f| f != &folder);
        let folders = &self.folders;
        self.disk
            .retain(|path, _| folders.iter().any(|f| path.starts_with(f)));
    }

    /// Re-reads a file from disk (after a save or an outside change); forgets it when it is
    /// gone.
    pub fn reload(&mut self, path: &Path) -> Result<(), String> {
        let path = normalize(path);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.disk.insert(path, text);
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                self.disk.remove(&path);
                Ok(())
            }
            Err(err) => {
                self.disk.remove(&path);
                Err(format!("{}: {err}", path.display()))
            }
        }
    }

    /// Forgets a file deleted on disk.
    pub fn forget(&mut self, path: &Path) {
        self.disk.remove(&normalize(path));
    }

    /// Opens (or replaces) a buffer.
    pub fn open(&mut self, path: &Path, text: String, version: i32) {
        self.open.insert(normalize(path), Buffer { text, version });
    }

    /// The open buffer of `path`.
    pub fn buffer(&self, path: &Path) -> Option<&Buffer> {
        self.open.get(path)
    }

    /// The open buffer of `path`, to edit.
    pub fn buffer_mut(&mut self, path: &Path) -> Option<&mut Buffer> {
        self.open.get_mut(path)
    }

    /// Closes a buffer; the file on disk (if any, and if under a folder) takes its place.
    pub fn close(&mut self, path: &Path) {
        let path = normalize(path);
        self.open.remove(&path);
        if self.folder_of(&path).is_some() {
            let _ = self.reload(&path);
        }
    }

    /// The current text of a file: its buffer, else what was read from disk.
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.open
            .get(path)
            .map(|b| b.text.as_str())
            .or_else(|| self.disk.get(path).map(String::as_str))
    }

    fn folder_of(&self, path: &Path) -> Option<&PathBuf> {
        self.folders.iter().find(|f| path.starts_with(f))
    }

    /// The mesh `path` belongs to, if it is known at all.
    pub fn unit_of(&self, path: &Path) -> Option<Unit> {
        if let Some(folder) = self.folder_of(path) {
            return Some(Unit::Folder(folder.clone()));
        }
        self.open
            .contains_key(path)
            .then(|| Unit::Single(path.to_path_buf()))
    }

    /// Every mesh of the workspace.
    pub fn units(&self) -> Vec<Unit> {
        let mut units: Vec<Unit> = self.folders.iter().cloned().map(Unit::Folder).collect();
        units.extend(
            self.open
                .keys()
                .filter(|p| self.folder_of(p).is_none())
                .cloned()
                .map(Unit::Single),
        );
        units
    }

    /// The sources of a mesh: (path, current text), sorted by path.
    pub fn sources(&self, unit: &Unit) -> Vec<(PathBuf, String)> {
        match unit {
            Unit::Single(path) => self
                .text(path)
                .map(|t| vec![(path.clone(), t.to_string())])
                .unwrap_or_default(),
            Unit::Folder(_) => {
                let mut paths: Vec<&PathBuf> = self
                    .disk
                    .keys()
                    .chain(self.open.keys())
                    .filter(|p| self.unit_of(p).as_ref() == Some(unit))
                    .collect();
                paths.sort();
                paths.dedup();
                paths
                    .into_iter()
                    .filter_map(|p| self.text(p).map(|t| (p.clone(), t.to_string())))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_win_over_disk_and_closing_restores_disk() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.mesh");
        std::fs::write(&file, "service a { port http 80 }").unwrap();
        std::fs::write(dir.path().join("b.mesh"), "service b { port http 80 }").unwrap();
        let mut ws = Workspace::default();
        assert!(ws.add_folder(dir.path()).is_empty());
        let file = normalize(&file);
        let unit = ws.unit_of(&file).unwrap();
        assert_eq!(ws.sources(&unit).len(), 2);
        ws.open(&file, "service a2 { port http 80 }".into(), 1);
        let sources = ws.sources(&unit);
        assert_eq!(sources.len(), 2);
        assert!(sources[0].1.contains("a2"));
        ws.close(&file);
        assert!(ws.sources(&unit)[0].1.contains("service a {"));
    }

    #[test]
    fn files_outside_folders_are_meshes_of_their_own() {
        let mut ws = Workspace::default();
        let path = PathBuf::from("/nonexistent/x.mesh");
        ws.open(&path, "service x {}".into(), 1);
        assert_eq!(ws.units(), vec![Unit::Single(path.clone())]);
        assert_eq!(ws.sources(&Unit::Single(path.clone())).len(), 1);
        ws.close(&path);
        assert!(ws.units().is_empty());
    }
}
