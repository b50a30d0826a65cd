//! Lints: warnings about meshes that are valid but probably not what was meant. Each
//! module holds one lint; [`run`] runs them all over a checked mesh.

mod allow_any;
mod allows_nothing;
mod call_graph;
mod gateway_denied;
mod implies;
mod retry_amplification;
mod shadowed;
mod timeout_budget;
mod unreachable;
mod unused;

use crate::diag::Finding;
use crate::ir::Mesh;
use crate::load::Loaded;

pub use implies::{cond_implies, same_cond};

/// Runs every lint. `complete` says whether the mesh checked without errors: lints that
/// would be misled by constructs left out after an error (unused subsets) wait for it.
pub fn run(mesh: &Mesh, loaded: &Loaded, complete: bool, findings: &mut Vec<Finding>) {
    unreachable::check(mesh, findings);
    shadowed::check(mesh, findings);
    allow_any::check(mesh, findings);
    retry_amplification::check(mesh, findings);
    timeout_budget::check(mesh, findings);
    if complete {
        unused::check(mesh, loaded, findings);
        // An allow dropped by an error would make a policy look empty of allows.
        allows_nothing::check(mesh, findings);
        gateway_denied::check(mesh, findings);
    }
}
