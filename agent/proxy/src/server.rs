//! Accept loops: every listener serves HTTP/1.1 and HTTP/2 (prior knowledge) with
//! hyper-util's auto builder, and registers each connection with a graceful-shutdown
//! watcher so SIGTERM stops accepting and lets in-flight requests finish. How an accepted
//! stream becomes a connection (plaintext, or the inbound mTLS handshake) is the caller's
//! `accept`; it runs in the connection's own task, so a slow handshake never blocks the
//! loop. Each listener is guarded by its [`Limits`]: it holds at most `max_connections`
//! (accepting pauses beyond) and counts the limits that end connections.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::caller::Caller;
use crate::http::Body;
use crate::limits::{Activity, Fired, Limits, Tracked};
use crate::tls::{Accepted, Io};

/// What guards a listener: its limits and where it counts them firing.
#[derive(Clone)]
pub struct Guard {
    /// The limits.
    pub limits: Limits,
    /// The counter of limits that fired.
    pub fired: Fired,
}

/// Accepts every stream as plaintext with no peer identity.
pub async fn plaintext(stream: TcpStream, _remote: SocketAddr) -> Option<Accepted> {
    Some(Accepted::plain(stream, None))
}

/// Serves `listener` until `stop` turns true: each stream goes through `accept`, then
/// each request to `handle` with the connection's caller.
pub async fn serve<A, AF, H, F>(
    listener: TcpListener,
    guard: Guard,
    accept: A,
    handle: H,
    graceful: &GracefulShutdown,
    mut stop: watch::Receiver<bool>,
) where
    A: Fn(TcpStream, SocketAddr) -> AF + Clone + Send + Sync + 'static,
    AF: Future<Output = Option<Accepted>> + Send + 'static,
    H: Fn(Request<Incoming>, Arc<Caller>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = Arc::new(guard.limits.builder());
    let permits = Arc::new(Semaphore::new(guard.limits.max_connections));
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                guard.fired.count("max_connections");
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let _ = stream.set_nodelay(true);
        let (accept, handle, watcher) = (accept.clone(), handle.clone(), graceful.watcher());
        let (builder, guard) = (Arc::clone(&builder), guard.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Some(Accepted {
                io,
                peer,
                original_dst,
            }) = accept(stream, remote).await
            else {
                return;
            };
            let tls = matches!(io, Io::Tls(_));
            let peer = Arc::new(
                Caller::new(peer)
                    .captured(original_dst)
                    .connected(remote, tls),
            );
            let service = service_fn(move |request| {
                let (handle, peer) = (handle.clone(), peer.clone());
                async move { Ok::<_, Infallible>(handle(request, peer).await) }
            });
            let activity = Arc::new(Activity::default());
            let io = Tracked::new(
                io,
                Arc::clone(&activity),
                guard.limits.header_read_timeout,
                guard.limits.idle_timeout,
            );
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
                guard.fired.connection_error(error.as_ref(), &activity);
            }
        });
    }
}
