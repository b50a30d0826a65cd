//! The inbound side: a rustls server config that presents the workload certificate and
//! verifies clients against the mesh CA.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;

use crate::error::IdentityError;
use crate::identity::Identity;
use crate::provider::alpn_protocols;

/// Whether the inbound listener requires a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// Strict mTLS: a client without a valid mesh certificate fails the handshake.
    Required,
    /// Permissive mTLS: a client may connect without a certificate (and then has no
    /// SPIFFE id); one that presents a certificate must present a valid mesh certificate.
    Optional,
}

/// A TLS 1.3 server config for `identity`'s inbound listener: it presents the workload
/// certificate, offers ALPN `h2` and `http/1.1`, and verifies client certificates against
/// the identity's CA bundle. Read the client's id after the handshake with
/// [`crate::peer_spiffe_id`] on `peer_certificates()`.
pub fn server_config(
    identity: &Identity,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, IdentityError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::clone(identity.roots()),
        Arc::clone(identity.provider()),
    );
    let verifier = match client_auth {
        ClientAuth::Required => verifier,
        ClientAuth::Optional => verifier.allow_unauthenticated(),
    }
    .build()
    .map_err(|e| IdentityError::Tls {
        source: rustls::Error::General(format!("client certificate verifier: {e}")),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(identity.provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| IdentityError::Tls { source })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(
            identity.certified_key(),
        ))));
    config.alpn_protocols = alpn_protocols();
    Ok(Arc::new(config))
}
