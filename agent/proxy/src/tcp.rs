//! Opaque TCP between agents. The caller's agent picks a backend per connection
//! (`mesh-config`'s `route_connection`: rules decided by `source`, splits), balances over
//! its endpoints, and connects to the callee agent's inbound listener with mTLS offering
//! only ALPN `mesh-tcp`; the first bytes on the connection are a three-byte preamble —
//! a zero byte (no HTTP connection starts with it, so plaintext peers can be told apart
//! too) and the destination port, big-endian — and then the app's bytes, untouched. The
//! callee's agent authorizes the connection with Cedar (action `TCP`, the caller's
//! identity, the port) and relays it to the app's port. Connect and idle timeouts come
//! from the route; buffers are bounded ([`crate::relay`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_config::schema::{Egress, FULL_WEIGHT};
use mesh_identity::rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::caller::Caller;
use crate::client::CONNECT_TIMEOUT;
use crate::metrics::{ServiceLabels, SpareLabels, TcpLabels};
use crate::relay::{Transferred, relay};
use crate::spare;
use crate::state::{Shared, Snapshot};
use crate::tls::Tls;

/// The ALPN protocol of opaque TCP between agents.
pub const ALPN: &[u8] = b"mesh-tcp";

/// The preamble's first byte.
pub const PREAMBLE_MARK: u8 = 0;

/// How long a peer may take to send the preamble.
pub const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Endpoints tried for one connection before giving up.
const MAX_ENDPOINT_TRIES: usize = 3;

/// The preamble announcing opaque TCP to `port`.
pub fn preamble(port: u16) -> [u8; 3] {
    let [high, low] = port.to_be_bytes();
    [PREAMBLE_MARK, high, low]
}

/// Reads the preamble; the destination port.
pub async fn read_preamble<R: AsyncRead + Unpin>(io: &mut R) -> std::io::Result<u16> {
    let mut bytes = [0u8; 3];
    tokio::time::timeout(PREAMBLE_TIMEOUT, io.read_exact(&mut bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no preamble"))??;
    match bytes {
        [PREAMBLE_MARK, high, low] if u16::from_be_bytes([high, low]) != 0 => {
            Ok(u16::from_be_bytes([high, low]))
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an opaque TCP preamble",
        )),
    }
}

/// Where the local app listens: `--app`'s address for its HTTP port, and for any other
/// port the same host on that port unless `--app-port PORT=ADDR` says otherwise.
#[derive(Clone, Debug)]
pub struct AppPorts {
    app: SocketAddr,
    overrides: Vec<(u16, SocketAddr)>,
}

impl AppPorts {
    /// The app at `app`, with per-port overrides.
    pub fn new(app: SocketAddr, overrides: Vec<(u16, SocketAddr)>) -> AppPorts {
        AppPorts { app, overrides }
    }

    /// The app's HTTP address (`--app`).
    pub fn http(&self) -> SocketAddr {
        self.app
    }

    /// Where the app serves `port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        self.overrides
            .iter()
            .find(|(p, _)| *p == port)
            .map_or_else(|| SocketAddr::new(self.app.ip(), port), |(_, addr)| *addr)
    }
}

