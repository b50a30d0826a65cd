//! The one error type of this crate, so that `meshc` and the agent can report any identity
//! problem the same way: each variant names the file (or the thing) and what is wrong with it.

use std::path::PathBuf;

use mesh_vocab::SpiffeIdError;

/// Something went wrong creating, issuing, reading or using a mesh identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file that should be there is not.
    #[error("{} is missing", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM (a section without its end line, bad base64, …).
    #[error("{} is not valid PEM: {problem}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        problem: String,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error("{} holds no certificate (no PEM CERTIFICATE section)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key section.
    #[error(
        "{} holds no private key (no PEM PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY section)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate is PEM but not a certificate that can be used.
    #[error("{}: the certificate cannot be used: {problem}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A private key is PEM but not a key that can be used.
    #[error("{}: the private key cannot be used: {problem}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key does not belong to the certificate.
    #[error("{} is not the private key of the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's validity ended.
    #[error("{}: the certificate expired on {not_after}", path.display())]
    Expired {
        /// The file.
        path: PathBuf,
        /// Its `notAfter`, RFC 3339.
        not_after: String,
    },
    /// The certificate's validity has not started.
    #[error("{}: the certificate is not valid before {not_before}", path.display())]
    NotYetValid {
        /// The file.
        path: PathBuf,
        /// Its `notBefore`, RFC 3339.
        not_before: String,
    },
    /// The certificate does not chain to the CA bundle.
    #[error("{} is not trusted by the CA bundle {}: {problem}", path.display(), bundle.display())]
    Untrusted {
        /// The certificate file.
        path: PathBuf,
        /// The CA bundle file.
        bundle: PathBuf,
        /// Why, e.g. "it was issued by another CA".
        problem: String,
    },
    /// The certificate has no URI SAN at all.
    #[error("{}: the certificate has no SPIFFE id (no URI subject alternative name)", path.display())]
    NoSpiffeId {
        /// The file.
        path: PathBuf,
    },
    /// The certificate has more than one URI SAN.
    #[error(
        "{}: the certificate has {count} URI subject alternative names; a workload certificate has exactly one, its SPIFFE id",
        path.display()
    )]
    SeveralUris {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
    },
    /// The certificate's URI SAN is not a mesh SPIFFE id.
    #[error("{}: {source}", path.display())]
    BadSpiffeId {
        /// The file.
        path: PathBuf,
        /// Why the URI is not a SPIFFE id.
        source: SpiffeIdError,
    },
    /// `ca.pem` is not a CA certificate.
    #[error("{}: the certificate is not a CA (basic constraints CA:FALSE or absent)", path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },
    /// A validity window that ends before it starts.
    #[error("a certificate's not_before must be earlier than its not_after")]
    EmptyValidity,
    /// A certificate time outside what X.509 and the system clock can both hold.
    #[error("a certificate time is out of range")]
    TimeOutOfRange,
    /// rcgen refused to generate a key or a certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// The key or certificate being made.
        what: String,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// rustls refused the TLS configuration.
    #[error("cannot build the TLS configuration: {source}")]
    Tls {
        /// rustls' reason.
        source: rustls::Error,
    },
}
