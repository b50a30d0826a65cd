//! A fake Kubernetes API server for tests, because no real one can be installed where the
//! tests run. It serves plain HTTP on 127.0.0.1 and implements what `meshc apply` and the
//! agent's discovery use: server-side apply (`PATCH` with `application/apply-patch+yaml`,
//! field managers, conflicts, `force`, `dryRun`), get, list (with label selectors), delete,
//! watch (from a `resourceVersion`, with bookmarks, `410 Gone` for compacted history),
//! and `GET` through the pod proxy (to a pod's `status.podIP`).
//! Tests change objects directly, break open watches, take the server down, and read
//! every request it received.

mod apply;
mod path;
mod proxy;
mod selector;
mod server;
mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

pub use path::Target;
pub use store::Recorded;

use store::Store;

/// A running fake API server; stops when dropped.
pub struct FakeApi {
    addr: std::net::SocketAddr,
    store: Arc<Mutex<Store>>,
    changed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    /// Starts a server on a free loopback port (needs a tokio runtime).
    pub async fn start() -> std::io::Result<FakeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Arc::new(Mutex::new(Store::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(server::serve(
            listener,
            Arc::clone(&store),
            Arc::clone(&changed),
        ));
        Ok(FakeApi {
            addr,
            store,
            changed,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig whose current context is this server (namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Writes [`FakeApi::kubeconfig`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig())?;
        Ok(path)
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Creates or replaces an object (as a controller would, no field manager); its
    /// collection is found from `apiVersion` and `kind`. Returns its new resourceVersion.
    pub fn put(&self, object: Value) -> Option<u64> {
        let target = Target::of_object(&object)?;
        let rv = self.lock().put(&target, object);
        self.notify();
        Some(rv)
    }

    /// Server-side applies `object` as `manager`, taking over the fields it sets (as
    /// `kubectl edit` or a forced apply would), to set up conflicts.
    pub fn apply_as(&self, manager: &str, object: Value) -> Result<Value, String> {
        let target = Target::of_object(&object).ok_or("no apiVersion, kind or name")?;
        let result = self
            .lock()
            .apply(&target, object, manager, true, false)
            .map(|(v, _)| v)
            .map_err(|(_, status)| status.to_string());
        self.notify();
        result
    }

    /// Deletes an object; whether it existed.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let object = serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        });
        let Some(target) = Target::of_object(&object) else {
            return false;
        };
        let found = self.lock().delete(&target).is_some();
        self.notify();
        found
    }

    /// An object, as stored.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let object = serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
        });
        let target = Target::of_object(&object)?;
        self.lock().get(&target).cloned()
    }

    /// Every stored object of `kind` (any namespace), sorted by namespace and name.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        self.lock().objects_of_kind(kind)
    }

    /// Closes every open watch (as a dropped connection would).
    pub fn break_watches(&self) {
        self.lock().watch_epoch += 1;
        self.notify();
    }

    /// Forgets history: watches from an older resourceVersion get `410 Gone`.
    pub fn compact(&self) {
        let mut store = self.lock();
        store.compacted = store.rv;
        drop(store);
        self.notify();
    }

    /// Takes the server down (every request answers 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        let mut store = self.lock();
        store.down = down;
        if down {
            store.watch_epoch += 1;
        }
        drop(store);
        self.notify();
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}
