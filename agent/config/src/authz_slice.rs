//! The fast path of [`Config::authorize`](crate::Config::authorize): a workload's Cedar
//! policies are analysed once, at load, so that a request is evaluated against only the
//! policies that can apply to its caller and its action (a *slice*), each with its scope —
//! already known to hold — left out, and with a context that carries only the attributes
//! the slice's policies read.
//!
//! Why the answer is Cedar's on the whole policy set: a policy is left out of a slice only
//! when its scope cannot hold for the slice's callers and action, or when the first
//! conjunct of its first `when` is a test of the principal that cannot hold (`meshc` puts
//! `principal == …` there). Cedar evaluates a policy as `scope && when && …` from the left
//! and stops at the first `false`, and neither a scope nor such a principal test can fail,
//! so a left-out policy is one Cedar finds unsatisfied without an error. A context
//! attribute (or a key of `headers`, `has_headers`, `query`, `has_query`, `matched`) is left
//! out only when no policy of the slice reads it; any other use of `context` keeps all of
//! it. `tests/authz_differential.rs` checks decisions, deciding policies and errors against
//! plain Cedar over generated policy sets.
//!
//! Slices are built on first use per (class of caller, action) and kept, up to
//! [`MAX_SLICES`]: callers are classed by what the policies can tell apart — the
//! principal's type, and the principal and its namespace when a policy names them — so
//! all the callers a policy set does not name share one slice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cedar_policy::{
    ActionConstraint, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
};
use serde_json::{Value, json};

/// How many slices a policy set keeps (each holds clones of at most every policy, which
/// share their expressions); past it the cache starts over.
pub(crate) const MAX_SLICES: usize = 4096;

/// How many decisions a policy set remembers; past it the memo starts over.
pub(crate) const MAX_MEMO: usize = 4096;

/// The longest memo key kept: a request whose values read by the policies are long is
/// decided afresh every time rather than fill the memo.
pub(crate) const MAX_MEMO_KEY: usize = 512;

/// Decisions already made, by a key of exactly what they depend on (`authz::memo_key`).
/// It lives in the compiled config, so a reload starts with an empty one.
#[derive(Debug)]
pub(crate) struct Memo<T> {
    entries: Mutex<HashMap<Box<str>, T>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Memo<T> {
        Memo {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Memo<T> {
    pub(crate) fn get(&self, key: &str) -> Option<T> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    pub(crate) fn insert(&self, key: String, value: &T) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_MEMO {
            entries.clear();
        }
        entries.insert(key.into_boxed_str(), value.clone());
    }
}

/// What a policy's principal scope admits.
#[derive(Debug)]
enum PrincipalScope {
    Any,
    Is(EntityTypeName),
    Eq(EntityUid),
    In(EntityUid),
    IsIn(EntityTypeName, EntityUid),
}

/// One policy, analysed at load.
#[derive(Debug)]
pub(crate) struct Analysed {
    /// The policy as it is evaluated once its scope is known to hold: the same id and
    /// conditions, with `principal`, `action` and `resource` unconstrained.
    bare: Policy,
    principal: PrincipalScope,
    /// When the first `when` starts with a test of the principal: the entities the
    /// principal must be, or be a member of, for the policy to hold.
    guard: Option<Vec<EntityUid>>,
    /// The actions the scope admits (actions have no parents, so `in` is equality);
    /// `None` for any action.
    actions: Option<Vec<EntityUid>>,
    /// Tests of headers and query parameters that follow (first in the `when`, or right
    /// after its principal test), up to the first conjunct of another kind: when one is
    /// false, Cedar finds the policy unsatisfied without evaluating anything that can fail.
    guards: Vec<Guard>,
    reads: Reads,
}

/// A test of the request at the start of a policy's first `when`, decided without Cedar.
/// The name is one the config lists, so the context carries it (a key it lacks would be
/// an error, not a false test).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Guard {
    /// `context.has_headers.contains("NAME")` (`None`), or `context.headers["NAME"] ==
    /// "VALUE"` (the context holds `""` for an absent header).
    Header(String, Option<String>),
    /// The same for `has_query` and `query`.
    Query(String, Option<String>),
}

impl Analysed {
    /// Analyses `policy`, whose resource scope is known to hold for this workload.
    pub(crate) fn new(policy: &Policy, names: &Names) -> Analysed {
        let principal = match policy.principal_constraint() {
            PrincipalConstraint::Any => PrincipalScope::Any,
            PrincipalConstraint::Is(t) => PrincipalScope::Is(t),
            PrincipalConstraint::Eq(e) => PrincipalScope::Eq(e),
            PrincipalConstraint::In(e) => PrincipalScope::In(e),
            PrincipalConstraint::IsIn(t, e) => PrincipalScope::IsIn(t, e),
        };
        let actions = match policy.action_constraint() {
            ActionConstraint::Any => None,
            ActionConstraint::Eq(a) => Some(vec![a]),
            ActionConstraint::In(list) => Some(list),
        };
        let est = policy.to_json().ok();
        let conditions = est
            .as_ref()
            .and_then(|est| est.get("conditions"))
            .and_then(Value::as_array);
        let first_when = conditions
            .and_then(|c| c.first())
            .filter(|c| c.get("kind").and_then(Value::as_str) == Some("when"))
            .and_then(|c| c.get("body"));
        let guard = first_when.and_then(leftmost_principal_test);
        let chain = first_when.map(conjuncts).unwrap_or_default();
        let guards = chain
            .iter()
            .skip(usize::from(guard.is_some()))
            .map_while(|c| request_guard(c, names))
            .collect();
        let mut reads = Reads::default();
        match conditions {
            Some(conditions) => {
                for condition in conditions {
                    walk(condition.get("body").unwrap_or(&Value::Null), &mut reads);
                }
            }
            None => reads.everything = true,
        }
        // Without the scope the policy must still be the same policy to Cedar; if the
        // round trip fails, keep the scope (Cedar checks it again: slower, as exact).
        let bare = est
            .and_then(|mut est| {
                let object = est.as_object_mut()?;
                for part in ["principal", "action", "resource"] {
                    object.insert(part.into(), json!({ "op": "All" }));
                }
                Policy::from_json(Some(policy.id().clone()), est).ok()
            })
            .unwrap_or_else(|| policy.clone());
        Analysed {
            bare,
            principal,
            guard,
            actions,
            guards,
            reads,
        }
    }

