//! `mesh-agent`: the mesh's sidecar proxy. It loads its workload config (from
//! `meshc compile`) and the endpoints of the services it calls, keeps both hot-reloaded,
//! and serves three listeners: outbound (the app's requests to other services: routing,
//! splits, balancing, retries, timeouts), inbound (other workloads' requests to the app)
//! and admin (health, metrics, the active config). Inbound connections are mTLS per the
//! config's mode and every inbound request is authorized before it reaches the app. Every
//! routing and authorization decision is made by `mesh-config`, the same code `meshc test`
//! runs. Run with `--gateway NAME`, it is an ingress gateway instead ([`gateway`]): the
//! config's gateway listeners replace the outbound and inbound ones.

pub mod accept;
pub mod access_log;
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
pub mod gateway;
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
pub mod tap;
pub mod tcp;
pub mod tls;
pub mod trace;
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
    /// The config is for the other mode (a gateway's without `--gateway`, or not the
    /// named gateway's).
    #[error("refusing the config {path}: {source}")]
    Mode {
        /// The config file.
        path: std::path::PathBuf,
        /// Why.
        source: gateway::ModeError,
    },
    /// A gateway cannot start without a valid config: it binds the config's listeners.
    #[error(
        "gateway `{name}`: no valid config at {path} at start (a gateway binds the listeners its config names; see the log for why)"
    )]
    GatewayConfig {
        /// The gateway.
        name: String,
        /// The config file.
        path: std::path::PathBuf,
    },
    /// A gateway listener cannot be set up.
    #[error(transparent)]
    GatewayListener(#[from] gateway::listener::ListenerError),
}

/// The addresses the agent listens on, printed as one JSON line on stdout once bound (so
/// callers that asked for port 0 learn the real ports). A sidecar has outbound, inbound
/// and admin listeners; a gateway admin and its gateway listeners (config port → address).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bound {
    /// Outbound listener (a sidecar's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound: Option<SocketAddr>,
    /// Inbound listener (a sidecar's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound: Option<SocketAddr>,
    /// Admin listener.
    pub admin: SocketAddr,
    /// A gateway's listeners, by config port.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gateway: std::collections::BTreeMap<u16, SocketAddr>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AgentError::Bind { what, addr, source })
}

