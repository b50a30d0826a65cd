//! Real mTLS over loopback TCP: the configs of this crate let mesh workloads in and keep
//! everything else out — clients without certificates (unless permissive), certificates of
//! another CA, expired certificates, and servers that are not the workload the client meant.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::sync::Arc;

use common::{exchange, expired_identity, frontend, id, identity, reviews, rustls_error};
use mesh_identity::rustls::{self, CertificateError, ClientConfig};
use mesh_identity::{
    Ca, ClientAuth, Identity, PeerIdMismatch, SpiffeId, SpiffeServerVerifier, client_config,
    crypto_provider, server_config,
};

/// A client that checks the server like [`client_config`] but presents no certificate.
fn anonymous_client(trusting: &Identity, expected: &SpiffeId) -> Arc<ClientConfig> {
    let verifier = SpiffeServerVerifier::new(
        Arc::clone(trusting.roots()),
        expected.clone(),
        crypto_provider(),
    );
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn two_workloads_complete_a_mutual_handshake_and_see_each_others_id() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = identity(&ca, &reviews());
    let client = identity(&ca, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Required).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    let server_saw = result.server.unwrap();
    let client_saw = result.client.unwrap();
    assert_eq!(server_saw.peer, Some(frontend()));
    assert_eq!(client_saw.peer, Some(reviews()));
    assert!(server_saw.tls13 && client_saw.tls13);
    // AES-128-GCM, as Envoy and Go prefer it: cheaper per byte than ring's first choice.
    for seen in [&server_saw, &client_saw] {
        assert_eq!(
            seen.suite,
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
    assert_eq!(server_saw.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(client_saw.alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_when_mtls_is_required() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = identity(&ca, &reviews());
    let result = exchange(
        server_config(&server, ClientAuth::Required).unwrap(),
        anonymous_client(&server, &reviews()),
    )
    .await;
    let error = result.server.unwrap_err();
    assert_eq!(
        rustls_error(&error),
        Some(&rustls::Error::NoCertificatesPresented),
        "{error}"
    );
    assert!(result.client.is_err(), "the client must not get an answer");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_accepted_without_an_id_when_permissive() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = identity(&ca, &reviews());
    let result = exchange(
        server_config(&server, ClientAuth::Optional).unwrap(),
        anonymous_client(&server, &reviews()),
    )
    .await;
    assert_eq!(result.server.unwrap().peer, None);
    assert_eq!(result.client.unwrap().peer, Some(reviews()));
}

#[tokio::test]
async fn a_client_with_a_certificate_is_identified_when_permissive() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = identity(&ca, &reviews());
    let client = identity(&ca, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Optional).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    assert_eq!(result.server.unwrap().peer, Some(frontend()));
}

/// A workload of another mesh that trusts ours: its certificate verifies under its own CA,
/// and its bundle holds both CAs so that it accepts our server.
fn foreign_client(ours: &Ca, theirs: &Ca) -> Identity {
    let issued = theirs
        .issue(&frontend(), std::time::Duration::from_secs(3600))
        .unwrap();
    let bundle = format!("{}{}", theirs.bundle_pem(), ours.bundle_pem());
    Identity::from_pem(
        issued.cert_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        bundle.as_bytes(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_even_when_permissive() {
    let ours = Ca::generate("mesh CA").unwrap();
    let theirs = Ca::generate("another CA").unwrap();
    let server = identity(&ours, &reviews());
    let client = foreign_client(&ours, &theirs);
    for auth in [ClientAuth::Required, ClientAuth::Optional] {
        let result = exchange(
            server_config(&server, auth).unwrap(),
            client_config(&client, &reviews()).unwrap(),
        )
        .await;
        let error = result.server.unwrap_err();
        assert_eq!(
            rustls_error(&error),
            Some(&rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "{auth:?}: {error}"
        );
        assert!(result.client.is_err(), "{auth:?}");
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let ours = Ca::generate("mesh CA").unwrap();
    let theirs = Ca::generate("another CA").unwrap();
    let server = identity(&theirs, &reviews());
    let client = identity(&ours, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Optional).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    let error = result.client.unwrap_err();
    assert_eq!(
        rustls_error(&error),
        Some(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )),
        "{error}"
    );
    assert!(result.server.is_err());
}

fn is_expired(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = identity(&ca, &reviews());
    let client = expired_identity(&ca, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Optional).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    let error = result.server.unwrap_err();
    assert!(rustls_error(&error).is_some_and(is_expired), "{error}");
    assert!(result.client.is_err());
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let ca = Ca::generate("mesh CA").unwrap();
    let server = expired_identity(&ca, &reviews());
    let client = identity(&ca, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Required).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    let error = result.client.unwrap_err();
    assert!(rustls_error(&error).is_some_and(is_expired), "{error}");
    assert!(result.server.is_err());
}

#[tokio::test]
async fn the_client_refuses_a_valid_server_with_the_wrong_spiffe_id() {
    let ca = Ca::generate("mesh CA").unwrap();
    let ratings = id("spiffe://cluster.local/ns/bookinfo/sa/ratings");
    let server = identity(&ca, &ratings);
    let client = identity(&ca, &frontend());
    let result = exchange(
        server_config(&server, ClientAuth::Required).unwrap(),
        client_config(&client, &reviews()).unwrap(),
    )
    .await;
    let error = result.client.unwrap_err();
    let rustls_error = rustls_error(&error).unwrap();
    let mismatch = PeerIdMismatch::find(rustls_error).unwrap();
    assert_eq!(mismatch.expected, reviews());
    assert_eq!(mismatch.presented, Some(ratings));
    let message = rustls_error.to_string();
    assert!(
        message.contains(
            "peer is spiffe://cluster.local/ns/bookinfo/sa/ratings \
             but spiffe://cluster.local/ns/bookinfo/sa/reviews was expected"
        ),
        "{message}"
    );
    assert!(result.server.is_err(), "the server sees the client's alert");
}
