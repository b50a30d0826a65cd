//! Emission: one `mesh_config::WorkloadConfig` per service and per gateway, plus the
//! index. A workload's
//! outbound side lists the services its policies let it call (all of them when a policy
//! cannot be read that way, such as inline Cedar), so a config grows with the workload's
//! neighbours rather than with the mesh. Output is deterministic: services are sorted,
//! maps are ordered, and the same mesh always gives the same bytes.

use std::collections::{BTreeMap, HashMap};

use mesh_config::schema::{
    self as cfg, AbortFault, AccessLog, Attr, Authz, Backend, Backoff, Balance, Budget, CedarAuthz,
    DelayFault, Egress, FULL_WEIGHT, FaultDef, GatewayHost, HeaderValue, Inbound, Limits, Listener,
    Match, MeshInfo, MirrorDef, Outbound, OutboundService, Outlier, Pattern, Port, Protocol,
    RateLimit, Retry, Rewrite, RouteRule, SubsetDef, Telemetry, TextOp, TlsFiles, WeightedBackend,
    Workload, WorkloadConfig,
};

use crate::cedar::CedarOutput;
use crate::ir::{
    self, Cond, CondKind, Dest, Effect, GatewayId, Mesh, Principal, RetryUse, Service, ServiceId,
    Target,
};

/// Which outbound services a workload's config lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neighbours<'a> {
    /// Only those its policies let it call.
    Allowed,
    /// Exactly these, in this order, whatever the policies say: for `meshc test` and
    /// `meshc explain`, which route a request to whichever service a case names.
    Only(&'a [ServiceId]),
}

/// The namespaces that hold services, sorted: what a workload's agent treats as the mesh's
/// (`MeshInfo::namespaces`).
fn service_namespaces(mesh: &Mesh) -> Vec<String> {
    let names: std::collections::BTreeSet<&str> =
        mesh.services.iter().map(|s| s.namespace.as_str()).collect();
    names.into_iter().map(str::to_string).collect()
}

/// The SPIFFE id of a service.
pub fn spiffe_id(mesh: &Mesh, service: &Service) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{}",
        mesh.trust_domain, service.namespace, service.identity
    )
}

/// The SPIFFE id of a gateway: its namespace and service account.
pub fn gateway_spiffe_id(mesh: &Mesh, gateway: &ir::Gateway) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{}",
        mesh.trust_domain, gateway.namespace, gateway.identity
    )
}

/// The config of every gateway, keyed `NS/NAME`, sorted: what `meshc up` and the
/// manifests run as `mesh-agent --gateway NAME`.
pub fn gateways(mesh: &Mesh, cedar: &CedarOutput) -> Vec<(String, WorkloadConfig)> {
    let emitter = Emitter::new(mesh, cedar);
    mesh.gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (g.key(), emitter.gateway(GatewayId(i as u32))))
        .collect()
}

/// The config of every workload, by service index.
pub fn workloads(mesh: &Mesh, cedar: &CedarOutput, neighbours: Neighbours) -> Vec<WorkloadConfig> {
    let emitter = Emitter::new(mesh, cedar);
    (0..mesh.services.len())
        .map(|i| emitter.workload(ServiceId(i as u32), neighbours))
        .collect()
}

/// Builds workload configs one at a time. What every config of a mesh shares (the list
/// of namespaces, which takes a pass over every service) is computed once, so building
/// one config costs what that config holds, not what the mesh holds.
pub struct Emitter<'m> {
    mesh: &'m Mesh,
    cedar: &'m CedarOutput,
    namespaces: Vec<String>,
    callable: Callable<'m>,
}

