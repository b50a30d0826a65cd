//! Authorization: a workload's Cedar policy set decides each inbound request. The principal
//! is the caller's verified identity (`Mesh::Service::"NAMESPACE/SERVICE_ACCOUNT"`, a member
//! of `Mesh::Namespace::"NAMESPACE"`), or `Mesh::Anonymous` for plaintext and unverifiable
//! callers; the action is `Mesh::Action::"METHOD"` (`Mesh::Action::"TCP"` for an opaque
//! TCP connection); the resource is this workload; the context carries the destination
//! port, the path, host, the headers and query parameters the policies read, and the
//! results of their regexes (empty for TCP connections).

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicyId, PolicySet, Request, ResourceConstraint, RestrictedExpression,
};
use mesh_vocab::SpiffeId;
use regex::Regex;

use crate::authz_slice::{Analysed, Caller, ContextPlan, Guard, Memo, Names, Slices, bit};
use crate::config::{Config, ConfigError};
use crate::request::RequestView;
use crate::schema::{Attr, Authz, PolicyMode, WorkloadConfig};

#[derive(Debug)]
pub(crate) enum CompiledAuthz {
    AllowAll,
    DenyAll,
    Cedar(Box<CedarState>),
}

/// The policy set, and its slices: a request evaluates only the policies that can apply to
/// its caller and action, with the context they read (see `authz_slice`). A policy whose
/// scope does not match is not satisfied and cannot fail (Cedar tests the scope before the
/// conditions), so leaving it out changes neither the decision, nor the deciding policies,
/// nor the errors.
#[derive(Debug)]
pub(crate) struct CedarState {
    mode: PolicyMode,
    /// Every policy that can apply to this workload, as written: what a request with a
    /// method or a caller the slices do not cover is evaluated against.
    full: PolicySet,
    slices: Slices,
    memo: Memo<AuthzDecision>,
    authorizer: Authorizer,
    resource: EntityUid,
    headers: Vec<String>,
    query: Vec<String>,
    patterns: Vec<(String, Attr, Regex)>,
    actions: Vec<(String, EntityUid)>,
}

fn uid(type_name: &str, id: &str) -> Option<EntityUid> {
    let type_name = EntityTypeName::from_str(type_name).ok()?;
    Some(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}

impl CompiledAuthz {
    pub(crate) fn new(config: &WorkloadConfig) -> Result<CompiledAuthz, ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            at: "inbound.authz".into(),
            problem,
        };
        let cedar = match &config.inbound.authz {
            Authz::AllowAll => return Ok(CompiledAuthz::AllowAll),
            Authz::DenyAll => return Ok(CompiledAuthz::DenyAll),
            Authz::Cedar(cedar) => cedar,
        };
        let parsed = PolicySet::from_str(&cedar.policies)
            .map_err(|e| invalid(format!("Cedar policies do not parse: {e}")))?;
        let id = SpiffeId::parse(&config.workload.identity).map_err(|e| {
            invalid(format!(
                "workload identity `{}` is not a SPIFFE id: {}",
                config.workload.identity,
                e.kind()
            ))
        })?;
        let (ns, sa) = (id.namespace(), id.service_account());
        let resource = uid("Mesh::Service", &format!("{ns}/{sa}"))
            .ok_or_else(|| invalid("bad resource id".into()))?;
        // Policies are known by their `@id` annotation, so decisions name their source.
        let mut all = PolicySet::new();
        let mut full = PolicySet::new();
        let mut analysed = Vec::new();
        for policy in parsed.policies() {
            let id = policy
                .annotation("id")
                .map_or_else(|| policy.id().clone(), PolicyId::new);
            let policy = policy.new_id(id.clone());
            all.add(policy.clone())
                .map_err(|e| invalid(format!("policy `{id}`: {e}")))?;
            if !may_apply_to(&policy, &resource) {
                continue;
            }
            analysed.push(policy.clone());
            full.add(policy)
                .map_err(|e| invalid(format!("policy `{id}`: {e}")))?;
        }
        // The context carries these as records: a key given twice would make every
        // request's context invalid, so every request would be denied.
        for (list, keys) in [
            ("headers", cedar.headers.iter().collect::<Vec<_>>()),
            ("query", cedar.query.iter().collect()),
            ("patterns", cedar.patterns.iter().map(|p| &p.key).collect()),
        ] {
            for (i, key) in keys.iter().enumerate() {
                if keys.get(..i).is_some_and(|before| before.contains(key)) {
                    return Err(invalid(format!("`{key}` is listed twice in `{list}`")));
                }
            }
        }
        for header in &cedar.headers {
            crate::config::check_header_name(header, "inbound.authz.headers")?;
        }
        for pattern in &cedar.patterns {
            crate::config::check_attr(
                &pattern.attr,
                &format!("inbound.authz.patterns ({})", pattern.key),
            )?;
        }
        let patterns = cedar
            .patterns
            .iter()
            .map(|p| {
                Regex::new(&p.regex)
                    .map(|r| (p.key.clone(), p.attr.clone(), r))
                    .map_err(|e| invalid(format!("pattern `{}`: {e}", p.key)))
            })
            .collect::<Result<_, _>>()?;
        let actions: Vec<(String, EntityUid)> = crate::config::METHODS
            .iter()
            .chain([&TCP_ACTION])
            .filter_map(|m| uid("Mesh::Action", m).map(|u| (m.to_string(), u)))
            .collect();
        let names = Names {
            headers: cedar.headers.clone(),
            query: cedar.query.clone(),
            patterns: cedar.patterns.iter().map(|p| p.key.clone()).collect(),
        };
        let analysed = analysed
            .iter()
            .map(|policy| Analysed::new(policy, &names))
            .collect();
        let slices = Slices::new(
            analysed,
            names,
            actions.iter().map(|(_, action)| action.clone()).collect(),
        );
        Ok(CompiledAuthz::Cedar(Box::new(CedarState {
            mode: cedar.mode,
            full,
            slices,
            memo: Memo::default(),
            authorizer: Authorizer::new(),
            resource,
            headers: cedar.headers.clone(),
            query: cedar.query.clone(),
            patterns,
            actions,
        })))
    }
}

