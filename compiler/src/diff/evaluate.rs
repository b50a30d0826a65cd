//! Evaluation: every representative request of a workload goes through `mesh-config`'s
//! own `authorize`, `authorize_connection`, `route`, `route_connection` and
//! `gateway_route` on the old and the new config, as the agent would decide it; requests
//! whose outcome differs are handed to the report. That evaluation is also the re-check
//! of every example printed.

use mesh_config::schema::{Authz, Mtls, Protocol, WorkloadConfig};
use mesh_config::{AuthzDecision, Config, RouteDecision, SimpleRequest};

use super::DiffError;
use super::classes::{CallerClass, Callers, MAX_CLASSES, Space, enumerate, fresh};
use super::conditions::Conditions;
use super::names::Names;
use super::report::{
    Collector, Coverage, Decided, Example, Kind, Presence, RouteView, WorkloadDiff,
};
use super::witness::FILLER;

/// The old and the new config of a workload; `None` where it does not exist.
pub(super) type Pair<'a> = [Option<&'a WorkloadConfig>; 2];

fn presence(pair: Pair<'_>) -> Presence {
    match pair {
        [Some(_), None] => Presence::Removed,
        [None, Some(_)] => Presence::Added,
        _ => Presence::Both,
    }
}

fn compile(workload: &str, config: WorkloadConfig) -> Result<Config, DiffError> {
    Config::new(config).map_err(|source| DiffError::Config {
        workload: workload.to_string(),
        source,
    })
}

fn compile_pair(workload: &str, pair: Pair<'_>) -> Result<[Option<Config>; 2], DiffError> {
    let [old, new] = pair.map(|c| c.map(|c| compile(workload, c.clone())).transpose());
    Ok([old?, new?])
}

/// The service's name: the host its callers send requests to.
fn host_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, name)| name)
}

/// What changes for service `key`.
pub(super) fn service(
    key: &str,
    pair: Pair<'_>,
    names: &Names,
) -> Result<Option<WorkloadDiff>, DiffError> {
    let mut collector = Collector::default();
    let mut coverage = Coverage::default();
    authorization(key, pair, names, &mut collector, &mut coverage)?;
    routing(key, pair, &mut collector, &mut coverage)?;
    Ok(collector.finish(key.to_string(), Kind::Service, presence(pair), coverage))
}

/// The ports of either version: (HTTP-like, opaque TCP), sorted, each once.
fn ports(pair: Pair<'_>) -> (Vec<u16>, Vec<u16>) {
    let (mut http, mut tcp) = (Vec::new(), Vec::new());
    for port in pair.iter().flatten().flat_map(|c| &c.workload.ports) {
        match port.protocol {
            Protocol::Tcp => tcp.push(port.number),
            _ => http.push(port.number),
        }
    }
    for list in [&mut http, &mut tcp] {
        list.sort_unstable();
        list.dedup();
    }
    if http.is_empty() && tcp.is_empty() {
        http.push(0);
    }
    (http, tcp)
}

/// One version's decision: a missing workload takes no requests, and strict mTLS refuses
/// callers without an identity before any policy is asked.
fn decide(
    config: Option<&Config>,
    anonymous: bool,
    ask: impl Fn(&Config) -> AuthzDecision,
) -> Decided {
    let Some(config) = config else {
        return Decided {
            allowed: false,
            policies: Vec::new(),
        };
    };
    if anonymous && config.source().inbound.mtls == Mtls::Strict {
        return Decided {
            allowed: false,
            policies: vec!["mtls strict".into()],
        };
    }
    let decision = ask(config);
    Decided {
        allowed: decision.allowed(),
        policies: decision.policies,
    }
}

