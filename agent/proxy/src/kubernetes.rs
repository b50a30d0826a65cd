//! Kubernetes discovery (`--discovery kubernetes`): endpoints from EndpointSlices, labels
//! from the Pods they point to, both followed with `kube::runtime` watchers.
//!
//! A service `NAMESPACE/NAME` has the ready endpoints of the slices labelled
//! `kubernetes.io/service-name: NAME` in `NAMESPACE`; each endpoint is the pod's address
//! with the port of the peers' agents (`--peer-port`), and carries its pod's labels so
//! subsets select on them. The watchers restart by themselves (with backoff) after a
//! failure; meanwhile and until a fresh list completes, the last known endpoints stay in
//! force. `mesh_discovery_watch_up{resource}` tells whether each watch is healthy.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;

use crate::discovery::{Discovery, DiscoveryError, Endpoint, Endpoints};
use crate::metrics::WatchLabels;
use crate::state::Shared;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One ready endpoint of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SliceEndpoint {
    ip: IpAddr,
    /// `(namespace, name)` of its pod, if the slice says.
    pod: Option<(String, String)>,
}

/// What a slice contributes: its service and its ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slice {
    service: String,
    endpoints: Vec<SliceEndpoint>,
}

#[derive(Default)]
struct State {
    /// By `namespace/slice-name`.
    slices: HashMap<String, Slice>,
    /// Labels by `(namespace, pod-name)`.
    pods: HashMap<(String, String), BTreeMap<String, String>>,
    slices_synced: bool,
    pods_synced: bool,
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
    /// account) and starts watching EndpointSlices and Pods in every namespace.
    pub async fn start(peer_port: u16, shared: Arc<Shared>) -> Result<KubeDiscovery, String> {
        let mut config = kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes API configured: {e}"))?;
        // The watchers retry with their own backoff; the client's retries would hide a
        // failing API from the watch-state metric for minutes.
        config.default_retry = false;
        let client = Client::try_from(config)
            .map_err(|e| format!("cannot build a Kubernetes client: {e}"))?;
        Ok(KubeDiscovery::with_client(client, peer_port, shared))
    }

    /// Starts watching through `client`.
    pub fn with_client(client: Client, peer_port: u16, shared: Arc<Shared>) -> KubeDiscovery {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let slices = watch_slices(
            Api::all(client.clone()),
            Arc::clone(&state),
            Arc::clone(&changed),
            Arc::clone(&shared),
        );
        let pods = watch_pods(
            Api::all(client),
            Arc::clone(&state),
            Arc::clone(&changed),
            shared,
        );
        KubeDiscovery {
            state,
            changed,
            peer_port,
            tasks: vec![tokio::spawn(slices), tokio::spawn(pods)],
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
        let mut by_address: BTreeMap<(String, SocketAddr), Endpoint> = BTreeMap::new();
        for slice in state.slices.values() {
            for endpoint in &slice.endpoints {
                let address = SocketAddr::new(endpoint.ip, self.peer_port);
                let labels = endpoint
                    .pod
                    .as_ref()
                    .and_then(|pod| state.pods.get(pod))
                    .cloned()
                    .unwrap_or_default();
                by_address.insert(
                    (slice.service.clone(), address),
                    Endpoint {
                        service: slice.service.clone(),
                        address,
                        labels,
                        meshed: true,
                    },
                );
            }
        }
        Ok(Endpoints::from_list(by_address.into_values().collect()))
    }

    fn watched_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn changed(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.changed))
    }
}

/// What a slice says, or `None` for slices of no service.
fn slice_of(slice: &EndpointSlice) -> Option<(String, Slice)> {
    let namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
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
    Some((
        format!("{namespace}/{}", slice.name_any()),
        Slice {
            service: format!("{namespace}/{service}"),
            endpoints,
        },
    ))
}

fn set_up(shared: &Shared, resource: &'static str, up: bool) {
    shared
        .metrics
        .watch_up
        .get_or_create(&WatchLabels { resource })
        .set(i64::from(up));
}

fn failed(shared: &Shared, resource: &'static str, error: &watcher::Error) {
    set_up(shared, resource, false);
    shared
        .metrics
        .watch_errors
        .get_or_create(&WatchLabels { resource })
        .inc();
    tracing::warn!(resource, %error, "watch failed; keeping the last known endpoints and retrying");
}

async fn watch_slices(
    api: Api<EndpointSlice>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    shared: Arc<Shared>,
) {
    const RESOURCE: &str = "endpointslices";
    set_up(&shared, RESOURCE, false);
    let config = watcher::Config::default().labels(SERVICE_NAME_LABEL);
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut relist: Option<HashMap<String, Slice>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                failed(&shared, RESOURCE, &error);
                continue;
            }
        };
        let mut state = lock(&state);
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(slice) => {
                if let (Some(buffer), Some((key, slice))) = (relist.as_mut(), slice_of(&slice)) {
                    buffer.insert(key, slice);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = relist.take() {
                    state.slices = buffer;
                }
                state.slices_synced = true;
                set_up(&shared, RESOURCE, true);
                changed.notify_one();
            }
            watcher::Event::Apply(slice) => {
                match slice_of(&slice) {
                    Some((key, slice)) => state.slices.insert(key, slice),
                    None => state.slices.remove(&format!(
                        "{}/{}",
                        slice.metadata.namespace.as_deref().unwrap_or_default(),
                        slice.name_any()
                    )),
                };
                set_up(&shared, RESOURCE, true);
                changed.notify_one();
            }
            watcher::Event::Delete(slice) => {
                state.slices.remove(&format!(
                    "{}/{}",
                    slice.metadata.namespace.as_deref().unwrap_or_default(),
                    slice.name_any()
                ));
                changed.notify_one();
            }
        }
    }
}

async fn watch_pods(
    api: Api<PartialObjectMeta<Pod>>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    shared: Arc<Shared>,
) {
    const RESOURCE: &str = "pods";
    set_up(&shared, RESOURCE, false);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let key = |pod: &PartialObjectMeta<Pod>| {
        (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.name_any(),
        )
    };
    let mut relist: Option<HashMap<(String, String), BTreeMap<String, String>>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                failed(&shared, RESOURCE, &error);
                continue;
            }
        };
        let mut state = lock(&state);
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(buffer) = relist.as_mut() {
                    buffer.insert(key(&pod), pod.labels().clone());
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = relist.take() {
                    state.pods = buffer;
                }
                state.pods_synced = true;
                set_up(&shared, RESOURCE, true);
                changed.notify_one();
            }
            watcher::Event::Apply(pod) => {
                let labels = pod.labels().clone();
                if state.pods.insert(key(&pod), labels.clone()) != Some(labels) {
                    changed.notify_one();
                }
                set_up(&shared, RESOURCE, true);
            }
            watcher::Event::Delete(pod) => {
                state.pods.remove(&key(&pod));
                changed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
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
        assert!(slice_of(&slice).is_none(), "no service label");
        slice.metadata.labels = Some(BTreeMap::from([(
            SERVICE_NAME_LABEL.to_string(),
            "reviews".to_string(),
        )]));
        let (key, parsed) = slice_of(&slice).unwrap();
        assert_eq!(key, "shop/reviews-abc");
        assert_eq!(parsed.service, "shop/reviews");
        let ips: Vec<String> = parsed.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(
            parsed.endpoints[0].pod,
            Some(("shop".to_string(), "a".to_string()))
        );
    }
}