/// Relays the app's captured connection `app` to port `port` of the outbound service at
/// `index` of `snapshot`.
pub async fn outbound(
    shared: &Shared,
    snapshot: &Snapshot,
    app: TcpStream,
    index: usize,
    port: u16,
) {
    let config = &snapshot.config.config;
    let Some(decision) = config.route_connection(index, fastrand::u32(..FULL_WEIGHT)) else {
        return;
    };
    let service = decision.service;
    let backend = decision.backend;
    let tls = shared.tls();
    let mut labels = TcpLabels {
        direction: "outbound",
        service: backend.service.clone(),
        peer: if tls.is_some() {
            service.identity.clone()
        } else {
            String::new()
        },
        tls: if tls.is_some() { "mtls" } else { "plaintext" },
        result: "no-endpoints",
    };
    let Some((pool, pools)) = snapshot.pool(&backend.service, backend.subset.as_deref()) else {
        shared.metrics.tcp(labels);
        return;
    };
    // The service's `max_connections`: one upstream connection per app connection,
    // refused (closed at once) at the limit.
    let limits = pools.limits.filter(|l| l.max_connections.is_some());
    let _connection = match limits {
        Some(limits) => {
            let gate = pools
                .gate
                .get_or_init(|| shared.gates.resolve(&backend.service, &limits));
            match gate.connect() {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(service = %backend.service, "opaque TCP refused: max_connections open");
                    labels.result = "overloaded";
                    shared.metrics.tcp(labels);
                    return;
                }
            }
        }
        None => None,
    };
    let connect_timeout = service
        .connect_timeout_us
        .map_or(CONNECT_TIMEOUT, Duration::from_micros);
    let idle = service.idle_timeout_us.map(Duration::from_micros);
    let mut avoid = None;
    for _ in 0..MAX_ENDPOINT_TRIES.min(pool.endpoints.len()) {
        let Some(endpoint) = pool.pick(avoid).map(Arc::clone) else {
            break;
        };
        let through_agent = match snapshot.endpoint_access(endpoint.addr) {
            Ok(through_agent) => through_agent,
            Err(why) => {
                tracing::info!(endpoint = %endpoint.addr, "opaque TCP refused: {why}");
                labels.result = "not-meshed";
                break;
            }
        };
        // mTLS to the callee's agent when there is one and this agent has an identity;
        // an endpoint without an agent is the app itself, plaintext with no preamble.
        let mtls = tls.as_ref().filter(|_| through_agent);
        let opened = match mtls {
            Some(tls) => open_mtls(
                shared,
                tls,
                endpoint.addr,
                &service.identity,
                connect_timeout,
            )
            .await
            .map(|upstream| Opened::Tls(Box::new(upstream))),
            None => connect(endpoint.addr, connect_timeout)
                .await
                .map(Opened::Plain),
        };
        let upstream = match opened {
            Ok(upstream) => upstream,
            Err(OpenError::Connect(error)) => {
                tracing::debug!(endpoint = %endpoint.addr, %error, "opaque TCP: connect failed");
                if let Some(outlier) = &pools.outlier {
                    // Outlier detection replaces the connect back-off for this service.
                    if endpoint.outlier_failed(outlier) && pools.eject(&endpoint, outlier) {
                        shared
                            .metrics
                            .outlier_ejections
                            .get_or_create(&ServiceLabels {
                                service: backend.service.clone(),
                            })
                            .inc();
                        tracing::warn!(endpoint = %endpoint.addr, service = %backend.service, "endpoint ejected by outlier detection");
                    }
                } else if endpoint.connect_failed() {
                    shared
                        .metrics
                        .ejections
                        .get_or_create(&ServiceLabels {
                            service: backend.service.clone(),
                        })
                        .inc();
                }
                avoid = Some(endpoint.addr);
                labels.result = "connect-failed";
                continue;
            }
            Err(OpenError::Handshake(error)) => {
                tracing::info!(endpoint = %endpoint.addr, identity = %service.identity, %error, "opaque TCP: mTLS handshake failed");
                labels.result = "connect-failed";
                break;
            }
        };
        if pools.outlier.is_some() {
            endpoint.outlier_succeeded();
        } else {
            endpoint.connected();
        }
        if !through_agent {
            labels.tls = "plaintext";
        }
        let _in_flight = endpoint.start();
        let started = Instant::now();
        let relayed = match upstream {
            Opened::Tls(mut upstream) => match send_preamble(&mut upstream, port).await {
                Ok(()) => relay(app, upstream, idle).await,
                Err(error) => unsent(&error),
            },
            Opened::Plain(mut upstream) if through_agent => {
                match send_preamble(&mut upstream, port).await {
                    Ok(()) => relay(app, upstream, idle).await,
                    Err(error) => unsent(&error),
                }
            }
            Opened::Plain(upstream) => relay(app, upstream, idle).await,
        };
        labels.result = "opened";
        shared.metrics.tcp(labels.clone());
        finish(shared, &labels, relayed, started, endpoint.addr);
        return;
    }
    shared.metrics.tcp(labels);
}

