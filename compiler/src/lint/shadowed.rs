//! W0003: an allow that a deny of the same policy fully covers. Deny wins over allow
//! (Cedar's semantics), so such an allow never lets anything through. Ports count, and so
//! do opaque TCP connections, which only rules without L7 content apply to.

use mesh_lang::Diagnostic;

use crate::diag::{Finding, SHADOWED_ALLOW};
use crate::ir::{AccessRule, Cond, CondKind, Effect, Mesh, Principal, Service, TextAttr, TextOp};
use mesh_config::glob::glob_matches;

use super::implies::cond_implies;

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for service in &mesh.services {
        let Some(policy) = &service.policy else {
            continue;
        };
        let denies: Vec<&AccessRule> = policy
            .rules
            .iter()
            .filter(|r| r.effect == Effect::Deny)
            .collect();
        for allow in policy.rules.iter().filter(|r| r.effect == Effect::Allow) {
            let Some(deny) = denies.iter().find(|d| covers(mesh, service, d, allow)) else {
                continue;
            };
            let mut d = Diagnostic::warning(
                SHADOWED_ALLOW,
                "this allow never takes effect: a deny covers every request it allows".to_string(),
                allow.origin.span,
                "never effective",
            )
            .with_help("a deny wins over any allow: narrow the deny, or remove the allow");
            d = d.with_label_in(deny.origin.file, deny.origin.span, "denies all of it");
            findings.push(Finding {
                file: allow.origin.file,
                diagnostic: d,
            });
        }
    }
}

/// Whether every request `allow` admits is refused by `deny`.
fn covers(mesh: &Mesh, service: &Service, deny: &AccessRule, allow: &AccessRule) -> bool {
    let callers = allow
        .from
        .iter()
        .all(|p| deny.from.iter().any(|q| principal_covers(mesh, q, p)));
    let condition = match &deny.when {
        None => true,
        Some(d) => allowed_requests(allow).iter().all(|a| cond_implies(a, d)),
    };
    let methods = match (&deny.methods, &allow.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(d), Some(a)) => a.iter().all(|m| d.contains(m)),
    };
    let paths = match (&deny.paths, &allow.paths) {
        (None, _) => true,
        (Some(d), None) => d.iter().any(|g| g == "*" || g == "/*"),
        (Some(d), Some(a)) => a.iter().all(|p| d.iter().any(|g| glob_matches(g, p))),
    };
    let ports = match (&deny.ports, &allow.ports) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(d), Some(a)) => a.iter().all(|p| d.contains(p)),
    };
    // An allow without L7 content also admits opaque TCP connections, which a deny with
    // L7 content never refuses.
    let connections = !service.has_tcp() || allow.reads_request() || !deny.reads_request();
    callers && condition && methods && paths && ports && connections
}

/// What an allow admits, as conditions: its `when`, its methods, and one of its paths
/// (one condition per path glob).
fn allowed_requests(allow: &AccessRule) -> Vec<Cond> {
    let origin = allow.origin;
    let mut base: Vec<Cond> = allow.when.iter().cloned().collect();
    if let Some(methods) = &allow.methods {
        base.push(Cond {
            kind: CondKind::Method {
                negated: false,
                methods: methods.clone(),
            },
            origin,
        });
    }
    let all = |parts: Vec<Cond>| Cond {
        kind: CondKind::All(parts),
        origin,
    };
    match &allow.paths {
        None => vec![all(base)],
        Some(paths) => paths
            .iter()
            .map(|glob| {
                let mut parts = base.clone();
                parts.push(Cond {
                    kind: CondKind::Text {
                        attr: TextAttr::Path,
                        op: TextOp::Like,
                        value: glob.clone(),
                    },
                    origin,
                });
                all(parts)
            })
            .collect(),
    }
}

fn principal_covers(mesh: &Mesh, outer: &Principal, inner: &Principal) -> bool {
    let namespace_of = |id| mesh.service(id).map(|s: &Service| s.namespace.as_str());
    match (outer, inner) {
        (Principal::Any, _) => true,
        (Principal::Authenticated, Principal::Any) => false,
        (Principal::Authenticated, _) => true,
        (Principal::Namespace(ns), Principal::Service(id)) => {
            namespace_of(*id) == Some(ns.as_str())
        }
        (Principal::Namespace(ns), Principal::Gateway(id)) => {
            mesh.gateway(*id).map(|g| g.namespace.as_str()) == Some(ns.as_str())
        }
        (a, b) => a == b,
    }
}
