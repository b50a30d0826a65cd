//! Loading a mesh: every `.mesh` file under the given paths, plus everything they import,
//! parsed. `std/NAME` imports resolve to the bundled `policies/NAME.mesh`, embedded in the
//! binary; other imports are relative to the importing file. Missing imports and import
//! cycles are `E0008`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mesh_lang::ast::{File, ItemKind, StrLit};
use mesh_lang::{Diagnostic, SourceFile};

use crate::diag::{Finding, IMPORT, did_you_mean};
use crate::files::{FilesError, mesh_files, read_source};

/// The bundled standard library: `std/NAME` → source.
pub const STD: &[(&str, &str)] = &[
    ("std/retry", include_str!("../../policies/retry.mesh")),
    (
        "std/zero-trust",
        include_str!("../../policies/zero-trust.mesh"),
    ),
];

/// Index of a loaded file (defined by `mesh-lang`, whose diagnostic labels name files).
pub use mesh_lang::FileId;

/// One loaded file.
#[derive(Debug)]
pub struct LoadedFile {
    /// Its index.
    pub id: FileId,
    /// Its name and text.
    pub source: SourceFile,
    /// Its syntax tree.
    pub ast: File,
    /// Whether it comes from the bundled standard library.
    pub is_std: bool,
}

/// Every file of a mesh, parsed, with the syntax and import findings.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Files in load order: the given files sorted by path, then imports as found.
    pub files: Vec<LoadedFile>,
    /// Syntax errors and import problems.
    pub findings: Vec<Finding>,
}

impl Loaded {
    /// The file with `id`.
    pub fn file(&self, id: FileId) -> Option<&LoadedFile> {
        self.files.get(id.0 as usize)
    }
}

/// Where an import points.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Path(PathBuf),
    Std(&'static str),
}

/// Loads every `*.mesh` under `paths` and what they import. Errors only when a given
/// path cannot be read; problems with imports are findings.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, FilesError> {
    let roots = mesh_files(paths)?;
    let mut loader = Loader::default();
    for path in roots {
        let key = Key::Path(canonical(&path));
        if loader.ids.contains_key(&key) {
            continue;
        }
        let text = read_source(&path)?;
        loader.add(key, path.display().to_string(), text, false);
    }
    loader.follow_imports();
    loader.report_cycles();
    Ok(loader.loaded)
}

/// Loads sources given in memory (the language server, tests). Names are used as paths
/// for relative imports.
pub fn load_sources(sources: Vec<(String, String)>) -> Loaded {
    let mut loader = Loader::default();
    for (name, text) in sources {
        let key = Key::Path(PathBuf::from(&name));
        loader.add(key, name, text, false);
    }
    loader.follow_imports();
    loader.report_cycles();
    loader.loaded
}

#[derive(Default)]
struct Loader {
    loaded: Loaded,
    ids: HashMap<Key, FileId>,
    /// Import edges: (importer, import literal, imported).
    edges: Vec<(FileId, StrLit, FileId)>,
    next_to_scan: usize,
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

impl Loader {
    fn add(&mut self, key: Key, name: String, text: String, is_std: bool) -> FileId {
        let id = FileId(self.loaded.files.len() as u32);
        let parsed = mesh_lang::parse(&text);
        self.loaded
            .findings
            .extend(parsed.diagnostics.into_iter().map(|diagnostic| Finding {
                file: id,
                diagnostic,
            }));
        self.loaded.files.push(LoadedFile {
            id,
            source: SourceFile::new(name, text),
            ast: parsed.file,
            is_std,
        });
        self.ids.insert(key, id);
        id
    }