/// Whether `policy`'s resource scope can match `resource`, which has no parents (the
/// request's entities hold only the caller), so `in` means equality.
fn may_apply_to(policy: &Policy, resource: &EntityUid) -> bool {
    match policy.resource_constraint() {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(entity) | ResourceConstraint::In(entity) => entity == *resource,
        ResourceConstraint::Is(type_name) => type_name == *resource.type_name(),
        ResourceConstraint::IsIn(type_name, entity) => {
            type_name == *resource.type_name() && entity == *resource
        }
    }
}

/// The caller of an inbound request, prepared once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    principal: EntityUid,
    /// The namespace the principal is a member of (its only parent).
    namespace: Option<EntityUid>,
    entities: Entities,
    /// `principal` as the decision memo keys it (made once per connection).
    memo_key: Box<str>,
    /// The verified SPIFFE id, when there is one.
    pub identity: Option<String>,
    /// The caller's service key (`namespace/name`, from the identity's namespace and
    /// service account) when its identity is in the mesh's trust domain.
    pub service: Option<Box<str>>,
}

impl Peer {
    /// A caller without a verified identity (plaintext under permissive mTLS).
    pub fn anonymous() -> Peer {
        let principal = anonymous_uid();
        Peer {
            memo_key: principal.to_string().into(),
            principal,
            namespace: None,
            entities: Entities::empty(),
            identity: None,
            service: None,
        }
    }

    /// A caller that presented `spiffe_id`. Identities of another trust domain, or that
    /// [`SpiffeId::parse`] refuses, are anonymous (but keep their id for logs).
    pub fn from_spiffe_id(spiffe_id: &str, trust_domain: &str) -> Peer {
        let Some(id) = SpiffeId::parse(spiffe_id)
            .ok()
            .filter(|id| id.trust_domain() == trust_domain)
        else {
            return Peer {
                identity: Some(spiffe_id.to_string()),
                ..Peer::anonymous()
            };
        };
        let (ns, sa) = (id.namespace(), id.service_account());
        let service = format!("{ns}/{sa}");
        let principal = uid("Mesh::Service", &service);
        let namespace = uid("Mesh::Namespace", ns);
        let (Some(principal), Some(namespace)) = (principal, namespace) else {
            return Peer::anonymous();
        };
        let entity = Entity::new_no_attrs(principal.clone(), HashSet::from([namespace.clone()]));
        let entities =
            Entities::from_entities([entity], None).unwrap_or_else(|_| Entities::empty());
        Peer {
            memo_key: principal.to_string().into(),
            principal,
            namespace: Some(namespace),
            entities,
            identity: Some(spiffe_id.to_string()),
            service: Some(service.into()),
        }
    }
}

