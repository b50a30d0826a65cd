//! The accept loop and the request dispatch: every connection is served as HTTP/1.1 or
//! h2c (hyper-util's auto builder); `/call/...` goes to the sidecar call, everything else
//! gets the echo answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::answer::{self, Body};
use crate::call;

/// What every request handler needs: who this app is and how to reach its sidecar.
pub struct App {
    /// `NS/NAME`.
    pub service: String,
    /// The subset, if this instance has one.
    pub subset: Option<String>,
    /// The agent's outbound listener; `None`: calls go to the named host directly.
    pub sidecar: Option<SocketAddr>,
    /// The pooled client for calls through the sidecar.
    pub client: call::Client,
}

impl App {
    /// An app playing `service` (and `subset`) whose sidecar listens on `sidecar`.
    pub fn new(service: String, subset: Option<String>, sidecar: Option<SocketAddr>) -> Arc<App> {
        Arc::new(App {
            service,
            subset,
            sidecar,
            client: call::client(),
        })
    }
}

/// Serves `listener` forever; each connection runs in its own task.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let (stream, _remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// Answers one request and logs it.
async fn handle(app: &App, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = if call::is_call(&path) {
        call::call(app, request).await
    } else {
        answer::answer(app, request).await
    };
    tracing::info!(%method, %path, status = response.status().as_u16(), "answered");
    response
}
