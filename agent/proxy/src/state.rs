//! The agent's live state: the active config, endpoints and identity as one immutable
//! [`Snapshot`] published on a `tokio::sync::watch` channel (and the identity's TLS
//! configs on another, for the listeners' handshakes). A reload builds a new snapshot and
//! sends it; the request stacks hold receivers (not this state) and a request keeps the
//! snapshot it started with, so in-flight requests finish on their config.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use mesh_config::schema::{FULL_WEIGHT, Limits, Outlier, Protocol};
use mesh_config::{Config, RouteKey};
use tokio::sync::watch;

use crate::discovery::Endpoints;
use crate::metrics::{Metrics, RequestLabels};
use crate::outbound::breaker::{Gate, Gates};
use crate::pool::{EndpointState, Pool, Registry};
use crate::tls::{MtlsClient, Tls};

/// A loaded config with what `/config` reports.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The validated, compiled config.
    pub config: Config,
    /// SHA-256 of its bytes, hex.
    pub hash: String,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// The endpoint pools of one outbound service, by subset (`None`: the whole service).
#[derive(Default)]
pub struct ServicePools {
    /// `(subset, pool)` pairs; few, so a list.
    pub pools: Vec<(Option<String>, Arc<Pool>)>,
    /// Whether its endpoints speak HTTP/2 (h2c) rather than HTTP/1.1.
    pub http2: bool,
    /// The SPIFFE id its endpoints must present under mTLS.
    pub identity: String,
    /// The pooled mTLS client for it under the snapshot's identity, made on first use
    /// (then read without a lock); the error says why it cannot be made.
    mtls: OnceLock<Result<Arc<MtlsClient>, String>>,
    /// Circuit-breaker limits (`limits`), if any.
    pub limits: Option<Limits>,
    /// Outlier detection (`outlier`), if any.
    pub outlier: Option<Outlier>,
    /// The service's circuit-breaker counters (kept across reloads), resolved by the
    /// first try that needs them.
    pub gate: OnceLock<Arc<Gate>>,
    /// Held while an outlier ejection is decided, so `max_ejected` holds.
    ejecting: Mutex<()>,
}

impl ServicePools {
    /// Outlier detection: ejects `endpoint` unless that would put more than
    /// `max_ejected` of the service's endpoints out at once (one may always be, when
    /// `max_ejected` is above 0, as Envoy does). True when it was ejected.
    pub fn eject(&self, endpoint: &EndpointState, outlier: &Outlier) -> bool {
        let _deciding = self.ejecting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((_, whole)) = self.pools.first() else {
            return false;
        };
        let total = whole.endpoints.len() as u64;
        let ejected = whole.endpoints.iter().filter(|e| e.ejected()).count() as u64;
        let share = total * u64::from(outlier.max_ejected_milli) / u64::from(FULL_WEIGHT);
        let allowed = if outlier.max_ejected_milli > 0 {
            share.max(1)
        } else {
            0
        };
        if ejected >= allowed {
            return false;
        }
        endpoint.outlier_eject(outlier);
        true
    }
}

impl std::fmt::Debug for ServicePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePools")
            .field("pools", &self.pools)
            .field("http2", &self.http2)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Config, endpoints and identity, consistent with each other.
