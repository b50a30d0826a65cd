//! The bottom of the inbound stack: forwards an authorized request to the local app
//! (HTTP/2 when the workload's port says so, upgrades as such), hop-by-hop headers
//! stripped, and names the app's failures as the app's.

use std::net::SocketAddr;

use http::{Request, Uri};
use mesh_config::schema::Protocol;
use tower::Service;

use crate::client::{Clients, SendError};
use crate::client_body::ClientBody;
use crate::error::ProxyError;
use crate::http::{boxed, strip_hop_by_hop};
use crate::inbound::Arrived;
use crate::stack::{Answer, BoxFuture};
use crate::upgrade;

/// Forwards requests to the app.
#[derive(Clone)]
pub struct App {
    clients: Clients,
    app: SocketAddr,
}

impl App {
    /// Forwards with `clients` to the app at `app`.
    pub fn new(clients: Clients, app: SocketAddr) -> App {
        App { clients, app }
    }
}

impl Service<Arrived> for App {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    crate::always_ready!();

    fn call(&mut self, arrived: Arrived) -> Self::Future {
        let (clients, app) = (self.clients.clone(), self.app);
        Box::pin(async move {
            let Arrived {
                snapshot,
                mut request,
                ..
            } = arrived;
            let http2 = snapshot
                .config
                .config
                .source()
                .workload
                .ports
                .first()
                .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc));
            let upgrade = upgrade::take(&mut request);
            let (mut parts, body) = request.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = Uri::try_from(format!("http://{app}{path}"))
                .map_err(|_| ProxyError::CannotForward("invalid request target".into()))?;
            let (body, body_failed) = ClientBody::new(body);
            let request = Request::from_parts(parts, boxed(body));
            let mut response = clients
                .forward(request, http2, upgrade)
                .await
                .map_err(|error| match error {
                    SendError::Reset(e) if body_failed.get() => ProxyError::BadRequestBody(e),
                    SendError::Connect(error) => ProxyError::AppUnavailable { app, error },
                    SendError::Reset(e) => ProxyError::AppReset(e),
                    SendError::Overloaded => ProxyError::AppUnavailable {
                        app,
                        error: "connection limit reached".into(),
                    },
                })?;
            response
                .extensions_mut()
                .insert(crate::access_log::UpstreamHost(app));
            Ok(response)
        })
    }
}
