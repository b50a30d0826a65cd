//! Spare mTLS connections to peer agents, handshaken ahead of need for opaque TCP.
//!
//! An opaque TCP connection owns its TLS session end to end (its bytes are the app's), so
//! unlike HTTP it cannot share a pooled connection, and each one would otherwise wait for a
//! TCP connect and a TLS 1.3 handshake with the callee's agent: most of the setup latency
//! the mesh adds. Instead, once a workload has opened an opaque connection to an endpoint,
//! its agent keeps up to [`SPARES_PER_PEER`] handshaken connections to that endpoint in
//! reserve: the next connection takes one and sends its preamble at once, and a
//! replacement is handshaken in the background.
//!
//! A spare is used within [`MAX_AGE`] of its handshake or dropped (the callee's agent
//! waits twice as long for a preamble, so it never closes a spare that is still offered),
//! one the callee closed meanwhile is dropped when taken, and the reserve lives in
//! [`crate::tls::Tls`], so it dies with the identity it was made with: a rotated
//! certificate is never presented late. Only peers used recently keep spares
//! ([`MAX_PEERS`], least recently used dropped first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A handshaken connection to a peer agent's inbound listener (ALPN `mesh-tcp`).
pub type Upstream = TlsStream<TcpStream>;

/// Spares kept per peer (endpoint and the identity it must present).
pub const SPARES_PER_PEER: usize = 2;

/// How long after its handshake a spare may still be used: half the time the callee's
/// agent waits for a preamble ([`crate::tcp::PREAMBLE_TIMEOUT`]).
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Peers with a reserve at most.
const MAX_PEERS: usize = 256;

const _: () = assert!(2 * MAX_AGE.as_secs() <= crate::tcp::PREAMBLE_TIMEOUT.as_secs());

/// An endpoint and the SPIFFE id it must present.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Peer {
    addr: SocketAddr,
    identity: String,
}

/// One peer's reserve.
struct Reserve {
    /// Handshaken spares with their handshake time, oldest first.
    ready: Vec<(Upstream, Instant)>,
    /// Handshakes under way.
    pending: usize,
    /// When a connection to this peer last asked for a spare ([`Peers::tick`]).
    used: u64,
}

/// The reserves by peer, and a clock that orders their uses.
#[derive(Default)]
struct Peers {
    reserves: HashMap<Peer, Reserve>,
    tick: u64,
}

impl Peers {
    /// The reserve of `key` (created, making room if there are too many), marked used.
    fn touch(&mut self, key: Peer) -> &mut Reserve {
        self.tick += 1;
        let tick = self.tick;
        if !self.reserves.contains_key(&key) && self.reserves.len() >= MAX_PEERS {
            let oldest = self
                .reserves
                .iter()
                .min_by_key(|(_, reserve)| reserve.used)
                .map(|(peer, _)| peer.clone());
            if let Some(oldest) = oldest {
                self.reserves.remove(&oldest);
            }
        }
        let reserve = self.reserves.entry(key).or_insert_with(|| Reserve {
            ready: Vec::new(),
            pending: 0,
            used: tick,
        });
        reserve.used = tick;
        reserve
    }
}

/// What taking a spare found: the spare, and how many were dropped on the way.
#[derive(Default)]
pub struct Taken {
    /// A live spare, if there was one.
    pub spare: Option<Upstream>,
    /// Spares dropped because they were older than [`MAX_AGE`].
    pub expired: usize,
    /// Spares dropped because the callee had closed them.
    pub closed: usize,
}

/// The reserves of every peer.
#[derive(Default)]
pub struct Spares {
    peers: Mutex<Peers>,
}

impl Spares {
    /// Takes the youngest live spare for `addr` presenting `identity`, dropping expired
    /// and closed ones, and marks the peer as used.
    pub fn take(&self, addr: SocketAddr, identity: &str) -> Taken {
        let mut taken = Taken::default();
        let mut peers = self.lock();
        let key = peer(addr, identity);
        if !peers.reserves.contains_key(&key) {
            return taken;
        }
        let reserve = peers.touch(key);
        let now = Instant::now();
        let fresh = reserve
            .ready
            .iter()
            .position(|(_, made)| now.duration_since(*made) < MAX_AGE)
            .unwrap_or(reserve.ready.len());
        taken.expired = fresh;
        reserve.ready.drain(..fresh);
        while let Some((mut spare, _)) = reserve.ready.pop() {
            if is_open(&mut spare) {
                taken.spare = Some(spare);
                break;
            }
            taken.closed += 1;
        }
        taken
    }

    /// How many spares to handshake now for `addr` presenting `identity`, after a
    /// connection to it: as many as the reserve lacks, counted as under way until
    /// [`Spares::put`] or [`Spares::failed`] reports each.
    pub fn wanted(&self, addr: SocketAddr, identity: &str) -> usize {
        let mut peers = self.lock();
        let reserve = peers.touch(peer(addr, identity));
        let wanted = SPARES_PER_PEER.saturating_sub(reserve.ready.len() + reserve.pending);
        reserve.pending += wanted;
        wanted
    }

    /// Stores a spare handshaken for `addr` presenting `identity`.
    pub fn put(&self, addr: SocketAddr, identity: &str, spare: Upstream) {
        let mut peers = self.lock();
        // A peer dropped meanwhile (least recently used) gets no spare back.
        if let Some(reserve) = peers.reserves.get_mut(&peer(addr, identity)) {
            reserve.pending = reserve.pending.saturating_sub(1);
            reserve.ready.push((spare, Instant::now()));
        }
    }

