//! W0004: retries that multiply along a call chain. When A calls B, B calls C, and the
//! routes of B and C retry 3 times each, one request to A can become 3 tries of B and
//! 9 of C: while C is failing, every layer above it multiplies the load on it.
//!
//! The chains follow the explicit call graph ([`CallGraph`]: callers named by service or
//! namespace; `any`, `authenticated` and default-allow would chain everything to
//! everything). Calling T costs up to `multiplier(T)` tries — the largest `attempts` of
//! T's route (its retry and every rule's) — and a chain A → B → C costs
//! `multiplier(B) × multiplier(C)` tries of C.
//!
//! The worst chain ending at each service is found by one depth-first search over the
//! callers, memoising each service's worst product and its predecessor on that chain:
//! O(services + `from` entries), a namespace caller costing its member count until every
//! member is done and O(1) after. Callers already on the search stack are skipped, so a
//! chain never repeats a service. On a DAG this is exact; in a cycle it finds a valid but
//! possibly not the worst chain (the worst simple path is NP-hard in general) — it never
//! warns about a chain that does not exist.
//!
//! The worst chains form a forest (each one extends its predecessor's), so every worst
//! chain above the limit crosses it at exactly one service: the warning goes there, at
//! the retry setting that pushes the product over the limit, once for all the chains
//! that continue below it.

use mesh_lang::Diagnostic;

use crate::diag::{Finding, RETRY_AMPLIFICATION};
use crate::ir::{Mesh, Origin, Service, ServiceId};

use super::call_graph::{CallGraph, Caller, retry_policy, service_name};

/// Tries of one service per request above this are reported.
const LIMIT: u64 = 10;
/// Products saturate here (a chain of 10,000 services would overflow anything).
const CAP: u64 = 1_000_000_000_000_000_000;
/// Runs of this many or more services without retries are shortened in messages.
const ELIDE_RUN: usize = 3;

/// The worst chain found ending at a service.
#[derive(Clone, Copy, Debug)]
struct Worst {
    /// Tries of the service per request entering the chain.
    product: u64,
    /// Services on the chain, this one included.
    len: u32,
    /// The previous service on the chain; `None` when the chain starts here.
    pred: Option<ServiceId>,
}

/// A candidate predecessor: its product, its chain length, and itself.
type Candidate = (u64, u32, ServiceId);

