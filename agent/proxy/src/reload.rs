//! Hot reload: the config and endpoint files are re-read when their directory changes
//! (watched with `notify`, so Kubernetes' `..data` symlink swaps are seen) and on a
//! periodic resync that catches missed events. A new config is validated, then swapped in
//! atomically; an invalid one is rejected with a log line and a metric, and the last good
//! config stays in force. Unchanged bytes are not reloaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_config::Config;
use notify::Watcher;
use sha2::Digest;
use tokio::sync::mpsc;

use crate::discovery::{Discovery, DiscoveryError, Endpoints};
use crate::gateway::{ModeError, check_mode};
use crate::state::{LoadedConfig, Shared, Snapshot};

/// Re-reads the agent's files and publishes new snapshots.
pub struct Reloader {
    config_path: PathBuf,
    discovery: Box<dyn Discovery>,
    shared: Arc<Shared>,
    config: Option<Arc<LoadedConfig>>,
    endpoints: Option<Arc<Endpoints>>,
    /// Bytes of the config file last seen, valid or not.
    seen_config: Option<Vec<u8>>,
    /// The last endpoints error, so a broken file is logged once, not on every resync.
    endpoints_error: Option<String>,
    /// The workload identity's directory, when mTLS is configured.
    identity_dir: Option<PathBuf>,
    /// Bytes of the identity files last seen, valid or not.
    seen_identity: Option<Vec<u8>>,
    /// The gateway the agent runs as (`--gateway`), `None` for a sidecar: a config for
    /// the other mode is refused like an invalid one.
    gateway: Option<String>,
    /// Why the last config read was refused for the agent's mode, if it was.
    refused: Option<ModeError>,
}

impl Reloader {
    /// A reloader for `config_path` and `discovery`.
    pub fn new(
        config_path: &Path,
        discovery: Box<dyn Discovery>,
        shared: Arc<Shared>,
        identity_dir: Option<&Path>,
    ) -> Self {
        Reloader {
            identity_dir: identity_dir.map(Path::to_path_buf),
            seen_identity: None,
            config_path: config_path.to_path_buf(),
            discovery,
            shared,
            config: None,
            endpoints: None,
            seen_config: None,
            endpoints_error: None,
            gateway: None,
            refused: None,
        }
    }

    /// The same reloader for an agent running as gateway `gateway` (`None`: a sidecar).
    pub fn with_gateway(self, gateway: Option<String>) -> Self {
        Reloader { gateway, ..self }
    }

    /// The config in force, if one was loaded.
    pub fn config(&self) -> Option<&Arc<LoadedConfig>> {
        self.config.as_ref()
    }

    /// Why the last config read was refused for the agent's mode (gateway or sidecar).
    pub fn refused(&self) -> Option<&ModeError> {
        self.refused.as_ref()
    }

