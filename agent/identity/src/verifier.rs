//! How a client checks a mesh server: the certificate must chain to the mesh CA, and its
//! SPIFFE id must be the one the client meant to reach.
//!
//! rustls' own server verifier matches DNS names, which mesh certificates do not have (their
//! only name is a URI SAN), so this one checks the chain with webpki through rustls, ignores
//! the server name, and compares SPIFFE ids instead.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use crate::x509::peer_spiffe_id;
use mesh_vocab::SpiffeId;

/// A [`ServerCertVerifier`] that accepts exactly the servers holding a certificate from the
/// mesh CA for one SPIFFE id.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

/// The server's certificate is from the mesh CA but names another workload (or none).
///
/// It reaches the caller as
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`;
/// [`PeerIdMismatch::find`] gets it back out.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer is {} but {expected} was expected", presented_text(.presented))]
pub struct PeerIdMismatch {
    /// The SPIFFE id the client asked for.
    pub expected: SpiffeId,
    /// The one the server's certificate holds, if it holds exactly one valid one.
    pub presented: Option<SpiffeId>,
}

fn presented_text(presented: &Option<SpiffeId>) -> String {
    match presented {
        Some(id) => id.to_string(),
        None => "a certificate without a (single, valid) SPIFFE id".into(),
    }
}

impl fmt::Debug for PeerIdMismatch {
    /// The message itself: rustls shows `CertificateError::Other` with `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PeerIdMismatch {
    /// The mismatch inside a rustls error, if that is what the error is.
    pub fn find(error: &rustls::Error) -> Option<&PeerIdMismatch> {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<PeerIdMismatch>()
            }
            _ => None,
        }
    }
}

impl From<PeerIdMismatch> for rustls::Error {
    fn from(mismatch: PeerIdMismatch) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch))))
    }
}

impl SpiffeServerVerifier {
    /// Accepts servers whose certificate chains to `roots` and names `expected`.
    pub fn new(
        roots: Arc<RootCertStore>,
        expected: SpiffeId,
        provider: Arc<CryptoProvider>,
    ) -> SpiffeServerVerifier {
        SpiffeServerVerifier {
            roots,
            expected,
            provider,
        }
    }

    /// The SPIFFE id servers must have.
    pub fn expected(&self) -> &SpiffeId {
        &self.expected
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = peer_spiffe_id(std::slice::from_ref(end_entity));
        if presented.as_ref() != Some(&self.expected) {
            return Err(PeerIdMismatch {
                expected: self.expected.clone(),
                presented,
            }
            .into());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