    fn follow_imports(&mut self) {
        while self.next_to_scan < self.loaded.files.len() {
            let importer = FileId(self.next_to_scan as u32);
            self.next_to_scan += 1;
            let imports: Vec<StrLit> = self
                .loaded
                .file(importer)
                .map(|f| {
                    f.ast
                        .items
                        .iter()
                        .filter_map(|item| match &item.kind {
                            ItemKind::Import(path) => Some(path.clone()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for import in imports {
                if let Some(target) = self.resolve(importer, &import) {
                    self.edges.push((importer, import, target));
                }
            }
        }
    }

    /// The file an import names, loading it if needed; reports it when missing.
    fn resolve(&mut self, importer: FileId, import: &StrLit) -> Option<FileId> {
        let wanted = import.value.as_str();
        if wanted.starts_with("std/") {
            let Some((name, text)) = STD.iter().find(|(name, _)| *name == wanted) else {
                let mut diagnostic = Diagnostic::error(
                    IMPORT,
                    format!("import not found: `{wanted}` is not in the standard library"),
                    import.span,
                    "no such bundled file",
                );
                let names = STD.iter().map(|(n, _)| *n);
                diagnostic = match did_you_mean(wanted, names) {
                    Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                    None => diagnostic.with_help(format!(
                        "the standard library has {}",
                        STD.iter()
                            .map(|(n, _)| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                self.push(importer, diagnostic);
                return None;
            };
            let key = Key::Std(name);
            if let Some(id) = self.ids.get(&key) {
                return Some(*id);
            }
            return Some(self.add(key, (*name).to_string(), (*text).to_string(), true));
        }
        // Relative to the importing file as it was named (not canonicalized), so messages
        // show paths the way the user wrote them.
        let base = self
            .loaded
            .file(importer)
            .filter(|f| !f.is_std)
            .and_then(|f| Path::new(&f.source.name).parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let target = base.join(wanted.strip_prefix("./").unwrap_or(wanted));
        let key = Key::Path(canonical(&target));
        if let Some(id) = self.ids.get(&key) {
            return Some(*id);
        }
        match std::fs::read_to_string(&target) {
            Ok(text) => Some(self.add(key, target.display().to_string(), text, false)),
            Err(err) => {
                let why = match err.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_string(),
                    _ => err.to_string(),
                };
                let diagnostic = Diagnostic::error(
                    IMPORT,
                    format!("import not found: `{wanted}`"),
                    import.span,
                    format!("{}: {why}", target.display()),
                )
                .with_help("paths are relative to the importing file; bundled files are imported as `std/NAME`");
                self.push(importer, diagnostic);
                None
            }
        }
    }

    fn push(&mut self, file: FileId, diagnostic: Diagnostic) {
        self.loaded.findings.push(Finding { file, diagnostic });
    }

    /// Reports each import that closes a cycle, naming the chain.
    fn report_cycles(&mut self) {
        let count = self.loaded.files.len();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (index, (from, _, _)) in self.edges.iter().enumerate() {
            if let Some(list) = out.get_mut(from.0 as usize) {
                list.push(index);
            }
        }
        // Iterative DFS with colours: 0 new, 1 on the stack, 2 done.
        let mut colour = vec![0u8; count];
        let mut reported = Vec::new();
        for start in 0..count {
            if colour.get(start) != Some(&0) {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            let mut path: Vec<usize> = vec![start];
            if let Some(c) = colour.get_mut(start) {
                *c = 1;
            }
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                let Some(&edge) = out.get(node).and_then(|e| e.get(*next)) else {
                    if let Some(c) = colour.get_mut(node) {
                        *c = 2;
                    }
                    stack.pop();
                    path.pop();
                    continue;
                };
                *next += 1;
                let Some((_, _, target)) = self.edges.get(edge) else {
                    continue;
                };
                let target = target.0 as usize;
                match colour.get(target) {
                    Some(0) => {
                        if let Some(c) = colour.get_mut(target) {
                            *c = 1;
                        }
                        stack.push((target, 0));
                        path.push(target);
                    }
                    Some(1) => {
                        let from = path.iter().position(|&n| n == target).unwrap_or(0);
                        let mut chain: Vec<usize> = path.get(from..).unwrap_or_default().to_vec();
                        chain.push(target);
                        reported.push((edge, chain));
                    }
                    _ => {}
                }
            }
        }
        for (edge, chain) in reported {
            let Some((importer, import, _)) = self.edges.get(edge).cloned() else {
                continue;
            };
            let names: Vec<String> = chain
                .iter()
                .filter_map(|&i| self.loaded.files.get(i).map(|f| f.source.name.clone()))
                .collect();
            let diagnostic = Diagnostic::error(
                IMPORT,
                format!("import cycle: {}", names.join(" → ")),
                import.span,
                "this import closes the cycle",
            )
            .with_help("files of one mesh are all loaded anyway; remove one of the imports");
            self.push(importer, diagnostic);
        }
    }
}
