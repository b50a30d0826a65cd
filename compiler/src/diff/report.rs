//! What `meshc diff` reports: per workload, the decision changes grouped by caller,
//! direction and deciding policies, the route changes grouped by caller and outcome, each
//! with a few example requests, and the identities that gain or lose all access. The
//! types serialize as the documented `--format json` schema.

use std::collections::BTreeMap;

use mesh_config::SimpleRequest;
use mesh_config::schema::{FaultDef, HeaderValue, MirrorDef, Retry, Rewrite};
use serde::Serialize;

/// Example requests kept per change.
const EXAMPLES: usize = 2;

/// Every workload whose behaviour changes, services first, each sorted by key.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MeshDiff {
    /// The changed workloads.
    pub workloads: Vec<WorkloadDiff>,
}

impl MeshDiff {
    /// Whether anything changes.
    pub fn changed(&self) -> bool {
        !self.workloads.is_empty()
    }

    /// Whether some request is allowed that was not.
    pub fn widens(&self) -> bool {
        self.workloads.iter().any(|w| w.widened() > 0)
    }
}

/// A service or a gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A mesh service (sidecar).
    Service,
    /// An ingress gateway.
    Gateway,
}

/// Whether a workload exists in both versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// In both.
    Both,
    /// Only in the new version.
    Added,
    /// Only in the old version.
    Removed,
}

/// What changes for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadDiff {
    /// `namespace/name`.
    pub workload: String,
    /// Service or gateway.
    pub kind: Kind,
    /// In both versions, added or removed.
    pub presence: Presence,
    /// Requests to it whose decision changes.
    pub decisions: Vec<DecisionChange>,
    /// Requests to it (from its callers' agents, or into the gateway) whose route changes.
    pub routes: Vec<RouteChange>,
    /// Callers allowed nothing before and something now.
    pub gained_access: Vec<String>,
    /// Callers allowed something before and nothing now.
    pub lost_access: Vec<String>,
    /// How much was evaluated.
    pub coverage: Coverage,
}

impl WorkloadDiff {
    /// Decision changes that allow more.
    pub fn widened(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.direction == Direction::Widened)
            .count()
    }

    /// Decision changes that allow less.
    pub fn narrowed(&self) -> usize {
        self.decisions.len() - self.widened()
    }
}

/// The request classes evaluated, and how many there are.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Coverage {
    /// Classes of (caller, request) evaluated for authorization.
    pub authz_checked: usize,
    /// Classes there are (more than checked when the product was cut).
    pub authz_total: usize,
    /// Classes of (caller, request) evaluated for routing.
    pub route_checked: usize,
    /// Classes there are.
    pub route_total: usize,
}

impl Coverage {
    /// Whether every class was evaluated.
    pub fn complete(&self) -> bool {
        self.authz_checked == self.authz_total && self.route_checked == self.route_total
    }
}

/// Allowed before and denied now, or the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Denied before, allowed now.
    Widened,
    /// Allowed before, denied now.
    Narrowed,
}

/// Requests from one caller whose decision flips the same way for the same reasons.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionChange {
    /// Widened or narrowed.
    pub direction: Direction,
    /// The caller: a service (`ns/name`), a gateway (`gateway/ns/name`), `ns/*` (an
    /// identity of that namespace no policy names), `*` (an identity of a namespace no
    /// policy names) or `anonymous`.
    pub caller: String,
    /// The identity (`namespace/service_account`) the examples were evaluated as.
    pub identity: Option<String>,
    /// The policies (`@id`) that decided before.
    pub old_policies: Vec<String>,
    /// The policies that decide now.
    pub new_policies: Vec<String>,
    /// How many request classes change this way.
    pub classes: usize,
    /// Example requests, re-checked with `Config::authorize` on both versions.
    pub examples: Vec<Example>,
}

/// Requests whose route changes from one outcome to another.
#[derive(Clone, Debug, Serialize)]
pub struct RouteChange {
    /// The calling service when a rule tests `source` (`*`: any other), else absent.
    pub caller: Option<String>,
    /// What differs: `rule`, `host`, `backends`, `timeout`, `retries`, `mirrors`,
    /// `fault`, `headers`, `rewrite`, `routed`.
    pub aspects: Vec<&'static str>,
    /// The route before (absent: not routed — no such workload, or a gateway's 404).
    pub old: Option<RouteView>,
    /// The route now.
    pub new: Option<RouteView>,
    /// How many request classes change this way.
    pub classes: usize,
    /// Example requests, re-checked with `Config::route` on both versions.
    pub examples: Vec<Example>,
}

/// Where a request goes and how.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteView {
    /// A gateway's host entry that took the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The matching rule (absent: none, the whole service).
    pub rule: Option<String>,
    /// `ns/name[.subset]` with weights in thousandths of a percent.
    pub backends: Vec<(String, u32)>,
    /// Timeout of the whole request.
    pub timeout_us: Option<u64>,
    /// The retry policy in force.
    pub retry: Option<Retry>,
    /// Mirrors of the rule.
    pub mirrors: Vec<MirrorDef>,
    /// Injected faults.
    pub fault: Option<FaultDef>,
    /// Headers set and removed.
    pub set_headers: Vec<HeaderValue>,
    /// Headers removed.
    pub remove_headers: Vec<String>,
    /// Path prefix rewrite.
    pub rewrite_prefix: Option<Rewrite>,
}

