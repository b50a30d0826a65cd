//! The bottom of the outbound stack: sends one try to one endpoint — over mTLS to its
//! agent (the snapshot's pooled client that accepts only the callee's SPIFFE id: no lock
//! or lookup per request) once this agent has an identity, in plaintext before, or in plaintext to an endpoint without an agent
//! while the mesh is permissive — and sorts failures into refused connections and
//! resets, for retries and passive health. An upgrade handshake is forwarded as such.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use tower::Service;

use crate::client::{Clients, SendError, send_on};
use crate::error::ProxyError;
use crate::http::{Body, boxed, full, strip_hop_by_hop};
use crate::outbound::call::{Call, CallBody};
use crate::stack::{Answer, BoxFuture};
use crate::state::ServicePools;
use crate::tls::MtlsClient;

/// One try, with the endpoint the balancer picked.
pub struct Dispatch {
    /// The request.
    pub call: Call,
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// Its service's pools (protocol, identity).
    pub service: Arc<ServicePools>,
}

/// Sends tries to endpoints.
#[derive(Clone)]
pub struct Endpoint {
    clients: Clients,
}

impl Endpoint {
    /// Sends with `clients` in plaintext, with the snapshot's identity over mTLS.
    pub fn new(clients: Clients) -> Endpoint {
        Endpoint { clients }
    }

    /// How to reach `dispatch`'s endpoint.
    fn transport(dispatch: &Dispatch) -> Result<Transport, ProxyError> {
        let snapshot = &dispatch.call.snapshot;
        let meshed = snapshot
            .endpoint_access(dispatch.addr)
            .map_err(ProxyError::NotMeshed)?;
        match snapshot.mtls(&dispatch.service) {
            Some(client) if meshed => {
                client
                    .map(Transport::Mtls)
                    .map_err(|error| ProxyError::BadIdentity {
                        identity: dispatch.service.identity.clone(),
                        error,
                    })
            }
            _ => Ok(Transport::Plain),
        }
    }
}

impl Service<Dispatch> for Endpoint {
    type Response = Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    crate::always_ready!();

    fn call(&mut self, dispatch: Dispatch) -> Self::Future {
        let transport = match Endpoint::transport(&dispatch) {
            Ok(transport) => transport,
            Err(error) => return Box::pin(async { Err(error) }),
        };
        // A service with `limits` has plaintext clients of its own, whose connections
        // count against its `max_connections`.
        let clients = match dispatch.service.gate.get() {
            Some(gate) => gate.plain_clients().clone(),
            None => self.clients.clone(),
        };
        Box::pin(async move {
            let Dispatch {
                call,
                addr,
                service,
            } = dispatch;
            if call.mirror.is_none()
                && let Some(note) = crate::access_log::note(&call.head.extensions)
            {
                note.tried();
                if let Transport::Mtls(_) = &transport {
                    note.upstream_identity(&service.identity);
                }
            }
            // Named only when a try fails: no allocation on the way of a success.
            let service_ref = call.service_ref();
            let overloaded = || ProxyError::Overloaded {
                service: service_ref.name(),
                limit: "max_connections",
            };
            let target = || format!("{} at {addr}", service_ref.name());
            let Call {
                mut head,
                body,
                upgrade,
                ..
            } = call;
            let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
            head.uri = Uri::try_from(format!("{}://{addr}{path}", transport.scheme()))
                .map_err(|e| ProxyError::CannotForward(e.to_string()))?;
            head.version = Version::HTTP_11;
            head.extensions.clear();
            let (body, failed) = match body {
                CallBody::Buffered(bytes) => (full(bytes), None),
                CallBody::Streaming { body, failed } => (body, Some(failed)),
            };
            let mut request = Request::from_parts(head, body);
            let sent = match &upgrade {
                Some(upgrade) => {
                    upgrade.prepare(&mut request);
                    transport.send(&clients, request, false).await
                }
                None => transport.send(&clients, request, service.http2).await,
            };
            match sent {
                Ok(response) => Ok(match upgrade {
                    Some(upgrade) => upgrade.finish(response),
                    None => {
                        let (mut parts, body) = response.into_parts();
                        strip_hop_by_hop(&mut parts.headers);
                        parts
                            .extensions
                            .insert(crate::access_log::UpstreamHost(addr));
                        Response::from_parts(parts, boxed(body))
                    }
                }),
                Err(SendError::Overloaded) => Err(overloaded()),
                Err(SendError::Connect(error)) => Err(ProxyError::Connect {
                    target: target(),
                    error,
                }),
                Err(SendError::Reset(error)) if failed.as_ref().is_some_and(|f| f.get()) => {
                    Err(ProxyError::BadRequestBody(error))
                }
                Err(SendError::Reset(error)) => Err(ProxyError::Reset {
                    target: target(),
                    error,
                }),
            }
        })
    }
}

/// How requests reach a mesh service's endpoints.
enum Transport {
    /// Plaintext (the shared clients), when the agent has no identity.
    Plain,
    /// mTLS that accepts only the callee's SPIFFE id.
    Mtls(Arc<MtlsClient>),
}

impl Transport {
    fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Mtls(_) => "https",
        }
    }

    /// Sends `request`; over mTLS the HTTP version is what ALPN negotiated.
    async fn send(
        &self,
        clients: &Clients,
        request: Request<Body>,
        http2: bool,
    ) -> Result<Response<Incoming>, SendError> {
        match self {
            Transport::Plain => clients.send(request, http2).await,
            Transport::Mtls(client) => send_on(client, request).await,
        }
    }
}
