//! One checked mesh as the editor sees it: the compiler's [`Checked`] result for a set of
//! sources, each file's path and URI and [`LineIndex`], the navigation [`Index`], and the
//! protocol diagnostics per file. Built in one go from a snapshot of the workspace; every
//! request handler reads it and never changes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_compiler::Checked;
use mesh_compiler::load::{FileId, LoadedFile};
use tower_lsp_server::ls_types::{Diagnostic, Uri};

use crate::diagnostics;
use crate::index::Index;
use crate::text::LineIndex;

/// A file of the analysis, with what the protocol needs to talk about it.
#[derive(Debug)]
pub struct FileInfo {
    /// Its path on disk (absent for bundled `std/` files).
    pub path: Option<PathBuf>,
    /// Its URI (absent for bundled files).
    pub uri: Option<Uri>,
    /// Offset ↔ position conversion for its text.
    pub lines: LineIndex,
}

/// A checked mesh and everything derived from it.
#[derive(Debug)]
pub struct Analysis {
    /// What the compiler made of the sources.
    pub checked: Checked,
    /// Per file, indexed by [`FileId`].
    pub files: Vec<FileInfo>,
    /// Definitions, references and explained spans.
    pub index: Index,
    /// Protocol diagnostics of every file that has a path, fixed ones included as empty.
    pub diagnostics: BTreeMap<PathBuf, Vec<Diagnostic>>,
}

impl Analysis {
    /// Loads, checks and indexes `sources` (absolute path, text) as one mesh; diagnostics
    /// link to the catalog at `catalog`.
    pub fn new(sources: Vec<(PathBuf, String)>, catalog: &str) -> Self {
        let named = sources
            .into_iter()
            .map(|(path, text)| (path.display().to_string(), text))
            .collect();
        let checked = mesh_compiler::check_loaded(mesh_compiler::load::load_sources(named));
        let files: Vec<FileInfo> = checked.loaded.files.iter().map(file_info).collect();
        let index = Index::build(&checked.loaded);
        let mut analysis = Self {
            checked,
            files,
            index,
            diagnostics: BTreeMap::new(),
        };
        analysis.diagnostics = diagnostics::for_analysis(&analysis, catalog);
        analysis
    }

    /// The id of the file at `path`.
    pub fn file_id(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path.as_deref() == Some(path))
            .map(|i| FileId(i as u32))
    }

    /// The file with `id`.
    pub fn file(&self, id: FileId) -> Option<&FileInfo> {
        self.files.get(id.0 as usize)
    }

    /// The loaded file with `id`.
    pub fn loaded(&self, id: FileId) -> Option<&LoadedFile> {
        self.checked.loaded.file(id)
    }
}

fn file_info(file: &LoadedFile) -> FileInfo {
    let path = (!file.is_std).then(|| PathBuf::from(&file.source.name));
    let uri = path.as_ref().and_then(Uri::from_file_path);
    FileInfo {
        path,
        uri,
        lines: LineIndex::new(file.source.text.clone()),
    }
}