/// An upstream connection ready for the preamble or the app's bytes.
enum Opened {
    Plain(TcpStream),
    Tls(Box<spare::Upstream>),
}

/// Why no upstream connection could be opened.
enum OpenError {
    /// The endpoint did not accept a TCP connection in time.
    Connect(String),
    /// The TLS handshake failed or the connector could not be built.
    Handshake(String),
}

/// A TCP connection to `addr` within `timeout`, without Nagle's delays.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, OpenError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(error)) => Err(OpenError::Connect(error.to_string())),
        Err(_) => Err(OpenError::Connect("timed out".into())),
    }
}

/// An mTLS connection (ALPN `mesh-tcp`) to the agent at `addr`, which must present
/// `identity`: a spare when one is ready ([`crate::spare`]), else a new handshake; either
/// way the spares used are handshaken again in the background.
async fn open_mtls(
    shared: &Shared,
    tls: &Arc<Tls>,
    addr: SocketAddr,
    identity: &str,
    timeout: Duration,
) -> Result<spare::Upstream, OpenError> {
    let taken = tls.spares.take(addr, identity);
    shared.metrics.spares("expired", taken.expired);
    shared.metrics.spares("closed", taken.closed);
    let upstream = match taken.spare {
        Some(spare) => {
            shared.metrics.spares("used", 1);
            spare
        }
        None => handshake(tls, addr, identity, timeout).await?,
    };
    for _ in 0..tls.spares.wanted(addr, identity) {
        let tls = Arc::clone(tls);
        let identity = identity.to_string();
        let spares = shared.metrics.tcp_spares.clone();
        tokio::spawn(async move {
            match handshake(&tls, addr, &identity, timeout).await {
                Ok(spare) => tls.spares.put(addr, &identity, spare),
                Err(OpenError::Connect(error) | OpenError::Handshake(error)) => {
                    tracing::debug!(%addr, %identity, %error, "opaque TCP: spare handshake failed");
                    spares
                        .get_or_create(&SpareLabels { result: "failed" })
                        .inc();
                    tls.spares.failed(addr, &identity);
                }
            }
        });
    }
    Ok(upstream)
}

/// Connects to the agent at `addr` and runs the mTLS handshake, each within `timeout`.
async fn handshake(
    tls: &Tls,
    addr: SocketAddr,
    identity: &str,
    timeout: Duration,
) -> Result<spare::Upstream, OpenError> {
    let connector = tls.tcp_connector(identity).map_err(OpenError::Handshake)?;
    let stream = connect(addr, timeout).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Ok(Ok(upstream)) => Ok(upstream),
        Ok(Err(error)) => Err(OpenError::Handshake(error.to_string())),
        Err(_) => Err(OpenError::Handshake("timed out".into())),
    }
}

async fn send_preamble<W: AsyncWrite + Unpin>(upstream: &mut W, port: u16) -> std::io::Result<()> {
    upstream.write_all(&preamble(port)).await?;
    upstream.flush().await
}

/// Relays the app's captured connection to `dst`, a destination outside the mesh, when
/// egress is allowed.
pub async fn passthrough(shared: &Shared, snapshot: &Snapshot, app: TcpStream, dst: SocketAddr) {
    let mut labels = TcpLabels {
        direction: "outbound",
        service: "passthrough".into(),
        peer: String::new(),
        tls: "plaintext",
        result: "egress-denied",
    };
    if snapshot.config.config.source().outbound.egress == Egress::Deny {
        tracing::info!(%dst, "opaque TCP: egress denied");
        shared.metrics.tcp(labels);
        return;
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dst)).await {
        Ok(Ok(upstream)) => {
            let _ = upstream.set_nodelay(true);
            labels.result = "opened";
            shared.metrics.tcp(labels.clone());
            let started = Instant::now();
            finish(
                shared,
                &labels,
                relay(app, upstream, None).await,
                started,
                dst,
            );
        }
        _ => {
            labels.result = "connect-failed";
            shared.metrics.tcp(labels);
        }
    }
}

