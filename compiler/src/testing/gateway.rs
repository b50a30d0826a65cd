//! Test cases that enter a gateway from outside the mesh (`request GET "/api" to
//! gateway/public header "host" = "shop.example.com"`). The gateway's compiled config
//! picks the host entry and the rule (`Config::gateway_host`, `Config::gateway_route`, the
//! agent's code); every backend the rule may send the request to then authorizes it as
//! the gateway's identity. A request no host entry or rule takes gets `404`: it is
//! denied, with no rule and no backend.

use mesh_config::schema::FULL_WEIGHT;
use mesh_config::{Config, SimpleRequest, Verdict};

use super::{CaseResult, Evaluator, Failure};
use crate::ir::{Caller, Case, Expect, GatewayId, Mesh, Probe};

/// What happened to a request at the gateway and at its backends.
struct Outcome {
    /// Allowed by every backend's policy; `false` for a 404 or any denial.
    allowed: bool,
    /// The decision in words.
    decision: String,
    /// The matching rule's name.
    rule: Option<String>,
    /// Backends as (service key, subset, weight).
    backends: Vec<(String, Option<String>, u32)>,
    /// The effective timeout.
    timeout_us: Option<u64>,
    /// Retries after the first try.
    retries: u32,
}

/// Runs one case into gateway `id`. Fails only if a generated config is invalid.
pub(super) fn run_case(
    evaluator: &Evaluator<'_>,
    mesh: &Mesh,
    case: &Case,
    id: GatewayId,
) -> Result<CaseResult, String> {
    let Probe::Request {
        method,
        path,
        headers,
        query,
    } = &case.probe
    else {
        return Ok(CaseResult {
            failures: Vec::new(),
            actual: "no decision".into(),
        });
    };
    let gateway = mesh.gateway(id);
    let namespace = gateway.map(|g| g.namespace.as_str()).unwrap_or_default();
    let config = super::compile(evaluator.emitter.gateway(id))?;
    let host = headers
        .iter()
        .find(|(name, _)| name == "host")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let port = gateway
        .and_then(|g| g.listeners.first())
        .map_or(0, |l| l.port);
    let mut request = SimpleRequest::new(method.as_str(), path, &host).on_port(port);
    request.headers = headers.clone();
    request.query.extend(query.iter().cloned());
    let outcome = route_and_authorize(evaluator, mesh, &config, &request, case.from, &host)?;

    let backends_text = outcome
        .backends
        .iter()
        .map(|(service, subset, weight)| {
            let name = backend_name(service, subset.as_deref(), namespace);
            if *weight == FULL_WEIGHT {
                name
            } else {
                format!(
                    "{name} {}",
                    mesh_lang::ast::Percent {
                        milli: u64::from(*weight)
                    }
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let rule_text = outcome
        .rule
        .as_ref()
        .map_or_else(|| "no rule".to_string(), |r| format!("rule {r}"));
    let actual = format!("{}, {rule_text}, backend {backends_text}", outcome.decision);
    let mut failures = Vec::new();
    for (expect, origin) in &case.expect {
        let (holds, expected, got) = match expect {
            Expect::Allow => (
                outcome.allowed,
                "allow".to_string(),
                outcome.decision.clone(),
            ),
            Expect::Deny => (
                !outcome.allowed,
                "deny".to_string(),
                outcome.decision.clone(),
            ),
            Expect::Rule(name) => (
                outcome.rule.as_deref() == Some(name.as_str()),
                format!("rule {name}"),
                rule_text.clone(),
            ),
            Expect::NoRule => (
                outcome.rule.is_none(),
                "no rule".to_string(),
                rule_text.clone(),
            ),
            Expect::Backend { target, only } => {
                let want = mesh
                    .service(target.service)
                    .map(|s| s.key())
                    .unwrap_or_default();
                let weight: u32 = outcome
                    .backends
                    .iter()
                    .filter(|(service, subset, _)| *service == want && *subset == target.subset)
                    .map(|(_, _, weight)| weight)
                    .sum();
                let name = backend_name(&want, target.subset.as_deref(), namespace);
                if *only {
                    (
                        weight == FULL_WEIGHT,
                        format!("backend {name} only"),
                        format!("backend {backends_text}"),
                    )
                } else {
                    (
                        weight > 0,
                        format!("backend {name}"),
                        format!("backend {backends_text}"),
                    )
                }
            }
            Expect::Timeout(us) => (
                outcome.timeout_us == Some(*us),
                format!("timeout {}", crate::lower::human_micros(*us)),
                outcome.timeout_us.map_or_else(
                    || "no timeout".into(),
                    |t| format!("timeout {}", crate::lower::human_micros(t)),
                ),
            ),
            Expect::Retries(n) => (
                outcome.retries == *n,
                format!("retries {n}"),
                format!("retries {}", outcome.retries),
            ),
            // Refused when the case is checked: a gateway request has no single callee.
            Expect::RateLimit(name) => {
                (false, format!("rate_limit {name}"), "no rate limit".into())
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
    Ok(CaseResult { failures, actual })
}

/// Routes `request` through the gateway's config and authorizes it at each backend.
fn route_and_authorize(
    evaluator: &Evaluator<'_>,
    mesh: &Mesh,
    config: &Config,
    request: &SimpleRequest,
    gateway: Caller,
    host: &str,
) -> Result<Outcome, String> {
    let not_found = |why: String| Outcome {
        allowed: false,
        decision: format!("404 ({why})"),
        rule: None,
        backends: Vec::new(),
        timeout_us: None,
        retries: 0,
    };
    let Some(index) = config.gateway_host(host) else {
        return Ok(not_found(format!("no host entry serves \"{host}\"")));
    };
    let Some(route) = config.gateway_route(index, request, 0) else {
        return Ok(not_found("no rule matches".into()));
    };
    let backends: Vec<(String, Option<String>, u32)> = route
        .backends
        .iter()
        .map(|b| {
            (
                b.backend.service.clone(),
                b.backend.subset.clone(),
                b.weight_milli,
            )
        })
        .collect();
    let peer = evaluator.peer_of(gateway);
    let mut denied_by = Vec::new();
    let mut services: Vec<&str> = backends
        .iter()
        .filter(|(_, _, weight)| *weight > 0)
        .map(|(service, _, _)| service.as_str())
        .collect();
    services.dedup();
    for service in services {
        let Some(id) = mesh
            .services
            .iter()
            .position(|s| s.key() == service)
            .map(|i| crate::ir::ServiceId(i as u32))
        else {
            continue;
        };
        let callee = evaluator.callee(id)?;
        // The gateway forwards the client's host; the backend's port is its first HTTP one.
        let request = request.clone().on_port(super::http_port(mesh, id));
        let allowed = peer
            .as_ref()
            .is_some_and(|p| callee.authorize(&request, p).decision == Verdict::Allow);
        if !allowed {
            denied_by.push(service.to_string());
        }
    }
    let decision = if denied_by.is_empty() {
        "allow".to_string()
    } else {
        format!("deny by the policy of {}", denied_by.join(", "))
    };
    Ok(Outcome {
        allowed: denied_by.is_empty(),
        decision,
        rule: route.rule.map(|r| r.name.clone()),
        backends,
        timeout_us: route.timeout_us,
        retries: route.retry.map_or(0, |r| r.attempts.saturating_sub(1)),
    })
}

/// `frontend.v1` in the gateway's namespace, `shop/frontend.v1` elsewhere.
fn backend_name(service_key: &str, subset: Option<&str>, namespace: &str) -> String {
    let base = match service_key.split_once('/') {
        Some((ns, name)) if ns == namespace => name,
        _ => service_key,
    };
    match subset {
        Some(s) => format!("{base}.{s}"),
        None => base.to_string(),
    }
}
