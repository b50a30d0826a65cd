//! W0005: a service whose callers give up before it can finish retrying its own calls.
//! The timeout of `route T` is how long every caller of T waits for it, retries
//! included. If T may call U (U's policy names T or T's namespace, see [`CallGraph`])
//! and U's route retries for longer than that — `attempts × per_try_timeout`, plus the
//! maximum back-off between tries, never more than U's own timeout — T's callers time
//! out while T is still retrying U: the retries only add load.
//!
//! Linear: the longest retry time of each service is computed once, and the two longest
//! among the services that name a namespace once per namespace.

use mesh_lang::Diagnostic;

use crate::diag::{Finding, TIMEOUT_BUDGET};
use crate::ir::{Mesh, Micros, Origin, Service, ServiceId};
use crate::lower::human_micros;

use super::call_graph::{CallGraph, retry_policy, service_name};

/// The longest a caller may spend on one call of a service, retries included.
#[derive(Clone, Copy, Debug)]
struct Spend {
    /// How long.
    micros: Micros,
    /// Tries.
    attempts: u32,
    /// Why that long.
    why: Why,
    /// The retry setting, for a label.
    origin: Option<Origin>,
}

#[derive(Clone, Copy, Debug)]
enum Why {
    /// `attempts` tries of `per_try` each, with up to `backoff` between two tries.
    Tries {
        per_try: Micros,
        backoff: Option<Micros>,
    },
    /// As long as the route's timeout allows.
    Timeout,
}

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let graph = CallGraph::new(mesh);
    let spends: Vec<Option<Spend>> = mesh.services.iter().map(|s| spend(mesh, s)).collect();
    let spend_of = |id: ServiceId| spends.get(id.0 as usize).copied().flatten();
    let longer = |a: (Spend, ServiceId), b: Option<(Spend, ServiceId)>| {
        b.is_none_or(|b| a.0.micros > b.0.micros || (a.0.micros == b.0.micros && a.1 < b.1))
    };
    // The two longest spends among the services naming each namespace: the longest that
    // is not the caller itself is one of them.
    let mut top: Vec<[Option<(Spend, ServiceId)>; 2]> = vec![[None, None]; graph.namespaces()];
    for (ns, slot) in top.iter_mut().enumerate() {
        for callee in graph.namespace_callees(ns) {
            let Some(s) = spend_of(*callee) else {
                continue;
            };
            let entry = (s, *callee);
            if longer(entry, slot[0]) {
                slot[1] = slot[0];
                slot[0] = Some(entry);
            } else if slot[0].is_none_or(|f| f.1 != *callee) && longer(entry, slot[1]) {
                slot[1] = Some(entry);
            }
        }
    }

    for (index, service) in mesh.services.iter().enumerate() {
        let id = ServiceId(index as u32);
        let Some(route) = &service.route else {
            continue;
        };
        let (Some(timeout), Some(timeout_origin)) = (route.timeout, route.timeout_origin) else {
            continue;
        };
        let mut worst: Option<(Spend, ServiceId)> = None;
        let namespace_top = top
            .get(graph.namespace_of(id))
            .into_iter()
            .flatten()
            .flatten()
            .copied()
            .find(|(_, callee)| *callee != id);
        let direct = graph
            .direct_callees(id)
            .iter()
            .filter(|callee| **callee != id)
            .filter_map(|callee| spend_of(*callee).map(|s| (s, *callee)));
        for entry in direct.chain(namespace_top) {
            if longer(entry, worst) {
                worst = Some(entry);
            }
        }
        let Some((spend, callee_id)) = worst else {
            continue;
        };
        // Some requests get a rule's longer timeout; they may be the ones calling U.
        let rule_waits_long = route
            .rules
            .iter()
            .any(|r| r.timeout.is_some_and(|t| t >= spend.micros));
        if spend.micros <= timeout || rule_waits_long {
            continue;
        }
        let Some(callee) = mesh.service(callee_id) else {
            continue;
        };
        let callee_name = service_name(callee, callee.namespace != service.namespace);
        let why = match spend.why {
            Why::Tries { per_try, backoff } => {
                let mut why = format!("{} × {}", spend.attempts, human_micros(per_try));
                if let Some(backoff) = backoff {
                    why.push_str(&format!(
                        " + {} × {} of back-off",
                        spend.attempts - 1,
                        human_micros(backoff)
                    ));
                }
                why
            }
            Why::Timeout => format!(
                "{} tries within the {} timeout of `route {}`",
                spend.attempts,
                human_micros(spend.micros),
                callee.name
            ),
        };
        let mut d = Diagnostic::warning(
            TIMEOUT_BUDGET,
            format!(
                "callers of {} give up after {}, but {} may spend up to {} retrying {} ({why})",
                service.name,
                human_micros(timeout),
                service.name,
                human_micros(spend.micros),
                callee_name
            ),
            timeout_origin.span,
            format!(
                "callers of `{}` wait at most {}",
                service.name,
                human_micros(timeout)
            ),
        );
        if let Some(origin) = spend.origin {
            d = d.with_label_in(
                origin.file,
                origin.span,
                format!("`{callee_name}` is tried up to {} times", spend.attempts),
            );
        }
        findings.push(Finding {
            file: timeout_origin.file,
            diagnostic: d.with_help(format!(
                "raise this timeout to at least {}, or make the retries of `{callee_name}` fit in it (fewer `attempts`, a shorter `per_try_timeout` or `backoff`): otherwise the callers of `{}` give up while it is still retrying, and its retries only add load",
                human_micros(spend.micros),
                service.name
            )),
        });
    }
}

/// The longest a caller may spend on one call of `service` when its route retries: the
/// worst of the route's retry and its rules' (with their timeouts); `None` without
/// retries or when neither a per-try timeout nor a timeout bounds them.
fn spend(mesh: &Mesh, service: &Service) -> Option<Spend> {
    let route = service.route.as_ref()?;
    let settings = std::iter::once((route.retry.as_ref(), route.retry_origin, route.timeout))
        .chain(route.rules.iter().map(|r| match &r.retry {
            Some(retry) => (Some(retry), r.retry_origin, r.timeout.or(route.timeout)),
            None => (
                route.retry.as_ref(),
                route.retry_origin,
                r.timeout.or(route.timeout),
            ),
        }));
    let mut worst: Option<Spend> = None;
    for (retry, origin, timeout) in settings {
        let Some(policy) = retry.and_then(|r| retry_policy(mesh, r)) else {
            continue;
        };
        let attempts = policy.attempts;
        if attempts <= 1 {
            continue;
        }
        let tries = policy.per_try_timeout.map(|per_try| {
            let backoff = policy.backoff.map(|(_, max)| max);
            let micros = per_try
                .saturating_mul(u64::from(attempts))
                .saturating_add(backoff.unwrap_or(0).saturating_mul(u64::from(attempts - 1)));
            (micros, Why::Tries { per_try, backoff })
        });
        let (micros, why) = match (tries, timeout) {
            (Some((micros, why)), Some(timeout)) if micros <= timeout => (micros, why),
            (Some((micros, why)), None) => (micros, why),
            (_, Some(timeout)) => (timeout, Why::Timeout),
            (None, None) => continue,
        };
        if worst.is_none_or(|w| micros > w.micros) {
            worst = Some(Spend {
                micros,
                attempts,
                why,
                origin,
            });
        }
    }
    worst
}
