//! `meshc explain PATH --from SVC --to SVC METHOD URLPATH [-H 'K: V']... [--format json]`:
//! what the mesh does with one request — which rule routes it (and why earlier rules did
//! not), its backends and weights, timeout and retries, and the authorization decision with
//! the policies that made it, and the callee's rate limits the request counts against
//! (when it has any). With `--connect PORT` instead of `METHOD URLPATH`, the same
//! for an opaque TCP connection to that tcp port: the rule (only rules decided without a
//! request apply) or the whole service, backends, connect and idle timeouts, and the
//! decision on action `TCP`. Evaluated by `mesh-config`, as the agent would. `--from
//! gateway/NAME` (or a gateway's `NS/NAME` or name) asks as an ingress gateway: it calls
//! the service as a whole, authorized as the gateway's identity. A method outside the
//! language's nine, or a service name not in the mesh, is refused with the closest name.

use std::path::PathBuf;

use mesh_compiler::ir::{Caller, GatewayId, Mesh, Method, Protocol, Service, ServiceId};
use mesh_compiler::testing::Evaluator;
use mesh_compiler::{Checked, report::Style};
use mesh_config::schema::FULL_WEIGHT;
use mesh_config::{AuthzDecision, RouteDecision, SimpleRequest, Verdict};
use serde_json::json;

use super::{Exit, report_human};

/// An HTTP request, or an opaque TCP connection to a port.
pub enum Probe {
    Request { method: String, path: String },
    Connect(u16),
}

/// What to explain.
pub struct Question {
    pub paths: Vec<PathBuf>,
    pub from: String,
    pub to: String,
    pub probe: Probe,
    pub headers: Vec<String>,
    pub json: bool,
}

