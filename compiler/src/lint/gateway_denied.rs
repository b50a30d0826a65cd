//! W0011: a gateway routes to a service whose policy does not let the gateway call it, so
//! every request the rule sends would be denied at the service. Decided like emission's
//! `may_call`: only when the policy can be read that way (no inline Cedar, not audit
//! mode); an allow counts whatever its conditions.

use mesh_lang::Diagnostic;

use crate::diag::{Finding, GATEWAY_DENIED};
use crate::ir::{Effect, Gateway, GatewayId, Mesh, PolicyMode, Principal, Service};

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for (index, gateway) in mesh.gateways.iter().enumerate() {
        let id = GatewayId(index as u32);
        let mut reported = Vec::new();
        for rule in gateway.hosts.iter().flat_map(|h| &h.rules) {
            for target in rule.targets() {
                let Some(service) = mesh.service(target.service) else {
                    continue;
                };
                if reported.contains(&target.service) || may_call(mesh, gateway, id, service) {
                    continue;
                }
                reported.push(target.service);
                let why = if service.policy.is_some() {
                    format!("the policy of `{}` allows no call from it", service.key())
                } else {
                    format!(
                        "`{}` has no policy and the mesh's `default_policy` is deny",
                        service.key()
                    )
                };
                findings.push(Finding {
                    file: rule.origin.file,
                    diagnostic: Diagnostic::warning(
                        GATEWAY_DENIED,
                        format!(
                            "gateway `{}` routes to `{}`, which denies it",
                            gateway.name,
                            service.key()
                        ),
                        rule.name_origin.span,
                        "its requests would be denied (403)",
                    )
                    .with_help(format!(
                        "{why}: add `allow from gateway/{}` to `policy {}`",
                        gateway.name, service.name
                    )),
                });
            }
        }
    }
}

/// Whether `target`'s policy lets `gateway` call it, as far as the policy can tell.
pub fn may_call(mesh: &Mesh, gateway: &Gateway, id: GatewayId, target: &Service) -> bool {
    let Some(policy) = &target.policy else {
        return mesh.default_policy == Effect::Allow;
    };
    if !policy.cedar.is_empty() || policy.mode == PolicyMode::Audit {
        return true;
    }
    policy
        .rules
        .iter()
        .filter(|r| r.effect == Effect::Allow)
        .flat_map(|r| &r.from)
        .any(|p| match p {
            Principal::Any | Principal::Authenticated => true,
            Principal::Namespace(ns) => *ns == gateway.namespace,
            Principal::Gateway(g) => *g == id,
            Principal::Service(_) => false,
        })
}
