//! Kubernetes discovery (`--discovery kubernetes`): endpoints from EndpointSlices, labels
//! from the Pods they point to, virtual addresses from Services, all followed with
//! `kube::runtime` watchers.
//!
//! A service `NAMESPACE/NAME` has the ready endpoints of the slices labelled
//! `kubernetes.io/service-name: NAME` in `NAMESPACE`; each endpoint is the pod's address
//! with the port of the peers' agents (`--peer-port`), and carries its pod's labels so
//! subsets select on them. A pod without the `mesh/injected` annotation that `meshc
//! inject` sets has no agent yet: its endpoint is its own address at the slice's port,
//! marked not meshed (reached in plaintext while the mesh is permissive, refused under
//! strict). Its virtual addresses are the Service's cluster IPs (none for
//! a headless Service), so that a captured connection to `CLUSTER_IP:PORT` names it. The
//! watchers restart by themselves (with backoff) after a failure; meanwhile and until a
//! fresh list completes, the last known endpoints stay in force.
//! `mesh_discovery_watch_up{resource}` tells whether each watch is healthy.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::discovery::{Discovery, DiscoveryError, Endpoint, Endpoints, ServiceAddresses};
use crate::metrics::Metrics;
use crate::metrics::WatchLabels;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One ready endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SliceEndpoint {
    ip: IpAddr,
    /// `(namespace, name)` of its pod, if the slice says.
    pod: Option<(String, String)>,
}

/// What a slice contributes: its service, its ready endpoints and the app's port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slice {
    service: String,
    endpoints: Vec<SliceEndpoint>,
    /// The first port the slice lists: where an endpoint without an agent is reached.
    port: Option<u16>,
}

/// The annotation `meshc inject` puts on the pods it gives an agent.
pub const INJECTED_ANNOTATION: &str = "mesh/injected";

/// What discovery keeps of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PodMeta {
    labels: BTreeMap<String, String>,
    /// It carries [`INJECTED_ANNOTATION`]: an agent runs beside it.
    injected: bool,
}

#[derive(Default)]
struct State {
    /// By `namespace/slice-name`.
    slices: HashMap<String, Slice>,
    /// Labels and injection by `(namespace, pod-name)`.
    pods: HashMap<(String, String), PodMeta>,
    /// Cluster IPs by `namespace/service-name`, for Services that have some.
    services: HashMap<String, Vec<IpAddr>>,
    slices_synced: bool,
    pods_synced: bool,
    services_synced: bool,
}

/// Endpoints from the Kubernetes API.
pub struct KubeDiscovery {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    peer_port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for KubeDiscovery {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl KubeDiscovery {
    /// Connects to the cluster (kubeconfig as kubectl finds it, or the in-cluster service
    /// account) and starts watching EndpointSlices, Pods and Services in every namespace.
    pub async fn start(peer_port: u16, metrics: Arc<Metrics>) -> Result<KubeDiscovery, String> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes API configured: {e}"))?;
        // The watchers retry with their own backoff; the client's retries would hide a
        // failing API from the watch-state metric for minutes.
        config.default_retry = false;
        let client = Client::try_from(config)
            .map_err(|e| format!("cannot build a Kubernetes client: {e}"))?;
        Ok(KubeDiscovery::with_client(client, peer_port, metrics))
    }