    fn admits(&self, caller: &Caller<'_>, action: &EntityUid) -> bool {
        let is_or_in = |e: &EntityUid| caller.principal == e || caller.namespace == Some(e);
        let scope = match &self.principal {
            PrincipalScope::Any => true,
            PrincipalScope::Is(t) => caller.type_name == t,
            PrincipalScope::Eq(e) => caller.principal == e,
            PrincipalScope::In(e) => is_or_in(e),
            PrincipalScope::IsIn(t, e) => caller.type_name == t && is_or_in(e),
        };
        scope
            && self.guard.as_ref().is_none_or(|g| g.iter().any(is_or_in))
            && self.actions.as_ref().is_none_or(|a| a.contains(action))
    }

    /// The entities and types this policy can tell callers apart by.
    fn names(&self) -> (Vec<&EntityUid>, Option<&EntityTypeName>) {
        let mut entities: Vec<&EntityUid> = self.guard.iter().flatten().collect();
        let type_name = match &self.principal {
            PrincipalScope::Any => None,
            PrincipalScope::Is(t) => Some(t),
            PrincipalScope::Eq(e) | PrincipalScope::In(e) => {
                entities.push(e);
                None
            }
            PrincipalScope::IsIn(t, e) => {
                entities.push(e);
                Some(t)
            }
        };
        (entities, type_name)
    }
}

/// The leftmost conjunct of a `when` body, if it is a test of the principal (`principal ==
/// E`, `principal in E`, `principal is T in E`, or a disjunction of them): the entities.
fn leftmost_principal_test(body: &Value) -> Option<Vec<EntityUid>> {
    match body.get("&&") {
        Some(and) => leftmost_principal_test(and.get("left")?),
        None => principal_test(body),
    }
}

/// The conjuncts of `a && b && c` (parsed as `(a && b) && c`), in the order Cedar
/// evaluates them.
fn conjuncts(e: &Value) -> Vec<&Value> {
    let split = e
        .get("&&")
        .and_then(|and| Some((and.get("left")?, and.get("right")?)));
    match split {
        Some((left, right)) => {
            let mut list = conjuncts(left);
            list.push(right);
            list
        }
        None => vec![e],
    }
}

/// `context.has_headers.contains("H")`, `context.headers["H"] == "V"` (or `"V" == …`), and
/// the same for the query, for a listed H.
fn request_guard(e: &Value, names: &Names) -> Option<Guard> {
    let guard = |attr: &str, key: &str, value: Option<&str>| {
        let value = value.map(str::to_string);
        match attr {
            "has_headers" | "headers" if names.headers.iter().any(|h| h == key) => {
                Some(Guard::Header(key.to_string(), value))
            }
            "has_query" | "query" if names.query.iter().any(|q| q == key) => {
                Some(Guard::Query(key.to_string(), value))
            }
            _ => None,
        }
    };
    if let Some(contains) = e.get("contains") {
        let attr = context_attr(contains.get("left")?)?;
        let key = contains.get("right")?.get("Value")?.as_str()?;
        return matches!(attr, "has_headers" | "has_query")
            .then(|| guard(attr, key, None))
            .flatten();
    }
    let eq = e.get("==")?;
    let (left, right) = (eq.get("left")?, eq.get("right")?);
    let (read, literal) = match right.get("Value").and_then(Value::as_str) {
        Some(literal) => (left, literal),
        None => (right, left.get("Value")?.as_str()?),
    };
    let read = read.get(".")?;
    let attr = context_attr(read.get("left")?)?;
    let key = read.get("attr")?.as_str()?;
    matches!(attr, "headers" | "query")
        .then(|| guard(attr, key, Some(literal)))
        .flatten()
}

fn principal_test(e: &Value) -> Option<Vec<EntityUid>> {
    if let Some(or) = e.get("||") {
        let mut left = principal_test(or.get("left")?)?;
        left.extend(principal_test(or.get("right")?)?);
        return Some(left);
    }
    if let Some(is) = e.get("is") {
        is_var(is.get("left")?, "principal").then_some(())?;
        return Some(vec![entity_literal(is.get("in")?)?]);
    }
    for op in ["==", "in"] {
        if let Some(test) = e.get(op) {
            let (left, right) = (test.get("left")?, test.get("right")?);
            let entity = if is_var(left, "principal") {
                right
            } else if op == "==" && is_var(right, "principal") {
                left
            } else {
                return None;
            };
            return Some(vec![entity_literal(entity)?]);
        }
    }
    None
}

/// `{"Value": {"__entity": {"type": T, "id": I}}}` → the entity.
fn entity_literal(e: &Value) -> Option<EntityUid> {
    let value = e.get("Value")?;
    let entity = value.get("__entity").unwrap_or(value);
    let type_name: EntityTypeName = entity.get("type")?.as_str()?.parse().ok()?;
    let id = entity.get("id")?.as_str()?;
    Some(EntityUid::from_type_name_and_id(
        type_name,
        cedar_policy::EntityId::new(id),
    ))
}

fn is_var(e: &Value, name: &str) -> bool {
    e.as_object().is_some_and(|o| o.len() == 1)
        && e.get("Var").and_then(Value::as_str) == Some(name)
}

/// What a policy reads from the context: top-level attributes, and for the records and
/// sets the keys it looks up.
#[derive(Clone, Debug, Default)]
struct Reads {
    /// `context` is used otherwise than through `context.ATTR`: keep all of it.
    everything: bool,
    attrs: BTreeMap<String, Keys>,
}

#[derive(Clone, Debug, Default)]
struct Keys {
    /// The attribute is used otherwise than by key: keep all its keys.
    whole: bool,
    keys: BTreeSet<String>,
}

impl Reads {
    fn merge(&mut self, other: &Reads) {
        self.everything |= other.everything;
        for (attr, keys) in &other.attrs {
            let mine = self.attrs.entry(attr.clone()).or_default();
            mine.whole |= keys.whole;
            mine.keys.extend(keys.keys.iter().cloned());
        }
    }
}

/// Records what `e` reads from the context. Every read of the context goes through
/// `{"Var": "context"}`; one not in a recognized form reads everything.
fn walk(e: &Value, reads: &mut Reads) {
    if reads.everything {
        return;
    }
    match e {
        Value::Object(map) => {
            if is_var(e, "context") {
                reads.everything = true;
            } else if let Some((attr, key)) = keyed_read(e) {
                let keys = reads.attrs.entry(attr.to_string()).or_default();
                keys.keys.insert(key.to_string());
            } else if let Some(attr) = attr_read(e) {
                reads.attrs.entry(attr.to_string()).or_default().whole = true;
            } else {
                for value in map.values() {
                    walk(value, reads);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, reads);
            }
        }
        _ => {}
    }
}

/// `context.ATTR` or `context has ATTR`: ATTR.
fn attr_read(e: &Value) -> Option<&str> {
    [".", "has"].into_iter().find_map(|op| {
        let inner = e.get(op)?;
        is_var(inner.get("left")?, "context").then_some(())?;
        inner.get("attr")?.as_str()
    })
}

/// `context.ATTR` (not `has`): ATTR.
fn context_attr(e: &Value) -> Option<&str> {
    let inner = e.get(".")?;
    is_var(inner.get("left")?, "context").then_some(())?;
    inner.get("attr")?.as_str()
}

/// `context.ATTR["KEY"]`, `context.ATTR has "KEY"` or `context.ATTR.contains("KEY")`:
/// (ATTR, KEY).
fn keyed_read(e: &Value) -> Option<(&str, &str)> {
    for op in [".", "has"] {
        if let Some(inner) = e.get(op) {
            let attr = context_attr(inner.get("left")?)?;
            return Some((attr, inner.get("attr")?.as_str()?));
        }
    }
    let inner = e.get("contains")?;
    let attr = context_attr(inner.get("left")?)?;
    Some((attr, inner.get("right")?.get("Value")?.as_str()?))
}

/// Which parts of the context a slice's policies read, as indexes into the workload's
/// lists of headers, query parameters and pattern keys. `None`: the attribute is left out.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContextPlan {
    /// Build the whole context.
    pub(crate) everything: bool,
    pub(crate) path: bool,
    pub(crate) host: bool,
    pub(crate) port: bool,
    pub(crate) headers: Option<Vec<usize>>,
    pub(crate) has_headers: Option<Vec<usize>>,
    pub(crate) query: Option<Vec<usize>>,
    pub(crate) has_query: Option<Vec<usize>>,
    pub(crate) matched: Option<Vec<usize>>,
}

