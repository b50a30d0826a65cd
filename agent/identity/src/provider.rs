//! The one crypto provider of the mesh: ring.
//!
//! Every config in this crate is built with [`crypto_provider`] explicitly, never with a
//! process-wide default, so linking another rustls provider elsewhere cannot change what
//! the mesh negotiates, and nothing panics for want of a default. ring (rather than
//! aws-lc-rs) keeps the build free of cmake and clang.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// ALPN protocols offered and accepted on mesh connections, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The ring crypto provider with its default suites (TLS 1.3: AES-GCM and ChaCha20-Poly1305;
/// key exchange X25519, P-256, P-384).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// [`ALPN_PROTOCOLS`] as rustls wants them.
pub(crate) fn alpn_protocols() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect()
}
