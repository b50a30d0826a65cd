//! `meshc up --watch`: file events under the mesh's paths, debounced, become
//! recompilations. Only `.mesh` files count; an editor's burst of writes is one event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long a burst of events must be quiet before it counts as one change.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A live watch: changes arrive on [`Changes::next`].
pub struct Changes {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<()>,
}

impl Changes {
    /// Watches `paths` (directories recursively, files through their directory).
    pub fn watch(paths: &[PathBuf]) -> Result<Changes, String> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && event.paths.iter().any(|p| is_mesh(p))
                {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| format!("cannot watch files: {e}"))?;
        for path in paths {
            let (target, mode) = if path.is_dir() {
                (path.as_path(), RecursiveMode::Recursive)
            } else {
                (
                    path.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                    RecursiveMode::NonRecursive,
                )
            };
            watcher
                .watch(target, mode)
                .map_err(|e| format!("cannot watch {}: {e}", target.display()))?;
        }
        Ok(Changes {
            _watcher: watcher,
            events,
        })
    }

    /// The next change, once its burst is over.
    pub async fn next(&mut self) -> Option<()> {
        self.events.recv().await?;
        loop {
            match tokio::time::timeout(DEBOUNCE, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) | Err(_) => return Some(()),
            }
        }
    }
}

fn is_mesh(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "mesh")
}