fn authorization(
    key: &str,
    pair: Pair<'_>,
    names: &Names,
    collector: &mut Collector,
    coverage: &mut Coverage,
) -> Result<(), DiffError> {
    let mut conditions = Conditions::default();
    for config in pair.iter().flatten() {
        conditions.add_authz(&config.inbound.authz);
    }
    let callers = Callers::new(&conditions);
    let space = Space::new(&conditions, host_of(key));
    let configs = compile_pair(key, pair)?;
    let peers: Vec<_> = callers
        .classes
        .iter()
        .map(|class| {
            configs.each_ref().map(|c| {
                c.as_ref()
                    .map(|c| callers.peer(class, &c.source().mesh.trust_domain))
            })
        })
        .collect();
    let labels: Vec<(String, Option<String>)> = callers
        .classes
        .iter()
        .map(|class| (names.caller(class), callers.identity(class)))
        .collect();
    let (http, tcp) = ports(pair);
    let mut sizes = vec![callers.classes.len(), http.len()];
    sizes.extend(space.sizes());
    let mut checked = 0;
    let total = enumerate(&sizes, MAX_CLASSES, |digits| {
        let [caller, port, rest @ ..] = digits else {
            return;
        };
        let (Some(class), Some(peers), Some(label), Some(port)) = (
            callers.classes.get(*caller),
            peers.get(*caller),
            labels.get(*caller),
            http.get(*port),
        ) else {
            return;
        };
        checked += 1;
        let request = space.request(rest, *port);
        let anonymous = *class == CallerClass::Anonymous;
        let [old, new] = [0, 1].map(|side| {
            decide(configs[side].as_ref(), anonymous, |config| {
                match &peers[side] {
                    Some(peer) => config.authorize(&request, peer),
                    None => config.authorize(&request, &mesh_config::Peer::anonymous()),
                }
            })
        });
        collector.decision((&label.0, label.1.as_deref()), old, new, || {
            Example::request(&request, space.host_tested)
        });
    });
    let connections = callers.classes.len() * tcp.len();
    for (index, class) in callers.classes.iter().enumerate() {
        let (Some(peers), Some(label)) = (peers.get(index), labels.get(index)) else {
            continue;
        };
        for port in &tcp {
            let anonymous = *class == CallerClass::Anonymous;
            let [old, new] = [0, 1].map(|side| {
                decide(configs[side].as_ref(), anonymous, |config| {
                    match &peers[side] {
                        Some(peer) => config.authorize_connection(*port, peer),
                        None => config.authorize_connection(*port, &mesh_config::Peer::anonymous()),
                    }
                })
            });
            collector.decision((&label.0, label.1.as_deref()), old, new, || {
                Example::connection(*port)
            });
        }
    }
    coverage.authz_checked = checked + connections;
    coverage.authz_total = total.saturating_add(connections);
    Ok(())
}

/// Where `decision` sends a request, for comparison; `host` names a gateway's host entry.
fn view(decision: &RouteDecision<'_>, host: Option<&str>) -> RouteView {
    let rule = decision.rule;
    RouteView {
        host: host.map(str::to_string),
        rule: rule.map(|r| r.name.clone()),
        backends: decision
            .backends
            .iter()
            .map(|b| {
                let name = match &b.backend.subset {
                    Some(subset) => format!("{}.{subset}", b.backend.service),
                    None => b.backend.service.clone(),
                };
                (name, b.weight_milli)
            })
            .collect(),
        timeout_us: decision.timeout_us,
        retry: decision.retry.cloned(),
        mirrors: rule.map(|r| r.mirrors.clone()).unwrap_or_default(),
        fault: rule.and_then(|r| r.fault.clone()),
        set_headers: rule.map(|r| r.set_headers.clone()).unwrap_or_default(),
        remove_headers: rule.map(|r| r.remove_headers.clone()).unwrap_or_default(),
        rewrite_prefix: rule.and_then(|r| r.rewrite_prefix.clone()),
    }
}

/// `config` as the agent of caller `caller` has it for routing: `source` conditions fold
/// with the caller's key, and inbound policies play no part.
fn as_caller(config: &WorkloadConfig, caller: &str) -> WorkloadConfig {
    let mut config = config.clone();
    config.workload.service = caller.to_string();
    config.inbound.authz = Authz::DenyAll;
    config.inbound.rate_limits.clear();
    config
}

