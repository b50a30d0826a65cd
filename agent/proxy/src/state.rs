//! The agent's live state: the active config and endpoints as one immutable [`Snapshot`]
//! behind a lock that is held only to clone an `Arc`. A reload builds a new snapshot and
//! swaps it in; a request keeps the snapshot it started with, so in-flight requests finish
//! on their config.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use mesh_config::Config;
use mesh_config::schema::Protocol;

use crate::balance::{Pool, Registry};
use crate::discovery::Endpoints;
use crate::metrics::Metrics;

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
}

/// Config and endpoints, consistent with each other.
#[derive(Debug)]
pub struct Snapshot {
    /// The active config.
    pub config: Arc<LoadedConfig>,
    /// The endpoints it was built with.
    pub endpoints: Arc<Endpoints>,
    pools: HashMap<String, ServicePools>,
}

impl Snapshot {
    /// Builds the pools of every outbound service and subset.
    pub fn new(
        config: Arc<LoadedConfig>,
        endpoints: Arc<Endpoints>,
        registry: &Registry,
    ) -> Snapshot {
        let mut pools = HashMap::new();
        for service in &config.config.source().outbound.services {
            let mut entry = ServicePools {
                pools: Vec::with_capacity(service.subsets.len() + 1),
                http2: service
                    .ports
                    .first()
                    .is_some_and(|p| matches!(p.protocol, Protocol::Http2 | Protocol::Grpc)),
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
        Snapshot {
            config,
            endpoints,
            pools,
        }
    }

    /// The pool of a backend, and whether it speaks HTTP/2.
    pub fn pool(&self, service: &str, subset: Option<&str>) -> Option<(&Arc<Pool>, bool)> {
        let entry = self.pools.get(service)?;
        entry
            .pools
            .iter()
            .find(|(s, _)| s.as_deref() == subset)
            .map(|(_, pool)| (pool, entry.http2))
    }
}

/// Everything the listeners share.
pub struct Shared {
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Endpoint state by address.
    pub registry: Registry,
    /// Metrics.
    pub metrics: Metrics,
    /// Retry budgets by `service retry-profile`, kept across reloads.
    pub budgets: crate::retry::Budgets,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            snapshot: RwLock::new(None),
            registry: Registry::default(),
            metrics: Metrics::default(),
            budgets: crate::retry::Budgets::default(),
        }
    }
}

impl Shared {
    /// The active snapshot; `None` until a config and endpoints are loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
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
