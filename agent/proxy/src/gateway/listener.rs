//! A gateway's listeners: one per `gateway.listeners` entry of the config the agent
//! started with, bound at `--gateway-address`:PORT or where `--gateway-port PORT=ADDR`
//! says. Each accepted connection is TLS or plain as the active config's listener says
//! (a reload may add or drop a listener's certificate; the certificates themselves are
//! chosen per handshake, [`super::certs`]); a connection to a listener a reload removed is
//! closed. Adding a listener, or changing a port, needs a restart: the sockets are bound
//! once, at start.

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_config::Config;
use mesh_identity::rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::gateway::BoundListener;
use crate::gateway::certs::CertStore;
use crate::metrics::HandshakeLabels;
use crate::state::Snapshots;
use crate::tls::{Accepted, HANDSHAKE_TIMEOUT, Io};

/// Why a gateway's listeners cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A listener cannot be bound.
    #[error("cannot listen on {addr} (gateway listener of port {port}): {source}")]
    Bind {
        /// The listener's config port.
        port: u16,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS server config cannot be built.
    #[error("gateway listener of port {port}: {source}")]
    Tls {
        /// The listener's config port.
        port: u16,
        /// Why.
        source: mesh_identity::rustls::Error,
    },
}

/// A bound gateway listener, ready to serve.
pub struct Listener {
    /// What it is and where it listens.
    pub bound: BoundListener,
    /// The socket.
    pub socket: TcpListener,
    /// How connections to it are accepted.
    pub accept: Acceptor,
}

/// Binds a listener for each of `config`'s gateway listeners, at `bind(port)`.
pub async fn bind(
    config: &Config,
    bind: impl Fn(u16) -> SocketAddr,
    snapshots: &Snapshots,
    store: &Arc<CertStore>,
) -> Result<Vec<Listener>, ListenerError> {
    let Some(gateway) = config.gateway() else {
        return Ok(Vec::new());
    };
    let mut listeners = Vec::with_capacity(gateway.listeners.len());
    for listener in &gateway.listeners {
        let port = listener.port;
        let addr = bind(port);
        let socket = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenerError::Bind { port, addr, source })?;
        let tls = store
            .server_config(port, snapshots.clone())
            .map_err(|source| ListenerError::Tls { port, source })?;
        let handshakes = store.metrics().gateway_handshakes.clone();
        listeners.push(Listener {
            bound: BoundListener {
                port,
                tls: listener.tls.is_some(),
                address: socket.local_addr().unwrap_or(addr),
            },
            socket,
            accept: Acceptor {
                port,
                snapshots: snapshots.clone(),
                tls,
                handshakes,
            },
        });
    }
    Ok(listeners)
}

/// Logs a warning whenever a new config's listener ports differ from the `bound` ones
/// (ports are bound once, at start): runs until the snapshots end.
pub async fn warn_on_port_changes(mut snapshots: Snapshots, bound: Vec<BoundListener>) {
    let mut last: Option<Vec<u16>> = None;
    while snapshots.changed().await.is_ok() {
        let ports: Vec<u16> = snapshots
            .borrow_and_update()
            .as_ref()
            .and_then(|s| {
                s.config
                    .config
                    .gateway()
                    .map(|g| g.listeners.iter().map(|l| l.port).collect())
            })
            .unwrap_or_default();
        if last.as_ref() == Some(&ports) {
            continue;
        }
        let added: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| bound.iter().all(|b| b.port != *p))
            .collect();
        let removed: Vec<u16> = bound
            .iter()
            .map(|b| b.port)
            .filter(|p| !ports.contains(p))
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            tracing::warn!(
                ?added,
                ?removed,
                "the config's gateway listeners changed: ports are bound at start, restart the gateway to serve added ones (connections to removed ones are closed)"
            );
        }
        last = Some(ports);
    }
}

/// Accepts connections to one gateway listener: TLS or plain per the active config.
#[derive(Clone)]
pub struct Acceptor {
    port: u16,
    snapshots: Snapshots,
    tls: Arc<ServerConfig>,
    handshakes: Family<HandshakeLabels, Counter>,
}

impl Acceptor {
    /// The connection on `stream`, after the TLS handshake if the listener has a
    /// certificate; `None` when it is refused (handshake failed, listener removed).
    pub async fn accept(self, stream: TcpStream, remote: SocketAddr) -> Option<Accepted> {
        let tls = {
            let snapshot = self.snapshots.borrow().clone()?;
            let Some(listener) = snapshot
                .config
                .config
                .gateway()
                .and_then(|g| g.listeners.iter().find(|l| l.port == self.port))
            else {
                tracing::debug!(%remote, port = self.port, "refused: the config no longer has this listener");
                return None;
            };
            listener.tls.is_some()
        };
        if !tls {
            return Some(Accepted::plain(stream, None));
        }
        let handshake = TlsAcceptor::from(self.tls).accept(stream);
        let (accepted, result) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => (
                Some(Accepted {
                    io: Io::Tls(Box::new(stream)),
                    peer: None,
                    original_dst: None,
                }),
                "ok",
            ),
            Ok(Err(error)) => {
                tracing::debug!(%remote, port = self.port, %error, "gateway TLS handshake failed");
                (None, "failed")
            }
            Err(_) => {
                tracing::debug!(%remote, port = self.port, "gateway TLS handshake timed out");
                (None, "timeout")
            }
        };
        self.handshakes
            .get_or_create(&HandshakeLabels {
                port: self.port,
                result,
            })
            .inc();
        accepted
    }
}