    /// Reports a spare handshake for `addr` presenting `identity` that failed.
    pub fn failed(&self, addr: SocketAddr, identity: &str) {
        if let Some(reserve) = self.lock().reserves.get_mut(&peer(addr, identity)) {
            reserve.pending = reserve.pending.saturating_sub(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Peers> {
        match self.peers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn peer(addr: SocketAddr, identity: &str) -> Peer {
    Peer {
        addr,
        identity: identity.to_string(),
    }
}

/// Whether `spare` is still open: nothing to read yet. The callee's agent sends nothing
/// before the preamble but session tickets, which rustls consumes here; end of stream, an
/// alert or application data means the spare is unusable.
fn is_open(spare: &mut Upstream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(spare).poll_read(&mut cx, &mut buf), Poll::Pending)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a panic is a failure report"
    )]

    use mesh_identity::rustls::pki_types::ServerName;
    use mesh_identity::{Ca, ClientAuth, Identity, SpiffeId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    fn identity(ca: &Ca, name: &str) -> Identity {
        let id = SpiffeId::parse(&format!("spiffe://cluster.local/ns/t/sa/{name}")).unwrap();
        let issued = ca.issue(&id, Duration::from_secs(3600)).unwrap();
        Identity::from_pem(
            issued.cert_pem().as_bytes(),
            issued.key_pem().as_bytes(),
            issued.ca_pem().as_bytes(),
        )
        .unwrap()
    }

    /// A peer that completes mTLS handshakes and then, per connection, either holds the
    /// connection open until the client's byte arrives (echoing it) or closes it at once.
    async fn peer(close: bool) -> (SocketAddr, TlsConnector) {
        let ca = Ca::generate("spare test CA").unwrap();
        let server = identity(&ca, "server");
        let client = identity(&ca, "client");
        let acceptor =
            TlsAcceptor::from(mesh_identity::server_config(&server, ClientAuth::Required).unwrap());
        let expected = SpiffeId::parse("spiffe://cluster.local/ns/t/sa/server").unwrap();
        let connector =
            TlsConnector::from(mesh_identity::client_config(&client, &expected).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if close {
                        let _ = tls.shutdown().await;
                        return;
                    }
                    let mut byte = [0u8; 1];
                    if tls.read_exact(&mut byte).await.is_ok() {
                        let _ = tls.write_all(&byte).await;
                    }
                });
            }
        });
        (addr, connector)
    }

    async fn handshake(addr: SocketAddr, connector: &TlsConnector) -> Upstream {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        connector.connect(name, tcp).await.unwrap()
    }

    const ID: &str = "spiffe://cluster.local/ns/t/sa/server";

    #[tokio::test]
    async fn a_spare_is_offered_once_and_carries_bytes() {
        let (addr, connector) = peer(false).await;
        let spares = Spares::default();
        assert!(spares.take(addr, ID).spare.is_none());
        assert_eq!(spares.wanted(addr, ID), SPARES_PER_PEER);
        // Handshakes under way count: asking again wants none.
        assert_eq!(spares.wanted(addr, ID), 0);
        for _ in 0..SPARES_PER_PEER {
            spares.put(addr, ID, handshake(addr, &connector).await);
        }
        for _ in 0..SPARES_PER_PEER {
            let mut spare = spares.take(addr, ID).spare.expect("a live spare");
            spare.write_all(b"x").await.unwrap();
            let mut echo = [0u8; 1];
            spare.read_exact(&mut echo).await.unwrap();
            assert_eq!(&echo, b"x");
        }
        assert!(spares.take(addr, ID).spare.is_none());
        // Another identity at the same address is another peer.
        assert_eq!(
            spares.wanted(addr, "spiffe://cluster.local/ns/t/sa/other"),
            2
        );
    }

    #[tokio::test]
    async fn a_spare_the_callee_closed_is_dropped_not_offered() {
        let (addr, connector) = peer(true).await;
        let spares = Spares::default();
        assert_eq!(spares.wanted(addr, ID), SPARES_PER_PEER);
        spares.put(addr, ID, handshake(addr, &connector).await);
        // Bounded wait for the callee's close_notify and FIN to reach the socket.
        let mut taken = Taken::default();
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            taken = spares.take(addr, ID);
            if taken.spare.is_none() {
                break;
            }
            spares.put(addr, ID, taken.spare.take().unwrap());
        }
        assert!(taken.spare.is_none());
        assert_eq!(taken.closed, 1);
    }

    #[tokio::test]
    async fn a_failed_handshake_frees_its_place() {
        let spares = Spares::default();
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        assert_eq!(spares.wanted(addr, ID), SPARES_PER_PEER);
        spares.failed(addr, ID);
        assert_eq!(spares.wanted(addr, ID), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_peer_makes_room() {
        let spares = Spares::default();
        let first = SocketAddr::from(([127, 0, 0, 1], 1));
        spares.wanted(first, ID);
        for port in 2..=u16::try_from(MAX_PEERS).unwrap() {
            spares.wanted(SocketAddr::from(([127, 0, 0, 1], port)), ID);
        }
        // Touching the first peer keeps it; the second is the oldest now.
        spares.take(first, ID);
        spares.wanted(SocketAddr::from(([127, 0, 0, 2], 1)), ID);
        let peers = &spares.lock().reserves;
        assert_eq!(peers.len(), MAX_PEERS);
        assert!(peers.contains_key(&super::peer(first, ID)));
        assert!(!peers.contains_key(&super::peer(SocketAddr::from(([127, 0, 0, 1], 2)), ID)));
    }
}
