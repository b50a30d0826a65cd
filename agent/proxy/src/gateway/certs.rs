//! The certificates of a gateway's TLS listeners. Each handshake asks the active config
//! which certificate files serve the client's SNI name on that listener
//! (`Config::gateway_certificate`: the host entry's, else the listener's), and gets the
//! parsed key from a cache shared by all listeners. A cached pair is re-checked at most
//! once a second: when either file's modification time or size changed, it is read and
//! parsed again; a new pair that does not parse (or whose key does not match) is logged
//! and counted (`mesh_reloads_total{kind="gateway_certificate",result="failed"}`) and the
//! last good key kept, so a half-written renewal never breaks handshakes.
//!
//! The check runs inside the handshake (rustls resolves certificates synchronously): a
//! `stat` of two files at most once a second per pair, and a read of two small files when
//! they changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use mesh_config::schema::TlsFiles;
use mesh_identity::rustls;
use mesh_identity::rustls::ServerConfig;
use mesh_identity::rustls::crypto::CryptoProvider;
use mesh_identity::rustls::pki_types::pem::PemObject;
use mesh_identity::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use mesh_identity::rustls::server::{ClientHello, ResolvesServerCert};
use mesh_identity::rustls::sign::CertifiedKey;

use crate::metrics::Metrics;
use crate::state::Snapshots;

/// How often a cached pair's files are checked for changes at most.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Why a certificate and key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{path}: no PEM certificate ({problem})")]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        problem: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path}: no PEM private key ({problem})")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        problem: String,
    },
    /// The key is not the certificate's, or rustls cannot sign with it.
    #[error("{key} cannot serve {cert}: {problem}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        problem: String,
    },
}

/// Modification time and size of a file: what tells a changed file.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// One cached certificate and key pair.
struct Entry {
    /// The last good key, if any was ever loaded.
    key: Option<Arc<CertifiedKey>>,
    /// The files' stamps when last read (good or not).
    stamps: Option<(Stamp, Stamp)>,
    /// When the files were last checked.
    checked: Instant,
}

/// Parsed certificate and key pairs by their files, shared by a gateway's listeners.
pub struct CertStore {
    entries: Mutex<HashMap<(PathBuf, PathBuf), Entry>>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
}

impl CertStore {
    /// An empty store counting failed loads in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> CertStore {
        CertStore {
            entries: Mutex::new(HashMap::new()),
            provider: mesh_identity::crypto_provider(),
            metrics,
        }
    }

    /// Where failed loads are counted (and the listeners count their handshakes).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The key for `files`: cached, re-read when the files changed (checked at most once
    /// per [`RECHECK`]); `None` when no good pair was ever loaded from them.
    pub fn get(&self, files: &TlsFiles) -> Option<Arc<CertifiedKey>> {
        let (cert, key) = (PathBuf::from(&files.cert), PathBuf::from(&files.key));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = entries.entry((cert.clone(), key.clone())).or_insert(Entry {
            key: None,
            stamps: None,
            checked: now,
        });
        if entry.stamps.is_some() && now.duration_since(entry.checked) < RECHECK {
            return entry.key.clone();
        }
        entry.checked = now;
        let stamps = stamp(&cert).zip(stamp(&key));
        if stamps.is_some() && stamps == entry.stamps {
            return entry.key.clone();
        }
        // Unreadable files are retried on the next check (no stamps recorded for them).
        entry.stamps = Some(stamps.unwrap_or_default());
        match load(&cert, &key, &self.provider) {
            Ok(loaded) => {
                tracing::info!(cert = %cert.display(), "gateway certificate loaded");
                self.metrics.reload("gateway_certificate", true);
                entry.key = Some(Arc::new(loaded));
            }
            Err(error) => {
                if stamps.is_none() {
                    entry.stamps = None;
                }
                self.metrics.reload("gateway_certificate", false);
                if entry.key.is_some() {
                    tracing::error!(%error, "gateway certificate rejected; keeping the last good one");
                } else {
                    tracing::error!(%error, "gateway certificate rejected; handshakes that need it fail");
                }
            }
        }
        entry.key.clone()
    }

    /// The rustls server config of the TLS listener on config port `port`: certificates
    /// by SNI from the active config, ALPN `h2` and `http/1.1`.
    pub fn server_config(
        self: &Arc<Self>,
        port: u16,
        snapshots: Snapshots,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(BySni {
                port,
                snapshots,
                store: Arc::clone(self),
            }));
        config.alpn_protocols = mesh_identity::ALPN_PROTOCOLS
            .iter()
            .map(|p| p.to_vec())
            .collect();
        Ok(Arc::new(config))
    }
}

