//! The outbound side: a rustls client config that presents the workload certificate and
//! accepts only the server it meant to reach, by SPIFFE id.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::sign::SingleCertAndKey;

use crate::error::IdentityError;
use crate::identity::Identity;
use crate::provider::alpn_protocols;
use crate::verifier::SpiffeServerVerifier;
use mesh_vocab::SpiffeId;

/// A TLS 1.3 client config for connecting from `identity` to the workload `expected`: it
/// presents the workload certificate, offers ALPN `h2` and `http/1.1`, and accepts a server
/// only if its certificate chains to the identity's CA bundle and names `expected`
/// (see [`SpiffeServerVerifier`]).
///
/// The `ServerName` given when connecting is not checked (mesh certificates carry no DNS
/// names); an IP address is fine, and then no SNI is sent.
pub fn client_config(
    identity: &Identity,
    expected: &SpiffeId,
) -> Result<Arc<ClientConfig>, IdentityError> {
    let verifier = SpiffeServerVerifier::new(
        Arc::clone(identity.roots()),
        expected.clone(),
        Arc::clone(identity.provider()),
    );
    let mut config = ClientConfig::builder_with_provider(Arc::clone(identity.provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| IdentityError::Tls { source })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(
            identity.certified_key(),
        ))));
    config.alpn_protocols = alpn_protocols();
    Ok(Arc::new(config))
}
