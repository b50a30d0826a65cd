//! The agent's live state: the active config and endpoints as one immutable [`Snapshot`]
//! behind a lock that is held only to clone an `Arc`. A reload builds a new snapshot and
//! swaps it in; a request keeps the snapshot it started with, so in-flight requests finish
//! on their config.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use mesh_config::Config;
use mesh_config::schema::Protocol;

use crate::balance::{Pool, Registry};
use crate::discovery::Endpoints;
use crate::metrics::Metrics;
use crate::tls::Tls;

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
#[derive(Debug, Default)]
pub struct ServicePools {
    /// `(subset, pool)` pairs; few, so a list.
    pub pools: Vec<(Option<String>, Arc<Pool>)>,
    /// Whether its endpoints speak HTTP/2 (h2c) rather than HTTP/1.1.
    pub http2: bool,
    /// The SPIFFE id its endpoints must present under mTLS.
    pub identity: String,
}

/// Config and endpoints, consistent with each other.
#[derive(Debug)]
pub struct Snapshot {
    /// The active config.
    pub config: Arc<LoadedConfig>,
    /// The endpoints it was built with.
    pub endpoints: Arc<Endpoints>,
    pools: HashMap<String, ServicePools>,
    /// Outbound services (indexes into the config's list) by the IPs that reach them.
    by_ip: HashMap<IpAddr, Vec<usize>>,
    /// Every mesh service the endpoints know, by the IPs that reach it (also those this
    /// workload may not call).
    mesh_ips: HashMap<IpAddr, String>,
    /// Endpoints with no agent beside them (reached in plaintext, at the app).
    unmeshed: std::collections::HashSet<SocketAddr>,
}

impl Snapshot {
    /// Builds the pools of every outbound service and subset.
    pub fn new(
        config: Arc<LoadedConfig>,
        endpoints: Arc<Endpoints>,
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
            pools.insert(service.service.clone(), entry);
        }
        let mesh_ips = endpoints
            .all_ips()
            .map(|(service, ip)| (ip.to_canonical(), service.to_string()))
            .collect();
        let unmeshed = endpoints.unmeshed().collect();
        Snapshot {
            config,
            endpoints,
            pools,
            by_ip,
            mesh_ips,
            unmeshed,
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
    pub fn pool(&self, service: &str, subset: Option<&str>) -> Option<(&Arc<Pool>, &ServicePools)> {
        let entry = self.pools.get(service)?;
        entry
            .pools
            .iter()
            .find(|(s, _)| s.as_deref() == subset)
            .map(|(_, pool)| (pool, entry))
    }
}

/// Everything the listeners share.
pub struct Shared {
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    tls: RwLock<Option<Arc<Tls>>>,
    /// Whether an identity directory was given (then `/ready` waits for it).
    pub identity_required: bool,
    /// Endpoint state by address.
    pub registry: Registry,
    /// Metrics.
    pub metrics: Metrics,
    /// Retry budgets by `service retry-profile`, kept across reloads.
    pub budgets: crate::retry::Budgets,
}

impl Shared {
    /// Empty state; `identity_required` when the agent was given an identity directory.
    pub fn new(identity_required: bool) -> Shared {
        Shared {
            snapshot: RwLock::new(None),
            tls: RwLock::new(None),
            identity_required,
            registry: Registry::default(),
            metrics: Metrics::default(),
            budgets: crate::retry::Budgets::default(),
        }
    }

    /// The active snapshot; `None` until a config and endpoints are loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The loaded identity and its TLS configs, if any.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        match self.tls.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new identity (existing connections keep the old one).
    pub fn publish_tls(&self, tls: Tls) {
        let tls = Arc::new(tls);
        match self.tls.write() {
            Ok(mut guard) => *guard = Some(tls),
            Err(poisoned) => *poisoned.into_inner() = Some(tls),
        }
    }

    /// Ready to serve: config and endpoints loaded, and the identity if one is required.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.snapshot().is_none() {
            return Err("no valid config and endpoints loaded yet");
        }
        if self.identity_required && self.tls().is_none() {
            return Err("no valid identity loaded yet");
        }
        Ok(())
    }

    /// Swaps in a new snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = Some(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Some(snapshot),
        }
    }
}
