//! Reading running agents' numbers: `GET /metrics` on an admin address over plain
//! HTTP/1.1, and the counters of the Prometheus text format picked out by name and
//! labels, and the agents a `meshc up --state` file lists. What `meshc graph --state`
//! and `meshc stat` turn into live rates, and where `meshc tap` finds its agents; with
//! `--kubernetes`, the meshed pods' agents through the cluster's API server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use mesh_kube::agents::{Cluster, MeshedPod};
use tokio::net::TcpStream;

/// The largest `/metrics` body read.
const MAX_BODY: usize = 16 << 20;
/// How long one scrape may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` on `addr` (an admin listener) over a new HTTP/1.1 connection: the answer,
/// its body still to be read (or streamed), or why there is none.
pub async fn get(
    addr: SocketAddr,
    path: &str,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("{addr}{path}: {e}"))
}

/// The body of `GET path` on `addr` (an admin listener), or why there is none.
pub async fn get_text(addr: SocketAddr, path: &str) -> Result<String, String> {
    let fetch = async {
        let response = get(addr, path).await?;
        if !response.status().is_success() {
            return Err(format!("{addr}{path} answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("{addr}{path}: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| format!("{addr}{path}: not UTF-8"))
    };
    tokio::time::timeout(TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{addr}{path}: no answer within {}s", TIMEOUT.as_secs()))?
}

/// One agent of the state file (or a cluster's meshed pod).
pub struct Agent {
    /// `ns/name`, with ` SUBSET` when the service has subsets.
    pub label: String,
    /// `ns/name`.
    pub service: String,
    /// Its admin listener.
    pub admin: Admin,
}

/// Where an agent's admin listener is reached.
#[derive(Clone)]
pub enum Admin {
    /// On this machine (`meshc up`).
    Local(SocketAddr),
    /// A pod's sidecar, through the cluster's API server.
    Pod(Cluster, MeshedPod),
}

impl Admin {
    /// The body of `GET path` on the admin listener, or why there is none.
    pub async fn get(&self, path: &str) -> Result<String, String> {
        match self {
            Admin::Local(addr) => get_text(*addr, path).await,
            Admin::Pod(cluster, pod) => tokio::time::timeout(TIMEOUT, cluster.get_admin(pod, path))
                .await
                .map_err(|_| {
                    format!(
                        "{}/{}{path}: no answer within {}s",
                        pod.namespace,
                        pod.name,
                        TIMEOUT.as_secs()
                    )
                })?
                .map_err(|e| e.to_string()),
        }
    }
}

/// The agents of the running meshed pods of `namespace` (all namespaces: `None`) in the
/// cluster of kubeconfig context `context`, labelled as `meshc up` labels workloads.
pub async fn pods(context: Option<&str>, namespace: Option<&str>) -> Result<Vec<Agent>, String> {
    let cluster = Cluster::connect(context).await.map_err(|e| e.to_string())?;
    let pods = cluster
        .meshed_pods(namespace)
        .await
        .map_err(|e| e.to_string())?;
    Ok(pods
        .into_iter()
        .map(|pod| Agent {
            label: match &pod.subset {
                Some(subset) => format!("{} {subset}", pod.service),
                None => pod.service.clone(),
            },
            service: pod.service.clone(),
            admin: Admin::Pod(cluster.clone(), pod),
        })
        .collect())
}

/// The agents of a `meshc up --state` file.
pub fn agents(state: &Path) -> Result<Vec<Agent>, String> {
    let document = read_state(state)?;
    let workloads = document["workloads"]
        .as_array()
        .ok_or_else(|| format!("{} has no workloads", state.display()))?;
    Ok(workloads
        .iter()
        .filter_map(|w| {
            let service = w["service"].as_str()?.to_string();
            let label = match w["subset"].as_str() {
                Some(subset) => format!("{service} {subset}"),
                None => service.clone(),
            };
            Some(Agent {
                label,
                service,
                admin: Admin::Local(w["admin"].as_str()?.parse().ok()?),
            })
        })
        .collect())
}

/// The gateways' agents of a `meshc up --state` file (labelled `ns/name`).
pub fn gateways(state: &Path) -> Result<Vec<Agent>, String> {
    let document = read_state(state)?;
    Ok(document["gateways"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|g| {
            let key = g["gateway"].as_str()?.to_string();
            Some(Agent {
                label: key.clone(),
                service: key,
                admin: Admin::Local(g["admin"].as_str()?.parse().ok()?),
            })
        })
        .collect())
}

fn read_state(state: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(state)
        .map_err(|e| format!("cannot read the state file {}: {e}", state.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a `meshc up --state` file: {e}", state.display()))
}

/// One sample of a metric: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label name → value.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// The samples of metric `name` (exactly: `mesh_requests_total`, not its `_created`) in
/// Prometheus text `text`. Lines that do not parse are skipped.
pub fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let end = label_end(rest)?;
                    (parse_labels(&rest[..end])?, &rest[end + 1..])
                }
                None if rest.starts_with(' ') => (BTreeMap::new(), rest),
                None => return None,
            };
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some(Sample { labels, value })
        })
        .collect()
}

/// The index of the `}` closing a label set (quotes and escapes respected).
fn label_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (c, quoted, escaped) {
            (_, true, true) => escaped = false,
            ('\\', true, false) => escaped = true,
            ('"', _, false) => quoted = !quoted,
            ('}', false, _) => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim_start_matches(',');
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(name.trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_name_and_labels() {
        let text = "# HELP mesh_requests Proxied requests\n\
            # TYPE mesh_requests counter\n\
            mesh_requests_total{direction=\"outbound\",service=\"bookinfo/reviews\",subset=\"v1\",rule=\"\",status=\"200\"} 12\n\
            mesh_requests_total{direction=\"inbound\",service=\"a\\\"b}\",subset=\"\",rule=\"\",status=\"503\"} 3\n\
            mesh_requests_created{direction=\"outbound\"} 1.7e9\n\
            mesh_requests_total_other 5\n\
            mesh_up 1\n\
            mesh_requests_total{broken 4\n";
        let found = samples(text, "mesh_requests_total");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].labels["service"], "bookinfo/reviews");
        assert_eq!(found[0].value, 12.0);
        assert_eq!(found[1].labels["service"], "a\"b}");
        assert_eq!(found[1].labels["status"], "503");
        assert_eq!(samples(text, "mesh_up")[0].value, 1.0);
    }
}