impl RouteView {
    /// The aspects in which `old` and `new` differ.
    pub(super) fn aspects(old: Option<&RouteView>, new: Option<&RouteView>) -> Vec<&'static str> {
        let (Some(a), Some(b)) = (old, new) else {
            return vec!["routed"];
        };
        let checks: [(&'static str, bool); 9] = [
            ("host", a.host == b.host),
            ("rule", a.rule == b.rule),
            ("backends", a.backends == b.backends),
            ("timeout", a.timeout_us == b.timeout_us),
            ("retries", a.retry == b.retry),
            ("mirrors", a.mirrors == b.mirrors),
            ("fault", a.fault == b.fault),
            (
                "headers",
                a.set_headers == b.set_headers && a.remove_headers == b.remove_headers,
            ),
            ("rewrite", a.rewrite_prefix == b.rewrite_prefix),
        ];
        checks
            .into_iter()
            .filter(|(_, same)| !same)
            .map(|(name, _)| name)
            .collect()
    }
}

/// A concrete request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The method, or `TCP` for an opaque TCP connection.
    pub method: String,
    /// The path (absent for a connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The host, when a condition tests it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Headers sent, `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// Query parameters sent.
    pub query: Vec<(String, String)>,
    /// The destination port (0: not decided by a port).
    pub port: u16,
}

impl Example {
    pub(super) fn request(request: &SimpleRequest, show_host: bool) -> Example {
        Example {
            method: request.method.clone(),
            path: Some(request.path.clone()),
            host: show_host.then(|| request.host.clone()),
            headers: request.headers.clone(),
            query: request.query.clone(),
            port: request.port,
        }
    }

    pub(super) fn connection(port: u16) -> Example {
        Example {
            method: mesh_config::TCP_ACTION.into(),
            path: None,
            host: None,
            headers: Vec::new(),
            query: Vec::new(),
            port,
        }
    }
}

/// Gathers differing evaluations of one workload into changes.
#[derive(Default)]
pub(super) struct Collector {
    decisions: BTreeMap<(String, Direction, Vec<String>, Vec<String>), DecisionChange>,
    routes: Vec<RouteChange>,
    /// Per caller: allowed something before, allowed something now.
    access: BTreeMap<String, (bool, bool)>,
}

/// One side's decision on a request.
pub(super) struct Decided {
    pub(super) allowed: bool,
    pub(super) policies: Vec<String>,
}

impl Collector {
    /// Records a request's decisions in both versions.
    pub(super) fn decision(
        &mut self,
        caller: (&str, Option<&str>),
        old: Decided,
        new: Decided,
        example: impl FnOnce() -> Example,
    ) {
        let access = self.access.entry(caller.0.to_string()).or_default();
        access.0 |= old.allowed;
        access.1 |= new.allowed;
        if old.allowed == new.allowed {
            return;
        }
        let direction = if new.allowed {
            Direction::Widened
        } else {
            Direction::Narrowed
        };
        let change = self
            .decisions
            .entry((
                caller.0.to_string(),
                direction,
                old.policies.clone(),
                new.policies.clone(),
            ))
            .or_insert_with(|| DecisionChange {
                direction,
                caller: caller.0.to_string(),
                identity: caller.1.map(str::to_string),
                old_policies: old.policies,
                new_policies: new.policies,
                classes: 0,
                examples: Vec::new(),
            });
        change.classes += 1;
        if change.examples.len() < EXAMPLES {
            change.examples.push(example());
        }
    }

    /// Records a request's routes in both versions.
    pub(super) fn route(
        &mut self,
        caller: Option<&str>,
        old: Option<RouteView>,
        new: Option<RouteView>,
        example: impl FnOnce() -> Example,
    ) {
        if old == new {
            return;
        }
        let found = self.routes.iter().position(|c| {
            c.caller.as_deref() == caller && c.old.as_ref() == old.as_ref() && c.new == new
        });
        let index = found.unwrap_or_else(|| {
            self.routes.push(RouteChange {
                caller: caller.map(str::to_string),
                aspects: RouteView::aspects(old.as_ref(), new.as_ref()),
                old,
                new,
                classes: 0,
                examples: Vec::new(),
            });
            self.routes.len() - 1
        });
        let Some(change) = self.routes.get_mut(index) else {
            return;
        };
        change.classes += 1;
        if change.examples.len() < EXAMPLES {
            change.examples.push(example());
        }
    }

    /// The workload's changes; `None` when nothing changed.
    pub(super) fn finish(
        self,
        workload: String,
        kind: Kind,
        presence: Presence,
        coverage: Coverage,
    ) -> Option<WorkloadDiff> {
        if self.decisions.is_empty() && self.routes.is_empty() {
            return None;
        }
        let callers = |pick: fn(&(bool, bool)) -> bool| {
            self.access
                .iter()
                .filter(|(_, a)| pick(a))
                .map(|(c, _)| c.clone())
                .collect()
        };
        Some(WorkloadDiff {
            workload,
            kind,
            presence,
            gained_access: callers(|(old, new)| !old && *new),
            lost_access: callers(|(old, new)| *old && !new),
            decisions: self.decisions.into_values().collect(),
            routes: self.routes,
            coverage,
        })
    }
}
