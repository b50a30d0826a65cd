//! The test runner (`meshc test`, LANGUAGE.md §8, §10): every case is evaluated against
//! the compiled workload configs through `mesh-config` — the routing and authorization code
//! the agent runs — and compared with its expectations. A `request` goes to the callee's
//! first HTTP port; a `connect` case is routed and authorized as an opaque TCP connection.
//! `rate_limit NAME` holds when the request is allowed and counts against that limit of
//! the callee (`Config::rate_limits`, as the agent decides it). A case `from
//! gateway/NAME` is authorized as the gateway's identity; the gateway calls the service
//! as a whole (its hosts' rules route only requests from outside the mesh).

use mesh_config::schema::{Authz, FULL_WEIGHT, WorkloadConfig};
use mesh_config::{AuthzDecision, Config, Peer, RouteDecision, SimpleRequest, Verdict};

use crate::Checked;
use crate::emit::{self, Emitter, Neighbours};
use crate::ir::{Callee, Caller, Case, Expect, Mesh, Probe, Protocol, ServiceId};

mod gateway;

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    /// Expectations that did not hold, each with what actually happened.
    pub failures: Vec<Failure>,
    /// What happened, in one line.
    pub actual: String,
}

/// An expectation that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The expectation, as written.
    pub expected: String,
    /// What happened instead.
    pub actual: String,
    /// Where the expectation is written.
    pub origin: crate::ir::Origin,
}

/// The outcome of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Its cases' outcomes, in order.
    pub cases: Vec<CaseResult>,
}

impl TestResult {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.failures.is_empty())
    }
}

/// Compiles the configs a question needs, one at a time: a caller's with just the
/// services it asks about as outbound neighbours, a callee's for its inbound side. What
/// a case costs grows with the case, not with the mesh.
pub struct Evaluator<'c> {
    mesh: &'c Mesh,
    emitter: Emitter<'c>,
}