    /// Starts watching through `client`.
    pub fn with_client(client: Client, peer_port: u16, metrics: Arc<Metrics>) -> KubeDiscovery {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let watch = Watch {
            state: Arc::clone(&state),
            changed: Arc::clone(&changed),
            metrics,
        };
        let slices = watch.clone().follow(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(SERVICE_NAME_LABEL),
            "endpointslices",
            slice_of,
            |s| (&mut s.slices, &mut s.slices_synced),
        );
        let pods = watch.clone().follow(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            "pods",
            |pod| {
                let key = (
                    pod.metadata.namespace.clone().unwrap_or_default(),
                    pod.name_any(),
                );
                let meta = PodMeta {
                    labels: pod.labels().clone(),
                    injected: pod.annotations().contains_key(INJECTED_ANNOTATION),
                };
                (key, Some(meta))
            },
            |s| (&mut s.pods, &mut s.pods_synced),
        );
        let services = watch.follow(
            Api::<Service>::all(client),
            watcher::Config::default(),
            "services",
            service_of,
            |s| (&mut s.services, &mut s.services_synced),
        );
        KubeDiscovery {
            state,
            changed,
            peer_port,
            tasks: vec![
                tokio::spawn(slices),
                tokio::spawn(pods),
                tokio::spawn(services),
            ],
        }
    }
}

impl Discovery for KubeDiscovery {
    fn load(&self) -> Result<Endpoints, DiscoveryError> {
        let state = lock(&self.state);
        if !state.slices_synced {
            return Err(DiscoveryError::NotSynced("EndpointSlices"));
        }
        if !state.pods_synced {
            return Err(DiscoveryError::NotSynced("Pods"));
        }
        if !state.services_synced {
            return Err(DiscoveryError::NotSynced("Services"));
        }
        let mut by_address: BTreeMap<(String, SocketAddr), Endpoint> = BTreeMap::new();
        for slice in state.slices.values() {
            for endpoint in &slice.endpoints {
                let pod = endpoint.pod.as_ref().and_then(|pod| state.pods.get(pod));
                let labels = pod.map(|p| p.labels.clone()).unwrap_or_default();
                // Without a known pod (or a port to reach its app) assume an agent.
                let app_port = slice.port.filter(|_| pod.is_some_and(|p| !p.injected));
                let (address, meshed) = match app_port {
                    Some(port) => (SocketAddr::new(endpoint.ip, port), false),
                    None => (SocketAddr::new(endpoint.ip, self.peer_port), true),
                };
                by_address.insert(
                    (slice.service.clone(), address),
                    Endpoint {
                        service: slice.service.clone(),
                        address,
                        labels,
                        meshed,
                    },
                );
            }
        }
        let services = state
            .services
            .iter()
            .map(|(service, addresses)| ServiceAddresses {
                service: service.clone(),
                addresses: addresses.clone(),
            })
            .collect();
        Ok(Endpoints::from_list(by_address.into_values().collect()).with_addresses(services))
    }

    fn watched_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn changed(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.changed))
    }
}

/// A slice's key (`namespace/name`) and what it says: `None` for slices of no service.
fn slice_of(slice: &EndpointSlice) -> (String, Option<Slice>) {
    let namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let key = format!("{namespace}/{}", slice.name_any());
    let Some(service) = slice.labels().get(SERVICE_NAME_LABEL).cloned() else {
        return (key, None);
    };
    let endpoints = slice
        .endpoints
        .iter()
        // Ready unless the slice says otherwise (as the API defines an absent condition).
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| {
            let pod = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| {
                    Some((
                        r.namespace.clone().unwrap_or_else(|| namespace.clone()),
                        r.name.clone()?,
                    ))
                });
            e.addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .map(move |ip| SliceEndpoint {
                    ip,
                    pod: pod.clone(),
                })
        })
        .collect();
    (
        key,
        Some(Slice {
            service: format!("{namespace}/{service}"),
            endpoints,
            port: slice
                .ports
                .iter()
                .flatten()
                .find_map(|p| p.port.and_then(|port| u16::try_from(port).ok())),
        }),
    )
}

/// A Service's key (`namespace/name`) and its cluster IPs: `None` for a headless Service
/// (`None`) or one without any (`ExternalName`).
fn service_of(service: &Service) -> (String, Option<Vec<IpAddr>>) {
    let key = format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.name_any()
    );
    let spec = service.spec.as_ref();
    let ips: Vec<IpAddr> = spec
        .and_then(|s| s.cluster_ips.clone())
        .filter(|ips| !ips.is_empty())
        .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    (key, Some(ips).filter(|ips| !ips.is_empty()))
}

fn set_up(metrics: &Metrics, resource: &'static str, up: bool) {
    metrics
        .watch_up
        .get_or_create(&WatchLabels { resource })
        .set(i64::from(up));
}

fn failed(metrics: &Metrics, resource: &'static str, error: &watcher::Error) {
    set_up(metrics, resource, false);
    metrics
        .watch_errors
        .get_or_create(&WatchLabels { resource })
        .inc();
    tracing::warn!(resource, %error, "watch failed; keeping the last known endpoints and retrying");
}