#[expect(
    clippy::expect_used,
    reason = "a constant, valid entity type name always parses"
)]
fn anonymous_uid() -> EntityUid {
    let type_name = EntityTypeName::from_str("Mesh::Anonymous").expect("valid type name");
    EntityUid::from_type_name_and_id(type_name, EntityId::new("anonymous"))
}

/// The outcome of authorizing a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzDecision {
    /// What the policies decided.
    pub decision: Verdict,
    /// Whether the decision is enforced (`mode enforce`) or only logged (`mode audit`).
    pub enforced: bool,
    /// The policies that decided it, by `@id`: the forbids that denied, or the permits
    /// that allowed; for a deny because of [`AuthzDecision::policy_error`], the policies
    /// that failed. Empty for a deny because nothing allowed.
    pub policies: Vec<String>,
    /// Why policies failed to evaluate, one line each (for logs).
    pub errors: Vec<String>,
    /// Whether the request is denied because a policy that applies to it failed to
    /// evaluate (an attribute it reads is missing, say). Cedar would skip such a policy,
    /// so a broken `forbid` would let requests through: the mesh fails closed instead,
    /// whatever the other policies say. Always with `decision` [`Verdict::Deny`].
    pub policy_error: bool,
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let through.
    Allow,
    /// Refuse.
    Deny,
}

impl AuthzDecision {
    /// Whether the request goes through: allowed, or denied only in audit mode.
    pub fn allowed(&self) -> bool {
        self.decision == Verdict::Allow || !self.enforced
    }

    /// A short explanation for logs and 403 bodies.
    pub fn reason(&self) -> String {
        if self.policy_error {
            return match self.policies.as_slice() {
                [] => "the request could not be authorized".into(),
                ids => format!("policy {} failed to evaluate", ids.join(", ")),
            };
        }
        match (self.decision, self.policies.as_slice()) {
            (Verdict::Allow, []) => "allowed".into(),
            (Verdict::Allow, ids) => format!("allowed by policy {}", ids.join(", ")),
            (Verdict::Deny, []) => "no policy allows this request".into(),
            (Verdict::Deny, ids) => format!("denied by policy {}", ids.join(", ")),
        }
    }
}

/// The Cedar action of opaque TCP connections; HTTP requests use their method's.
pub const TCP_ACTION: &str = "TCP";

/// An opaque TCP connection as authorization sees it: action `TCP`, its port, and empty
/// L7 attributes (the compiler keeps rules with L7 conditions to HTTP actions).
struct Connection {
    port: u16,
}

impl RequestView for Connection {
    fn method(&self) -> &str {
        TCP_ACTION
    }

    fn path(&self) -> &str {
        ""
    }

    fn host(&self) -> &str {
        ""
    }

    fn header(&self, _name: &str) -> Option<&str> {
        None
    }

    fn query_param(&self, _name: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }

    fn port(&self) -> u16 {
        self.port
    }
}

impl Config {
    /// Authorizes an opaque TCP connection from `peer` to this workload's `port`: the
    /// action is `Mesh::Action::"TCP"` and the context carries the port.
    pub fn authorize_connection(&self, port: u16, peer: &Peer) -> AuthzDecision {
        self.authorize(&Connection { port }, peer)
    }

