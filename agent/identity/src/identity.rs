//! A workload's identity as the agent uses it: its certificate and key, the CA bundle it
//! trusts, and its SPIFFE id, all checked together when loaded so that a bad identity
//! directory fails at startup (or is refused on reload) with a message that names the file,
//! rather than as a handshake failure on the first request.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

use crate::ca::{CA_CERT_FILE, CERT_FILE, KEY_FILE};
use crate::error::IdentityError;
use crate::files;
use crate::provider::crypto_provider;
use crate::x509;
use mesh_vocab::SpiffeId;

/// A checked workload identity: a certificate that chains to the CA bundle, is valid now,
/// and names exactly one SPIFFE id, with its private key.
pub struct Identity {
    spiffe_id: SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
    certified_key: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("trusted_cas", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// One input file: where it came from (for messages) and its bytes.
struct Source<'a> {
    path: PathBuf,
    pem: &'a [u8],
}

impl Identity {
    /// Loads `dir/cert.pem` (the workload certificate, then any intermediates),
    /// `dir/key.pem` (its private key) and `dir/ca.pem` (the CA bundle), and checks them:
    /// the certificate must chain to the bundle for both server and client use, be valid
    /// now, have exactly one URI SAN that is a mesh SPIFFE id, and match the key.
    ///
    /// A directory in Kubernetes' `..data` layout (what [`crate::Issued::write`] makes) is
    /// read from one version: the one its link names before and after the reads, so a
    /// swap in between cannot mix two versions.
    pub fn load(dir: &Path) -> Result<Identity, IdentityError> {
        let paths = [CERT_FILE, KEY_FILE, CA_CERT_FILE].map(|name| dir.join(name));
        let [cert_pem, key_pem, ca_pem] = files::read_consistent(dir, &paths)?;
        let [cert, key, ca] = paths;
        Identity::check(
            Source {
                path: cert,
                pem: &cert_pem,
            },
            Source {
                path: key,
                pem: &key_pem,
            },
            Source {
                path: ca,
                pem: &ca_pem,
            },
            SystemTime::now(),
        )
    }

    /// Like [`Identity::load`], from PEM in memory; errors call the inputs `cert.pem`,
    /// `key.pem` and `ca.pem`.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
    ) -> Result<Identity, IdentityError> {
        Identity::from_pem_at(cert_pem, key_pem, ca_pem, SystemTime::now())
    }

    /// Like [`Identity::from_pem`], checking validity at `now` instead of the current time.
    ///
    /// The TLS configs built from the identity still check every certificate against the
    /// real clock; this is for asking whether an identity will be (or was) valid at some
    /// time, and for tests that need to present an expired certificate.
    pub fn from_pem_at(
        cert_pem: &[u8],
        key_pem: &[u8],
        ca_pem: &[u8],
        now: SystemTime,
    ) -> Result<Identity, IdentityError> {
        let source = |name: &str, pem| Source {
            path: PathBuf::from(name),
            pem,
        };
        Identity::check(
            source(CERT_FILE, cert_pem),
            source(KEY_FILE, key_pem),
            source(CA_CERT_FILE, ca_pem),
            now,
        )
    }

    fn check(
        cert: Source<'_>,
        key: Source<'_>,
        ca: Source<'_>,
        now: SystemTime,
    ) -> Result<Identity, IdentityError> {
        let provider = crypto_provider();
        let chain = files::certificates(&cert.path, cert.pem)?;
        let private_key = files::private_key(&key.path, key.pem)?;
        let roots = trust_anchors(&ca.path, ca.pem)?;

        let leaf = x509::parse(&cert.path, &chain[0])?;
        let spiffe_id = x509::spiffe_id(&cert.path, &leaf)?;
        x509::check_validity(&cert.path, &leaf, now)?;
        let not_before = x509::system_time(leaf.validity().not_before);
        let not_after = x509::system_time(leaf.validity().not_after);
        check_chain(&cert.path, &ca.path, &chain, &roots, &provider, now)?;

        let certified_key =
            CertifiedKey::from_der(chain, private_key, &provider).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => IdentityError::KeyMismatch {
                    cert: cert.path.clone(),
                    key: key.path.clone(),
                },
                e => IdentityError::BadKey {
                    path: key.path.clone(),
                    problem: e.to_string(),
                },
            })?;
        Ok(Identity {
            spiffe_id,
            not_before,
            not_after,
            certified_key: Arc::new(certified_key),
            roots,
            provider,
        })
    }

    /// The workload's SPIFFE id, from its certificate.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// When the certificate starts being valid.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the certificate expires: the agent renews or reloads before then.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The certificate chain, end-entity first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified_key.cert
    }

    /// The certificate chain with its signing key, as rustls presents it.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified_key
    }

    /// The CAs this workload trusts: peers must chain to one of them.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// The crypto provider (ring) the identity was checked with and the configs use.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }
}

/// The CA bundle as a root store.
fn trust_anchors(path: &Path, pem: &[u8]) -> Result<Arc<RootCertStore>, IdentityError> {
    let mut roots = RootCertStore::empty();
    for (n, der) in files::certificates(path, pem)?.into_iter().enumerate() {
        roots.add(der).map_err(|e| IdentityError::BadCertificate {
            path: path.to_owned(),
            problem: format!("certificate {} is not a usable CA: {e}", n + 1),
        })?;
    }
    Ok(Arc::new(roots))
}

/// Checks that `chain` leads to one of `roots` for both uses of a workload certificate:
/// as a server (inbound) and as a client (outbound).
fn check_chain(
    cert_path: &Path,
    ca_path: &Path,
    chain: &[CertificateDer<'static>],
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    now: SystemTime,
) -> Result<(), IdentityError> {
    let untrusted = |e: rustls::Error| IdentityError::Untrusted {
        path: cert_path.to_owned(),
        bundle: ca_path.to_owned(),
        problem: describe(&e),
    };
    let now = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let (leaf, intermediates) = match chain {
        [leaf, intermediates @ ..] => (leaf, intermediates),
        [] => {
            return Err(IdentityError::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
    };
    let parsed = ParsedCertificate::try_from(leaf).map_err(untrusted)?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        now,
        provider.signature_verification_algorithms.all,
    )
    .map_err(untrusted)?;
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
            .build()
            .map_err(|e| IdentityError::BadCertificate {
                path: ca_path.to_owned(),
                problem: e.to_string(),
            })?;
    client_verifier
        .verify_client_cert(leaf, intermediates, now)
        .map_err(untrusted)?;
    Ok(())
}

/// A webpki verdict in words.
fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "it was issued by another CA".into()
        }
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            "its signature does not verify".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        ) => "it is not valid for both serverAuth and clientAuth".into(),
        e => e.to_string(),
    }
}
