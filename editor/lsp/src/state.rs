//! The server's state between messages: the workspace, the analysis of each mesh (kept
//! until one of its files changes), and what was last published per file, so only changed
//! diagnostics are sent and fixed files are cleared. Everything here is synchronous; the
//! protocol layer ([`crate::server`]) locks it, calls in, and sends what it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_compiler::load::FileId;
use tower_lsp_server::ls_types::{Diagnostic, Uri};

use crate::analysis::Analysis;
use crate::diagnostics::DEFAULT_CATALOG;
use crate::workspace::{Unit, Workspace};

/// Settings from the client's `initializationOptions`.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long typing must pause before a check.
    pub debounce: Duration,
    /// The diagnostic catalog that diagnostics link to.
    pub catalog: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(15),
            catalog: DEFAULT_CATALOG.to_string(),
        }
    }
}

impl Config {
    /// Reads `{"debounceMs": N, "catalogUrl": "..."}`; missing or ill-typed fields keep
    /// their defaults.
    pub fn from_options(options: Option<&serde_json::Value>) -> Self {
        let mut config = Self::default();
        if let Some(ms) = options
            .and_then(|o| o.get("debounceMs"))
            .and_then(|v| v.as_u64())
        {
            config.debounce = Duration::from_millis(ms.min(5_000));
        }
        if let Some(url) = options
            .and_then(|o| o.get("catalogUrl"))
            .and_then(|v| v.as_str())
        {
            config.catalog = url.to_string();
        }
        config
    }
}

/// Diagnostics to send for one file.
#[derive(Debug)]
pub struct Publication {
    /// The file.
    pub uri: Uri,
    /// Its diagnostics (empty to clear).
    pub diagnostics: Vec<Diagnostic>,
    /// The open buffer's version, if open.
    pub version: Option<i32>,
}

/// Everything the server remembers.
#[derive(Debug, Default)]
pub struct State {
    /// The files.
    pub workspace: Workspace,
    /// Settings.
    pub config: Config,
    analyses: HashMap<Unit, Arc<Analysis>>,
    /// Meshes whose diagnostics may have changed since they were last published.
    dirty: BTreeSet<Unit>,
    /// What was last published, per file.
    published: BTreeMap<PathBuf, Vec<Diagnostic>>,
    /// The files each mesh published diagnostics for.
    owned: BTreeMap<Unit, BTreeSet<PathBuf>>,
    /// Counts edits, so a debounced check can tell whether more typing followed.
    pub edits: u64,
}

impl State {
    /// Forgets the analysis of the mesh holding `path` and marks it for publishing.
    pub fn invalidate(&mut self, path: &Path) {
        if let Some(unit) = self.workspace.unit_of(path) {
            self.analyses.remove(&unit);
            self.dirty.insert(unit);
        }
    }

    /// Forgets every analysis (folders changed) and marks every mesh for publishing.
    pub fn invalidate_all(&mut self) {
        self.analyses.clear();
        self.dirty.extend(self.workspace.units());
        self.dirty.extend(self.owned.keys().cloned());
    }

    /// The current analysis of `unit`, checking it if needed.
    pub fn analysis(&mut self, unit: &Unit) -> Arc<Analysis> {
        if let Some(analysis) = self.analyses.get(unit) {
            return Arc::clone(analysis);
        }
        let analysis = Arc::new(Analysis::new(
            self.workspace.sources(unit),
            &self.config.catalog,
        ));
        self.analyses.insert(unit.clone(), Arc::clone(&analysis));
        analysis
    }

    /// The analysis of the mesh holding `path`, and the file's id in it.
    pub fn analysis_of(&mut self, path: &Path) -> Option<(Arc<Analysis>, FileId)> {
        let unit = self.workspace.unit_of(path)?;
        let analysis = self.analysis(&unit);
        let id = analysis.file_id(path)?;
        Some((analysis, id))
    }

    /// Every analysis of the workspace (for workspace symbols).
    pub fn all_analyses(&mut self) -> Vec<Arc<Analysis>> {
        self.workspace
            .units()
            .iter()
            .map(|u| self.analysis(u))
            .collect()
    }

    /// Checks every mesh marked dirty and returns the diagnostics that changed, including
    /// empty lists for files that are fixed or no longer part of any mesh.
    pub fn publications(&mut self) -> Vec<Publication> {
        let live: BTreeSet<Unit> = self.workspace.units().into_iter().collect();
        // Meshes that went away (a closed file outside every folder, a removed folder).
        let gone: Vec<Unit> = self
            .owned
            .keys()
            .filter(|u| !live.contains(*u))
            .cloned()
            .collect();
        let mut wanted: BTreeMap<PathBuf, Vec<Diagnostic>> = BTreeMap::new();
        for unit in gone {
            self.analyses.remove(&unit);
            for path in self.owned.remove(&unit).unwrap_or_default() {
                wanted.entry(path).or_default();
            }
        }
        let dirty: Vec<Unit> = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter(|u| live.contains(u))
            .collect();
        for unit in dirty {
            let analysis = self.analysis(&unit);
            let before = self.owned.remove(&unit).unwrap_or_default();
            for path in before {
                wanted.entry(path).or_default();
            }
            let mut now = BTreeSet::new();
            for (path, diagnostics) in &analysis.diagnostics {
                now.insert(path.clone());
                wanted.insert(path.clone(), diagnostics.clone());
            }
            self.owned.insert(unit, now);
        }
        let mut out = Vec::new();
        for (path, diagnostics) in wanted {
            let unchanged = match self.published.get(&path) {
                Some(previous) => previous == &diagnostics,
                None => diagnostics.is_empty(),
            };
            if unchanged {
                continue;
            }
            let Some(uri) = Uri::from_file_path(&path) else {
                continue;
            };
            let version = self.workspace.buffer(&path).map(|b| b.version);
            if diagnostics.is_empty() {
                self.published.remove(&path);
            } else {
                self.published.insert(path, diagnostics.clone());
            }
            out.push(Publication {
                uri,
                diagnostics,
                version,
            });
        }
        out
    }
}
