//! Discovery: where the instances of each service are. An endpoint is an address with the
//! labels of its instance; a subset's endpoints are those whose labels include the
//! subset's (as Kubernetes label selectors work). Two sources implement [`Discovery`]: a
//! JSON file, watched like the config, and (feature `kubernetes`) EndpointSlices, Pods and
//! Services watched through the Kubernetes API ([`crate::kubernetes`]).
//!
//! ```json
//! {"endpoints": [
//!   {"service": "bookinfo/reviews", "address": "127.0.0.1:9081", "labels": {"version": "v2"}}
//! ],
//!  "services": [
//!   {"service": "bookinfo/reviews", "addresses": ["10.96.0.12"]}
//! ]}
//! ```
//!
//! `services` is optional: the virtual addresses (a Kubernetes Service's clusterIP) apps
//! connect to, so a captured connection's original destination names its service. An
//! endpoint's own IP names its service too.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One instance of a service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `namespace/name`.
    pub service: String,
    /// Where its agent's inbound listener is.
    pub address: SocketAddr,
    /// Its labels (`version`, …), matched against subsets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether an agent runs beside it. `false` for a workload not injected yet: then
    /// `address` is its app's own address, reached in plaintext while the mesh is
    /// `permissive` and refused under `strict` (Istio's auto-mTLS migration).
    #[serde(default = "meshed")]
    pub meshed: bool,
}

fn meshed() -> bool {
    true
}

/// The virtual addresses of a service.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAddresses {
    /// `namespace/name`.
    pub service: String,
    /// IPs apps connect to for it, on its ports.
    pub addresses: Vec<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointsFile {
    endpoints: Vec<Endpoint>,
    #[serde(default)]
    services: Vec<ServiceAddresses>,
}

/// Every known endpoint, by service, and the services' virtual addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    by_service: HashMap<String, Vec<Endpoint>>,
    addresses: HashMap<String, Vec<IpAddr>>,
}

impl Endpoints {
    /// Parses an endpoints file.
    pub fn from_json(bytes: &[u8]) -> Result<Endpoints, DiscoveryError> {
        let file: EndpointsFile = serde_json::from_slice(bytes).map_err(DiscoveryError::Json)?;
        Ok(Endpoints::from_list(file.endpoints).with_addresses(file.services))
    }

    /// Groups endpoints by service.
    pub fn from_list(list: Vec<Endpoint>) -> Endpoints {
        let mut by_service: HashMap<String, Vec<Endpoint>> = HashMap::new();
        for endpoint in list {
            by_service
                .entry(endpoint.service.clone())
                .or_default()
                .push(endpoint);
        }
        Endpoints {
            by_service,
            addresses: HashMap::new(),
        }
    }

    /// Adds services' virtual addresses.
    pub fn with_addresses(mut self, services: Vec<ServiceAddresses>) -> Endpoints {
        for service in services {
            self.addresses
                .entry(service.service)
                .or_default()
                .extend(service.addresses);
        }
        self
    }

    /// The addresses of endpoints without an agent.
    pub fn unmeshed(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.by_service
            .values()
            .flatten()
            .filter(|e| !e.meshed)
            .map(|e| e.address)
    }

    /// Every service with the IPs that reach it (virtual addresses and endpoint IPs).
    pub fn all_ips(&self) -> impl Iterator<Item = (&str, IpAddr)> + '_ {
        let virtual_ips = self
            .addresses
            .iter()
            .flat_map(|(service, ips)| ips.iter().map(move |ip| (service.as_str(), *ip)));
        let endpoint_ips = self.by_service.iter().flat_map(|(service, list)| {
            list.iter().map(move |e| (service.as_str(), e.address.ip()))
        });
        virtual_ips.chain(endpoint_ips)
    }

    /// The virtual addresses of `service`, then the IPs of its endpoints: every IP a
    /// connection to it may be addressed to.
    pub fn ips<'a>(&'a self, service: &str) -> impl Iterator<Item = IpAddr> + 'a {
        let virtual_ips = self.addresses.get(service).into_iter().flatten().copied();
        let endpoint_ips = self
            .by_service
            .get(service)
            .into_iter()
            .flatten()
            .map(|e| e.address.ip());
        virtual_ips.chain(endpoint_ips)
    }

    /// The endpoints of `service` whose labels include every one of `selector`.
    pub fn select<'a>(
        &'a self,
        service: &str,
        selector: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter(move |e| selector.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
    }
}

/// Why endpoints could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not an endpoints document.
    #[error("endpoints file is not valid: {0}")]
    Json(serde_json::Error),
    /// The Kubernetes watches have not listed everything yet.
    #[error("waiting for the first list of {0} from the Kubernetes API")]
    NotSynced(&'static str),
}

/// A source of endpoints.
pub trait Discovery: Send + Sync {
    /// The current endpoints; errors keep the last good set in force.
    fn load(&self) -> Result<Endpoints, DiscoveryError>;
    /// Files whose changes mean the endpoints may have changed (watched).
    fn watched_paths(&self) -> Vec<PathBuf>;
    /// Notified when the endpoints may have changed, for sources that are not files.
    fn changed(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Endpoints from a JSON file.
#[derive(Clone, Debug)]
pub struct FileDiscovery {
    path: PathBuf,
}

impl FileDiscovery {
    /// Reads endpoints from `path`.
    pub fn new(path: &Path) -> FileDiscovery {
        FileDiscovery {
            path: path.to_path_buf(),
        }
    }
}

impl Discovery for FileDiscovery {
    fn load(&self) -> Result<Endpoints, DiscoveryError> {
        let bytes = std::fs::read(&self.path).map_err(|source| DiscoveryError::Io {
            path: self.path.clone(),
            source,
        })?;
        Endpoints::from_json(&bytes)
    }

    fn watched_paths(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_select_by_labels() {
        let endpoints = Endpoints::from_json(
            br#"{"endpoints": [
                {"service": "ns/a", "address": "127.0.0.1:1", "labels": {"version": "v1"}},
                {"service": "ns/a", "address": "127.0.0.1:2", "labels": {"version": "v2"}},
                {"service": "ns/b", "address": "127.0.0.1:3"}
            ]}"#,
        )
        .unwrap_or_default();
        let v2 = BTreeMap::from([("version".to_string(), "v2".to_string())]);
        let all = BTreeMap::new();
        let ports = |sel| -> Vec<u16> {
            endpoints
                .select("ns/a", sel)
                .map(|e| e.address.port())
                .collect()
        };
        assert_eq!(ports(&v2), [2]);
        assert_eq!(ports(&all), [1, 2]);
        assert!(Endpoints::from_json(b"{\"endpoints\": [{\"service\": 1}]}").is_err());
        assert!(Endpoints::from_json(b"not json").is_err());
    }
}