/// A listener's serving loop.
type Serving<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs the agent until `shutdown` completes, then drains in-flight requests for up to
/// `args.drain_timeout`. With `--gateway NAME` it runs gateway NAME: its config's
/// listeners instead of the outbound and inbound ones.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let shared = Arc::new(Shared::new(args.identity_dir.is_some()));
    if let Some(endpoint) = args.otlp() {
        let mut settings = trace::export::Settings::new(endpoint.clone(), instance_id());
        settings.queue = usize::try_from(args.otlp_queue).unwrap_or(usize::MAX);
        tracing::info!(endpoint = %endpoint.traces(), "exporting trace spans");
        shared
            .tracer
            .start_export(settings, shared.metrics.traces.clone());
    }
    let discovery = discovery(&args, &shared).await?;
    let mut reloader = Reloader::new(
        &args.config,
        discovery,
        Arc::clone(&shared),
        args.identity_dir.as_deref(),
    )
    .with_gateway(args.gateway.clone());
    reloader.reload();
    if reloader.config().is_none()
        && let Some(refused) = reloader.refused()
    {
        return Err(AgentError::Mode {
            path: args.config.clone(),
            source: refused.clone(),
        });
    }
    let gateway_listeners = match &args.gateway {
        None => Vec::new(),
        Some(name) => {
            let config = reloader.config().ok_or_else(|| AgentError::GatewayConfig {
                name: name.clone(),
                path: args.config.clone(),
            })?;
            for (port, addr) in &args.gateway_ports {
                let known = config
                    .config
                    .gateway()
                    .is_some_and(|g| g.listeners.iter().any(|l| l.port == *port));
                if !known {
                    tracing::warn!(port, %addr, "--gateway-port names a port the gateway has no listener on; ignored");
                }
            }
            let store = Arc::new(gateway::certs::CertStore::new(Arc::clone(&shared.metrics)));
            gateway::listener::bind(
                &config.config,
                |port| args.gateway_bind(port),
                &shared.snapshots(),
                &store,
            )
            .await?
        }
    };
    let sidecar = match args.gateway {
        None => Some((
            bind("outbound", args.outbound).await?,
            bind("inbound", args.inbound).await?,
        )),
        Some(_) => None,
    };
    let admin_listener = bind("admin", args.admin).await?;
    let bound = Bound {
        outbound: sidecar
            .as_ref()
            .map(|(l, _)| l.local_addr().unwrap_or(args.outbound)),
        inbound: sidecar
            .as_ref()
            .map(|(_, l)| l.local_addr().unwrap_or(args.inbound)),
        admin: admin_listener.local_addr().unwrap_or(args.admin),
        gateway: gateway_listeners
            .iter()
            .map(|l| (l.bound.port, l.bound.address))
            .collect(),
    };
    println!("{}", serde_json::to_string(&bound).unwrap_or_default());
    match &args.gateway {
        None => {
            tracing::info!(outbound = ?bound.outbound, inbound = ?bound.inbound, admin = %bound.admin, app = %args.app, "listening")
        }
        Some(name) => {
            for listener in &gateway_listeners {
                tracing::info!(gateway = %name, port = listener.bound.port, address = %listener.bound.address, tls = listener.bound.tls, "gateway listening");
            }
            tracing::info!(admin = %bound.admin, "listening");
            let listeners: Vec<_> = gateway_listeners.iter().map(|l| l.bound).collect();
            tokio::spawn(gateway::listener::warn_on_port_changes(
                shared.snapshots(),
                listeners.clone(),
            ));
            let _ = shared.gateway.set(gateway::GatewayInfo {
                name: name.clone(),
                listeners,
            });
        }
    }
    let resync = tokio::spawn(reloader.watch(args.resync));

    let clients = Clients::default();
    let detect_timeout = args.detect_timeout;
    let admin_shared = Arc::clone(&shared);
    let limits = limits::Limits {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_concurrent_streams: args.max_concurrent_streams,
    };
    let guard = |listener| server::Guard {
        limits,
        fired: limits::Fired::new(listener, shared.metrics.limits.clone()),
    };
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut serving: Vec<Serving<'_>> = Vec::new();
    if let Some((outbound_listener, inbound_listener)) = sidecar {
        let listening = bound.outbound.unwrap_or(args.outbound);
        let outbound = outbound::Outbound::new(&shared, clients.clone(), listening);
        let inbound = inbound::Inbound::new(&shared, clients.clone(), args.app);
        let app_ports = tcp::AppPorts::new(args.app, args.app_ports.clone());
        let inbound_shared = Arc::clone(&shared);
        let outbound_shared = Arc::clone(&shared);
        serving.push(Box::pin(server::serve(
            outbound_listener,
            guard("outbound"),
            move |stream, _remote| {
                accept::outbound(Arc::clone(&outbound_shared), stream, detect_timeout)
            },
            move |request, caller| {
                let outbound = outbound.clone();
                async move { outbound.handle(request, &caller).await }
            },
            &graceful,
            stop_rx.clone(),
        )));
        serving.push(Box::pin(server::serve(
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
        )));
    }
    if !gateway_listeners.is_empty() {
        let routes = gateway::route::GatewayRoutes::new(&shared, clients.clone());
        for listener in gateway_listeners {
            let (acceptor, routes, port) = (listener.accept, routes.clone(), listener.bound.port);
            serving.push(Box::pin(server::serve(
                listener.socket,
                guard("gateway"),
                move |stream, remote| acceptor.clone().accept(stream, remote),
                move |request, caller| {
                    let routes = routes.clone();
                    async move { routes.handle(request, port, &caller).await }
                },
                &graceful,
                stop_rx.clone(),
            )));
        }
    }
    serving.push(Box::pin(server::serve(
        admin_listener,
        guard("admin"),
        server::plaintext,
        move |request, _caller| {
            let response = admin::handle(&admin_shared, &request);
            async move { response }
        },
        &graceful,
        stop_rx.clone(),
    )));
    {
        let serving = futures_util::future::join_all(serving);
        tokio::pin!(serving);
        tokio::select! {
            _ = &mut serving => {}
            () = shutdown => {
                tracing::info!("shutting down: no new connections; draining in-flight requests");
                let _ = stop_tx.send(true);
                shared.tap.stop();
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
    // The drained requests' spans (and any the last batch held) go before the process.
    shared.tracer.close(SPAN_FLUSH_LIMIT).await;
    Ok(())
}

/// How long a stopping agent waits for the collector to take its last spans.
const SPAN_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The `service.instance.id` of this agent's spans: the host name (a pod's name) and the
/// process id.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}/{}", std::process::id())
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
