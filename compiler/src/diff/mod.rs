//! `meshc diff`: which requests change authorization decision or route between two
//! versions of a mesh (issue #22). No solver: the conditions of a workload, in both
//! versions, test finitely many constants — callers, methods, path and header values,
//! prefixes, ports, hosts — so requests fall into finitely many classes that every
//! condition treats alike ([`classes`]). One representative request per class is
//! evaluated through `mesh-config` on the old and the new config ([`evaluate`]); those
//! that differ are grouped into changes with example requests ([`report`]).
//!
//! Cedar's symbolic compiler (`cedar-policy-symcc`) was the alternative: it needs cvc5
//! 1.3.1, while the reachable Debian archive has 1.0.3, so it could not be installed for
//! CI. The class analysis is exact for equality, membership, presence and prefix tests;
//! `like` globs and `matches` regexes contribute one witness each (a class only their
//! combination with another pattern selects can be missed).
//!
//! Each workload is compared by its compiled config (with itself as the only outbound
//! service): configs equal but for their policies' `@id`s are skipped without
//! evaluation, so the cost grows with the mesh and with what changed, never with pairs
//! of services.

mod classes;
mod conditions;
mod evaluate;
mod names;
mod report;
mod witness;

use std::collections::{BTreeSet, HashMap};

pub use report::{
    Coverage, DecisionChange, Direction, Example, Kind, MeshDiff, Presence, RouteChange, RouteView,
    WorkloadDiff,
};

use mesh_config::schema::{Authz, WorkloadConfig};

use crate::Checked;
use crate::emit::{Emitter, Neighbours};
use crate::ir::{GatewayId, ServiceId};

/// Why two versions could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A version has errors: its meaning is not known.
    #[error("the {0} version has errors")]
    Errors(&'static str),
    /// A generated config does not load (a compiler bug).
    #[error("internal: the config of {workload} is invalid: {source}")]
    Config {
        /// The workload.
        workload: String,
        /// Why `mesh-config` refused it.
        #[source]
        source: mesh_config::ConfigError,
    },
}

/// One version: its configs, made on demand.
struct Side<'c> {
    emitter: Emitter<'c>,
    services: HashMap<String, ServiceId>,
    gateways: HashMap<String, GatewayId>,
}

impl<'c> Side<'c> {
    fn new(checked: &'c Checked) -> Side<'c> {
        let mesh = &checked.mesh;
        Side {
            emitter: Emitter::new(mesh, &checked.cedar),
            services: (0..mesh.services.len())
                .filter_map(|i| Some((mesh.services.get(i)?.key(), ServiceId(i as u32))))
                .collect(),
            gateways: (0..mesh.gateways.len())
                .filter_map(|i| Some((mesh.gateways.get(i)?.key(), GatewayId(i as u32))))
                .collect(),
        }
    }

    /// A service's config with itself as its only outbound service: its inbound policies
    /// and the route its callers use.
    fn service(&self, key: &str) -> Option<WorkloadConfig> {
        let id = *self.services.get(key)?;
        Some(self.emitter.workload(id, Neighbours::Only(&[id])))
    }

    fn gateway(&self, key: &str) -> Option<WorkloadConfig> {
        Some(self.emitter.gateway(*self.gateways.get(key)?))
    }
}

/// Whether two configs behave alike without evaluating them: equal but for the `@id`
/// annotations of their Cedar policies, which name a policy's file and line (so every
/// edit that moves lines, and every comparison of two directories, changes them) and
/// decide nothing.
fn alike(a: Option<&WorkloadConfig>, b: Option<&WorkloadConfig>) -> bool {
    fn without_ids(config: &WorkloadConfig) -> WorkloadConfig {
        let mut config = config.clone();
        if let Authz::Cedar(cedar) = &mut config.inbound.authz {
            cedar.policies = cedar
                .policies
                .lines()
                .map(without_id)
                .collect::<Vec<_>>()
                .join("\n");
        }
        config
    }
    match (a, b) {
        (Some(a), Some(b)) => a == b || without_ids(a) == without_ids(b),
        (None, None) => true,
        _ => false,
    }
}

/// `line` without a leading `@id("...")` annotation (the rest of the line is kept: an
/// inline policy may follow it).
fn without_id(line: &str) -> &str {
    let Some(rest) = line.trim_start().strip_prefix("@id(\"") else {
        return line;
    };
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                return rest
                    .get(i + 1..)
                    .and_then(|after| after.trim_start().strip_prefix(')'))
                    .unwrap_or(line);
            }
            _ => {}
        }
    }
    line
}

/// What changes from `old` to `new`. Both must be free of errors.
pub fn diff(old: &Checked, new: &Checked) -> Result<MeshDiff, DiffError> {
    for (side, checked) in [("old", old), ("new", new)] {
        if checked.errors() > 0 {
            return Err(DiffError::Errors(side));
        }
    }
    let sides = [Side::new(old), Side::new(new)];
    let names = names::Names::new([&old.mesh, &new.mesh]);
    let mut out = MeshDiff::default();
    let services: BTreeSet<&String> = sides.iter().flat_map(|s| s.services.keys()).collect();
    for key in services {
        let [a, b] = sides.each_ref().map(|s| s.service(key));
        if !alike(a.as_ref(), b.as_ref())
            && let Some(diff) = evaluate::service(key, [a.as_ref(), b.as_ref()], &names)?
        {
            out.workloads.push(diff);
        }
    }
    let gateways: BTreeSet<&String> = sides.iter().flat_map(|s| s.gateways.keys()).collect();
    for key in gateways {
        let [a, b] = sides.each_ref().map(|s| s.gateway(key));
        if !alike(a.as_ref(), b.as_ref())
            && let Some(diff) = evaluate::gateway(key, [a.as_ref(), b.as_ref()])?
        {
            out.workloads.push(diff);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::without_id;

    #[test]
    fn ids_are_removed_and_what_follows_them_kept() {
        assert_eq!(without_id(r#"@id("a.mesh:3 allow from x")"#), "");
        assert_eq!(
            without_id(r#"  @id("q\"uote)") permit (principal, action, resource);"#),
            " permit (principal, action, resource);"
        );
        assert_eq!(
            without_id("permit (principal, action, resource);"),
            "permit (principal, action, resource);"
        );
        assert_eq!(without_id(r#"@id("unterminated"#), r#"@id("unterminated"#);
    }
}