/// What every watcher shares.
#[derive(Clone)]
struct Watch {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Watch {
    /// Follows one resource into its table of the state: `entry` gives an object's key and
    /// what it contributes (`None`: nothing, as if it were deleted); `table` picks the
    /// table and its synced flag. A relist replaces the table once it is complete.
    async fn follow<K, Key, T>(
        self,
        api: Api<K>,
        config: watcher::Config,
        resource: &'static str,
        entry: fn(&K) -> (Key, Option<T>),
        table: fn(&mut State) -> (&mut HashMap<Key, T>, &mut bool),
    ) where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        Key: Eq + Hash,
        T: PartialEq,
    {
        set_up(&self.metrics, resource, false);
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut relist: Option<HashMap<Key, T>> = None;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    failed(&self.metrics, resource, &error);
                    continue;
                }
            };
            let mut state = lock(&self.state);
            let (objects, synced) = table(&mut state);
            match event {
                watcher::Event::Init => relist = Some(HashMap::new()),
                watcher::Event::InitApply(object) => {
                    if let (Some(buffer), (key, Some(value))) = (relist.as_mut(), entry(&object)) {
                        buffer.insert(key, value);
                    }
                }
                watcher::Event::InitDone => {
                    if let Some(buffer) = relist.take() {
                        *objects = buffer;
                    }
                    *synced = true;
                    set_up(&self.metrics, resource, true);
                    self.changed.notify_one();
                }
                watcher::Event::Apply(object) => {
                    let (key, value) = entry(&object);
                    let changed = match value {
                        Some(value) if objects.get(&key) == Some(&value) => false,
                        Some(value) => {
                            objects.insert(key, value);
                            true
                        }
                        None => objects.remove(&key).is_some(),
                    };
                    if changed {
                        self.changed.notify_one();
                    }
                    set_up(&self.metrics, resource, true);
                }
                watcher::Event::Delete(object) => {
                    if objects.remove(&entry(&object).0).is_some() {
                        self.changed.notify_one();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectReference, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint as K8sEndpoint, EndpointConditions};

    fn endpoint(ip: &str, ready: Option<bool>, pod: &str) -> K8sEndpoint {
        K8sEndpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..ObjectReference::default()
            }),
            ..K8sEndpoint::default()
        }
    }

    #[test]
    fn slices_keep_ready_endpoints_and_their_pods() {
        let mut slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: vec![
                endpoint("10.0.0.1", Some(true), "a"),
                endpoint("10.0.0.2", Some(false), "b"),
                endpoint("10.0.0.3", None, "c"),
            ],
            ..EndpointSlice::default()
        };
        slice.metadata.name = Some("reviews-abc".into());
        slice.metadata.namespace = Some("shop".into());
        assert_eq!(
            slice_of(&slice),
            ("shop/reviews-abc".to_string(), None),
            "no service label"
        );
        slice.metadata.labels = Some(BTreeMap::from([(
            SERVICE_NAME_LABEL.to_string(),
            "reviews".to_string(),
        )]));
        let (key, parsed) = slice_of(&slice);
        let parsed = parsed.unwrap();
        assert_eq!(key, "shop/reviews-abc");
        assert_eq!(parsed.service, "shop/reviews");
        let ips: Vec<String> = parsed.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(
            parsed.endpoints[0].pod,
            Some(("shop".to_string(), "a".to_string()))
        );
    }

    #[test]
    fn services_give_their_cluster_ips_and_headless_ones_nothing() {
        let service = |cluster_ip: Option<&str>, cluster_ips: Option<Vec<&str>>| {
            let mut service = Service {
                spec: Some(ServiceSpec {
                    cluster_ip: cluster_ip.map(str::to_string),
                    cluster_ips: cluster_ips
                        .map(|ips| ips.into_iter().map(str::to_string).collect()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            };
            service.metadata.name = Some("reviews".into());
            service.metadata.namespace = Some("shop".into());
            service_of(&service)
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            service(Some("10.96.0.12"), Some(vec!["10.96.0.12", "fd00::12"])),
            (
                "shop/reviews".to_string(),
                Some(vec![ip("10.96.0.12"), ip("fd00::12")])
            )
        );
        assert_eq!(
            service(Some("10.96.0.13"), None).1,
            Some(vec![ip("10.96.0.13")]),
            "clusterIP alone (older API servers)"
        );
        assert_eq!(
            service(Some("None"), Some(vec!["None"])).1,
            None,
            "headless"
        );
        assert_eq!(service(None, None).1, None, "ExternalName");
    }
}
