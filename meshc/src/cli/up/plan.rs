//! What `meshc up` runs for a checked mesh: one workload per service subset (one per
//! service without subsets), each with its four loopback addresses, its identity, its
//! config file and the labels its endpoint carries; and one agent per ingress gateway,
//! with its admin address and a loopback address per listener. Pure data, decided before
//! anything is started, so the rest of `up` only executes it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use mesh_compiler::Checked;
use mesh_compiler::emit::{self, Neighbours};
use mesh_config::schema::WorkloadConfig;

use super::ports::{PortError, assign};

/// Every workload of the mesh, in a stable order (service, then subset).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The mesh's name.
    pub mesh: String,
    /// The workloads.
    pub workloads: Vec<Workload>,
    /// With `--isolated`: each service's virtual address.
    pub services: Vec<ServiceAddress>,
    /// The ingress gateways.
    pub gateways: Vec<Gateway>,
}

/// An ingress gateway's agent.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// `namespace/name`.
    pub key: String,
    /// Its name (what `mesh-agent --gateway` is given).
    pub name: String,
    /// The SPIFFE id its certificate carries.
    pub identity: String,
    /// The config's path relative to the config directory (`NS/NAME.json`).
    pub config: String,
    /// Its agent's admin listener.
    pub admin: SocketAddr,
    /// Each listener: its config port, whether it is TLS, and where it listens here.
    pub listeners: Vec<(u16, bool, SocketAddr)>,
    /// The hosts it serves, as configured (`*` and `*.suffix` included).
    pub hosts: Vec<String>,
    /// A path its first host's first rule routes (for the commands `meshc up` prints).
    pub example_path: String,
}

impl Gateway {
    /// `gateway shop/public`.
    pub fn label(&self) -> String {
        format!("gateway {}", self.key)
    }

    /// A file-name-safe form of the key: `gateway.shop.public`.
    pub fn slug(&self) -> String {
        format!("gateway.{}", self.key.replace('/', "."))
    }
}

/// Where apps call a service under `--isolated`.
#[derive(Clone, Debug)]
pub struct ServiceAddress {
    /// `namespace/name`.
    pub service: String,
    /// Its virtual IP.
    pub ip: Ipv4Addr,
    /// Its first port.
    pub port: u16,
    /// Host names that mean it (`NAME`, `NAME.NS`, `NAME.NS.svc.cluster.local`).
    pub names: Vec<String>,
}

/// One agent and its demo app.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `namespace/name`.
    pub service: String,
    /// The subset, if the service has subsets.
    pub subset: Option<String>,
    /// The SPIFFE id its certificate carries.
    pub identity: String,
    /// The config's path relative to the config directory (`NS/NAME.json`).
    pub config: String,
    /// The labels of its endpoint (the service's, then the subset's).
    pub labels: BTreeMap<String, String>,
    /// Where it listens.
    pub ports: Ports,
    /// The services it may call.
    pub callees: Vec<Callee>,
    /// The port its app serves (its service's first).
    pub app_port: u16,
    /// With `--isolated`: its network namespace and address.
    pub pod: Option<super::isolated::Pod>,
}

/// A service a workload may call.
#[derive(Clone, Debug)]
pub struct Callee {
    /// `namespace/name`.
    pub service: String,
    /// The host name to call it by.
    pub host: String,
    /// Whether the caller routes it with rules (the interesting calls to show).
    pub routed: bool,
}

/// The four loopback addresses of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The agent's outbound proxy: the app sends its requests here.
    pub outbound: SocketAddr,
    /// The agent's inbound listener: other agents call it here.
    pub inbound: SocketAddr,
    /// The agent's admin listener.
    pub admin: SocketAddr,
    /// The demo app.
    pub app: SocketAddr,
}

impl Workload {
    /// `bookinfo/reviews v2`, or `bookinfo/details`.
    pub fn label(&self) -> String {
        match &self.subset {
            Some(subset) => format!("{} {subset}", self.service),
            None => self.service.clone(),
        }
    }

    /// A file-name-safe form of [`Workload::label`]: `bookinfo.reviews.v2`.
    pub fn slug(&self) -> String {
        self.label().replace(['/', ' '], ".")
    }
}

/// The set of (service, subset) pairs and the gateways with their listener ports: what
/// `--watch` cannot change without a restart.
pub fn shape(plan: &Plan) -> Vec<(String, Option<String>)> {
    plan.workloads
        .iter()
        .map(|w| (w.service.clone(), w.subset.clone()))
        .chain(plan.gateways.iter().map(|g| {
            let ports: Vec<String> = g.listeners.iter().map(|l| l.0.to_string()).collect();
            (g.label(), Some(ports.join(",")))
        }))
        .collect()
}