/// [`may_call`] turned around: for each way a policy names its callers, the services it
/// lets be called that way. A workload's allowed neighbours are then read off in time
/// proportional to their number, instead of asking `may_call` about every service (N²
/// questions for a whole mesh: 10⁸ at 10,000 services).
#[derive(Default)]
struct Callable<'m> {
    /// Callable by every caller: no policy under `default_policy allow`, inline Cedar or
    /// audit mode (not readable that way), an allow from `any` or `authenticated`.
    by_anyone: Vec<ServiceId>,
    /// Callable by the services of a namespace.
    by_namespace: HashMap<&'m str, Vec<ServiceId>>,
    /// Callable by one service.
    by_service: HashMap<ServiceId, Vec<ServiceId>>,
}

impl<'m> Callable<'m> {
    fn new(mesh: &'m Mesh) -> Callable<'m> {
        let mut callable = Callable::default();
        for (i, target) in mesh.services.iter().enumerate() {
            let id = ServiceId(i as u32);
            let Some(policy) = &target.policy else {
                if mesh.default_policy == Effect::Allow {
                    callable.by_anyone.push(id);
                }
                continue;
            };
            if !policy.cedar.is_empty() || policy.mode == ir::PolicyMode::Audit {
                callable.by_anyone.push(id);
                continue;
            }
            let principals = policy
                .rules
                .iter()
                .filter(|r| r.effect == Effect::Allow)
                .flat_map(|r| &r.from);
            for principal in principals {
                match principal {
                    Principal::Any | Principal::Authenticated => callable.by_anyone.push(id),
                    Principal::Namespace(ns) => callable
                        .by_namespace
                        .entry(ns.as_str())
                        .or_default()
                        .push(id),
                    Principal::Service(caller) => {
                        callable.by_service.entry(*caller).or_default().push(id);
                    }
                    // Gateways are no services: their outbound side lists what their
                    // rules name (`gateway_config`).
                    Principal::Gateway(_) => {}
                }
            }
        }
        callable
    }

    /// The services `caller` may call, in mesh order, each once.
    fn by(&self, caller: &Service, caller_id: ServiceId) -> Vec<ServiceId> {
        let none = Vec::new();
        let mut ids: Vec<ServiceId> = self
            .by_anyone
            .iter()
            .chain(
                self.by_namespace
                    .get(caller.namespace.as_str())
                    .unwrap_or(&none),
            )
            .chain(self.by_service.get(&caller_id).unwrap_or(&none))
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl<'m> Emitter<'m> {
    /// Prepares to emit the configs of `mesh`.
    pub fn new(mesh: &'m Mesh, cedar: &'m CedarOutput) -> Emitter<'m> {
        Emitter {
            mesh,
            cedar,
            namespaces: service_namespaces(mesh),
            callable: Callable::new(mesh),
        }
    }

    /// The config of one workload.
    pub fn workload(&self, id: ServiceId, neighbours: Neighbours) -> WorkloadConfig {
        let (mesh, cedar) = (self.mesh, self.cedar);
        let Some(service) = mesh.service(id) else {
            return self.empty();
        };
        let authz = match (
            &service.policy,
            cedar.services.get(id.0 as usize).and_then(Option::as_ref),
        ) {
            (Some(policy), Some(generated)) => Authz::Cedar(CedarAuthz {
                mode: match policy.mode {
                    ir::PolicyMode::Enforce => cfg::PolicyMode::Enforce,
                    ir::PolicyMode::Audit => cfg::PolicyMode::Audit,
                },
                policies: generated.text.clone(),
                headers: generated.headers.iter().cloned().collect(),
                query: generated.query.iter().cloned().collect(),
                patterns: generated
                    .patterns
                    .iter()
                    .map(|(key, attr, regex)| Pattern {
                        key: key.clone(),
                        attr: attr_of(attr),
                        regex: regex.clone(),
                    })
                    .collect(),
            }),
            _ => match mesh.default_policy {
                Effect::Allow => Authz::AllowAll,
                Effect::Deny => Authz::DenyAll,
            },
        };
        let services = match neighbours {
            Neighbours::Allowed => self
                .callable
                .by(service, id)
                .into_iter()
                .filter_map(|target| mesh.service(target))
                .map(|target| outbound_service(mesh, &service.namespace, target))
                .collect(),
            Neighbours::Only(targets) => targets
                .iter()
                .filter_map(|target| mesh.service(*target))
                .map(|target| outbound_service(mesh, &service.namespace, target))
                .collect(),
        };
        WorkloadConfig {
            version: cfg::VERSION,
            mesh: self.mesh_info(),
            workload: Workload {
                service: service.key(),
                identity: spiffe_id(mesh, service),
                ports: ports(service),
            },
            inbound: Inbound {
                mtls: match mesh.mtls {
                    ir::Mtls::Strict => cfg::Mtls::Strict,
                    ir::Mtls::Permissive => cfg::Mtls::Permissive,
                },
                authz,
                rate_limits: service
                    .policy
                    .as_ref()
                    .map(|p| p.rate_limits.iter().map(|l| rate_limit(mesh, l)).collect())
                    .unwrap_or_default(),
            },
            outbound: Outbound {
                egress: Egress::Allow,
                services,
            },
            gateway: None,
        }
    }

    /// What every config of the mesh says about the mesh.
    fn mesh_info(&self) -> MeshInfo {
        MeshInfo {
            name: self.mesh.name.clone(),
            trust_domain: self.mesh.trust_domain.clone(),
            namespaces: self.namespaces.clone(),
            telemetry: self.mesh.telemetry.map(|t| Telemetry {
                tracing_milli: u32::try_from(t.tracing.milli).unwrap_or(FULL_WEIGHT),
                access_log: if t.access_log {
                    AccessLog::Json
                } else {
                    AccessLog::Off
                },
            }),
        }
    }

    /// The config of gateway `id`: no ports and nothing inbound (`deny all`: nothing in
    /// the mesh calls a gateway), egress denied, as outbound services those its rules
    /// and mirrors name (with their own settings, but without their routes' rules: the
    /// gateway routes by its hosts' rules), and the gateway itself.
    pub fn gateway(&self, id: GatewayId) -> WorkloadConfig {
        let mesh = self.mesh;
        let Some(gateway) = mesh.gateway(id) else {
            return self.empty();
        };
        let services = gateway
            .targets()
            .into_iter()
            .filter_map(|target| mesh.service(target))
            .map(|target| OutboundService {
                rules: Vec::new(),
                ..outbound_service(mesh, &gateway.namespace, target)
            })
            .collect();
        let tls = |t: &ir::TlsFiles| TlsFiles {
            cert: t.cert.clone(),
            key: t.key.clone(),
        };
        WorkloadConfig {
            version: cfg::VERSION,
            mesh: self.mesh_info(),
            workload: Workload {
                service: gateway.key(),
                identity: gateway_spiffe_id(mesh, gateway),
                ports: Vec::new(),
            },
            inbound: Inbound {
                mtls: match mesh.mtls {
                    ir::Mtls::Strict => cfg::Mtls::Strict,
                    ir::Mtls::Permissive => cfg::Mtls::Permissive,
                },
                authz: Authz::DenyAll,
                rate_limits: Vec::new(),
            },
            outbound: Outbound {
                egress: Egress::Deny,
                services,
            },
            gateway: Some(cfg::Gateway {
                name: gateway.name.clone(),
                listeners: gateway
                    .listeners
                    .iter()
                    .map(|l| Listener {
                        port: l.port,
                        tls: l.tls.as_ref().map(tls),
                    })
                    .collect(),
                hosts: gateway
                    .hosts
                    .iter()
                    .map(|h| GatewayHost {
                        host: h.host.clone(),
                        tls: h.tls.as_ref().map(tls),
                        rules: h
                            .rules
                            .iter()
                            .filter_map(|rule| route_rule(mesh, rule))
                            .collect(),
                    })
                    .collect(),
            }),
        }
    }

    /// Gateway `id` as a plain caller of `targets` (for `meshc test` cases `from
    /// gateway/NAME`): its identity and settings, `targets` as outbound services without
    /// route rules (a gateway routes by its hosts' rules only), and no gateway part.
    pub fn gateway_calling(&self, id: GatewayId, targets: &[ServiceId]) -> WorkloadConfig {
        let mut config = self.gateway(id);
        config.gateway = None;
        let namespace = self
            .mesh
            .gateway(id)
            .map(|g| g.namespace.clone())
            .unwrap_or_default();
        config.outbound.services = targets
            .iter()
            .filter_map(|target| self.mesh.service(*target))
            .map(|target| OutboundService {
                rules: Vec::new(),
                ..outbound_service(self.mesh, &namespace, target)
            })
            .collect();
        config
    }

    fn empty(&self) -> WorkloadConfig {
        WorkloadConfig {
            version: cfg::VERSION,
            mesh: self.mesh_info(),
            workload: Workload {
                service: String::new(),
                identity: String::new(),
                ports: Vec::new(),
            },
            inbound: Inbound {
                mtls: cfg::Mtls::Strict,
                authz: Authz::DenyAll,
                rate_limits: Vec::new(),
            },
            outbound: Outbound {
                egress: Egress::Allow,
                services: Vec::new(),
            },
            gateway: None,
        }
    }
}

/// Whether `caller` may call `target` as far as the policies tell. (Emission asks the
/// same question the other way round, all targets at once: [`Callable`].)
pub fn may_call(
    mesh: &Mesh,
    caller: &Service,
    caller_id: ServiceId,
    target: &Service,
    _target_id: ServiceId,
) -> bool {
    let Some(policy) = &target.policy else {
        return mesh.default_policy == Effect::Allow;
    };
    if !policy.cedar.is_empty() || policy.mode == ir::PolicyMode::Audit {
        return true;
    }
    policy
        .rules
        .iter()
        .filter(|r| r.effect == Effect::Allow)
        .any(|rule| {
            rule.from.iter().any(|p| match p {
                Principal::Any | Principal::Authenticated => true,
                Principal::Namespace(ns) => *ns == caller.namespace,
                Principal::Service(id) => *id == caller_id,
                Principal::Gateway(_) => false,
            })
        })
}

fn ports(service: &Service) -> Vec<Port> {
    service
        .ports
        .iter()
        .map(|p| Port {
            protocol: match p.protocol {
                ir::Protocol::Http => Protocol::Http,
                ir::Protocol::Http2 => Protocol::Http2,
                ir::Protocol::Grpc => Protocol::Grpc,
                ir::Protocol::Tcp => Protocol::Tcp,
            },
            number: p.number,
        })
        .collect()
}

/// Host names meaning `target` for a caller in `caller`'s namespace.
pub fn authorities(caller: &Service, target: &Service) -> Vec<String> {
    authorities_in(&caller.namespace, target)
}

/// Host names meaning `target` for a caller in namespace `caller_ns`.
fn authorities_in(caller_ns: &str, target: &Service) -> Vec<String> {
    let (name, ns) = (&target.name, &target.namespace);
    let mut out = Vec::new();
    if caller_ns == ns {
        out.push(name.clone());
    }
    out.push(format!("{name}.{ns}"));
    out.push(format!("{name}.{ns}.svc"));
    out.push(format!("{name}.{ns}.svc.cluster.local"));
    out
}

fn outbound_service(mesh: &Mesh, caller_ns: &str, target: &Service) -> OutboundService {
    let route = target.route.as_ref();
    OutboundService {
        service: target.key(),
        authorities: authorities_in(caller_ns, target),
        ports: ports(target),
        identity: spiffe_id(mesh, target),
        labels: target.labels.clone(),
        subsets: target
            .subsets
            .iter()
            .map(|s| SubsetDef {
                name: s.name.clone(),
                labels: s.labels.clone(),
            })
            .collect(),
        balance: match target.balance {
            ir::Balance::RoundRobin => Balance::RoundRobin,
            ir::Balance::LeastRequest => Balance::LeastRequest,
            ir::Balance::Ewma => Balance::Ewma,
            ir::Balance::Random => Balance::Random,
        },
        timeout_us: route.and_then(|r| r.timeout),
        retry: route
            .and_then(|r| r.retry.as_ref())
            .and_then(|r| retry(mesh, r)),
        rules: route
            .map(|r| {
                r.rules
                    .iter()
                    .filter_map(|rule| route_rule(mesh, rule))
                    .collect()
            })
            .unwrap_or_default(),
        connect_timeout_us: route.and_then(|r| r.connect_timeout),
        idle_timeout_us: route.and_then(|r| r.idle_timeout),
        limits: target.limits.map(|l| Limits {
            max_connections: l.max_connections,
            max_pending: l.max_pending,
            max_requests: l.max_requests,
        }),
        outlier: target.outlier.map(|o| Outlier {
            consecutive_5xx: o.consecutive_5xx,
            interval_us: o.interval,
            base_ejection_us: o.base_ejection,
            max_ejected_milli: u32::try_from(o.max_ejected.milli).unwrap_or(FULL_WEIGHT),
        }),
    }
}

/// A policy's `rate_limit` as the callee's agent keeps it.
fn rate_limit(mesh: &Mesh, limit: &ir::RateLimit) -> RateLimit {
    RateLimit {
        name: limit.name.clone(),
        requests: limit.requests,
        period_us: limit.period,
        burst: limit.burst,
        per_caller: limit.per_caller,
        when: limit
            .when
            .as_ref()
            .map(|c| condition(mesh, c, Side::Callee)),
    }
}

fn backend(mesh: &Mesh, target: &Target) -> Backend {
    Backend {
        service: mesh
            .service(target.service)
            .map(Service::key)
            .unwrap_or_default(),
        subset: target.subset.clone(),
    }
}

fn route_rule(mesh: &Mesh, rule: &ir::Rule) -> Option<RouteRule> {
    let backends = match rule.dest.as_ref()? {
        Dest::To(target) => vec![WeightedBackend {
            backend: backend(mesh, target),
            weight_milli: cfg::FULL_WEIGHT,
        }],
        Dest::Split(targets) => targets
            .iter()
            .map(|(t, w)| WeightedBackend {
                backend: backend(mesh, t),
                weight_milli: u32::try_from(w.milli).unwrap_or(cfg::FULL_WEIGHT),
            })
            .collect(),
    };
    let percent = |p: mesh_lang::ast::Percent| u32::try_from(p.milli).unwrap_or(cfg::FULL_WEIGHT);
    Some(RouteRule {
        name: rule.name.clone(),
        when: rule.when.as_ref().map(|c| condition(mesh, c, Side::Caller)),
        backends,
        timeout_us: rule.timeout,
        retry: rule.retry.as_ref().and_then(|r| retry(mesh, r)),
        mirrors: rule
            .mirrors
            .iter()
            .map(|m| MirrorDef {
                backend: backend(mesh, &m.target),
                percent_milli: percent(m.percent),
            })
            .collect(),
        fault: rule.fault.map(|f| FaultDef {
            delay: f.delay.map(|(delay_us, p)| DelayFault {
                delay_us,
                percent_milli: percent(p),
            }),
            abort: f.abort.map(|(status, p)| AbortFault {
                status,
                percent_milli: percent(p),
            }),
        }),
        set_headers: rule
            .set_headers
            .iter()
            .map(|(name, value)| HeaderValue {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        remove_headers: rule.remove_headers.clone(),
        rewrite_prefix: rule.rewrite_prefix.as_ref().map(|(from, to)| Rewrite {
            from: from.clone(),
            to: to.clone(),
        }),
    })
}

/// The retry policy a route or rule uses, resolved.
pub fn retry(mesh: &Mesh, retry: &RetryUse) -> Option<Retry> {
    let (profile, policy) = match retry {
        RetryUse::Profile(id) => {
            let p = mesh.retries.get(id.0 as usize)?;
            (p.name.clone(), &p.policy)
        }
        RetryUse::Inline(policy) => ("inline".to_string(), policy),
        RetryUse::Disabled => {
            return Some(Retry {
                profile: "none".into(),
                attempts: 1,
                per_try_timeout_us: None,
                on_status: Vec::new(),
                on_class: Vec::new(),
                on_reset: false,
                on_connect_failure: false,
                on_refused_stream: false,
                backoff: None,
                budget: None,
            });
        }
    };
    let mut out = Retry {
        profile,
        attempts: policy.attempts,
        per_try_timeout_us: policy.per_try_timeout,
        on_status: Vec::new(),
        on_class: Vec::new(),
        on_reset: false,
        on_connect_failure: false,
        on_refused_stream: false,
        backoff: policy
            .backoff
            .map(|(base_us, max_us)| Backoff { base_us, max_us }),
        budget: policy.budget.map(|b| Budget {
            ratio_milli: u32::try_from(b.ratio.milli).unwrap_or(cfg::FULL_WEIGHT),
            min_per_second: b.min.map_or(0.0, |r| {
                r.count as f64 * 1_000_000.0 / r.per.micros() as f64
            }),
        }),
    };
    for on in &policy.on {
        match on {
            ir::RetryOn::Status(s) => out.on_status.push(*s),
            ir::RetryOn::Class(c) => out.on_class.push(*c),
            ir::RetryOn::GatewayError => out.on_status.extend([502, 503, 504]),
            ir::RetryOn::Reset => out.on_reset = true,
            ir::RetryOn::ConnectFailure => out.on_connect_failure = true,
            ir::RetryOn::RefusedStream => out.on_refused_stream = true,
        }
    }
    out.on_status.sort_unstable();
    out.on_status.dedup();
    out.on_class.sort_unstable();
    out.on_class.dedup();
    Some(out)
}

fn attr_of(attr: &ir::TextAttr) -> Attr {
    match attr {
        ir::TextAttr::Path => Attr::Path,
        ir::TextAttr::Host => Attr::Host,
        ir::TextAttr::Header(n) => Attr::Header(n.clone()),
        ir::TextAttr::Query(n) => Attr::Query(n.clone()),
    }
}

/// Which agent evaluates a condition, and so what `source` is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The caller's (route rules): `source` is the workload's own service key.
    Caller,
    /// The callee's (rate limits): `source` is the verified caller, known by its SPIFFE
    /// id's namespace and service account — a service's principal id, which differs from
    /// its key when it has its own `identity`.
    Callee,
}

/// A condition in the config's terms, for the agent on `side`.
pub fn condition(mesh: &Mesh, cond: &Cond, side: Side) -> Match {
    let nested = |c| condition(mesh, c, side);
    match &cond.kind {
        CondKind::All(items) => Match::All(items.iter().map(nested).collect()),
        CondKind::Any(items) => Match::Any(items.iter().map(nested).collect()),
        CondKind::Not(inner) => Match::Not(Box::new(nested(inner))),
        CondKind::Method { negated, methods } => Match::Method {
            methods: methods.iter().map(|m| m.as_str().to_string()).collect(),
            negated: *negated,
        },
        CondKind::Text { attr, op, value } => Match::Text {
            attr: attr_of(attr),
            op: match op {
                ir::TextOp::Eq => TextOp::Eq,
                ir::TextOp::Ne => TextOp::Ne,
                ir::TextOp::StartsWith => TextOp::StartsWith,
                ir::TextOp::Matches => TextOp::Matches,
                ir::TextOp::Like => TextOp::Like,
            },
            value: value.clone(),
        },
        CondKind::TextIn { attr, values } => Match::TextIn {
            attr: attr_of(attr),
            values: values.clone(),
        },
        CondKind::Exists(attr) => Match::Exists {
            attr: attr_of(attr),
        },
        CondKind::Source {
            negated,
            services,
            gateways,
        } => Match::Source {
            services: services
                .iter()
                .filter_map(|id| {
                    let service = mesh.service(*id)?;
                    Some(match side {
                        Side::Caller => service.key(),
                        Side::Callee => crate::cedar::principal_id(service),
                    })
                })
                .chain(
                    gateways
                        .iter()
                        .filter_map(|id| mesh.gateway(*id).map(crate::cedar::gateway_principal_id)),
                )
                .collect(),
            negated: *negated,
        },
    }
}

/// Serialized configs and index, keyed by path relative to the output directory.
pub fn files(mesh: &Mesh, cedar: &CedarOutput) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut index = Vec::new();
    for (service, config) in mesh
        .services
        .iter()
        .zip(workloads(mesh, cedar, Neighbours::Allowed))
    {
        let path = format!("{}/{}.json", service.namespace, service.name);
        let text = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
        index.push(serde_json::json!({
            "service": service.key(),
            "identity": config.workload.identity,
            "config": path,
            "sha256": sha256_hex(text.as_bytes()),
            "bytes": text.len(),
        }));
        files.insert(path, text);
    }
    let mut gateway_index = Vec::new();
    for (key, config) in gateways(mesh, cedar) {
        let path = format!("{key}.json");
        let text = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
        gateway_index.push(serde_json::json!({
            "gateway": key,
            "identity": config.workload.identity,
            "config": path,
            "sha256": sha256_hex(text.as_bytes()),
            "bytes": text.len(),
            "listeners": config
                .gateway
                .as_ref()
                .map(|g| g.listeners.iter().map(|l| l.port).collect::<Vec<_>>())
                .unwrap_or_default(),
        }));
        files.insert(path, text);
    }
    files.insert("mesh.cedarschema".into(), cedar.schema.clone());
    let mut index = serde_json::json!({
        "mesh": mesh.name,
        "version": mesh_config::schema::VERSION,
        "workloads": index,
        "schema_sha256": sha256_hex(cedar.schema.as_bytes()),
    });
    // Only meshes with gateways get the key, so the index of others keeps its bytes.
    if !gateway_index.is_empty()
        && let Some(object) = index.as_object_mut()
    {
        object.insert("gateways".into(), gateway_index.into());
    }
    files.insert(
        "index.json".into(),
        serde_json::to_string_pretty(&index).unwrap_or_default() + "\n",
    );
    files
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Callable, may_call};
    use crate::ir::ServiceId;

    /// The inverted index gives every workload exactly the neighbours `may_call` allows,
    /// in mesh order: on the examples, the authorization fixture (every kind of
    /// principal, inline Cedar, audit mode, a service without a policy) and a generated
    /// mesh.
    #[test]
    fn callable_agrees_with_may_call() {
        let meshes = [
            crate::check_paths(&[PathBuf::from("../examples/bookinfo")]),
            crate::check_paths(&[PathBuf::from("tests/fixtures/authz.mesh")]),
            crate::check_paths(&[PathBuf::from("tests/valid/shop.mesh")]),
            Ok(crate::check_loaded(crate::load::load_sources(vec![(
                "big.mesh".into(),
                mesh_test_support::synthetic::generate(250),
            )]))),
        ];
        for checked in meshes {
            let checked = checked.map_err(|e| e.to_string());
            assert!(checked.is_ok(), "{checked:?}");
            let Ok(checked) = checked else { return };
            let mesh = &checked.mesh;
            let callable = Callable::new(mesh);
            let mut edges = 0;
            for (i, caller) in mesh.services.iter().enumerate() {
                let caller_id = ServiceId(i as u32);
                let expected: Vec<ServiceId> = mesh
                    .services
                    .iter()
                    .enumerate()
                    .map(|(j, target)| (ServiceId(j as u32), target))
                    .filter(|(id, target)| may_call(mesh, caller, caller_id, target, *id))
                    .map(|(id, _)| id)
                    .collect();
                edges += expected.len();
                assert_eq!(callable.by(caller, caller_id), expected, "{}", caller.key());
            }
            assert!(edges > 0, "{}", mesh.name);
        }
    }
}
