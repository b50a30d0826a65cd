//! W0001: a rule that can never match because an earlier rule of the same route (or of the
//! same gateway host) matches every request it would (rules are tried in order; the first
//! match wins). The route's own `to`/`split` is its last rule (`default`): unreachable
//! after a rule without a condition.

use mesh_lang::Diagnostic;

use crate::diag::{Finding, UNREACHABLE_RULE};
use crate::ir::{Mesh, Rule};

use super::implies::cond_implies;

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let routes = mesh
        .services
        .iter()
        .filter_map(|s| s.route.as_ref())
        .map(|r| r.rules.as_slice());
    let hosts = mesh
        .gateways
        .iter()
        .flat_map(|g| &g.hosts)
        .map(|h| h.rules.as_slice());
    for rules in routes.chain(hosts) {
        check_rules(rules, findings);
    }
}

/// W0001 for the rules of one route or gateway host.
fn check_rules(rules: &[Rule], findings: &mut Vec<Finding>) {
    for (i, rule) in rules.iter().enumerate() {
        let earlier = rules.get(..i).unwrap_or_default();
        let shadow = earlier.iter().find(|e| match (&e.when, &rule.when) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(first), Some(later)) => cond_implies(later, first),
        });
        let Some(shadow) = shadow else { continue };
        let why = if shadow.when.is_none() {
            format!(
                "rule `{}` has no condition: it matches every request",
                shadow.name
            )
        } else {
            format!(
                "rule `{}` matches every request this one would",
                shadow.name
            )
        };
        let message = if rule.route_default {
            "the route's own destination is unreachable".to_string()
        } else {
            format!("rule `{}` is unreachable", rule.name)
        };
        let mut d = Diagnostic::warning(
                UNREACHABLE_RULE,
                message,
                rule.name_origin.span,
                if rule.route_default {
                    "never used"
                } else {
                    "never matches"
                },
            )
            .with_help(if rule.route_default {
                "everything that reaches the route's `to`/`split` is taken by an earlier rule: give that rule a condition, or remove the route-level destination"
            } else if shadow.when.is_none() {
                "rules are tried in order: move the catch-all rule last, or give it a condition"
            } else {
                "rules are tried in order: move the more specific rule first, or remove one of them"
            });
        d = d.with_label_in(shadow.name_origin.file, shadow.name_origin.span, why);
        findings.push(Finding {
            file: rule.name_origin.file,
            diagnostic: d,
        });
    }
}
