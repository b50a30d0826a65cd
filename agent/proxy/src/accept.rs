//! What each listener does with a new TCP stream before HTTP is served on it. A stream
//! whose original destination differs from the listener (capture rules redirected it) is
//! a captured connection:
//! - outbound: its destination names a mesh service (by virtual address or endpoint IP
//!   and a declared port) or not; a `tcp` port is opaque TCP at once, otherwise protocol
//!   detection decides between the HTTP path (routed as if sent to the proxy) and opaque
//!   TCP (to the service, or passed through to a destination outside the mesh);
//! - inbound: a plaintext client from outside the mesh calling the app's port directly:
//!   refused under strict mTLS, otherwise authorized as anonymous per request (HTTP) or
//!   per connection (opaque).
//!
//! Streams made to the listener itself are what they were before capture existed: the
//! app's explicit proxy requests (outbound) and peer agents' mTLS (inbound), where a
//! peer announces opaque TCP with ALPN `mesh-tcp` and a preamble ([`crate::tcp`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mesh_config::schema::{Mtls, Protocol};
use tokio::net::TcpStream;

use crate::caller::Caller;
use crate::detect::{Detected, detect};
use crate::metrics::{DetectedLabels, TcpLabels};
use crate::original_dst::original_dst;
use crate::state::Shared;
use crate::tcp::{self, AppPorts};
use crate::tls::{self, Accepted, Io};

/// A new stream on the outbound listener.
pub async fn outbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    detect_timeout: Duration,
) -> Option<Accepted> {
    let Some(dst) = original_dst(&stream) else {
        return Some(Accepted::plain(stream, None));
    };
    let snapshot = shared.snapshot()?;
    let target = snapshot.service_at(dst);
    if target.is_none()
        && let Some(service) = snapshot.mesh_service_at(dst)
    {
        let own = &snapshot.config.config.source().workload.service;
        tracing::info!(%dst, service, "refused: no policy lets {own} call this mesh service");
        if detected(&shared, "outbound", &stream, detect_timeout).await == Detected::Http {
            // Answered over HTTP with a 403 naming the reason (the outbound handler).
            return Some(Accepted::plain(stream, Some(dst)));
        }
        shared.metrics.tcp(TcpLabels {
            direction: "outbound",
            service: service.to_string(),
            peer: String::new(),
            tls: "plaintext",
            result: "deny",
        });
        return None;
    }
    if let Some((index, Protocol::Tcp)) = target {
        tcp::outbound(&shared, &snapshot, stream, index, dst.port()).await;
        return None;
    }
    match detected(&shared, "outbound", &stream, detect_timeout).await {
        Detected::Http => Some(Accepted::plain(stream, Some(dst))),
        Detected::Opaque => {
            match target {
                Some((index, _)) => {
                    tcp::outbound(&shared, &snapshot, stream, index, dst.port()).await
                }
                None => tcp::passthrough(&shared, &snapshot, stream, dst).await,
            }
            None
        }
    }
}

/// A new stream on the inbound listener.
pub async fn inbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    app: AppPorts,
    detect_timeout: Duration,
) -> Option<Accepted> {
    let snapshot = shared.snapshot();
    let source = snapshot.as_ref().map(|s| s.config.config.source());
    let mode = source.map_or(Mtls::Strict, |s| s.inbound.mtls);
    if let Some(dst) = original_dst(&stream) {
        let source = source?;
        let port = dst.port();
        if mode == Mtls::Strict {
            tracing::info!(%remote, port, "refused: a plaintext connection from outside the mesh under strict mTLS");
            shared.metrics.tcp(TcpLabels {
                direction: "inbound",
                service: source.workload.service.clone(),
                peer: "anonymous".into(),
                tls: "plaintext",
                result: "refused",
            });
            return None;
        }
        let declared_tcp = source
            .workload
            .ports
            .iter()
            .any(|p| p.number == port && p.protocol == Protocol::Tcp);
        if !declared_tcp
            && detected(&shared, "inbound", &stream, detect_timeout).await == Detected::Http
        {
            return Some(Accepted::plain(stream, Some(dst)));
        }
        tcp::inbound(&shared, stream, &Caller::new(None), false, port, &app).await;
        return None;
    }
    let mut accepted = tls::accept_inbound(stream, remote, mode, shared.tls()).await?;
    if !accepted.wants_opaque_tcp().await {
        return Some(accepted);
    }
    let port = match tcp::read_preamble(&mut accepted.io).await {
        Ok(port) => port,
        Err(error) => {
            tracing::debug!(%remote, %error, "opaque TCP: bad preamble");
            return None;
        }
    };
    let is_tls = matches!(accepted.io, Io::Tls(_));
    let caller = Caller::new(accepted.peer.take());
    tcp::inbound(&shared, accepted.io, &caller, is_tls, port, &app).await;
    None
}

async fn detected(
    shared: &Shared,
    direction: &'static str,
    stream: &TcpStream,
    timeout: Duration,
) -> Detected {
    let detected = detect(stream, timeout).await;
    shared
        .metrics
        .detected
        .get_or_create(&DetectedLabels {
            direction,
            protocol: match detected {
                Detected::Http => "http",
                Detected::Opaque => "opaque",
            },
        })
        .inc();
    detected
}