fn find(mesh: &Mesh, name: &str) -> Result<ServiceId, String> {
    let matches: Vec<usize> = mesh
        .services
        .iter()
        .enumerate()
        .filter(|(_, s)| s.key() == name || s.name == name)
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [one] => Ok(ServiceId(*one as u32)),
        [] => {
            let names = mesh
                .services
                .iter()
                .flat_map(|s| [s.name.clone(), s.key()])
                .collect::<Vec<_>>();
            let hint = mesh_compiler::diag::did_you_mean(name, names.iter().map(String::as_str))
                .map(|close| format!("; did you mean `{close}`?"))
                .unwrap_or_default();
            Err(format!("no service `{name}` in this mesh{hint}"))
        }
        many => Err(format!(
            "`{name}` is ambiguous: {}",
            many.iter()
                .filter_map(|i| mesh.services.get(*i))
                .map(|s| s.key())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The caller named `name` and its key: a gateway as `gateway/NAME` (unless a service is
/// named so), `NS/NAME` or its name when no service has it; else a service.
fn find_caller(mesh: &Mesh, name: &str) -> Result<(Caller, String), String> {
    let service = find(mesh, name);
    if service.is_ok() && !name.starts_with("gateway/") {
        return service.map(|id| (Caller::Service(id), service_key(mesh, id)));
    }
    let short = name.strip_prefix("gateway/").unwrap_or(name);
    let gateways: Vec<usize> = mesh
        .gateways
        .iter()
        .enumerate()
        .filter(|(_, g)| g.key() == name || g.name == short)
        .map(|(i, _)| i)
        .collect();
    match (gateways.as_slice(), service) {
        (_, Ok(id)) => Ok((Caller::Service(id), service_key(mesh, id))),
        ([one], Err(_)) => {
            let key = mesh
                .gateway(GatewayId(*one as u32))
                .map(|g| g.key())
                .unwrap_or_default();
            Ok((Caller::Gateway(GatewayId(*one as u32)), key))
        }
        ([], Err(err)) => Err(err),
        (many, Err(_)) => Err(format!(
            "`{name}` is ambiguous: gateways {}",
            many.iter()
                .filter_map(|i| mesh.gateways.get(*i))
                .map(|g| g.key())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn service_key(mesh: &Mesh, id: ServiceId) -> String {
    mesh.service(id).map(Service::key).unwrap_or_default()
}

pub fn run(q: &Question, style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(&q.paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if checked.errors() > 0 {
        report_human(&checked, style);
        return Exit::Findings;
    }
    match explain(&checked, q) {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(err) => {
            eprintln!("error: {err}");
            Exit::Trouble
        }
    }
}

fn explain(checked: &Checked, q: &Question) -> Result<String, String> {
    let mesh = &checked.mesh;
    let (from, caller_key) = find_caller(mesh, &q.from)?;
    let to = find(mesh, &q.to)?;
    let callee = mesh.service(to).ok_or("no callee")?;
    let (method, path) = match &q.probe {
        Probe::Connect(port) => {
            return explain_connection(checked, q, (from, &caller_key), to, *port);
        }
        Probe::Request { method, path } => (method, path),
    };
    if Method::parse(method).is_none() {
        let names = Method::ALL.map(Method::as_str);
        let close = Method::parse(&method.to_uppercase())
            .map(Method::as_str)
            .or_else(|| mesh_compiler::diag::did_you_mean(method, names));
        let hint = match close {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!("methods are {}", names.join(", ")),
        };
        return Err(format!("`{method}` is not an HTTP method: {hint}"));
    }
    if !path.starts_with('/') {
        return Err(format!("path `{path}` must start with `/`"));
    }
    let mut request = SimpleRequest::new(method, path, &callee.name)
        .on_port(mesh_compiler::testing::http_port(mesh, to));
    for header in &q.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}` is not `Name: value`"))?;
        let name = name.trim();
        if !mesh_config::vocab::header::is_name(name) {
            return Err(format!(
                "header `{header}` is not `Name: value`: `{name}` is not a header name"
            ));
        }
        request = request.header(name, value.trim());
    }
    let evaluator = Evaluator::new(checked);
    let config = evaluator.caller_of(from, &[to])?;
    let index = config
        .service_by_key(&callee.key())
        .ok_or("callee not in the caller's config")?;
    let decision = config
        .route(index, &request, 0)
        .ok_or("no route decision")?;
    let matches = config.rule_matches(index, &request);
    let peer = evaluator.peer_of(from).ok_or("no caller identity")?;
    let callee_config = evaluator.callee(to)?;
    let authz = callee_config.authorize(&request, &peer);
    let limits = applied_rate_limits(&callee_config, &request, &peer, &authz);
    let route = callee.route.as_ref();
    let chosen = decision.rule.map(|r| r.name.clone());
    let mut rules = Vec::new();
    for (rule, matched) in route
        .map(|r| r.rules.as_slice())
        .unwrap_or_default()
        .iter()
        .zip(&matches)
    {
        let condition = rule.when.as_ref().map(|c| source_text(checked, c.origin));
        // Rules are listed up to the one that matched, so every earlier one did not.
        let status = if *matched { "matched" } else { "did not match" };
        rules.push((rule.name.clone(), condition, status, *matched));
        if chosen.as_deref() == Some(rule.name.as_str()) {
            break;
        }
    }
    if q.json {
        let mut value = json!({
            "request": { "method": request.method, "path": path, "from": caller_key, "to": callee.key(), "headers": request.headers },
            "route": {
                "rules": rules_json(&rules),
                "rule": chosen,
                "backends": backends_json(&decision),
                "timeout_us": decision.timeout_us,
                "retry": decision.retry.map(|r| json!({"profile": r.profile, "attempts": r.attempts, "per_try_timeout_us": r.per_try_timeout_us})),
            },
            "authorization": verdict_json(&authz),
        });
        if let (Some(limits), Some(object)) = (&limits, value.as_object_mut()) {
            object.insert("rate_limits".into(), json!(limits));
        }
        return Ok(serde_json::to_string_pretty(&value).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{} {} from {} to {}\n\n",
        request.method,
        path,
        caller_key,
        callee.key()
    );
    route_text(
        &mut out,
        callee,
        &rules,
        &decision,
        "request",
        "no rule matched",
    );
    out.push_str(&format!(
        "  timeout: {}\n",
        decision
            .timeout_us
            .map_or_else(|| "none".into(), mesh_compiler::lower::human_micros)
    ));
    match decision.retry {
        Some(r) => out.push_str(&format!(
            "  retry: {} ({} attempt{}{})\n",
            r.profile,
            r.attempts,
            if r.attempts == 1 { "" } else { "s" },
            r.per_try_timeout_us
                .map(|t| format!(", {} per try", mesh_compiler::lower::human_micros(t)))
                .unwrap_or_default()
        )),
        None => out.push_str("  retry: none\n"),
    }
    authorization_text(&mut out, callee, &authz);
    if let Some(limits) = &limits {
        rate_limits_text(&mut out, callee, &authz, limits);
    }
    Ok(out)
}

/// The callee's rate limits the request counts against (`Config::rate_limits`, as the
/// agent decides; none when it is denied), or `None` when the callee has no limits.
fn applied_rate_limits(
    callee: &mesh_config::Config,
    request: &SimpleRequest,
    peer: &mesh_config::Peer,
    authz: &AuthzDecision,
) -> Option<Vec<mesh_config::schema::RateLimit>> {
    if callee.source().inbound.rate_limits.is_empty() {
        return None;
    }
    if authz.decision != Verdict::Allow {
        return Some(Vec::new());
    }
    Some(
        callee
            .rate_limits(request, peer.service.as_deref())
            .map(|(_, limit)| limit.clone())
            .collect(),
    )
}

fn rate_limits_text(
    out: &mut String,
    callee: &Service,
    authz: &AuthzDecision,
    limits: &[mesh_config::schema::RateLimit],
) {
    out.push_str(&format!(
        "
rate limits ({}):
",
        callee.key()
    ));
    if authz.decision != Verdict::Allow {
        out.push_str(
            "  none: only allowed requests are rate limited
",
        );
        return;
    }
    if limits.is_empty() {
        out.push_str(
            "  none applies
",
        );
    }
    for limit in limits {
        let per = if limit.period_us == 60_000_000 {
            "m"
        } else if limit.period_us == 3_600_000_000 {
            "h"
        } else {
            "s"
        };
        let who = if limit.per_caller {
            "per caller"
        } else {
            "all callers together"
        };
        out.push_str(&format!(
            "  {}: {}/{per}, burst {}, {who}\n",
            limit.name, limit.requests, limit.burst
        ));
    }
}

/// A route rule as an explanation lists it: name, condition text, status, matched.
type RuleLine = (String, Option<String>, &'static str, bool);

/// The source text of `origin` (a condition as the user wrote it).
fn source_text(checked: &Checked, origin: mesh_compiler::ir::Origin) -> String {
    checked
        .loaded
        .file(origin.file)
        .and_then(|f| f.source.text.get(origin.span.start..origin.span.end))
        .unwrap_or_default()
        .to_string()
}

fn rules_json(rules: &[RuleLine]) -> Vec<serde_json::Value> {
    rules
        .iter()
        .map(|(name, cond, status, matched)| {
            json!({"name": name, "when": cond, "matched": matched, "status": status})
        })
        .collect()
}

/// The route part of a human explanation: the rules tried, which one decided (or that
/// none did: `unmatched`), and the backends; `what` is `request` or `connection`.
fn route_text(
    out: &mut String,
    callee: &Service,
    rules: &[RuleLine],
    decision: &RouteDecision<'_>,
    what: &str,
    unmatched: &str,
) {
    out.push_str(&format!("route ({}):\n", callee.key()));
    if rules.is_empty() {
        out.push_str(&format!(
            "  no route rules: the {what} goes to the whole service\n"
        ));
    }
    for (name, condition, status, _) in rules {
        let when = condition
            .as_ref()
            .map_or_else(|| "(no condition)".to_string(), |c| format!("when {c}"));
        out.push_str(&format!("  rule {name}: {status} — {when}\n"));
    }
    if decision.rule.is_none() && !rules.is_empty() {
        out.push_str(&format!(
            "  {unmatched}: the {what} goes to the whole service\n"
        ));
    }
    out.push_str(&format!("  backends: {}\n", backend_list(decision)));
}

/// The backends of a decision: `ns/svc.subset` and weight in thousandths of a percent.
fn backends(decision: &RouteDecision<'_>) -> Vec<(String, u32)> {
    decision
        .backends
        .iter()
        .map(|b| {
            let name = match &b.backend.subset {
                Some(s) => format!("{}.{s}", b.backend.service),
                None => b.backend.service.clone(),
            };
            (name, b.weight_milli)
        })
        .collect()
}

/// `reviews.v1 90%, reviews.v3 10%`.
fn backend_list(decision: &RouteDecision<'_>) -> String {
    backends(decision)
        .into_iter()
        .map(|(name, weight)| {
            if weight == FULL_WEIGHT {
                name
            } else {
                format!("{name} {}", percent(weight))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn backends_json(decision: &RouteDecision<'_>) -> Vec<serde_json::Value> {
    backends(decision)
        .into_iter()
        .map(|(name, weight)| json!({"backend": name, "weight": percent(weight)}))
        .collect()
}

fn percent(milli: u32) -> String {
    mesh_lang::ast::Percent {
        milli: u64::from(milli),
    }
    .to_string()
}

fn verdict_json(authz: &AuthzDecision) -> serde_json::Value {
    json!({
        "decision": match authz.decision { Verdict::Allow => "allow", Verdict::Deny => "deny" },
        "enforced": authz.enforced,
        "allowed": authz.allowed(),
        "policies": authz.policies,
        "reason": authz.reason(),
    })
}

fn authorization_text(out: &mut String, callee: &Service, authz: &AuthzDecision) {
    let mode = if authz.enforced { "enforce" } else { "audit" };
    out.push_str(&format!(
        "\nauthorization ({}, mode {mode}):\n",
        callee.key()
    ));
    out.push_str(&format!(
        "  {} — {}\n",
        match (authz.decision, authz.allowed()) {
            (Verdict::Allow, _) => "ALLOW",
            (Verdict::Deny, true) => "DENY (audit: let through)",
            (Verdict::Deny, false) => "DENY",
        },
        authz.reason()
    ));
    for error in &authz.errors {
        out.push_str(&format!("  error: {error}\n"));
    }
}

fn explain_connection(
    checked: &Checked,
    q: &Question,
    (from, caller_key): (Caller, &str),
    to: ServiceId,
    port: u16,
) -> Result<String, String> {
    let mesh = &checked.mesh;
    let callee = mesh.service(to).ok_or("no callee")?;
    match callee.port(port) {
        None => {
            let ports: Vec<String> = callee.ports.iter().map(|p| p.number.to_string()).collect();
            return Err(format!(
                "{} has no port {port} (its ports: {})",
                callee.key(),
                if ports.is_empty() {
                    "none".to_string()
                } else {
                    ports.join(", ")
                }
            ));
        }
        Some(p) if p.protocol != Protocol::Tcp => {
            return Err(format!(
                "port {port} of {} is not a tcp port: explain an HTTP request with METHOD PATH",
                callee.key()
            ));
        }
        Some(_) => {}
    }
    let evaluator = Evaluator::new(checked);
    let config = evaluator.caller_of(from, &[to])?;
    let index = config
        .service_by_key(&callee.key())
        .ok_or("callee not in the caller's config")?;
    let decision = config
        .route_connection(index, 0)
        .ok_or("no route decision")?;
    let peer = evaluator.peer_of(from).ok_or("no caller identity")?;
    let authz = evaluator.callee(to)?.authorize_connection(port, &peer);
    let route = callee.route.as_ref();
    let chosen = decision.rule.map(|r| r.name.clone());
    // Rules up to the chosen one: those that read the request are for HTTP only; the
    // others were decided by the caller alone.
    let mut rules = Vec::new();
    for rule in route.map(|r| r.rules.as_slice()).unwrap_or_default() {
        let condition = rule.when.as_ref().map(|c| source_text(checked, c.origin));
        let is_chosen = chosen.as_deref() == Some(rule.name.as_str());
        let status = if is_chosen {
            "matched"
        } else if rule
            .when
            .as_ref()
            .is_some_and(|c| !c.request_reads().is_empty())
        {
            "HTTP only (reads the request)"
        } else {
            "did not match"
        };
        rules.push((rule.name.clone(), condition, status, is_chosen));
        if is_chosen {
            break;
        }
    }
    let connect_timeout = route.and_then(|r| r.connect_timeout);
    let idle_timeout = route.and_then(|r| r.idle_timeout);
    if q.json {
        let value = json!({
            "connection": { "port": port, "from": caller_key, "to": callee.key() },
            "route": {
                "rules": rules_json(&rules),
                "rule": chosen,
                "backends": backends_json(&decision),
                "connect_timeout_us": connect_timeout,
                "idle_timeout_us": idle_timeout,
            },
            "authorization": verdict_json(&authz),
        });
        return Ok(serde_json::to_string_pretty(&value).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "connect {port} from {} to {} (opaque TCP)\n\n",
        caller_key,
        callee.key()
    );
    route_text(
        &mut out,
        callee,
        &rules,
        &decision,
        "connection",
        "no rule applies",
    );
    let human =
        |t: Option<u64>| t.map_or_else(|| "none".into(), mesh_compiler::lower::human_micros);
    out.push_str(&format!("  connect timeout: {}\n", human(connect_timeout)));
    out.push_str(&format!("  idle timeout: {}\n", human(idle_timeout)));
    authorization_text(&mut out, callee, &authz);
    Ok(out)
}
