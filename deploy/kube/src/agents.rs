//! The agents of meshed pods, read through the Kubernetes API server (what `meshc stat
//! --kubernetes` scrapes): the pods that carry the `mesh-agent` sidecar, named after the
//! workload they run (`namespace/app` and the `version` label as subset, as the mesh's
//! labels are), and `GET`s on their admin listeners through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`) — so nothing but the kubeconfig
//! is needed to reach them: no port-forward, no cluster network.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::KubeError;
use crate::inject::{ADMIN_PORT, SIDECAR};

/// A running pod with the sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshedPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The workload: `namespace/app`, where `app` is the pod's `app` label (its name
    /// without a label).
    pub service: String,
    /// The pod's `version` label, if any.
    pub subset: Option<String>,
    /// The sidecar's admin port (its `mesh-admin` container port).
    pub admin_port: u16,
}

/// A cluster's API server, for reading its meshed pods' agents.
#[derive(Clone)]
pub struct Cluster(Client);

impl Cluster {
    /// The cluster of the kubeconfig's `context` (as [`crate::apply::client`] finds it).
    pub async fn connect(context: Option<&str>) -> Result<Cluster, KubeError> {
        crate::apply::client(context).await.map(Cluster)
    }

    /// The running meshed pods of `namespace` (every namespace when `None`), by
    /// namespace and name.
    pub async fn meshed_pods(&self, namespace: Option<&str>) -> Result<Vec<MeshedPod>, KubeError> {
        meshed_pods(&self.0, namespace).await
    }

    /// The body of `GET path` on `pod`'s admin listener, through the API server.
    pub async fn get_admin(&self, pod: &MeshedPod, path: &str) -> Result<String, KubeError> {
        get_admin(&self.0, pod, path).await
    }
}

async fn meshed_pods(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<MeshedPod>, KubeError> {
    let api: Api<Pod> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let pods = api
        .list(&ListParams::default())
        .await
        .map_err(|e| KubeError::Client(format!("cannot list pods: {e}")))?;
    let mut meshed: Vec<MeshedPod> = pods.items.iter().filter_map(meshed).collect();
    meshed.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(meshed)
}

/// The pod as a meshed pod, if it runs the sidecar.
fn meshed(pod: &Pod) -> Option<MeshedPod> {
    let spec = pod.spec.as_ref()?;
    let sidecar = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == SIDECAR)?;
    if pod.status.as_ref()?.phase.as_deref() != Some("Running") {
        return None;
    }
    let namespace = pod.metadata.namespace.clone()?;
    let name = pod.metadata.name.clone()?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let admin_port = sidecar
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("mesh-admin"))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(ADMIN_PORT);
    Some(MeshedPod {
        service: format!(
            "{namespace}/{}",
            labels.get("app").map_or(name.as_str(), String::as_str)
        ),
        subset: labels.get("version").cloned(),
        namespace,
        name,
        admin_port,
    })
}

async fn get_admin(client: &Client, pod: &MeshedPod, path: &str) -> Result<String, KubeError> {
    let uri = format!(
        "/api/v1/namespaces/{}/pods/{}:{}/proxy{path}",
        pod.namespace, pod.name, pod.admin_port
    );
    let request = http::Request::get(&uri)
        .body(Vec::new())
        .map_err(|e| KubeError::Client(format!("{uri}: {e}")))?;
    client
        .request_text(request)
        .await
        .map_err(|e| KubeError::Client(format!("{}/{}{path}: {e}", pod.namespace, pod.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    #[test]
    fn only_running_pods_with_the_sidecar_are_meshed() {
        let with = |phase: &str, containers: serde_json::Value| {
            pod(serde_json::json!({
                "metadata": {"name": "reviews-v2-abc", "namespace": "bookinfo",
                             "labels": {"app": "reviews", "version": "v2"}},
                "spec": {"containers": [{"name": "app"}], "initContainers": containers},
                "status": {"phase": phase},
            }))
        };
        let sidecar = serde_json::json!([{"name": "mesh-agent",
            "ports": [{"name": "mesh-admin", "containerPort": 15999}]}]);
        assert_eq!(
            meshed(&with("Running", sidecar.clone())),
            Some(MeshedPod {
                namespace: "bookinfo".into(),
                name: "reviews-v2-abc".into(),
                service: "bookinfo/reviews".into(),
                subset: Some("v2".into()),
                admin_port: 15999,
            })
        );
        assert_eq!(meshed(&with("Pending", sidecar)), None);
        assert_eq!(meshed(&with("Running", serde_json::json!([]))), None);
        let unnamed = pod(serde_json::json!({
            "metadata": {"name": "db-0", "namespace": "data"},
            "spec": {"containers": [{"name": "mesh-agent"}]},
            "status": {"phase": "Running"},
        }));
        let found = meshed(&unnamed).expect("meshed");
        assert_eq!(
            (found.service.as_str(), found.admin_port),
            ("data/db-0", ADMIN_PORT)
        );
    }
}
