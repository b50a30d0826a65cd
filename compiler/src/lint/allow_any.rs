//! W0006: `allow from any` under `mtls strict`. Every caller is authenticated there, so
//! `any` means `authenticated` — until someone switches to permissive, when it silently
//! starts admitting plaintext callers.

use mesh_lang::Diagnostic;

use crate::diag::{ALLOW_ANY_STRICT, Finding};
use crate::ir::{Effect, Mesh, Mtls, Principal};

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    if mesh.mtls != Mtls::Strict {
        return;
    }
    for service in &mesh.services {
        let Some(policy) = &service.policy else {
            continue;
        };
        for rule in policy.rules.iter().filter(|r| r.effect == Effect::Allow) {
            for (principal, origin) in rule.from.iter().zip(&rule.from_origins) {
                if *principal != Principal::Any {
                    continue;
                }
                let mut d = Diagnostic::warning(
                    ALLOW_ANY_STRICT,
                    format!("`allow from any` on `{}` under `mtls strict`", service.name),
                    origin.span,
                    "any caller",
                )
                .with_help("write `allow from authenticated`: it means the same under strict mTLS and stays closed to plaintext callers if mTLS becomes permissive");
                if let Some(mtls) = mesh.mtls_origin {
                    d = d.with_label_in(mtls.file, mtls.span, "strict mTLS set here");
                }
                findings.push(Finding {
                    file: origin.file,
                    diagnostic: d,
                });
            }
        }
    }
}