    /// Authorizes an inbound `request` from `peer` with this workload's policies.
    pub fn authorize<R: RequestView + ?Sized>(&self, request: &R, peer: &Peer) -> AuthzDecision {
        let state = match &self.authz {
            CompiledAuthz::AllowAll => {
                return AuthzDecision {
                    decision: Verdict::Allow,
                    enforced: true,
                    policies: vec!["default_policy allow".into()],
                    errors: Vec::new(),
                    policy_error: false,
                };
            }
            CompiledAuthz::DenyAll => {
                return AuthzDecision {
                    decision: Verdict::Deny,
                    enforced: true,
                    policies: vec!["default_policy deny".into()],
                    errors: Vec::new(),
                    policy_error: false,
                };
            }
            CompiledAuthz::Cedar(state) => state,
        };
        let enforced = state.mode == PolicyMode::Enforce;
        let method = request.method();
        let known = state
            .actions
            .iter()
            .enumerate()
            .find(|(_, (m, _))| m == method);
        let caller = Caller {
            type_name: peer.principal.type_name(),
            principal: &peer.principal,
            namespace: peer.namespace.as_ref(),
        };
        match known.and_then(|(i, (_, action))| Some((state.slices.get(caller, i)?, i, action))) {
            Some((slice, _, _)) if slice.set.is_empty() => {
                decide(enforced, Vec::new(), Vec::new(), Vec::new(), Vec::new())
            }
            Some((slice, i, action)) => {
                // The decision depends only on the slice, the caller and what the slice's
                // policies read: made once, then remembered (bounded; a reload starts over).
                let memo_key = memo_key(state, i, request, peer, &slice.plan);
                if let Some(decision) = memo_key.as_deref().and_then(|k| state.memo.get(k)) {
                    return decision;
                }
                // Policies whose leading header/query tests fail are left out.
                let held = slice
                    .guards
                    .iter()
                    .enumerate()
                    .filter(|(_, guard)| holds(guard, request))
                    .fold(0, |held, (i, _)| held | bit(i));
                let pruned = slice.pruned(held);
                let set = pruned.as_deref().unwrap_or(&slice.set);
                let decision = if set.is_empty() {
                    decide(enforced, Vec::new(), Vec::new(), Vec::new(), Vec::new())
                } else {
                    evaluate(state, enforced, set, &slice.plan, action, request, peer)
                };
                if let Some(memo_key) = memo_key {
                    state.memo.insert(memo_key, &decision);
                }
                decision
            }
            // A method no policy can name (Cedar decides on every policy, as written).
            None => match uid("Mesh::Action", method) {
                Some(action) => evaluate(
                    state,
                    enforced,
                    &state.full,
                    &ContextPlan::everything(),
                    &action,
                    request,
                    peer,
                ),
                None => decide(
                    enforced,
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                    vec![format!("method `{method}` cannot be authorized")],
                ),
            },
        }
    }
}

/// Cedar's decision on `set` for `request` from `peer`, with the context `plan` says.
fn evaluate<R: RequestView + ?Sized>(
    state: &CedarState,
    enforced: bool,
    set: &PolicySet,
    plan: &ContextPlan,
    action: &EntityUid,
    request: &R,
    peer: &Peer,
) -> AuthzDecision {
    let failed = |error: String| decide(enforced, Vec::new(), Vec::new(), Vec::new(), vec![error]);
    let context = match context(state, request, plan) {
        Ok(context) => context,
        Err(error) => return failed(error),
    };
    let cedar_request = match Request::new(
        peer.principal.clone(),
        action.clone(),
        state.resource.clone(),
        context,
        None,
    ) {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    let response = state
        .authorizer
        .is_authorized(&cedar_request, set, &peer.entities);
    let reasons: Vec<String> = response.diagnostics().reason().map(policy_name).collect();
    let (forbids, permits) = match response.decision() {
        Decision::Allow => (Vec::new(), reasons),
        Decision::Deny => (reasons, Vec::new()),
    };
    decide(
        enforced,
        forbids,
        permits,
        response.diagnostics().errors().map(failed_policy).collect(),
        response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect(),
    )
}

/// Whether `guard` holds for `request`, as Cedar would find it with the context this
/// module builds (the guard's name is one the config lists).
fn holds<R: RequestView + ?Sized>(guard: &Guard, request: &R) -> bool {
    match guard {
        Guard::Header(name, None) => request.header(name).is_some(),
        Guard::Header(name, Some(value)) => request.header(name).unwrap_or_default() == value,
        Guard::Query(name, None) => request.query_param(name).is_some(),
        Guard::Query(name, Some(value)) => request.query_param(name).unwrap_or_default() == *value,
    }
}

/// The id of the policy an evaluation error is about.
fn failed_policy(error: &AuthorizationError) -> String {
    match error {
        AuthorizationError::PolicyEvaluationError(e) => policy_name(e.policy_id()),
    }
}

/// `id.to_string()` (which escapes the id as `str::escape_debug` does), without the
/// formatting machinery for the ids that need no escaping: every id `meshc` writes.
fn policy_name(id: &PolicyId) -> String {
    let raw: &str = id.as_ref();
    if raw
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'\\' | b'"' | b'\''))
    {
        raw.to_string()
    } else {
        id.to_string()
    }
}