impl ContextPlan {
    /// The whole context.
    pub(crate) fn everything() -> ContextPlan {
        ContextPlan {
            everything: true,
            ..ContextPlan::default()
        }
    }
}

/// The names the context's records are keyed by, in the config's order.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) headers: Vec<String>,
    pub(crate) query: Vec<String>,
    pub(crate) patterns: Vec<String>,
}

fn plan(reads: &Reads, names: &Names) -> ContextPlan {
    if reads.everything {
        return ContextPlan::everything();
    }
    let pick = |attr: &str, list: &[String]| {
        reads.attrs.get(attr).map(|keys| {
            list.iter()
                .enumerate()
                .filter(|(_, name)| keys.whole || keys.keys.contains(*name))
                .map(|(i, _)| i)
                .collect()
        })
    };
    ContextPlan {
        everything: false,
        path: reads.attrs.contains_key("path"),
        host: reads.attrs.contains_key("host"),
        port: reads.attrs.contains_key("port"),
        headers: pick("headers", &names.headers),
        has_headers: pick("has_headers", &names.headers),
        query: pick("query", &names.query),
        has_query: pick("has_query", &names.query),
        matched: pick("matched", &names.patterns),
    }
}

/// The policies that can apply to one class of callers and one action, scopes removed,
/// and the context they read.
#[derive(Debug)]
pub(crate) struct Slice {
    pub(crate) set: PolicySet,
    pub(crate) plan: ContextPlan,
    /// The distinct guards of the slice's policies (at most 64).
    pub(crate) guards: Vec<Guard>,
    /// Each policy, with the guards it needs (bit i: `guards[i]`).
    members: Vec<(Policy, u64)>,
    /// The policies left by a set of guards that hold, by that set (bounded).
    pruned: RwLock<HashMap<u64, Arc<PolicySet>>>,
}