pub struct Snapshot {
    /// The active config.
    pub config: Arc<LoadedConfig>,
    /// The endpoints it was built with.
    pub endpoints: Arc<Endpoints>,
    /// The identity outbound mTLS uses (`None`: none loaded, plaintext).
    tls: Option<Arc<Tls>>,
    /// The metric labels of inbound requests.
    pub inbound_labels: RequestLabels,
    /// The metric labels of each outbound service's routing decisions, by service index,
    /// then rule (0: none matched, `i + 1`: rule `i`), then backend; made on first use.
    route_labels: Vec<OnceLock<Vec<Vec<RequestLabels>>>>,
    pools: HashMap<String, Arc<ServicePools>>,
    /// Outbound services (indexes into the config's list) by the IPs that reach them.
    by_ip: HashMap<IpAddr, Vec<usize>>,
    /// Every mesh service the endpoints know, by the IPs that reach it (also those this
    /// workload may not call).
    mesh_ips: HashMap<IpAddr, String>,
    /// Endpoints with no agent beside them (reached in plaintext, at the app).
    unmeshed: std::collections::HashSet<SocketAddr>,
    /// The state of `inbound.rate_limits`, in order: resolved from the agent's limiters
    /// by the first request that needs them (kept across reloads by name and parameters).
    pub rate_limiters: OnceLock<Vec<Arc<crate::inbound::rate_limit::Limiter>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("config", &self.config.hash)
            .field("pools", &self.pools)
            .field("identity", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Builds the pools of every outbound service and subset; outbound mTLS uses `tls`.
    pub fn new(
        config: Arc<LoadedConfig>,
        endpoints: Arc<Endpoints>,
        tls: Option<Arc<Tls>>,
        registry: &Registry,
    ) -> Snapshot {
        let mut pools = HashMap::new();
        let mut by_ip: HashMap<IpAddr, Vec<usize>> = HashMap::new();
        for (index, service) in config.config.source().outbound.services.iter().enumerate() {
            for ip in endpoints.ips(&service.service) {
                let services = by_ip.entry(ip.to_canonical()).or_default();
                if !services.contains(&index) {
                    services.push(index);
                }
            }
            let mut entry = ServicePools {
                pools: Vec::with_capacity(service.subsets.len() + 1),
                http2: service
                    .ports
                    .first()
                    .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc)),
                identity: service.identity.clone(),
                mtls: OnceLock::new(),
                limits: service.limits,
                outlier: service.outlier,
                gate: OnceLock::new(),
                ejecting: Mutex::new(()),
            };
            let whole = endpoints
                .select(&service.service, &service.labels)
                .map(|e| registry.get(e.address))
                .collect();
            entry
                .pools
                .push((None, Arc::new(Pool::new(whole, service.balance))));
            for subset in &service.subsets {
                let mut selector = service.labels.clone();
                selector.extend(subset.labels.clone());
                let members = endpoints
                    .select(&service.service, &selector)
                    .map(|e| registry.get(e.address))
                    .collect();
                entry.pools.push((
                    Some(subset.name.clone()),
                    Arc::new(Pool::new(members, service.balance)),
                ));
            }
            pools.insert(service.service.clone(), Arc::new(entry));
        }
        let mesh_ips = endpoints
            .all_ips()
            .map(|(service, ip)| (ip.to_canonical(), service.to_string()))
            .collect();
        let unmeshed = endpoints.unmeshed().collect();
        let inbound_labels =
            RequestLabels::new("inbound", &config.config.source().workload.service, "", "");
        let route_labels = (0..config.config.source().outbound.services.len())
            .map(|_| OnceLock::new())
            .collect();
        Snapshot {
            config,
            endpoints,
            tls,
            inbound_labels,
            route_labels,
            pools,
            by_ip,
            mesh_ips,
            unmeshed,
            rate_limiters: OnceLock::new(),
        }
    }

    /// How to reach the endpoint at `addr`: through its agent (mTLS once this agent has an
    /// identity), or — for an endpoint without an agent — in plaintext at its app while
    /// the mesh is `permissive`; under `strict` the error says why it is refused.
    pub fn endpoint_access(&self, addr: SocketAddr) -> Result<bool, String> {
        if !self.unmeshed.contains(&addr) {
            return Ok(true);
        }
        match self.config.config.source().inbound.mtls {
            mesh_config::schema::Mtls::Permissive => Ok(false),
            mesh_config::schema::Mtls::Strict => Err(format!(
                "endpoint {addr} has no mesh agent and the mesh's mTLS is strict: inject it, \
                 or make the mesh permissive while it migrates"
            )),
        }
    }

    /// The metric labels of requests routed by `key`.
    pub fn request_labels(&self, key: RouteKey) -> Option<RequestLabels> {
        if key.host.is_some() {
            // A gateway's rules are not the service's: labels of their own, made per call.
            let d = self.config.config.resolve(key)?;
            return Some(RequestLabels::new(
                "gateway",
                &d.backend.service,
                d.backend.subset.as_deref().unwrap_or(""),
                d.rule.map_or("", |r| r.name.as_str()),
            ));
        }
        let table = self
            .route_labels
            .get(key.service)?
            .get_or_init(|| self.route_label_table(key.service));
        table
            .get(key.rule.map_or(0, |r| r + 1))?
            .get(key.backend)
            .cloned()
    }

    fn route_label_table(&self, service: usize) -> Vec<Vec<RequestLabels>> {
        let config = &self.config.config;
        let rules = config.outbound(service).map_or(0, |s| s.rules.len());
        (0..=rules)
            .map(|i| {
                let rule = i.checked_sub(1);
                (0..)
                    .map_while(|backend| {
                        config.resolve(RouteKey {
                            service,
                            rule,
                            backend,
                            host: None,
                        })
                    })
                    .map(|d| {
                        RequestLabels::new(
                            "outbound",
                            &d.backend.service,
                            d.backend.subset.as_deref().unwrap_or(""),
                            d.rule.map_or("", |r| r.name.as_str()),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    /// The mTLS client for `service`'s endpoints: `None` in plaintext (no identity).
    pub fn mtls(&self, service: &ServicePools) -> Option<Result<Arc<MtlsClient>, String>> {
        let tls = self.tls.as_ref()?;
        Some(
            service
                .mtls
                .get_or_init(|| tls.client(&service.identity, service.gate.get()))
                .clone(),
        )
    }

    /// The mesh service at `dst`'s IP, whether or not this workload may call it. For a
    /// destination [`Snapshot::service_at`] does not know, it is a service this workload
    /// may not call: a captured connection to it is refused, not sent out of the mesh.
    pub fn mesh_service_at(&self, dst: SocketAddr) -> Option<&str> {
        self.mesh_ips
            .get(&dst.ip().to_canonical())
            .map(String::as_str)
    }

    /// The outbound service a connection to `dst` is for (its index in the config) and
    /// the protocol of that port: `dst`'s IP is one of the service's virtual addresses or
    /// endpoint IPs, and its port one the service declares.
    pub fn service_at(&self, dst: SocketAddr) -> Option<(usize, Protocol)> {
        let services = &self.config.config.source().outbound.services;
        self.by_ip
            .get(&dst.ip().to_canonical())?
            .iter()
            .find_map(|&index| {
                let port = services
                    .get(index)?
                    .ports
                    .iter()
                    .find(|p| p.number == dst.port())?;
                Some((index, port.protocol))
            })
    }

    /// The pool of a backend, with its service's pools (HTTP/2, identity).
    pub fn pool(
        &self,
        service: &str,
        subset: Option<&str>,
    ) -> Option<(&Arc<Pool>, &Arc<ServicePools>)> {
        let entry = self.pools.get(service)?;
        entry
            .pools
            .iter()
            .find(|(s, _)| s.as_deref() == subset)
            .map(|(_, pool)| (pool, entry))
    }
}

/// The active snapshot as the request stacks see it: `None` until a config and endpoints
/// are loaded.
pub type Snapshots = watch::Receiver<Option<Arc<Snapshot>>>;

/// What the reloader publishes and the admin listener reads.
pub struct Shared {
    snapshot: watch::Sender<Option<Arc<Snapshot>>>,
    tls: watch::Sender<Option<Arc<Tls>>>,
    /// Whether an identity directory was given (then `/ready` waits for it).
    pub identity_required: bool,
    /// Endpoint state by address.
    pub registry: Registry,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Retry budgets by `service retry-profile`, kept across reloads.
    pub budgets: Arc<crate::outbound::retry_policy::Budgets>,
    /// Inbound rate limits' buckets by limit, kept across reloads.
    pub rate_limits: Arc<crate::inbound::rate_limit::Limiters>,
    /// Outbound circuit breakers' counters by service, kept across reloads.
    pub gates: Arc<Gates>,
    /// Where finished requests' entries go: the access log's writer (started by the
    /// first line) and the tap.
    pub access_log: Arc<crate::access_log::Writer>,
    /// The admin listener's live request stream.
    pub tap: Arc<crate::tap::Tap>,
    /// Trace propagation, and span export once started.
    pub tracer: Arc<crate::trace::Tracer>,
    /// The gateway's bound listeners, once bound (gateway mode only).
    pub gateway: OnceLock<crate::gateway::GatewayInfo>,
}

impl Shared {
    /// Empty state; `identity_required` when the agent was given an identity directory.
    pub fn new(identity_required: bool) -> Shared {
        let metrics: Arc<Metrics> = Arc::default();
        let tap = Arc::new(crate::tap::Tap::new(metrics.tap_dropped.clone()));
        let access_log = Arc::new(crate::access_log::Writer::new(
            metrics.access_log_dropped.clone(),
            Arc::clone(&tap),
        ));
        Shared {
            rate_limits: Arc::new(crate::inbound::rate_limit::Limiters::new(
                metrics.rate_limits.clone(),
            )),
            gates: Arc::new(Gates::new(metrics.overloaded.clone())),
            snapshot: watch::Sender::new(None),
            tls: watch::Sender::new(None),
            identity_required,
            registry: Registry::default(),
            metrics,
            budgets: Arc::default(),
            gateway: OnceLock::new(),
            access_log,
            tap,
            tracer: Arc::default(),
        }
    }

    /// The active snapshot; `None` until a config and endpoints are loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    /// Every snapshot from now on.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshot.subscribe()
    }

    /// The loaded identity and its TLS configs, if any.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.borrow().clone()
    }

    /// Swaps in a new identity (existing connections keep the old one).
    pub fn publish_tls(&self, tls: Tls) {
        self.tls.send_replace(Some(Arc::new(tls)));
    }

    /// Ready to serve: config and endpoints loaded, and the identity if one is required.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.snapshot.borrow().is_none() {
            return Err("no valid config and endpoints loaded yet");
        }
        if self.identity_required && self.tls.borrow().is_none() {
            return Err("no valid identity loaded yet");
        }
        Ok(())
    }

    /// Swaps in a new snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.send_replace(Some(Arc::new(snapshot)));
    }
}