/// What the decision for `request` from `peer` with the known action `action` on the
/// slice `plan` belongs to depends on, as one string: the action, the principal (its type,
/// its namespace and so its slice follow from it) and every context value the slice's
/// policies read. `None` when that is too long to be worth keeping.
fn memo_key<R: RequestView + ?Sized>(
    state: &CedarState,
    action: usize,
    request: &R,
    peer: &Peer,
    plan: &ContextPlan,
) -> Option<String> {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(64);
    let _ = write!(key, "{action}|");
    let push = |key: &mut String, value: Option<&str>| match value {
        None => key.push('-'),
        Some(value) => {
            let _ = write!(key, "{}:{value}", value.len());
        }
    };
    push(&mut key, Some(&peer.memo_key));
    let all = |n: usize| plan.everything.then(|| (0..n).collect::<Vec<_>>());
    if plan.everything || plan.path {
        push(&mut key, Some(request.path()));
    }
    if plan.everything || plan.host {
        push(&mut key, Some(request.host()));
    }
    if plan.everything || plan.port {
        let _ = write!(key, "{}|", request.port());
    }
    // Headers and query parameters by value, absent told apart from empty (`has_headers`
    // and `has_query` depend on presence only; the value covers it).
    let headers = all(state.headers.len());
    for keys in [&plan.headers, &plan.has_headers] {
        for i in headers.as_ref().or(keys.as_ref()).into_iter().flatten() {
            push(&mut key, request.header(state.headers.get(*i)?));
        }
    }
    let query = all(state.query.len());
    for keys in [&plan.query, &plan.has_query] {
        for i in query.as_ref().or(keys.as_ref()).into_iter().flatten() {
            push(
                &mut key,
                request.query_param(state.query.get(*i)?).as_deref(),
            );
        }
    }
    // The regexes' results are what the context holds.
    let patterns = all(state.patterns.len());
    for i in patterns
        .as_ref()
        .or(plan.matched.as_ref())
        .into_iter()
        .flatten()
    {
        let (_, attr, regex) = state.patterns.get(*i)?;
        let matched = match attr {
            Attr::Path => regex.is_match(request.path()),
            Attr::Host => regex.is_match(request.host()),
            Attr::Header(name) => regex.is_match(request.header(name).unwrap_or_default()),
            Attr::Query(name) => regex.is_match(&request.query_param(name).unwrap_or_default()),
        };
        key.push(if matched { 't' } else { 'f' });
    }
    (key.len() <= crate::authz_slice::MAX_MEMO_KEY).then_some(key)
}

/// Cedar's rule over the satisfied forbids and permits (a forbid wins, then a permit, else
/// deny), except that any policy that failed to evaluate denies: fail closed.
fn decide(
    enforced: bool,
    forbids: Vec<String>,
    permits: Vec<String>,
    failed: Vec<String>,
    errors: Vec<String>,
) -> AuthzDecision {
    let (decision, mut policies, policy_error) = if !failed.is_empty() || !errors.is_empty() {
        (Verdict::Deny, failed, true)
    } else if !forbids.is_empty() {
        (Verdict::Deny, forbids, false)
    } else if !permits.is_empty() {
        (Verdict::Allow, permits, false)
    } else {
        (Verdict::Deny, Vec::new(), false)
    };
    policies.sort();
    policies.dedup();
    AuthzDecision {
        decision,
        enforced,
        policies,
        errors,
        policy_error,
    }
}

