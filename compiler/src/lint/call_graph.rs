//! The call graph of W0004 and W0005: which service may call which, read from the
//! policies.
//!
//! A service S may call T when T's policy has an `allow` whose `from` names S, S's
//! namespace, `authenticated` or `any`, or when T has no policy and the mesh's
//! `default_policy` is `allow`. The graph here keeps only the first two: callers named
//! explicitly. `any`, `authenticated` and default-allow connect every service to every
//! other one; a chain through them is possible but not planned by anyone, and following
//! them would make every retry and timeout of the mesh look like part of one long chain —
//! noise, not findings. Denies are not subtracted: a deny with a condition still leaves
//! the call possible, and an allow a deny fully covers is W0003's business.
//!
//! A `namespace NAME` caller is kept as one edge to the namespace rather than one edge
//! per member, so the graph stays linear in the size of the policies even when large
//! namespaces allow each other.

use std::collections::HashMap;

use crate::ir::{Effect, Mesh, Principal, RetryPolicy, RetryUse, Service, ServiceId};

/// Who may call a service, as the policy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Caller {
    /// One service.
    Service(ServiceId),
    /// Every service of a namespace, by index into [`CallGraph::members`].
    Namespace(usize),
}

/// The explicit "may call" relation of a mesh.
pub struct CallGraph {
    /// For each service, who may call it.
    callers: Vec<Vec<Caller>>,
    /// For each service, the services whose policies name it.
    direct_callees: Vec<Vec<ServiceId>>,
    /// For each namespace, the services whose policies name the namespace.
    namespace_callees: Vec<Vec<ServiceId>>,
    /// For each namespace, its services.
    members: Vec<Vec<ServiceId>>,
    /// For each service, its namespace.
    namespace_of: Vec<usize>,
}

impl CallGraph {
    /// Builds the graph from every policy's allows; linear in services and `from` entries.
    pub fn new(mesh: &Mesh) -> CallGraph {
        let count = mesh.services.len();
        let mut namespaces: HashMap<&str, usize> = HashMap::new();
        let mut members: Vec<Vec<ServiceId>> = Vec::new();
        let mut namespace_of = Vec::with_capacity(count);
        for (index, service) in mesh.services.iter().enumerate() {
            let ns = *namespaces
                .entry(service.namespace.as_str())
                .or_insert_with(|| {
                    members.push(Vec::new());
                    members.len() - 1
                });
            if let Some(list) = members.get_mut(ns) {
                list.push(ServiceId(index as u32));
            }
            namespace_of.push(ns);
        }
        let mut callers: Vec<Vec<Caller>> = vec![Vec::new(); count];
        let mut direct_callees: Vec<Vec<ServiceId>> = vec![Vec::new(); count];
        let mut namespace_callees: Vec<Vec<ServiceId>> = vec![Vec::new(); members.len()];
        for (index, service) in mesh.services.iter().enumerate() {
            let callee = ServiceId(index as u32);
            let Some(policy) = &service.policy else {
                continue;
            };
            let mut list: Vec<Caller> = Vec::new();
            for rule in policy.rules.iter().filter(|r| r.effect == Effect::Allow) {
                for principal in &rule.from {
                    match principal {
                        Principal::Service(caller) if (caller.0 as usize) < count => {
                            list.push(Caller::Service(*caller));
                        }
                        Principal::Namespace(ns) => {
                            if let Some(ns) = namespaces.get(ns.as_str()) {
                                list.push(Caller::Namespace(*ns));
                            }
                        }
                        // Not followed: see the module's documentation.
                        Principal::Service(_)
                        | Principal::Gateway(_)
                        | Principal::Any
                        | Principal::Authenticated => {}
                    }
                }
            }
            list.sort_unstable();
            list.dedup();
            for caller in &list {
                let callees = match caller {
                    Caller::Service(id) => direct_callees.get_mut(id.0 as usize),
                    Caller::Namespace(ns) => namespace_callees.get_mut(*ns),
                };
                if let Some(callees) = callees {
                    callees.push(callee);
                }
            }
            if let Some(slot) = callers.get_mut(index) {
                *slot = list;
            }
        }
        CallGraph {
            callers,
            direct_callees,
            namespace_callees,
            members,
            namespace_of,
        }
    }

    /// Who may call `service`, as its policy names them (it may name `service` itself).
    pub fn callers(&self, service: ServiceId) -> &[Caller] {
        self.callers
            .get(service.0 as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// The services of namespace `ns`.
    pub fn members(&self, ns: usize) -> &[ServiceId] {
        self.members.get(ns).map_or(&[], Vec::as_slice)
    }

    /// Number of namespaces.
    pub fn namespaces(&self) -> usize {
        self.members.len()
    }

    /// The namespace of `service`.
    pub fn namespace_of(&self, service: ServiceId) -> usize {
        self.namespace_of
            .get(service.0 as usize)
            .copied()
            .unwrap_or(usize::MAX)
    }

    /// The services whose policies name `service` (it may be among them).
    pub fn direct_callees(&self, service: ServiceId) -> &[ServiceId] {
        self.direct_callees
            .get(service.0 as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// The services whose policies name namespace `ns`.
    pub fn namespace_callees(&self, ns: usize) -> &[ServiceId] {
        self.namespace_callees.get(ns).map_or(&[], Vec::as_slice)
    }
}

/// What a retry setting does; `None` for `retry none` and dangling profiles.
pub fn retry_policy<'a>(mesh: &'a Mesh, retry: &'a RetryUse) -> Option<&'a RetryPolicy> {
    match retry {
        RetryUse::Profile(id) => mesh.retries.get(id.0 as usize).map(|p| &p.policy),
        RetryUse::Inline(policy) => Some(policy),
        RetryUse::Disabled => None,
    }
}

/// How a service is named in a message: `name`, or `namespace/name` when `qualified`.
pub fn service_name(service: &Service, qualified: bool) -> String {
    if qualified {
        service.key()
    } else {
        service.name.clone()
    }
}