impl<'c> Evaluator<'c> {
    /// Prepares to evaluate requests in a checked mesh.
    pub fn new(checked: &'c Checked) -> Evaluator<'c> {
        Evaluator {
            mesh: &checked.mesh,
            emitter: Emitter::new(&checked.mesh, &checked.cedar),
        }
    }

    /// The compiled config of `from` with exactly `targets` as its outbound services, for
    /// routing. Its own inbound policies are left out (`deny all`): what `from` may
    /// receive plays no part in where its requests go, and compiling them would double
    /// the Cedar parsing of a test run. Fails only if the generated config is invalid (a
    /// compiler bug).
    pub fn caller(&self, from: ServiceId, targets: &[ServiceId]) -> Result<Config, String> {
        let mut config = self.emitter.workload(from, Neighbours::Only(targets));
        config.inbound.authz = Authz::DenyAll;
        compile(config)
    }

    /// [`Evaluator::caller`] for a service or a gateway: a gateway calls `targets` as
    /// itself, without route rules (it routes by its hosts' rules only).
    pub fn caller_of(&self, from: Caller, targets: &[ServiceId]) -> Result<Config, String> {
        match from {
            Caller::Service(id) => self.caller(id, targets),
            Caller::Gateway(id) => compile(self.emitter.gateway_calling(id, targets)),
        }
    }

    /// [`Evaluator::peer`] for a service or a gateway.
    pub fn peer_of(&self, from: Caller) -> Option<Peer> {
        match from {
            Caller::Service(id) => self.peer(id),
            Caller::Gateway(id) => {
                let gateway = self.mesh.gateway(id)?;
                Some(Peer::from_spiffe_id(
                    &emit::gateway_spiffe_id(self.mesh, gateway),
                    &self.mesh.trust_domain,
                ))
            }
        }
    }

    /// The compiled config of `to` without outbound services (for authorizing what it
    /// receives).
    pub fn callee(&self, to: ServiceId) -> Result<Config, String> {
        compile(self.emitter.workload(to, Neighbours::Only(&[])))
    }

    /// The verified identity of `from` as its callees see it.
    pub fn peer(&self, from: ServiceId) -> Option<Peer> {
        let caller = self.mesh.service(from)?;
        Some(Peer::from_spiffe_id(
            &emit::spiffe_id(self.mesh, caller),
            &self.mesh.trust_domain,
        ))
    }
}

/// Validates and compiles a generated config as the agent would.
fn compile(config: WorkloadConfig) -> Result<Config, String> {
    let name = config.workload.service.clone();
    Config::new(config).map_err(|e| format!("internal: the config of {name} is invalid: {e}"))
}

/// The first port of `to` that is not opaque TCP (0 when it has none): where a test
/// request is sent.
pub fn http_port(mesh: &Mesh, to: ServiceId) -> u16 {
    mesh.service(to)
        .and_then(|s| s.ports.iter().find(|p| p.protocol != Protocol::Tcp))
        .map_or(0, |p| p.number)
}

/// The request of a case to service `to`; `None` for a `connect` case.
pub fn request(mesh: &Mesh, case: &Case, to: ServiceId) -> Option<SimpleRequest> {
    let Probe::Request {
        method,
        path,
        headers,
        query,
    } = &case.probe
    else {
        return None;
    };
    let host = mesh.service(to).map(|s| s.name.clone()).unwrap_or_default();
    let mut request = SimpleRequest::new(method.as_str(), path, &host).on_port(http_port(mesh, to));
    request.headers = headers.clone();
    request.query.extend(query.iter().cloned());
    Some(request)
}

/// Runs every test of a checked mesh. Cases are evaluated grouped by callee, then
/// caller, so that one callee config and one caller config are alive at a time.
pub fn run(checked: &Checked) -> Result<Vec<TestResult>, String> {
    let evaluator = Evaluator::new(checked);
    let mesh = &checked.mesh;
    let mut order: Vec<(usize, usize, &Case)> = mesh
        .tests
        .iter()
        .enumerate()
        .flat_map(|(t, test)| {
            test.cases
                .iter()
                .enumerate()
                .map(move |(c, case)| (t, c, case))
        })
        .collect();
    order.sort_by_key(|(t, c, case)| (case.to, case.from, *t, *c));
    let mut outcomes: Vec<Vec<Option<CaseResult>>> = mesh
        .tests
        .iter()
        .map(|test| vec![None; test.cases.len()])
        .collect();
    let mut callee: Option<(ServiceId, Config)> = None;
    let mut caller: Option<(Caller, ServiceId, Config)> = None;
    for (t, c, case) in order {
        let to = match case.to {
            Callee::Service(to) => to,
            Callee::Gateway(id) => {
                let result = gateway::run_case(&evaluator, mesh, case, id)?;
                if let Some(slot) = outcomes.get_mut(t).and_then(|cases| cases.get_mut(c)) {
                    *slot = Some(result);
                }
                continue;
            }
        };
        if callee.as_ref().is_none_or(|(callee, _)| *callee != to) {
            callee = Some((to, evaluator.callee(to)?));
        }
        if caller
            .as_ref()
            .is_none_or(|(from, callee, _)| (*from, *callee) != (case.from, to))
        {
            caller = Some((case.from, to, evaluator.caller_of(case.from, &[to])?));
        }
        let configs = Configs {
            caller: caller.as_ref().map(|(_, _, config)| config),
            callee: callee.as_ref().map(|(_, config)| config),
            peer: evaluator.peer_of(case.from),
        };
        if let Some(slot) = outcomes.get_mut(t).and_then(|cases| cases.get_mut(c)) {
            *slot = Some(run_case(&configs, mesh, case, to));
        }
    }
    Ok(mesh
        .tests
        .iter()
        .zip(outcomes)
        .map(|(test, cases)| TestResult {
            name: test.name.clone(),
            cases: cases.into_iter().flatten().collect(),
        })
        .collect())
}

/// What one case is evaluated against.
struct Configs<'a> {
    /// The caller's config, listing the callee as an outbound service.
    caller: Option<&'a Config>,
    /// The callee's config, for its inbound authorization.
    callee: Option<&'a Config>,
    /// The caller's identity as the callee sees it.
    peer: Option<Peer>,
}

