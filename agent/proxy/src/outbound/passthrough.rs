//! Requests for destinations the config does not route: sent on unchanged — to the
//! captured connection's original destination, else to the authority — when egress is
//! allowed; refused when they are for a mesh service this workload may not call, for
//! the agent's own listener (a loop), or when egress is denied.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Uri};
use tower::Service;

use crate::client::{Clients, SendError};
use crate::error::ProxyError;
use crate::http::{Body, strip_hop_by_hop};
use crate::stack::{Answer, BoxFuture};
use crate::state::Snapshot;
use crate::upgrade;

/// A request the config does not route.
pub struct Unrouted {
    /// The snapshot the router looked it up on.
    pub snapshot: Arc<Snapshot>,
    /// The request.
    pub request: Request<Body>,
    /// Its authority (or the original destination).
    pub authority: String,
    /// The captured connection's original destination.
    pub original_dst: Option<SocketAddr>,
}

/// Sends unrouted requests out of the mesh, or refuses them.
#[derive(Clone)]
pub struct Passthrough {
    clients: Clients,
    /// The outbound listener's own address: passing a request through to it would loop.
    listening: SocketAddr,
}

impl Passthrough {
    /// Sends with `clients`; `listening` is the outbound listener's address.
    pub fn new(clients: Clients, listening: SocketAddr) -> Passthrough {
        Passthrough { clients, listening }
    }

    /// Whether `authority` names this listener (a request the agent would send to itself).
    fn is_self(&self, authority: &str) -> bool {
        authority.parse::<SocketAddr>().is_ok_and(|addr| {
            addr.port() == self.listening.port()
                && (addr.ip() == self.listening.ip()
                    || (addr.ip().is_loopback() && self.listening.ip().is_unspecified()))
        })
    }

    /// Why `unrouted` may not leave, if it may not.
    fn refusal(&self, unrouted: &Unrouted) -> Option<ProxyError> {
        let Unrouted {
            snapshot,
            authority,
            original_dst,
            ..
        } = unrouted;
        let config = &snapshot.config.config;
        let caller = &config.source().workload.service;
        // Only reached when the destination names no service this workload may call.
        if let Some(service) = original_dst.and_then(|dst| snapshot.mesh_service_at(dst)) {
            return Some(ProxyError::Denied(format!(
                "{service} is a service of the mesh that {caller} may not call: no policy allows it"
            )));
        }
        if self.is_self(authority) {
            return Some(ProxyError::Loop(authority.clone()));
        }
        if let Some(namespace) = config.forbidden_mesh_namespace(authority) {
            return Some(ProxyError::Denied(format!(
                "`{authority}` is a service of the mesh's namespace `{namespace}` that {caller} \
                 may not call: no policy allows it"
            )));
        }
        if config.source().outbound.egress == mesh_config::schema::Egress::Deny {
            return Some(ProxyError::EgressDenied(authority.clone()));
        }
        None
    }
}

impl Service<Unrouted> for Passthrough {
    type Response = http::Response<Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    crate::always_ready!();

    fn call(&mut self, unrouted: Unrouted) -> Self::Future {
        if let Some(refusal) = self.refusal(&unrouted) {
            return Box::pin(async { Err(refusal) });
        }
        let clients = self.clients.clone();
        Box::pin(async move {
            let Unrouted {
                mut request,
                authority,
                original_dst,
                ..
            } = unrouted;
            let upgrade = upgrade::take(&mut request);
            let (mut parts, body) = request.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let target = original_dst.map_or_else(|| authority.clone(), |d| d.to_string());
            parts.uri = Uri::try_from(format!("http://{target}{path}"))
                .map_err(|_| ProxyError::BadAuthority(authority.clone()))?;
            let request = Request::from_parts(parts, body);
            clients
                .forward(request, false, upgrade)
                .await
                .map_err(|error| match error {
                    SendError::Connect(error) => ProxyError::Connect {
                        target: authority,
                        error,
                    },
                    SendError::Overloaded => ProxyError::Connect {
                        target: authority,
                        error: "connection limit reached".into(),
                    },
                    SendError::Reset(error) => ProxyError::Reset {
                        target: authority,
                        error,
                    },
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::testing;
    use serde_json::json;
    use tower::ServiceExt;

    fn unrouted(egress: &str, authority: &str) -> Unrouted {
        let mut config = testing::config(json!([]));
        config["outbound"]["egress"] = json!(egress);
        Unrouted {
            snapshot: testing::snapshot(config),
            request: Request::new(crate::http::full("")),
            authority: authority.into(),
            original_dst: None,
        }
    }

    #[tokio::test]
    async fn egress_denied_and_loops_are_refused_before_any_connection() {
        let listening: SocketAddr = "127.0.0.1:15001".parse().unwrap();
        let passthrough = Passthrough::new(Clients::default(), listening);
        let error = passthrough
            .clone()
            .oneshot(unrouted("deny", "example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::EgressDenied(ref a) if a == "example.com"));
        let error = passthrough
            .oneshot(unrouted("allow", "127.0.0.1:15001"))
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::Loop(_)));
    }
}
