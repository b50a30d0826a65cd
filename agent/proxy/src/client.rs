//! Upstream connections: hyper-util's pooled clients, one speaking HTTP/1.1 and one
//! HTTP/2 with prior knowledge (h2c, for `http2` and `grpc` ports). Connections are kept
//! alive and reused per endpoint. A service with `max_connections` gets clients of its
//! own whose connections count against its gate ([`crate::counted`]).

use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::counted::{Counted, is_connection_limit};
use crate::http::{Body, boxed, strip_hop_by_hop};
use crate::outbound::breaker::Gate;
use crate::upgrade;

/// How long a connection attempt may take before the endpoint counts as failing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The pooled upstream clients.
#[derive(Clone, Debug)]
pub struct Clients {
    http1: Client<Counted<HttpConnector>, Body>,
    http2: Client<Counted<HttpConnector>, Body>,
}

/// Why a try got no response.
#[derive(Debug)]
pub enum SendError {
    /// The connection could not be made.
    Connect(String),
    /// The connection or stream failed after it was made.
    Reset(String),
    /// No connection was made: the service's `max_connections` are open.
    Overloaded,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::counted(None)
    }
}

impl Clients {
    /// Clients whose connections count against `gate`.
    pub fn gated(gate: &std::sync::Arc<Gate>) -> Clients {
        Clients::counted(Some(std::sync::Arc::downgrade(gate)))
    }

    fn counted(gate: Option<std::sync::Weak<Gate>>) -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Counted::new(connector.clone(), gate.clone()));
        let http2 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .http2_only(true)
            .build(Counted::new(connector, gate));
        Clients { http1, http2 }
    }
}

impl Clients {
    /// Sends `request` (whose URI is absolute) over HTTP/2 or HTTP/1.1.
    pub async fn send(
        &self,
        mut request: Request<Body>,
        http2: bool,
    ) -> Result<Response<Incoming>, SendError> {
        let client = if http2 {
            *request.version_mut() = Version::HTTP_2;
            &self.http2
        } else {
            *request.version_mut() = Version::HTTP_11;
            &self.http1
        };
        send_on(client, request).await
    }
}

impl Clients {
    /// Forwards `request` unchanged apart from hop-by-hop headers: as an upgrade
    /// handshake when the client asked for one, else as a plain request.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        http2: bool,
        upgrade: Option<upgrade::Requested>,
    ) -> Result<Response<Body>, SendError> {
        match upgrade {
            Some(upgrade) => {
                upgrade.prepare(&mut request);
                Ok(upgrade.finish(self.send(request, false).await?))
            }
            None => {
                let (mut parts, body) = self.send(request, http2).await?.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(parts, boxed(body)))
            }
        }
    }
}

/// Sends `request` on `client`, sorting failures into connect and reset errors.
pub async fn send_on<C>(
    client: &Client<C, Body>,
    request: Request<Body>,
) -> Result<Response<Incoming>, SendError>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    client.request(request).await.map_err(|error| {
        let text = error_chain(&error);
        if is_connection_limit(&error) {
            SendError::Overloaded
        } else if error.is_connect() {
            SendError::Connect(text)
        } else {
            SendError::Reset(text)
        }
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