    /// Paths whose directories are watched.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.config_path.clone()];
        paths.extend(self.discovery.watched_paths());
        paths.extend(
            self.identity_dir
                .iter()
                .map(|dir| dir.join(mesh_identity::CERT_FILE)),
        );
        paths
    }

    /// Re-reads both sources; publishes a snapshot when either changed and both are
    /// loaded. Returns whether a new snapshot was published.
    pub fn reload(&mut self) -> bool {
        let identity_changed = self.reload_identity();
        let config_changed = self.reload_config();
        let endpoints_changed = self.reload_endpoints();
        if !(config_changed || endpoints_changed || identity_changed) {
            return false;
        }
        let (Some(config), Some(endpoints)) = (&self.config, &self.endpoints) else {
            return false;
        };
        let snapshot = Snapshot::new(
            Arc::clone(config),
            Arc::clone(endpoints),
            self.shared.tls(),
            &self.shared.registry,
        );
        self.shared.publish(snapshot);
        true
    }

    fn reload_config(&mut self) -> bool {
        let bytes = match std::fs::read(&self.config_path) {
            Ok(bytes) => bytes,
            Err(error) => {
                if self.seen_config.take().is_some() || self.config.is_none() {
                    tracing::warn!(path = %self.config_path.display(), %error, "cannot read config; keeping the last good one");
                    self.shared.metrics.reload("config", false);
                }
                return false;
            }
        };
        if self.seen_config.as_deref() == Some(bytes.as_slice()) {
            return false;
        }
        let hash = hex(&sha2::Sha256::digest(&bytes));
        let result = Config::from_json(&bytes);
        self.seen_config = Some(bytes);
        self.refused = None;
        let result = result.map_err(|e| e.to_string()).and_then(|config| {
            match check_mode(&config, self.gateway.as_deref()) {
                Ok(()) => Ok(config),
                Err(refused) => {
                    let text = refused.to_string();
                    self.refused = Some(refused);
                    Err(text)
                }
            }
        });
        match result {
            Ok(config) => {
                let metrics = &self.shared.metrics;
                if let Some(old) = &self.config {
                    metrics.config_info.remove(&crate::metrics::ConfigLabels {
                        hash: old.hash.clone(),
                    });
                }
                metrics
                    .config_info
                    .get_or_create(&crate::metrics::ConfigLabels { hash: hash.clone() })
                    .set(1);
                metrics.reload("config", true);
                tracing::info!(%hash, service = %config.source().workload.service, "config loaded");
                self.config = Some(Arc::new(LoadedConfig {
                    config,
                    hash,
                    loaded_at: SystemTime::now(),
                }));
                true
            }
            Err(error) => {
                self.shared.metrics.reload("config", false);
                tracing::error!(%hash, %error, "config rejected; keeping the last good one");
                false
            }
        }
    }

    /// Re-reads the identity files; a valid new identity replaces the old one for new
    /// connections, an invalid one is logged and counted and the last good one kept.
    /// Returns whether a new identity was published.
    fn reload_identity(&mut self) -> bool {
        let Some(dir) = &self.identity_dir else {
            return false;
        };
        self.update_identity_expiry();
        let mut bytes = Vec::new();
        for name in [
            mesh_identity::CERT_FILE,
            mesh_identity::KEY_FILE,
            mesh_identity::CA_CERT_FILE,
        ] {
            bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
            bytes.push(0);
        }
        if self.seen_identity.as_deref() == Some(bytes.as_slice()) {
            return false;
        }
        self.seen_identity = Some(bytes);
        match mesh_identity::Identity::load(dir).and_then(crate::tls::Tls::new) {
            Ok(tls) => {
                tracing::info!(identity = %tls.identity.spiffe_id(), "identity loaded");
                self.shared.metrics.reload("identity", true);
                self.shared.publish_tls(tls);
                self.update_identity_expiry();
                true
            }
            Err(error) => {
                self.shared.metrics.reload("identity", false);
                tracing::error!(%error, "identity rejected; keeping the last good one");
                false
            }
        }
    }

    /// Sets the seconds-until-expiry gauge of the loaded certificate.
    fn update_identity_expiry(&self) {
        if let Some(tls) = self.shared.tls() {
            let left = tls
                .identity
                .not_after()
                .duration_since(SystemTime::now())
                .map_or_else(
                    |e| -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
                    |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                );
            self.shared.metrics.identity_expires_in.set(left);
        }
    }

    fn reload_endpoints(&mut self) -> bool {
        match self.discovery.load() {
            Ok(endpoints) => {
                self.endpoints_error = None;
                if self.endpoints.as_deref() == Some(&endpoints) {
                    return false;
                }
                self.shared.metrics.reload("endpoints", true);
                tracing::info!("endpoints loaded");
                self.endpoints = Some(Arc::new(endpoints));
                true
            }
            Err(error) => {
                let text = error.to_string();
                if self.endpoints_error.as_deref() != Some(text.as_str()) {
                    if let DiscoveryError::NotSynced(_) = error {
                        // Not a failure: the source is still listing.
                        tracing::info!(status = %text, "endpoints not loaded yet");
                    } else {
                        self.shared.metrics.reload("endpoints", false);
                        tracing::error!(error = %text, "endpoints rejected; keeping the last good ones");
                    }
                    self.endpoints_error = Some(text);
                }
                false
            }
        }
    }

    /// Watches the files' directories and resyncs every `resync`, forever.
    pub async fn watch(mut self, resync: Duration) {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.send(());
            }
        });
        let _watcher = match watcher {
            Ok(mut watcher) => {
                for path in self.watched_paths() {
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    if let Err(error) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), %error, "cannot watch; relying on resync");
                    }
                }
                Some(watcher)
            }
            Err(error) => {
                tracing::warn!(%error, "no file watcher; relying on resync");
                None
            }
        };
        let discovery_changed = self.discovery.changed();
        let mut tick = tokio::time::interval(resync);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() { break; }
                    // Coalesce the burst of events one write or swap makes.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while rx.try_recv().is_ok() {}
                }
                () = notified(discovery_changed.as_deref()) => {}
                _ = tick.tick() => {}
            }
            self.reload();
        }
    }
}

/// Completes when `notify` is notified; never without one.
async fn notified(notify: Option<&tokio::sync::Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
