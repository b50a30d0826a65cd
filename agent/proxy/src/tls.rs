//! mTLS for the agent. [`Tls`] holds the loaded workload identity with the rustls configs
//! built from it — replaced as a whole when the certificate files rotate, so new
//! connections use the new certificate while open ones keep theirs. [`accept_inbound`]
//! runs the inbound handshake the config's `mtls` mode asks for and yields the caller's
//! SPIFFE id; [`Tls::client`] gives the pooled upstream client that verifies a callee's id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_rustls::HttpsConnector;

use crate::counted::Counted;
use crate::outbound::breaker::Gate;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh_config::schema::Mtls;
use mesh_identity::rustls::ServerConfig;
use mesh_identity::{ClientAuth, Identity, IdentityError, SpiffeId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::client::CONNECT_TIMEOUT;
use crate::http::Body;

/// How long an inbound TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake (a ClientHello starts with it).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// An mTLS client for one expected callee identity.
pub type MtlsClient = Client<HttpsConnector<Counted<HttpConnector>>, Body>;

/// A loaded identity and everything built from it.
pub struct Tls {
    /// The workload identity.
    pub identity: Identity,
    strict: Arc<ServerConfig>,
    permissive: Arc<ServerConfig>,
    /// Upstream clients by the SPIFFE id they accept.
    clients: Mutex<HashMap<String, Arc<MtlsClient>>>,
    /// Opaque TCP connectors (ALPN `mesh-tcp`) by the SPIFFE id they accept.
    tcp: Mutex<HashMap<String, TlsConnector>>,
    /// Handshaken opaque TCP connections in reserve, made with this identity.
    pub spares: crate::spare::Spares,
}

/// Adds the opaque TCP protocol to a server config's ALPN list.
fn with_tcp_alpn(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut config = Arc::unwrap_or_clone(config);
    config.alpn_protocols.push(crate::tcp::ALPN.to_vec());
    Arc::new(config)
}

/// Locks `mutex`, recovering the data of a poisoned one (the maps stay consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Tls {
    /// Builds the server configs for `identity`.
    pub fn new(identity: Identity) -> Result<Tls, IdentityError> {
        Ok(Tls {
            strict: with_tcp_alpn(mesh_identity::server_config(
                &identity,
                ClientAuth::Required,
            )?),
            permissive: with_tcp_alpn(mesh_identity::server_config(
                &identity,
                ClientAuth::Optional,
            )?),
            identity,
            clients: Mutex::new(HashMap::new()),
            tcp: Mutex::new(HashMap::new()),
            spares: crate::spare::Spares::default(),
        })
    }

    /// The connector for opaque TCP to workloads that must present `expected`: mTLS
    /// offering only the `mesh-tcp` protocol, so the callee's agent knows what follows.
    pub fn tcp_connector(&self, expected: &str) -> Result<TlsConnector, String> {
        let mut connectors = lock(&self.tcp);
        if let Some(connector) = connectors.get(expected) {
            return Ok(connector.clone());
        }
        let id = SpiffeId::parse(expected).map_err(|e| e.to_string())?;
        let mut config = Arc::unwrap_or_clone(
            mesh_identity::client_config(&self.identity, &id).map_err(|e| e.to_string())?,
        );
        config.alpn_protocols = vec![crate::tcp::ALPN.to_vec()];
        let connector = TlsConnector::from(Arc::new(config));
        connectors.insert(expected.to_string(), connector.clone());
        Ok(connector)
    }

    /// The pooled client for connections to workloads that must present `expected`; with
    /// `gate`, one of the gate's service, whose connections count against it.
    pub fn client(
        &self,
        expected: &str,
        gate: Option<&Arc<Gate>>,
    ) -> Result<Arc<MtlsClient>, String> {
        let key = match gate {
            Some(gate) => format!("{expected} {}", gate.service()),
            None => expected.to_string(),
        };
        let mut clients = lock(&self.clients);
        if let Some(client) = clients.get(&key) {
            return Ok(Arc::clone(client));
        }
        let id = SpiffeId::parse(expected).map_err(|e| e.to_string())?;
        let mut config = Arc::unwrap_or_clone(
            mesh_identity::client_config(&self.identity, &id).map_err(|e| e.to_string())?,
        );
        // The connector sets ALPN itself (h2 and http/1.1) and refuses a preset list.
        config.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_all_versions()
            .wrap_connector(Counted::new(http, gate.map(Arc::downgrade)));
        let client = Arc::new(
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        );
        clients.insert(key, Arc::clone(&client));
        Ok(client)
    }
}

/// A connection as the listener hands it to hyper: plaintext or TLS.
pub enum Io {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// Server-side TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted inbound connection and who is on the other end.
pub struct Accepted {
    /// The stream.
    pub io: Io,
    /// The caller's verified SPIFFE id (none for plaintext or certificate-less callers).
    pub peer: Option<SpiffeId>,
    /// Where the client was connecting when capture rules redirected it here.
    pub original_dst: Option<SocketAddr>,
}

impl Accepted {
    /// A plaintext connection with no verified caller.
    pub fn plain(stream: TcpStream, original_dst: Option<SocketAddr>) -> Accepted {
        Accepted {
            io: Io::Plain(stream),
            peer: None,
            original_dst,
        }
    }

    /// Whether the peer agent asked for opaque TCP: ALPN `mesh-tcp` over mTLS, or (in
    /// plaintext) the preamble's first byte, which no HTTP connection starts with.
    pub async fn wants_opaque_tcp(&self) -> bool {
        match &self.io {
            Io::Tls(stream) => stream.get_ref().1.alpn_protocol() == Some(crate::tcp::ALPN),
            Io::Plain(stream) => {
                let mut first = [0u8; 1];
                matches!(
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await,
                    Ok(Ok(1)) if first[0] == crate::tcp::PREAMBLE_MARK
                )
            }
        }
    }
}

/// Runs the inbound handshake for `stream` per `mode`. Strict mTLS requires a client
/// certificate from the mesh CA; permissive accepts TLS (certificate optional) or
/// plaintext, told apart by the first byte. Without an identity only plaintext is possible,
/// so strict refuses everyone. `None`: the connection is refused.
pub async fn accept_inbound(
    stream: TcpStream,
    remote: SocketAddr,
    mode: Mtls,
    tls: Option<Arc<Tls>>,
) -> Option<Accepted> {
    let plain = |stream| Some(Accepted::plain(stream, None));
    let Some(tls) = tls else {
        return match mode {
            Mtls::Permissive => plain(stream),
            Mtls::Strict => {
                tracing::debug!(%remote, "refused: strict mTLS but no identity is loaded");
                None
            }
        };
    };
    let config = match mode {
        Mtls::Strict => Arc::clone(&tls.strict),
        Mtls::Permissive => {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
            match peeked {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => Arc::clone(&tls.permissive),
                Ok(Ok(1)) => return plain(stream),
                _ => return None,
            }
        }
    };
    let handshake = TlsAcceptor::from(config).accept(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => {
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(mesh_identity::peer_spiffe_id);
            Some(Accepted {
                io: Io::Tls(Box::new(stream)),
                peer,
                original_dst: None,
            })
        }
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "inbound TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "inbound TLS handshake timed out");
            None
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
