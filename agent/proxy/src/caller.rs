//! Who is on the other end of an inbound connection. The peer's SPIFFE id is fixed by the
//! handshake, so its Cedar principal (and the entity set authorization evaluates against)
//! is built once per connection, on its first request, not once per request.

use std::sync::OnceLock;

use mesh_config::Peer;
use mesh_identity::SpiffeId;

/// The caller of one connection: its verified identity, if any, and its principal.
#[derive(Debug, Default)]
pub struct Caller {
    id: Option<SpiffeId>,
    /// Where the client was connecting when capture rules redirected it to the agent.
    original_dst: Option<std::net::SocketAddr>,
    /// The client's address (`None`: not known, as for a caller made in a test).
    remote: Option<std::net::SocketAddr>,
    /// Whether the connection is TLS.
    tls: bool,
    /// The principal, with the trust domain it was built for.
    peer: OnceLock<(String, Peer)>,
    /// The `x-forwarded-client-cert` value, with the workload identity it was built for.
    forwarded: OnceLock<(String, Option<http::HeaderValue>)>,
}

impl Caller {
    /// The caller that presented `id` (none: plaintext, an anonymous caller).
    pub fn new(id: Option<SpiffeId>) -> Caller {
        Caller {
            id,
            original_dst: None,
            remote: None,
            tls: false,
            peer: OnceLock::new(),
            forwarded: OnceLock::new(),
        }
    }

    /// The same caller, on a connection that capture rules redirected from `original_dst`.
    pub fn captured(self, original_dst: Option<std::net::SocketAddr>) -> Caller {
        Caller {
            original_dst,
            ..self
        }
    }

    /// The same caller, connected from `remote`, over TLS or not.
    pub fn connected(self, remote: std::net::SocketAddr, tls: bool) -> Caller {
        Caller {
            remote: Some(remote),
            tls,
            ..self
        }
    }

    /// The client's address, when known.
    pub fn remote(&self) -> Option<std::net::SocketAddr> {
        self.remote
    }

    /// Whether the connection is TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Where the client was connecting, for a captured connection.
    pub fn original_dst(&self) -> Option<std::net::SocketAddr> {
        self.original_dst
    }

    /// The verified SPIFFE id, if any.
    pub fn id(&self) -> Option<&SpiffeId> {
        self.id.as_ref()
    }

    /// The caller as a Cedar principal of the mesh whose trust domain is `trust_domain`;
    /// built on first use and kept for the connection (rebuilt, uncached, in the rare case
    /// a config reload changed the trust domain mid-connection).
    pub fn peer(&self, trust_domain: &str) -> std::borrow::Cow<'_, Peer> {
        let (built_for, peer) = self
            .peer
            .get_or_init(|| (trust_domain.to_owned(), self.build(trust_domain)));
        if built_for == trust_domain {
            std::borrow::Cow::Borrowed(peer)
        } else {
            std::borrow::Cow::Owned(self.build(trust_domain))
        }
    }

    /// `By=<own_identity>;URI=<caller id>` for the app (none for anonymous callers); built
    /// on first use and kept for the connection, like [`Caller::peer`].
    pub fn forwarded_client_cert(&self, own_identity: &str) -> Option<http::HeaderValue> {
        let build = || {
            self.id.as_ref().and_then(|id| {
                http::HeaderValue::try_from(format!("By={own_identity};URI={id}")).ok()
            })
        };
        let (built_for, value) = self
            .forwarded
            .get_or_init(|| (own_identity.to_owned(), build()));
        if built_for == own_identity {
            value.clone()
        } else {
            build()
        }
    }

    fn build(&self, trust_domain: &str) -> Peer {
        match &self.id {
            Some(id) => Peer::from_spiffe_id(&id.to_string(), trust_domain),
            None => Peer::anonymous(),
        }
    }
}