fn better(a: Candidate, b: Option<Candidate>) -> bool {
    b.is_none_or(|b| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Active,
    Done,
}

/// One service being searched: the next caller group (and member of a namespace group)
/// to look at, and the best predecessor so far.
struct Frame {
    node: ServiceId,
    group: usize,
    member: usize,
    best: Option<Candidate>,
}

impl Frame {
    fn new(node: ServiceId) -> Frame {
        Frame {
            node,
            group: 0,
            member: 0,
            best: None,
        }
    }
}

pub fn check(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let graph = CallGraph::new(mesh);
    let count = mesh.services.len();
    let multipliers: Vec<(u32, Option<Origin>)> =
        mesh.services.iter().map(|s| multiplier(mesh, s)).collect();
    let mult = |id: ServiceId| multipliers.get(id.0 as usize).map_or(1, |m| m.0);

    let mut state = vec![State::New; count];
    let mut worst: Vec<Option<Worst>> = vec![None; count];
    let mut order: Vec<ServiceId> = Vec::with_capacity(count);
    let mut namespace_done = vec![0usize; graph.namespaces()];
    let mut namespace_best: Vec<Option<Candidate>> = vec![None; graph.namespaces()];
    let mut stack: Vec<Frame> = Vec::new();

    for root in 0..count {
        let root = ServiceId(root as u32);
        if state.get(root.0 as usize) != Some(&State::New) {
            continue;
        }
        set(&mut state, root, State::Active);
        stack.push(Frame::new(root));
        while let Some(frame) = stack.last_mut() {
            let callers = graph.callers(frame.node);
            // The next caller that still has to be searched, if any.
            let mut next = None;
            // Looks at one caller: offers it as predecessor when done, or asks for it to
            // be searched first; a caller on the stack (a cycle) is skipped.
            let mut look = |frame: &mut Frame, caller: ServiceId| -> bool {
                if caller == frame.node {
                    return true;
                }
                match state.get(caller.0 as usize) {
                    Some(State::New) => {
                        next = Some(caller);
                        false
                    }
                    Some(State::Done) => {
                        if let Some(w) = worst.get(caller.0 as usize).copied().flatten() {
                            let candidate = (w.product, w.len, caller);
                            if better(candidate, frame.best) {
                                frame.best = Some(candidate);
                            }
                        }
                        true
                    }
                    Some(State::Active) | None => true,
                }
            };
            while let Some(group) = callers.get(frame.group) {
                match *group {
                    Caller::Service(caller) => {
                        if !look(frame, caller) {
                            break;
                        }
                    }
                    Caller::Namespace(ns) => {
                        let cached = namespace_best.get(ns).copied().flatten();
                        if let (0, Some(candidate)) = (frame.member, cached) {
                            // Every member is done: their best never changes again.
                            if better(candidate, frame.best) && candidate.2 != frame.node {
                                frame.best = Some(candidate);
                            }
                        } else {
                            let members = graph.members(ns);
                            let mut searching = false;
                            while let Some(member) = members.get(frame.member) {
                                if !look(frame, *member) {
                                    searching = true;
                                    break;
                                }
                                frame.member += 1;
                            }
                            if searching {
                                break;
                            }
                            frame.member = 0;
                        }
                    }
                }
                frame.group += 1;
            }
            if let Some(caller) = next {
                set(&mut state, caller, State::Active);
                stack.push(Frame::new(caller));
                continue;
            }
            let Some(frame) = stack.pop() else {
                break;
            };
            let node = frame.node;
            let found = match frame.best {
                Some((product, len, pred)) => Worst {
                    product: product.saturating_mul(u64::from(mult(node))).min(CAP),
                    len: len.saturating_add(1),
                    pred: Some(pred),
                },
                None => Worst {
                    product: 1,
                    len: 1,
                    pred: None,
                },
            };
            if let Some(slot) = worst.get_mut(node.0 as usize) {
                *slot = Some(found);
            }
            set(&mut state, node, State::Done);
            order.push(node);
            let ns = graph.namespace_of(node);
            if let Some(done) = namespace_done.get_mut(ns) {
                *done += 1;
                if *done == graph.members(ns).len() {
                    let mut best = None;
                    for member in graph.members(ns) {
                        if let Some(w) = worst.get(member.0 as usize).copied().flatten() {
                            let candidate = (w.product, w.len, *member);
                            if better(candidate, best) {
                                best = Some(candidate);
                            }
                        }
                    }
                    if let Some(slot) = namespace_best.get_mut(ns) {
                        *slot = best;
                    }
                }
            }
        }
    }

    // Where each worst chain above the limit crosses it, in finishing order (a
    // predecessor always finishes first), and the worst chain below each crossing.
    let product_of = |id: ServiceId| {
        worst
            .get(id.0 as usize)
            .copied()
            .flatten()
            .map_or(1, |w| w.product)
    };
    let mut crossing: Vec<Option<ServiceId>> = vec![None; count];
    let mut furthest: Vec<Option<ServiceId>> = vec![None; count];
    for node in &order {
        let Some(w) = worst.get(node.0 as usize).copied().flatten() else {
            continue;
        };
        if w.product <= LIMIT {
            continue;
        }
        let at = match w.pred {
            Some(pred) if product_of(pred) > LIMIT => {
                crossing.get(pred.0 as usize).copied().flatten()
            }
            _ => Some(*node),
        };
        let Some(at) = at else {
            continue;
        };
        if let Some(slot) = crossing.get_mut(node.0 as usize) {
            *slot = Some(at);
        }
        if let Some(slot) = furthest.get_mut(at.0 as usize) {
            let replace = match *slot {
                None => true,
                Some(current) => {
                    let c = worst.get(current.0 as usize).copied().flatten();
                    c.is_none_or(|c| {
                        w.product > c.product || (w.product == c.product && w.len > c.len)
                    })
                }
            };
            if replace {
                *slot = Some(*node);
            }
        }
    }

    for (index, service) in mesh.services.iter().enumerate() {
        let id = ServiceId(index as u32);
        if crossing.get(index).copied().flatten() != Some(id) {
            continue;
        }
        let chain = chain_to(&worst, id);
        let Some((_, Some(origin))) = multipliers.get(index).copied() else {
            continue;
        };
        let qualified = chain.windows(2).any(|w| {
            mesh.service(w[0]).map(|s| &s.namespace) != mesh.service(w[1]).map(|s| &s.namespace)
        });
        let name = |id: ServiceId| {
            mesh.service(id)
                .map_or_else(String::new, |s| service_name(s, qualified))
        };
        let product = product_of(id);
        let factors: Vec<String> = shown(&chain, &mult)
            .iter()
            .skip(1)
            .filter_map(|s| match s {
                Shown::Service(id) => Some(mult(*id).to_string()),
                Shown::Elided(_) => None,
            })
            .collect();
        let path: Vec<String> = shown(&chain, &mult)
            .iter()
            .map(|s| match s {
                Shown::Service(id) => name(*id),
                Shown::Elided(n) => format!("({n} more without retries)"),
            })
            .collect();
        let mut d = Diagnostic::warning(
            RETRY_AMPLIFICATION,
            format!(
                "retries multiply along {}: {} = {product} tries of {} per request",
                path.join(" → "),
                factors.join(" × "),
                name(id)
            ),
            origin.span,
            format!(
                "{} tries of `{}` take it past {LIMIT}×",
                mult(id),
                service.name
            ),
        );
        for hop in chain.iter().skip(1).filter(|h| **h != id) {
            let Some((m, Some(o))) = multipliers.get(hop.0 as usize).copied() else {
                continue;
            };
            if m > 1 {
                d = d.with_label_in(o.file, o.span, format!("{m} tries of `{}`", name(*hop)));
            }
        }
        let mut help = String::from(
            "every hop retries on its own, so tries multiply down the chain: retry at one hop only (the one nearest the failure), lower `attempts` elsewhere, or give the retries a `budget` so they cannot add more than a share of the load",
        );
        if let Some(last) = furthest.get(index).copied().flatten().filter(|l| *l != id) {
            let tries = product_of(last);
            let tries = if tries >= CAP {
                format!("over {CAP}")
            } else {
                tries.to_string()
            };
            help = format!(
                "the chain goes on to {tries} tries of `{}` per request; {help}",
                name(last)
            );
        }
        findings.push(Finding {
            file: origin.file,
            diagnostic: d.with_help(help),
        });
    }
}

fn set(state: &mut [State], id: ServiceId, to: State) {
    if let Some(slot) = state.get_mut(id.0 as usize) {
        *slot = to;
    }
}

/// The most tries of `service` a caller makes: the largest `attempts` among its route's
/// retry and its rules' (1 without a route or retries), and where that retry is written.
fn multiplier(mesh: &Mesh, service: &Service) -> (u32, Option<Origin>) {
    let Some(route) = &service.route else {
        return (1, None);
    };
    let mut best = (1, None);
    let settings = std::iter::once((&route.retry, route.retry_origin))
        .chain(route.rules.iter().map(|r| (&r.retry, r.retry_origin)));
    for (retry, origin) in settings {
        let attempts = retry
            .as_ref()
            .and_then(|r| retry_policy(mesh, r))
            .map_or(1, |p| p.attempts);
        if attempts > best.0 {
            best = (attempts, origin.or(Some(route.origin)));
        }
    }
    best
}

/// The worst chain ending at `id`, from its first service.
fn chain_to(worst: &[Option<Worst>], id: ServiceId) -> Vec<ServiceId> {
    let mut chain = vec![id];
    let mut at = id;
    while let Some(pred) = worst
        .get(at.0 as usize)
        .copied()
        .flatten()
        .and_then(|w| w.pred)
    {
        if chain.len() > worst.len() {
            break;
        }
        chain.push(pred);
        at = pred;
    }
    chain.reverse();
    chain
}

/// A chain as a message shows it.
enum Shown {
    Service(ServiceId),
    /// This many services without retries in a row.
    Elided(usize),
}

/// The chain with long runs of services without retries (between the first and the
/// last) shortened.
fn shown(chain: &[ServiceId], mult: &impl Fn(ServiceId) -> u32) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut run: Vec<ServiceId> = Vec::new();
    let last = chain.len().saturating_sub(1);
    for (i, id) in chain.iter().enumerate() {
        if i > 0 && i < last && mult(*id) == 1 {
            run.push(*id);
            continue;
        }
        flush(&mut out, &mut run);
        out.push(Shown::Service(*id));
    }
    flush(&mut out, &mut run);
    out
}

fn flush(out: &mut Vec<Shown>, run: &mut Vec<ServiceId>) {
    if run.len() >= ELIDE_RUN {
        out.push(Shown::Elided(run.len()));
    } else {
        out.extend(run.iter().map(|id| Shown::Service(*id)));
    }
    run.clear();
}
