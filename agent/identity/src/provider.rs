//! The one crypto provider of the mesh: ring.
//!
//! Every config in this crate is built with [`crypto_provider`] explicitly, never with a
//! process-wide default, so linking another rustls provider elsewhere cannot change what
//! the mesh negotiates, and nothing panics for want of a default. ring (rather than
//! aws-lc-rs) keeps the build free of cmake and clang.

use std::sync::Arc;

use rustls::CipherSuite;
use rustls::crypto::CryptoProvider;

/// ALPN protocols offered and accepted on mesh connections, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The ring crypto provider with its default suites (TLS 1.3: AES-GCM and ChaCha20-Poly1305;
/// key exchange X25519, P-256, P-384), AES-128-GCM preferred.
///
/// ring lists AES-256-GCM first; its four extra rounds per block cost ~40% more CPU per
/// byte for no security a 128-bit key lacks here. Envoy (BoringSSL) and Go's crypto/tls
/// prefer AES-128-GCM on hardware with AES instructions, and so does the mesh: agents
/// negotiate it with each other, and a peer that only has the others still gets them.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// [`ALPN_PROTOCOLS`] as rustls wants them.
pub(crate) fn alpn_protocols() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect()
}