/// Plans the workloads of `checked` (which must have no errors). With `base_port` 0 every
/// address is a free port ([`super::ports`]); otherwise workload `i` gets `base + 4i` to
/// `base + 4i + 3` (outbound, inbound, admin, app), and the gateways the ports after the
/// workloads' (admin, then one per listener).
pub fn plan(checked: &Checked, base_port: u16) -> Result<Plan, PortError> {
    let mesh = &checked.mesh;
    let configs = emit::workloads(mesh, &checked.cedar, Neighbours::Allowed);
    let mut workloads = Vec::new();
    for (service, config) in mesh.services.iter().zip(&configs) {
        let subsets: Vec<Option<&mesh_compiler::ir::Subset>> = if service.subsets.is_empty() {
            vec![None]
        } else {
            service.subsets.iter().map(Some).collect()
        };
        for subset in subsets {
            let mut labels = service.labels.clone();
            if let Some(subset) = subset {
                labels.extend(subset.labels.clone());
            }
            workloads.push(Workload {
                service: service.key(),
                subset: subset.map(|s| s.name.clone()),
                identity: config.workload.identity.clone(),
                config: format!("{}/{}.json", service.namespace, service.name),
                labels,
                ports: Ports::UNASSIGNED,
                callees: callees(config),
                app_port: service.ports.first().map_or(8080, |p| p.number),
                pod: None,
            });
        }
    }
    workloads.sort_by(|a, b| (&a.service, &a.subset).cmp(&(&b.service, &b.subset)));
    let mut gateways: Vec<Gateway> = emit::gateways(mesh, &checked.cedar)
        .into_iter()
        .filter_map(|(key, config)| {
            let gateway = config.gateway?;
            Some(Gateway {
                config: format!("{key}.json"),
                key,
                name: gateway.name,
                identity: config.workload.identity,
                admin: Ports::UNASSIGNED.admin,
                listeners: gateway
                    .listeners
                    .iter()
                    .map(|l| (l.port, l.tls.is_some(), Ports::UNASSIGNED.admin))
                    .collect(),
                example_path: gateway
                    .hosts
                    .first()
                    .and_then(|h| h.rules.first())
                    .and_then(|r| r.when.as_ref())
                    .and_then(routed_path)
                    .unwrap_or_else(|| "/".to_string()),
                hosts: gateway.hosts.into_iter().map(|h| h.host).collect(),
            })
        })
        .collect();
    let gateway_ports: usize = gateways.iter().map(|g| 1 + g.listeners.len()).sum();
    let addresses = assign(base_port, workloads.len() * 4 + gateway_ports)?;
    let (workload_addresses, mut rest) = addresses.split_at(workloads.len() * 4);
    for gateway in &mut gateways {
        let (mine, after) = rest.split_at(1 + gateway.listeners.len());
        gateway.admin = mine[0];
        for (listener, address) in gateway.listeners.iter_mut().zip(&mine[1..]) {
            listener.2 = *address;
        }
        rest = after;
    }
    for (workload, four) in workloads.iter_mut().zip(workload_addresses.chunks_exact(4)) {
        workload.ports = Ports {
            outbound: four[0],
            inbound: four[1],
            admin: four[2],
            app: four[3],
        };
    }
    Ok(Plan {
        mesh: mesh.name.clone(),
        workloads,
        services: Vec::new(),
        gateways,
    })
}

/// Rewrites `plan` for `--isolated`: each workload in namespace `PREFIX-N` at its own
/// address with the agent's fixed ports and its app on its service's port; each service
/// gets a virtual address.
pub fn isolate(plan: &mut Plan, checked: &Checked, prefix: &str) {
    use super::isolated::{self, ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, Pod};
    for (i, workload) in plan.workloads.iter_mut().enumerate() {
        let ip = isolated::workload_ip(i);
        workload.ports = Ports {
            outbound: SocketAddr::from((Ipv4Addr::LOCALHOST, OUTBOUND_PORT)),
            inbound: SocketAddr::from((ip, INBOUND_PORT)),
            admin: SocketAddr::from((ip, ADMIN_PORT)),
            app: SocketAddr::from((ip, workload.app_port)),
        };
        workload.pod = Some(Pod {
            netns: format!("{prefix}-{i}"),
            ip,
        });
    }
    plan.services = checked
        .mesh
        .services
        .iter()
        .enumerate()
        .map(|(i, service)| ServiceAddress {
            service: service.key(),
            ip: isolated::service_ip(i),
            port: service.ports.first().map_or(80, |p| p.number),
            names: vec![
                service.name.clone(),
                format!("{}.{}", service.name, service.namespace),
                format!("{}.{}.svc.cluster.local", service.name, service.namespace),
            ],
        })
        .collect();
}

impl Ports {
    const UNASSIGNED: Ports = Ports {
        outbound: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        inbound: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        admin: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        app: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
    };
}

/// A path a condition accepts, when it names one (`path == P`, `path starts_with P`).
fn routed_path(when: &mesh_config::schema::Match) -> Option<String> {
    use mesh_config::schema::{Attr, Match, TextOp};
    match when {
        Match::Text {
            attr: Attr::Path,
            op: TextOp::Eq | TextOp::StartsWith,
            value,
        } => Some(value.clone()),
        Match::All(items) | Match::Any(items) => items.iter().find_map(routed_path),
        _ => None,
    }
}

fn callees(config: &WorkloadConfig) -> Vec<Callee> {
    config
        .outbound
        .services
        .iter()
        .map(|s| Callee {
            service: s.service.clone(),
            host: s.authorities.first().cloned().unwrap_or_else(|| {
                s.service
                    .rsplit('/')
                    .next()
                    .unwrap_or(&s.service)
                    .to_string()
            }),
            routed: !s.rules.is_empty(),
        })
        .collect()
}