fn key(mesh: &Mesh, id: ServiceId) -> String {
    mesh.service(id).map(|s| s.key()).unwrap_or_default()
}

fn run_case(configs: &Configs, mesh: &Mesh, case: &Case, to: ServiceId) -> CaseResult {
    let caller = configs.caller;
    let target_key = key(mesh, to);
    let index = caller.and_then(|c| c.service_by_key(&target_key));
    let authorized = |authorize: &dyn Fn(&Config, &Peer) -> AuthzDecision| {
        configs
            .callee
            .zip(configs.peer.as_ref())
            .map(|(callee, peer)| authorize(callee, peer))
    };
    let mut limits: Vec<String> = Vec::new();
    let (authz, route): (Option<AuthzDecision>, Option<RouteDecision<'_>>) = match &case.probe {
        Probe::Connect { port } => (
            authorized(&|callee, peer| callee.authorize_connection(*port, peer)),
            caller
                .zip(index)
                .and_then(|(c, i)| c.route_connection(i, 0)),
        ),
        Probe::Request { .. } => match request(mesh, case, to) {
            Some(request) => {
                let authz = authorized(&|callee, peer| callee.authorize(&request, peer));
                // Rate limits apply only to requests the policy allows.
                if authz.as_ref().is_some_and(|d| d.decision == Verdict::Allow) {
                    limits = rate_limits(configs, &request);
                }
                (
                    authz,
                    caller.zip(index).and_then(|(c, i)| c.route(i, &request, 0)),
                )
            }
            None => (None, None),
        },
    };
    let decision_text = match &authz {
        // `mode audit`: the agent logs the decision and lets the request through.
        Some(d) if !d.enforced => match d.decision {
            Verdict::Allow => format!("{} (mode audit)", decision_text(d)),
            Verdict::Deny => format!("{} (mode audit: let through)", decision_text(d)),
        },
        Some(d) => decision_text(d),
        None => "no decision".into(),
    };
    let rule_text = route
        .and_then(|r| r.rule)
        .map_or_else(|| "no rule".to_string(), |r| format!("rule {}", r.name));
    let backends_text = route
        .map(|r| {
            r.backends
                .iter()
                .map(|b| {
                    let name =
                        backend_name(&b.backend.service, b.backend.subset.as_deref(), mesh, to);
                    if b.weight_milli == FULL_WEIGHT {
                        name
                    } else {
                        format!(
                            "{name} {}",
                            mesh_lang::ast::Percent {
                                milli: u64::from(b.weight_milli)
                            }
                        )
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let limits_text = if limits.is_empty() {
        "no rate limit".to_string()
    } else {
        format!("counts against rate limits {}", limits.join(", "))
    };
    let mut actual = format!("{decision_text}, {rule_text}, backend {backends_text}");
    let callee_limits = configs
        .callee
        .is_some_and(|c| !c.source().inbound.rate_limits.is_empty());
    if callee_limits {
        actual.push_str(", ");
        actual.push_str(&limits_text);
    }
    let mut failures = Vec::new();
    for (expect, origin) in &case.expect {
        let (holds, expected, got) = match expect {
            Expect::Allow => (
                authz.as_ref().is_some_and(|d| d.decision == Verdict::Allow),
                "allow".to_string(),
                decision_text.clone(),
            ),
            Expect::Deny => (
                authz.as_ref().is_some_and(|d| d.decision == Verdict::Deny),
                "deny".to_string(),
                decision_text.clone(),
            ),
            Expect::Rule(name) => (
                route.and_then(|r| r.rule).is_some_and(|r| r.name == *name),
                format!("rule {name}"),
                rule_text.clone(),
            ),
            Expect::NoRule => (
                route.is_some_and(|r| r.rule.is_none()),
                "no rule".to_string(),
                rule_text.clone(),
            ),
            Expect::Backend { target, only } => {
                let want_service = key(mesh, target.service);
                let weight = route
                    .map(|r| {
                        r.backends
                            .iter()
                            .filter(|b| {
                                b.backend.service == want_service
                                    && b.backend.subset == target.subset
                            })
                            .map(|b| b.weight_milli)
                            .sum::<u32>()
                    })
                    .unwrap_or(0);
                let name = backend_name(&want_service, target.subset.as_deref(), mesh, to);
                let holds = if *only {
                    weight == FULL_WEIGHT
                } else {
                    weight > 0
                };
                let expected = if *only {
                    format!("backend {name} only")
                } else {
                    format!("backend {name}")
                };
                (holds, expected, format!("backend {backends_text}"))
            }
            Expect::Timeout(us) => {
                let got = route.and_then(|r| r.timeout_us);
                (
                    got == Some(*us),
                    format!("timeout {}", crate::lower::human_micros(*us)),
                    got.map_or_else(
                        || "no timeout".into(),
                        |t| format!("timeout {}", crate::lower::human_micros(t)),
                    ),
                )
            }
            Expect::Retries(n) => {
                let got = route
                    .and_then(|r| r.retry)
                    .map_or(0, |r| r.attempts.saturating_sub(1));
                (got == *n, format!("retries {n}"), format!("retries {got}"))
            }
            Expect::RateLimit(name) => {
                let allowed = authz.as_ref().is_some_and(|d| d.decision == Verdict::Allow);
                (
                    allowed && limits.contains(name),
                    format!("rate_limit {name}"),
                    if allowed {
                        limits_text.clone()
                    } else {
                        format!("{decision_text}: not rate limited")
                    },
                )
            }
        };
        if !holds {
            failures.push(Failure {
                expected,
                actual: got,
                origin: *origin,
            });
        }
    }
    CaseResult { failures, actual }
}

/// What the policies decided, naming the deciding policies either way: a wrong
/// expectation is fixed by knowing which rule let the request through, as much as which
/// refused it.
fn decision_text(d: &AuthzDecision) -> String {
    match d.decision {
        Verdict::Allow if d.policies.is_empty() => "allow".to_string(),
        Verdict::Allow => format!("allow by {}", d.policies.join(", ")),
        Verdict::Deny if d.policy_error => format!("deny ({})", d.reason()),
        Verdict::Deny if d.policies.is_empty() => "deny (no policy allows it)".to_string(),
        Verdict::Deny => format!("deny by {}", d.policies.join(", ")),
    }
}

/// The names of the callee's rate limits `request` counts against, in order, asked as the
/// agent asks (`Config::rate_limits` with the caller's `namespace/name`), for a request
/// the policy allows.
fn rate_limits(configs: &Configs, request: &SimpleRequest) -> Vec<String> {
    let Some(callee) = configs.callee else {
        return Vec::new();
    };
    let caller = configs.peer.as_ref().and_then(|p| p.service.as_deref());
    callee
        .rate_limits(request, caller)
        .map(|(_, limit)| limit.name.clone())
        .collect()
}

/// `reviews.v2` when in the callee's namespace, `ns/reviews.v2` otherwise.
fn backend_name(service_key: &str, subset: Option<&str>, mesh: &Mesh, to: ServiceId) -> String {
    let same_ns = mesh
        .service(to)
        .is_some_and(|s| service_key.starts_with(&format!("{}/", s.namespace)));
    let base = if same_ns {
        service_key.split_once('/').map_or(service_key, |(_, n)| n)
    } else {
        service_key
    };
    match subset {
        Some(s) => format!("{base}.{s}"),
        None => base.to_string(),
    }
}