/// How many pruned sets a slice keeps; past it they start over.
const MAX_PRUNED: usize = 64;

impl Slice {
    /// The slice's policies whose guards all hold, given the guards that do (`held`, bit
    /// i for `guards[i]`); `None` when that is all of them (use `set`).
    pub(crate) fn pruned(&self, held: u64) -> Option<Arc<PolicySet>> {
        if self.members.iter().all(|(_, needs)| needs & !held == 0) {
            return None;
        }
        if let Some(set) = self
            .pruned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&held)
        {
            return Some(Arc::clone(set));
        }
        let mut set = PolicySet::new();
        for (policy, needs) in &self.members {
            if needs & !held == 0 {
                set.add(policy.clone()).ok()?;
            }
        }
        let set = Arc::new(set);
        let mut pruned = self.pruned.write().unwrap_or_else(PoisonError::into_inner);
        if pruned.len() >= MAX_PRUNED {
            pruned.clear();
        }
        pruned.insert(held, Arc::clone(&set));
        Some(set)
    }
}

/// The caller of a request, as the slices see it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller<'a> {
    pub(crate) type_name: &'a EntityTypeName,
    pub(crate) principal: &'a EntityUid,
    pub(crate) namespace: Option<&'a EntityUid>,
}

/// A class of callers and an action: callers of one class are admitted by the same
/// policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SliceKey {
    /// The principal's type, by its index among the types policies test (`None`: another).
    type_name: Option<usize>,
    /// The principal, by its index among the entities policies name (`None`: not named).
    principal: Option<usize>,
    /// The principal's namespace, likewise.
    namespace: Option<usize>,
    action: usize,
}