/// Reads and checks a certificate chain and its key.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NoCertificate {
            path: cert.to_path_buf(),
            problem: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert.to_path_buf(),
            problem: "the file has no CERTIFICATE section".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::NoKey {
        path: key.to_path_buf(),
        problem: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| CertError::Unusable {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        problem: e.to_string(),
    })
}

/// Resolves a TLS listener's certificate per handshake by the client's SNI name.
struct BySni {
    port: u16,
    snapshots: Snapshots,
    store: Arc<CertStore>,
}

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BySni").field("port", &self.port).finish()
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.snapshots.borrow().clone()?;
        let files = snapshot
            .config
            .config
            .gateway_certificate(self.port, hello.server_name())?;
        self.store.get(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair(ca: &mesh_identity::Ca, dir: &Path, name: &str) -> TlsFiles {
        let cert = ca
            .issue_serving(&[name.to_string()], Duration::from_secs(3600))
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.cert_pem).unwrap();
        std::fs::write(&k, cert.key_pem).unwrap();
        TlsFiles {
            cert: c.to_str().unwrap().to_string(),
            key: k.to_str().unwrap().to_string(),
        }
    }

    #[test]
    fn a_pair_loads_and_bad_files_say_what_is_wrong() {
        let ca = mesh_identity::Ca::generate("test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let provider = mesh_identity::crypto_provider();
        let a = pair(&ca, dir.path(), "a.example.com");
        let b = pair(&ca, dir.path(), "b.example.com");
        assert!(load(Path::new(&a.cert), Path::new(&a.key), &provider).is_ok());
        let mismatch = load(Path::new(&a.cert), Path::new(&b.key), &provider);
        assert!(
            matches!(mismatch, Err(CertError::Unusable { .. })),
            "{mismatch:?}"
        );
        let missing = load(&dir.path().join("none.pem"), Path::new(&a.key), &provider);
        assert!(
            matches!(missing, Err(CertError::Read { .. })),
            "{missing:?}"
        );
        let no_key = load(Path::new(&a.cert), Path::new(&a.cert), &provider);
        assert!(matches!(no_key, Err(CertError::NoKey { .. })), "{no_key:?}");
        let no_cert = load(Path::new(&a.key), Path::new(&a.key), &provider);
        assert!(
            matches!(no_cert, Err(CertError::NoCertificate { .. })),
            "{no_cert:?}"
        );
    }

    #[test]
    fn the_store_keeps_the_last_good_key_until_the_files_change() {
        let ca = mesh_identity::Ca::generate("test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let store = CertStore::new(Arc::clone(&metrics));
        let files = pair(&ca, dir.path(), "a.example.com");
        let first = store.get(&files).unwrap();
        let again = store.get(&files).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "cached within the recheck interval"
        );

        std::fs::write(&files.cert, "garbage").unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let kept = store.get(&files).unwrap();
        assert!(
            Arc::ptr_eq(&first, &kept),
            "a broken file keeps the last good key"
        );
        assert!(
            metrics
                .encode()
                .contains("mesh_reloads_total{kind=\"gateway_certificate\",result=\"failed\"} 1")
        );

        let renewed = pair(&ca, dir.path(), "a.example.com");
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        let new = store.get(&renewed).unwrap();
        assert!(!Arc::ptr_eq(&first, &new), "changed files are re-read");
    }
}
