//! `mesh-identity`: workload identity for the mesh.
//!
//! Both sides of mTLS live here so that they agree: `meshc` uses [`Ca`] to create the mesh
//! CA and issue each workload a certificate whose only name is its [`SpiffeId`]; the agent
//! uses [`Identity::load`] to read and check that certificate, [`server_config`] and
//! [`client_config`] to build its rustls configs, and [`peer_spiffe_id`] to learn who is on
//! the other end of a connection.
//!
//! Everything uses rustls with the ring provider, selected explicitly ([`crypto_provider`]),
//! and TLS 1.3 only.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{path::Path, time::Duration};
//! use mesh_identity::{Ca, ClientAuth, Identity, SpiffeId, client_config, server_config};
//!
//! // meshc: create a CA and issue a workload certificate.
//! let ca = Ca::generate("mesh CA")?;
//! ca.write(Path::new("ca"))?;
//! let reviews = SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/reviews")?;
//! ca.issue(&reviews, Duration::from_secs(24 * 3600))?.write(Path::new("reviews"))?;
//!
//! // mesh-agent: load it and build the TLS configs.
//! let identity = Identity::load(Path::new("reviews"))?;
//! let inbound = server_config(&identity, ClientAuth::Required)?;
//! let ratings = SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/ratings")?;
//! let outbound = client_config(&identity, &ratings)?;
//! # let _ = (inbound, outbound);
//! # Ok(())
//! # }
//! ```

mod ca;
mod client;
mod error;
mod files;
mod identity;
mod provider;
mod server;
mod verifier;
mod x509;

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, CA_VALIDITY, CERT_FILE, CLOCK_SKEW, Ca, Issued, KEY_FILE,
    ServingCert,
};
pub use client::client_config;
pub use error::IdentityError;
pub use identity::Identity;
/// SPIFFE ids live in `mesh-vocab`, shared with `mesh-config` and the compiler, so that a
/// certificate, a config and a policy are held to one parser.
pub use mesh_vocab::{SpiffeId, SpiffeIdError, SpiffeIdErrorKind};
pub use provider::{ALPN_PROTOCOLS, crypto_provider};
pub use server::{ClientAuth, server_config};
pub use verifier::{PeerIdMismatch, SpiffeServerVerifier};
pub use x509::peer_spiffe_id;

/// rustls, as this crate uses it, so callers name the same types.
pub use rustls;
