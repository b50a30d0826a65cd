//! W0010: a policy that allows nothing (LANGUAGE.md §7). Cedar denies what no `permit`
//! allows, so a policy with denies, rate limits or Cedar forbids but no `allow` (and no
//! Cedar `permit`) refuses every request to its service — usually an exception written
//! before the rule it was an exception to. An empty policy (`policy NAME {}`) says the
//! lockout on purpose and is not reported.

use mesh_lang::Diagnostic;
use mesh_lang::ast::Span;

use crate::diag::{ALLOWS_NOTHING, Finding};
use crate::ir::{Effect, Mesh};

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for service in &mesh.services {
        let Some(policy) = &service.policy else {
            continue;
        };
        let members = policy.rules.len() + policy.cedar.len() + policy.rate_limits.len();
        let allows = policy.rules.iter().any(|r| r.effect == Effect::Allow)
            || policy.cedar.iter().any(|c| c.text.contains("permit"));
        if members == 0 || allows {
            continue;
        }
        let start = policy.origin.span.start;
        findings.push(Finding {
            file: policy.origin.file,
            diagnostic: Diagnostic::warning(
                ALLOWS_NOTHING,
                format!(
                    "the policy of `{}` allows nothing: every request to it is denied",
                    service.name
                ),
                Span::new(start, start + "policy".len()),
                "no `allow` in this policy",
            )
            .with_help(
                "a request is allowed only when an allow matches and no deny does: add an \
                 `allow` for the callers that need the service, or leave the policy empty \
                 (`policy NAME {}`) to refuse every caller on purpose",
            ),
        });
    }
}
