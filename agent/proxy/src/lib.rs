//! `mesh-agent`: the mesh's sidecar proxy. It loads its workload config (from
//! `meshc compile`) and the endpoints of the services it calls, keeps both hot-reloaded,
//! and serves three listeners: outbound (the app's requests to other services: routing,
//! splits, balancing, retries, timeouts), inbound (other workloads' requests to the app)
//! and admin (health, metrics, the active config). Inbound connections are mTLS per the
//! config's mode and every inbound request is authorized before it reaches the app. Every
//! routing and authorization decision is made by `mesh-config`, the same code `meshc test`
//! runs.

pub mod accept;
pub mod admin;
pub mod args;
pub mod caller;
pub mod capture;
pub mod client;
pub mod client_body;
pub mod counted;
pub mod detect;
pub mod discovery;
pub mod error;
pub mod http;
pub mod inbound;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod original_dst;
pub mod outbound;
pub mod pool;
pub mod relay;
pub mod reload;
pub mod server;
pub mod spare;
pub mod stack;
pub mod state;
pub mod tcp;
pub mod tls;
pub mod upgrade;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use args::Args;

use crate::args::DiscoveryKind;
use crate::client::Clients;
use crate::discovery::{Discovery, FileDiscovery};
use crate::reload::Reloader;
use crate::state::Shared;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Kubernetes discovery cannot start.
    #[error("kubernetes discovery: {0}")]
    Kubernetes(String),
}

/// The addresses the agent listens on, printed as one JSON line on stdout once bound (so
/// callers that asked for port 0 learn the real ports).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Bound {
    /// Outbound listener.
    pub outbound: SocketAddr,
    /// Inbound listener.
    pub inbound: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { what, addr, source })
}

/// Runs the agent until `shutdown` completes, then drains in-flight requests for up to
/// `args.drain_timeout`.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let shared = Arc::new(Shared::new(args.identity_dir.is_some()));
    let discovery = discovery(&args, &shared).await?;
    let mut reloader = Reloader::new(
        &args.config,
        discovery,
        Arc::clone(&shared),
        args.identity_dir.as_deref(),
    );
    reloader.reload();
    let outbound_listener = bind("outbound", args.outbound).await?;
    let inbound_listener = bind("inbound", args.inbound).await?;
    let admin_listener = bind("admin", args.admin).await?;
    let bound = Bound {
        outbound: outbound_listener.local_addr().unwrap_or(args.outbound),
        inbound: inbound_listener.local_addr().unwrap_or(args.inbound),
        admin: admin_listener.local_addr().unwrap_or(args.admin),
    };
    println!("{}", serde_json::to_string(&bound).unwrap_or_default());
    tracing::info!(outbound = %bound.outbound, inbound = %bound.inbound, admin = %bound.admin, app = %args.app, "listening");
    let resync = tokio::spawn(reloader.watch(args.resync));

    let clients = Clients::default();
    let outbound = outbound::Outbound::new(&shared, clients.clone(), bound.outbound);
    let inbound = inbound::Inbound::new(&shared, clients, args.app);
    let app_ports = tcp::AppPorts::new(args.app, args.app_ports.clone());
    let detect_timeout = args.detect_timeout;
    let admin_shared = Arc::clone(&shared);
    let inbound_shared = Arc::clone(&shared);
    let outbound_shared = Arc::clone(&shared);
    let limits = limits::Limits {
        header_read_timeout: args.header_read_timeout,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_concurrent_streams: args.max_concurrent_streams,
    };
    let guard = |listener| server::Guard {
        limits,
        fired: limits::Fired::new(listener, shared.metrics.limits.clone()),
    };
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = async {
        tokio::join!(
            server::serve(
                outbound_listener,
                guard("outbound"),
                move |stream, _remote| {
                    accept::outbound(Arc::clone(&outbound_shared), stream, detect_timeout)
                },
                move |request, caller| {
                    let outbound = outbound.clone();
                    async move { outbound.handle(request, caller.original_dst()).await }
                },
                &graceful,
                stop_rx.clone(),
            ),
            server::serve(
                inbound_listener,
                guard("inbound"),
                move |stream, remote| {
                    accept::inbound(
                        Arc::clone(&inbound_shared),
                        stream,
                        remote,
                        app_ports.clone(),
                        detect_timeout,
                    )
                },
                move |request, peer| {
                    let inbound = inbound.clone();
                    async move { inbound.handle(request, peer).await }
                },
                &graceful,
                stop_rx.clone(),
            ),
            server::serve(
                admin_listener,
                guard("admin"),
                server::plaintext,
                move |request, _caller| {
                    let response = admin::handle(&admin_shared, &request);
                    async move { response }
                },
                &graceful,
                stop_rx.clone(),
            ),
        )
    };
    {
        tokio::pin!(serving);
        tokio::select! {
            _ = &mut serving => {}
            () = shutdown => {
                tracing::info!("shutting down: no new connections; draining in-flight requests");
                let _ = stop_tx.send(true);
                serving.await;
            }
        }
    }
    resync.abort();
    match tokio::time::timeout(args.drain_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!("drained"),
        Err(_) => {
            tracing::warn!(timeout = ?args.drain_timeout, "drain timed out; closing remaining connections")
        }
    }
    Ok(())
}

/// The endpoints source `args` ask for.
async fn discovery(args: &Args, shared: &Arc<Shared>) -> Result<Box<dyn Discovery>, AgentError> {
    match args.discovery {
        DiscoveryKind::File => {
            let path = args.endpoints.as_deref().ok_or_else(|| {
                AgentError::Kubernetes("--endpoints is required with --discovery file".into())
            })?;
            Ok(Box::new(FileDiscovery::new(path)))
        }
        #[cfg(feature = "kubernetes")]
        DiscoveryKind::Kubernetes => {
            let discovery =
                kubernetes::KubeDiscovery::start(args.peer_port, Arc::clone(&shared.metrics))
                    .await
                    .map_err(AgentError::Kubernetes)?;
            Ok(Box::new(discovery))
        }
        #[cfg(not(feature = "kubernetes"))]
        DiscoveryKind::Kubernetes => {
            let _ = shared;
            Err(AgentError::Kubernetes(
                "this mesh-agent was built without the `kubernetes` feature".into(),
            ))
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
