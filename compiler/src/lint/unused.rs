//! W0002: a subset that no route, gateway, split or mirror ever sends traffic to, and a retry
//! profile of the user's that nothing uses.

use std::collections::BTreeSet;

use mesh_lang::Diagnostic;

use crate::diag::{Finding, UNUSED};
use crate::ir::{Dest, Mesh, RetryId, RetryUse, ServiceId};
use crate::load::Loaded;

pub fn check(mesh: &Mesh, loaded: &Loaded, findings: &mut Vec<Finding>) {
    let mut used_subsets: BTreeSet<(ServiceId, &str)> = BTreeSet::new();
    let mut used_retries: BTreeSet<RetryId> = BTreeSet::new();
    let mut note_retry = |retry: &Option<RetryUse>| {
        if let Some(RetryUse::Profile(id)) = retry {
            used_retries.insert(*id);
        }
    };
    let gateway_rules = mesh
        .gateways
        .iter()
        .flat_map(|g| &g.hosts)
        .flat_map(|h| &h.rules);
    let route_rules = mesh
        .services
        .iter()
        .filter_map(|s| s.route.as_ref())
        .flat_map(|route| {
            note_retry(&route.retry);
            &route.rules
        })
        .collect::<Vec<_>>();
    for rule in route_rules.into_iter().chain(gateway_rules) {
        note_retry(&rule.retry);
        match &rule.dest {
            Some(Dest::To(t)) => {
                if let Some(s) = &t.subset {
                    used_subsets.insert((t.service, s));
                }
            }
            Some(Dest::Split(targets)) => {
                for (t, weight) in targets {
                    if let (Some(s), true) = (&t.subset, weight.milli > 0) {
                        used_subsets.insert((t.service, s));
                    }
                }
            }
            None => {}
        }
        for mirror in &rule.mirrors {
            if let Some(s) = &mirror.target.subset {
                used_subsets.insert((mirror.target.service, s));
            }
        }
    }
    for (index, service) in mesh.services.iter().enumerate() {
        let id = ServiceId(index as u32);
        for subset in &service.subsets {
            if used_subsets.contains(&(id, subset.name.as_str())) {
                continue;
            }
            findings.push(Finding {
                file: subset.origin.file,
                diagnostic: Diagnostic::warning(
                    UNUSED,
                    format!("subset `{}` of `{}` never receives traffic", subset.name, service.name),
                    subset.origin.span,
                    "no route sends traffic here",
                )
                .with_help(format!(
                    "send traffic to it with `to {0}.{1}` or a `split` in `route {0}`, or remove it",
                    service.name, subset.name
                )),
            });
        }
    }
    for (index, profile) in mesh.retries.iter().enumerate() {
        let is_std = loaded.file(profile.origin.file).is_some_and(|f| f.is_std);
        if is_std || used_retries.contains(&RetryId(index as u32)) {
            continue;
        }
        findings.push(Finding {
            file: profile.name_origin.file,
            diagnostic: Diagnostic::warning(
                UNUSED,
                format!("retry profile `{}` is never used", profile.name),
                profile.name_origin.span,
                "no route or rule uses it",
            )
            .with_help(format!(
                "use it with `retry {}` in a route or rule, or remove it",
                profile.name
            )),
        });
    }
}