/// Authorizes an opaque TCP connection from `caller` to this workload's `port` and relays
/// it to the app.
pub async fn inbound<IO>(
    shared: &Shared,
    io: IO,
    caller: &Caller,
    tls: bool,
    port: u16,
    app: &AppPorts,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let Some(snapshot) = shared.snapshot() else {
        return;
    };
    let config = &snapshot.config.config;
    let peer = caller.peer(&config.source().mesh.trust_domain);
    let decision = config.authorize_connection(port, &peer);
    shared.metrics.authz(&decision);
    let who = caller
        .id()
        .map_or_else(|| "anonymous".to_string(), ToString::to_string);
    let mut labels = TcpLabels {
        direction: "inbound",
        service: config.source().workload.service.clone(),
        peer: who,
        tls: if tls { "mtls" } else { "plaintext" },
        result: "allow",
    };
    if !decision.allowed() {
        tracing::info!(peer = %labels.peer, port, reason = %decision.reason(), "opaque TCP connection denied");
        labels.result = "deny";
        shared.metrics.tcp(labels);
        return;
    }
    if decision.decision == mesh_config::Verdict::Deny {
        tracing::warn!(peer = %labels.peer, port, reason = %decision.reason(), "audit: opaque TCP connection would be denied");
        labels.result = "audit";
    }
    let addr = app.addr(port);
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(upstream)) => {
            let _ = upstream.set_nodelay(true);
            shared.metrics.tcp(labels.clone());
            let started = Instant::now();
            finish(
                shared,
                &labels,
                relay(io, upstream, None).await,
                started,
                addr,
            );
        }
        _ => {
            tracing::info!(%addr, "opaque TCP: the local app does not accept connections");
            labels.result = "app-unavailable";
            shared.metrics.tcp(labels);
        }
    }
}

/// A connection that failed before any byte was relayed.
fn unsent(error: &std::io::Error) -> Transferred {
    Transferred {
        failed: Some(error.kind()),
        ..Transferred::default()
    }
}

