//! Shared by the integration tests: a mesh of one CA and some workloads in memory, and a
//! real TLS exchange over loopback TCP (tokio-rustls) that reports what each side saw.

#![allow(
    dead_code,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report; not every test file uses every helper"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_identity::rustls::pki_types::ServerName;
use mesh_identity::rustls::{ClientConfig, ServerConfig};
use mesh_identity::{Ca, Identity, Issued, SpiffeId, peer_spiffe_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long one whole exchange may take before the test fails.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

pub fn frontend() -> SpiffeId {
    id("spiffe://cluster.local/ns/bookinfo/sa/frontend")
}

pub fn reviews() -> SpiffeId {
    id("spiffe://cluster.local/ns/bookinfo/sa/reviews")
}

/// A workload identity issued by `ca` for a day.
pub fn identity(ca: &Ca, spiffe_id: &SpiffeId) -> Identity {
    let issued = ca.issue(spiffe_id, Duration::from_secs(24 * 3600)).unwrap();
    identity_from(&issued)
}

pub fn identity_from(issued: &Issued) -> Identity {
    Identity::from_pem(
        issued.cert_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        issued.ca_pem().as_bytes(),
    )
    .unwrap()
}

/// A certificate that expired an hour ago, loaded as of when it was valid.
pub fn expired_identity(ca: &Ca, spiffe_id: &SpiffeId) -> Identity {
    let now = SystemTime::now();
    let issued = ca
        .issue_with_validity(
            spiffe_id,
            now - Duration::from_secs(2 * 3600),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    Identity::from_pem_at(
        issued.cert_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        issued.ca_pem().as_bytes(),
        now - Duration::from_secs(90 * 60),
    )
    .unwrap()
}

/// What one side of an exchange saw: the peer's SPIFFE id and the ALPN protocol, or why it
/// failed.
#[derive(Debug)]
pub struct Seen {
    pub peer: Option<SpiffeId>,
    pub alpn: Option<Vec<u8>>,
    pub tls13: bool,
    pub suite: Option<mesh_identity::rustls::CipherSuite>,
}

#[derive(Debug)]
pub struct Exchange {
    pub server: Result<Seen, std::io::Error>,
    pub client: Result<Seen, std::io::Error>,
}

/// One connection over 127.0.0.1: a TLS handshake, then the client sends "ping" and the
/// server answers "pong" (so a refusal that the server makes after the client's handshake
/// finished, as TLS 1.3 client authentication does, reaches the client too).
pub async fn exchange(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Exchange {
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange_inner(server, client))
        .await
        .expect("the exchange timed out")
}

async fn exchange_inner(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Exchange {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            peer: conn.peer_certificates().and_then(peer_spiffe_id),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            tls13: conn.protocol_version() == Some(mesh_identity::rustls::ProtocolVersion::TLSv1_3),
            suite: conn.negotiated_cipher_suite().map(|suite| suite.suite()),
        };
        let mut ping = [0u8; 4];
        tls.read_exact(&mut ping).await?;
        assert_eq!(&ping, b"ping");
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(seen)
    });
    let client_side = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(IpAddr::from(Ipv4Addr::LOCALHOST).into());
        let mut tls = TlsConnector::from(client).connect(name, tcp).await?;
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            peer: conn.peer_certificates().and_then(peer_spiffe_id),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            tls13: conn.protocol_version() == Some(mesh_identity::rustls::ProtocolVersion::TLSv1_3),
            suite: conn.negotiated_cipher_suite().map(|suite| suite.suite()),
        };
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut pong = [0u8; 4];
        tls.read_exact(&mut pong).await?;
        assert_eq!(&pong, b"pong");
        Ok::<_, std::io::Error>(seen)
    };
    let client = client_side.await;
    let server = server_side.await.unwrap();
    Exchange { server, client }
}

/// The rustls error inside an I/O error from tokio-rustls, if there is one.
pub fn rustls_error(error: &std::io::Error) -> Option<&mesh_identity::rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<mesh_identity::rustls::Error>())
}