/// A workload's policies, analysed, and the slices built from them so far.
#[derive(Debug)]
pub(crate) struct Slices {
    policies: Vec<Analysed>,
    names: Names,
    /// The known actions, by index (`CedarState::actions`' order).
    actions: Vec<EntityUid>,
    /// The entities principal scopes and guards name.
    entities: HashMap<EntityUid, usize>,
    /// The types principal scopes test.
    types: Vec<EntityTypeName>,
    built: RwLock<HashMap<SliceKey, Arc<Slice>>>,
}

impl Slices {
    pub(crate) fn new(policies: Vec<Analysed>, names: Names, actions: Vec<EntityUid>) -> Slices {
        let mut entities = HashMap::new();
        let mut types = Vec::new();
        for policy in &policies {
            let (named, type_name) = policy.names();
            for entity in named {
                let next = entities.len();
                entities.entry(entity.clone()).or_insert(next);
            }
            if let Some(t) = type_name
                && !types.contains(t)
            {
                types.push(t.clone());
            }
        }
        Slices {
            policies,
            names,
            actions,
            entities,
            types,
            built: RwLock::new(HashMap::new()),
        }
    }

    /// The slice for `caller` and the known action `action`; `None` for an unknown action
    /// index or a slice that cannot be built (the caller then evaluates everything).
    pub(crate) fn get(&self, caller: Caller<'_>, action: usize) -> Option<Arc<Slice>> {
        let key = SliceKey {
            type_name: self.types.iter().position(|t| t == caller.type_name),
            principal: self.entities.get(caller.principal).copied(),
            namespace: caller
                .namespace
                .and_then(|namespace| self.entities.get(namespace).copied()),
            action,
        };
        if let Some(slice) = self
            .built
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Some(Arc::clone(slice));
        }
        let slice = Arc::new(self.build(caller, self.actions.get(action)?)?);
        let mut built = self.built.write().unwrap_or_else(PoisonError::into_inner);
        if built.len() >= MAX_SLICES {
            built.clear();
        }
        built.insert(key, Arc::clone(&slice));
        Some(slice)
    }

    fn build(&self, caller: Caller<'_>, action: &EntityUid) -> Option<Slice> {
        let mut set = PolicySet::new();
        let mut reads = Reads::default();
        let mut guards: Vec<Guard> = Vec::new();
        let mut members = Vec::new();
        for policy in &self.policies {
            if policy.admits(&caller, action) {
                set.add(policy.bare.clone()).ok()?;
                reads.merge(&policy.reads);
                let mut needs = 0u64;
                for guard in &policy.guards {
                    let index = match guards.iter().position(|g| g == guard) {
                        Some(index) => index,
                        None if guards.len() < 64 => {
                            guards.push(guard.clone());
                            guards.len() - 1
                        }
                        // Beyond 64 guards, the rest are left to Cedar.
                        None => continue,
                    };
                    needs |= bit(index);
                }
                members.push((policy.bare.clone(), needs));
            }
        }
        Some(Slice {
            set,
            plan: plan(&reads, &self.names),
            guards,
            members,
            pruned: RwLock::new(HashMap::new()),
        })
    }
}

/// `1 << index` (0 past 63).
pub(crate) fn bit(index: usize) -> u64 {
    u32::try_from(index)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
}