fn routing(
    key: &str,
    pair: Pair<'_>,
    collector: &mut Collector,
    coverage: &mut Coverage,
) -> Result<(), DiffError> {
    let mut conditions = Conditions::default();
    let rules = pair
        .iter()
        .flatten()
        .flat_map(|c| &c.outbound.services)
        .flat_map(|s| &s.rules);
    for rule in rules {
        if let Some(when) = &rule.when {
            conditions.add_match(when);
        }
    }
    let sources = &conditions.sources;
    let other = fresh("unnamed/unnamed", |k| sources.contains(k));
    let callers: Vec<(Option<String>, String)> = sources
        .iter()
        .map(|s| (Some(s.clone()), s.clone()))
        .chain([((!sources.is_empty()).then(|| "*".to_string()), other)])
        .collect();
    let mut configs = Vec::with_capacity(callers.len());
    for (_, caller) in &callers {
        let pair = pair.map(|c| c.map(|c| as_caller(c, caller)));
        configs.push(compile_pair(key, [pair[0].as_ref(), pair[1].as_ref()])?);
    }
    let space = Space::new(&conditions, host_of(key));
    let (http, tcp) = ports(pair);
    let port = http.first().copied().unwrap_or(0);
    let mut sizes = vec![callers.len()];
    sizes.extend(space.sizes());
    let route = |config: &Option<Config>, request: &SimpleRequest| {
        let config = config.as_ref()?;
        let index = config.service_by_key(key)?;
        config.route(index, request, 0).map(|d| view(&d, None))
    };
    // A service with only opaque TCP ports takes no HTTP requests.
    if http.is_empty() {
        sizes = vec![0];
    }
    let mut checked = 0;
    let total = enumerate(&sizes, MAX_CLASSES, |digits| {
        let [caller, rest @ ..] = digits else {
            return;
        };
        let (Some((label, _)), Some([old, new])) = (callers.get(*caller), configs.get(*caller))
        else {
            return;
        };
        checked += 1;
        let request = space.request(rest, port);
        collector.route(
            label.as_deref(),
            route(old, &request),
            route(new, &request),
            || Example::request(&request, space.host_tested),
        );
    });
    let connections = if tcp.is_empty() { 0 } else { callers.len() };
    if let Some(port) = tcp.first() {
        let route = |config: &Option<Config>| {
            let config = config.as_ref()?;
            let index = config.service_by_key(key)?;
            config.route_connection(index, 0).map(|d| view(&d, None))
        };
        for ((label, _), [old, new]) in callers.iter().zip(&configs) {
            collector.route(label.as_deref(), route(old), route(new), || {
                Example::connection(*port)
            });
        }
    }
    coverage.route_checked = checked + connections;
    coverage.route_total = total.saturating_add(connections);
    Ok(())
}

/// What changes for gateway `key`: requests from outside the mesh, by host and rule.
pub(super) fn gateway(key: &str, pair: Pair<'_>) -> Result<Option<WorkloadDiff>, DiffError> {
    let mut conditions = Conditions::default();
    for gateway in pair.iter().flatten().filter_map(|c| c.gateway.as_ref()) {
        for host in &gateway.hosts {
            conditions.add_host_entry(&host.host);
            for when in host.rules.iter().filter_map(|r| r.when.as_ref()) {
                conditions.add_match(when);
            }
        }
    }
    let configs = compile_pair(key, pair)?;
    let mut space = Space::new(&conditions, FILLER);
    space.host_tested = true;
    let route = |config: &Option<Config>, request: &SimpleRequest| {
        let config = config.as_ref()?;
        let host = config.gateway_host(&request.host)?;
        let name = config.gateway()?.hosts.get(host)?.host.clone();
        config
            .gateway_route(host, request, 0)
            .map(|d| view(&d, Some(&name)))
    };
    let mut collector = Collector::default();
    let mut checked = 0;
    let total = enumerate(&space.sizes(), MAX_CLASSES, |digits| {
        checked += 1;
        let request = space.request(digits, 0);
        let [old, new] = [0, 1].map(|side| route(&configs[side], &request));
        collector.route(None, old, new, || Example::request(&request, true));
    });
    let coverage = Coverage {
        route_checked: checked,
        route_total: total,
        ..Coverage::default()
    };
    Ok(collector.finish(key.to_string(), Kind::Gateway, presence(pair), coverage))
}