/// Counts and records a relayed connection that went to `upstream`.
fn finish(
    shared: &Shared,
    labels: &TcpLabels,
    transferred: Transferred,
    started: Instant,
    upstream: SocketAddr,
) {
    if transferred.idle_timeout {
        tracing::debug!(service = %labels.service, "opaque TCP: closed after the idle timeout");
    }
    if let Some(kind) = transferred.failed {
        tracing::debug!(service = %labels.service, ?kind, "opaque TCP: connection failed");
    }
    let sinks = shared.access_log.sinks(shared.snapshot().as_deref());
    if sinks.any() {
        let elapsed = started.elapsed();
        crate::access_log::tcp(
            &shared.access_log,
            sinks,
            labels.direction,
            std::time::SystemTime::now()
                .checked_sub(elapsed)
                .unwrap_or(std::time::UNIX_EPOCH),
            elapsed,
            &labels.service,
            (!labels.peer.is_empty()).then(|| labels.peer.clone()),
            Some(upstream),
            transferred.sent,
            transferred.received,
        );
    }
    shared
        .metrics
        .tcp_done(labels, transferred, started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preamble_round_trips_and_refuses_other_bytes() {
        let mut good = &preamble(5432)[..];
        assert_eq!(read_preamble(&mut good).await.ok(), Some(5432));
        for bad in [&b"GET"[..], &[0, 0, 0][..], &[0, 1][..]] {
            let mut bad = bad;
            assert!(read_preamble(&mut bad).await.is_err());
        }
    }

    /// A snapshot calling `ns/db` (`port tcp 5432`, `limits { max_connections 1 }`) whose
    /// one endpoint, without an agent, is at `addr`.
    fn limited_db(addr: SocketAddr) -> Snapshot {
        let config = serde_json::json!({
            "version": 1,
            "mesh": {"name": "test", "trust_domain": "cluster.local"},
            "workload": {"service": "ns/app", "identity": "spiffe://cluster.local/ns/ns/sa/app",
                "ports": [{"protocol": "http", "number": 8080}]},
            "inbound": {"mtls": "permissive", "authz": {"kind": "allow_all"}},
            "outbound": {"egress": "allow", "services": [{
                "service": "ns/db", "authorities": ["db"],
                "ports": [{"protocol": "tcp", "number": 5432}],
                "identity": "spiffe://cluster.local/ns/ns/sa/db",
                "labels": {"app": "db"}, "subsets": [], "balance": "round_robin",
                "timeout_us": null, "retry": null, "rules": [],
                "limits": {"max_connections": 1, "max_pending": null, "max_requests": null}
            }]}
        });
        let loaded = crate::state::LoadedConfig {
            config: mesh_config::Config::from_json(config.to_string().as_bytes())
                .expect("a valid config"),
            hash: String::new(),
            loaded_at: std::time::SystemTime::now(),
        };
        let endpoint = crate::discovery::Endpoint {
            service: "ns/db".into(),
            address: addr,
            labels: [("app".to_string(), "db".to_string())].into(),
            meshed: false,
        };
        let endpoints = crate::discovery::Endpoints::from_list(vec![endpoint]);
        Snapshot::new(
            Arc::new(loaded),
            Arc::new(endpoints),
            None,
            &crate::pool::Registry::default(),
        )
    }

    /// An app connection: the client's end and the end the agent relays.
    async fn app_connection() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn beyond_max_connections_an_app_connection_is_closed_at_once() {
        let limit = Duration::from_secs(5);
        let db = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let shared = Arc::new(Shared::new(false));
        let snapshot = Arc::new(limited_db(db.local_addr().expect("an address")));
        let (mut first, relayed) = app_connection().await;
        let relaying = {
            let (shared, snapshot) = (Arc::clone(&shared), Arc::clone(&snapshot));
            tokio::spawn(async move { outbound(&shared, &snapshot, relayed, 0, 5432).await })
        };
        let (mut upstream, _) = tokio::time::timeout(limit, db.accept())
            .await
            .expect("the first connection reaches the endpoint")
            .expect("accept");
        first.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        tokio::time::timeout(limit, upstream.read_exact(&mut got))
            .await
            .expect("relayed in time")
            .expect("read");
        assert_eq!(&got, b"ping");

        // The second is refused: the agent closes the app's connection without a try.
        let (mut second, refused) = app_connection().await;
        tokio::time::timeout(limit, outbound(&shared, &snapshot, refused, 0, 5432))
            .await
            .expect("refused at once");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(limit, second.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0))), "closed: {read:?}");
        let text = shared.metrics.encode();
        let line = r#"mesh_overloaded_total{service="ns/db",limit="max_connections"} 1"#;
        assert!(text.contains(line), "{text}");
        assert!(text.contains(r#"result="overloaded"} 1"#), "{text}");

        // Closing the first frees its place.
        drop((first, upstream));
        tokio::time::timeout(limit, relaying)
            .await
            .expect("the relay ends")
            .expect("joined");
        let (_, pools) = snapshot.pool("ns/db", None).expect("the service");
        assert_eq!(pools.gate.get().map(|g| g.connections()), Some(0));
    }

    #[test]
    fn app_ports_default_to_the_app_host() {
        let ports = AppPorts::new(
            "127.0.0.1:8080"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            vec![(5432, SocketAddr::from(([127, 0, 0, 2], 15432)))],
        );
        assert_eq!(ports.addr(27017), SocketAddr::from(([127, 0, 0, 1], 27017)));
        assert_eq!(ports.addr(5432), SocketAddr::from(([127, 0, 0, 2], 15432)));
    }
}