/// The request's context: what `plan` says the policies read, or everything.
fn context<R: RequestView + ?Sized>(
    state: &CedarState,
    request: &R,
    plan: &ContextPlan,
) -> Result<Context, String> {
    let every = |n: usize| (0..n).collect::<Vec<_>>();
    let (headers_all, query_all, patterns_all) = if plan.everything {
        (
            Some(every(state.headers.len())),
            Some(every(state.query.len())),
            Some(every(state.patterns.len())),
        )
    } else {
        (None, None, None)
    };
    let pick = |part: &Option<Vec<usize>>, all: &Option<Vec<usize>>| -> Option<Vec<usize>> {
        all.clone().or_else(|| part.clone())
    };
    let text = |attr: &Attr| -> String {
        match attr {
            Attr::Path => request.path().to_string(),
            Attr::Host => request.host().to_string(),
            Attr::Header(name) => request.header(name).unwrap_or_default().to_string(),
            Attr::Query(name) => request.query_param(name).unwrap_or_default().into_owned(),
        }
    };
    let record = |pairs: Vec<(String, RestrictedExpression)>| {
        RestrictedExpression::new_record(pairs).map_err(|e| e.to_string())
    };
    let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(8);
    if plan.everything || plan.path {
        pairs.push((
            "path".into(),
            RestrictedExpression::new_string(request.path().to_string()),
        ));
    }
    if plan.everything || plan.host {
        pairs.push((
            "host".into(),
            RestrictedExpression::new_string(request.host().to_string()),
        ));
    }
    if let Some(keys) = pick(&plan.headers, &headers_all) {
        let fields = keys
            .iter()
            .filter_map(|&i| state.headers.get(i))
            .map(|h| {
                let value = request.header(h).unwrap_or_default().to_string();
                (h.clone(), RestrictedExpression::new_string(value))
            })
            .collect();
        pairs.push(("headers".into(), record(fields)?));
    }
    if let Some(keys) = pick(&plan.has_headers, &headers_all) {
        let present = keys
            .iter()
            .filter_map(|&i| state.headers.get(i))
            .filter(|h| request.header(h).is_some())
            .map(|h| RestrictedExpression::new_string(h.clone()));
        pairs.push(("has_headers".into(), RestrictedExpression::new_set(present)));
    }
    if let Some(keys) = pick(&plan.query, &query_all) {
        let fields = keys
            .iter()
            .filter_map(|&i| state.query.get(i))
            .map(|q| {
                let value = request.query_param(q).unwrap_or_default().into_owned();
                (q.clone(), RestrictedExpression::new_string(value))
            })
            .collect();
        pairs.push(("query".into(), record(fields)?));
    }
    if let Some(keys) = pick(&plan.has_query, &query_all) {
        let present = keys
            .iter()
            .filter_map(|&i| state.query.get(i))
            .filter(|q| request.query_param(q).is_some())
            .map(|q| RestrictedExpression::new_string(q.clone()));
        pairs.push(("has_query".into(), RestrictedExpression::new_set(present)));
    }
    if let Some(keys) = pick(&plan.matched, &patterns_all) {
        let fields = keys
            .iter()
            .filter_map(|&i| state.patterns.get(i))
            .map(|(key, attr, regex)| {
                (
                    key.clone(),
                    RestrictedExpression::new_bool(regex.is_match(&text(attr))),
                )
            })
            .collect();
        pairs.push(("matched".into(), record(fields)?));
    }
    if plan.everything || plan.port {
        pairs.push((
            "port".into(),
            RestrictedExpression::new_long(i64::from(request.port())),
        ));
    }
    Context::from_pairs(pairs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::SimpleRequest;
    use crate::schema::{CedarAuthz, Egress, Inbound, MeshInfo, Mtls, Outbound, VERSION, Workload};

    const POLICIES: &str = r#"
        @id("any") permit (principal, action == Mesh::Action::"GET", resource) when { context.path == "/open" };
        @id("eq") permit (principal == Mesh::Service::"a/x", action, resource);
        @id("in-ns") permit (principal in Mesh::Namespace::"b", action in [Mesh::Action::"GET", Mesh::Action::"PUT"], resource);
        @id("in-svc") forbid (principal in Mesh::Service::"a/x", action == Mesh::Action::"DELETE", resource);
        @id("is-anon") forbid (principal is Mesh::Anonymous, action, resource) unless { action == Mesh::Action::"GET" };
        @id("is-in") permit (principal is Mesh::Service in Mesh::Namespace::"c", action, resource) when { context.headers["x-k"] == "1" };
        @id("guarded") permit (principal, action == Mesh::Action::"PUT", resource) when { (principal == Mesh::Service::"a/y" || principal in Mesh::Namespace::"c") && context.path == "/x" };
        @id("eq-ns") permit (principal == Mesh::Namespace::"b", action, resource);
        @id("other-resource") permit (principal, action, resource == Mesh::Service::"z/z");
        @id("this-resource") forbid (principal, action, resource == Mesh::Service::"shop/cart") when { context.headers["x-k"] == "block" };
        @id("resource-type") permit (principal, action, resource is Mesh::Service) when { context.path == "/typed" };
        @id("resource-in") permit (principal in Mesh::Namespace::"d", action, resource in Mesh::Service::"shop/cart");
        @id("errors") permit (principal == Mesh::Service::"d/r", action, resource) when { context.headers["missing"] == "1" };
        @id("errors-b") permit (principal in Mesh::Namespace::"b", action, resource) when { context.query["missing"] == "1" };
    "#;

    fn config() -> Config {
        let source = WorkloadConfig {
            version: VERSION,
            mesh: MeshInfo {
                name: "m".into(),
                trust_domain: "td".into(),
                namespaces: Vec::new(),
                telemetry: None,
            },
            workload: Workload {
                service: "shop/cart".into(),
                identity: "spiffe://td/ns/shop/sa/cart".into(),
                ports: Vec::new(),
            },
            inbound: Inbound {
                mtls: Mtls::Permissive,
                authz: Authz::Cedar(CedarAuthz {
                    mode: PolicyMode::Enforce,
                    policies: POLICIES.into(),
                    headers: vec!["x-k".into()],
                    query: Vec::new(),
                    patterns: Vec::new(),
                }),
                rate_limits: Vec::new(),
            },
            outbound: Outbound {
                egress: Egress::Allow,
                services: Vec::new(),
            },
            gateway: None,
        };
        Config::new(source).expect("valid config")
    }

    /// The decision on every policy that can apply to this workload, in one set, with
    /// the whole context: Cedar without the slices.
    fn unsliced(config: &Config, request: &SimpleRequest, peer: &Peer) -> AuthzDecision {
        let CompiledAuthz::Cedar(state) = &config.authz else {
            panic!("a Cedar config");
        };
        let action = uid("Mesh::Action", &request.method).expect("action");
        evaluate(
            state,
            true,
            &state.full,
            &ContextPlan::everything(),
            &action,
            request,
            peer,
        )
    }

    #[test]
    fn the_slices_decide_exactly_as_one_policy_set() {
        let config = config();
        let CompiledAuthz::Cedar(state) = &config.authz else {
            panic!("a Cedar config");
        };
        // "other-resource" can never apply here and is left out.
        assert_eq!(state.full.policies().count(), 13);

        let mut peers = vec![Peer::anonymous()];
        for (ns, sa) in [("a", "x"), ("a", "y"), ("b", "x"), ("c", "q"), ("d", "r")] {
            peers.push(Peer::from_spiffe_id(
                &format!("spiffe://td/ns/{ns}/sa/{sa}"),
                "td",
            ));
        }
        peers.push(Peer::from_spiffe_id("spiffe://other/ns/a/sa/x", "td"));
        let mut outcomes = HashSet::new();
        // Twice: slices are built on the first pass and reused on the second.
        for _ in 0..2 {
            for peer in &peers {
                for method in ["GET", "PUT", "DELETE", "PROPFIND"] {
                    for path in ["/open", "/typed", "/x"] {
                        for header in [None, Some("1"), Some("block")] {
                            let mut request = SimpleRequest::new(method, path, "cart");
                            if let Some(value) = header {
                                request = request.header("x-k", value);
                            }
                            let mut got = config.authorize(&request, peer);
                            let mut want = unsliced(&config, &request, peer);
                            got.errors.sort();
                            want.errors.sort();
                            assert_eq!(got, want, "{peer:?} {request:?}");
                            outcomes.insert((got.decision, got.policies.len(), got.policy_error));
                        }
                    }
                }
            }
        }
        // The matrix exercises allows, denies by forbid and by default, and errors.
        assert!(outcomes.len() >= 5, "{outcomes:?}");
        assert!(outcomes.iter().any(|o| o.2), "{outcomes:?}");
    }
}
