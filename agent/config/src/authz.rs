//! Authorization: a workload's Cedar policy set decides each inbound request. The principal
//! is the caller's verified identity (`Mesh::Service::"NAMESPACE/SERVICE_ACCOUNT"`, a member
//! of `Mesh::Namespace::"NAMESPACE"`), or `Mesh::Anonymous` for plaintext and unverifiable
//! callers; the action is `Mesh::Action::"METHOD"`; the resource is this workload; the
//! context carries the path, host, the headers and query parameters the policies read,
//! and the results of their regexes.

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression,
};
use regex::Regex;

use crate::config::{Config, ConfigError};
use crate::request::RequestView;
use crate::schema::{Attr, Authz, PolicyMode, WorkloadConfig};

#[derive(Debug)]
pub(crate) enum CompiledAuthz {
    AllowAll,
    DenyAll,
    Cedar(Box<CedarState>),
}

#[derive(Debug)]
pub(crate) struct CedarState {
    mode: PolicyMode,
    policies: PolicySet,
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

/// `spiffe://TD/ns/NS/sa/SA` → (`TD`, `NS`, `SA`).
pub fn parse_spiffe_id(id: &str) -> Option<(&str, &str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    let (domain, path) = rest.split_once('/')?;
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa), None)
            if !ns.is_empty() && !sa.is_empty() && !domain.is_empty() =>
        {
            Some((domain, ns, sa))
        }
        _ => None,
    }
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
        // Policies are known by their `@id` annotation, so decisions name their source.
        let mut policies = PolicySet::new();
        for policy in parsed.policies() {
            let id = policy
                .annotation("id")
                .map_or_else(|| policy.id().clone(), PolicyId::new);
            policies
                .add(policy.new_id(id.clone()))
                .map_err(|e| invalid(format!("policy `{id}`: {e}")))?;
        }
        let (_, ns, sa) = parse_spiffe_id(&config.workload.identity).ok_or_else(|| {
            invalid(format!(
                "workload identity `{}` is not a SPIFFE id",
                config.workload.identity
            ))
        })?;
        let resource = uid("Mesh::Service", &format!("{ns}/{sa}"))
            .ok_or_else(|| invalid("bad resource id".into()))?;
        let patterns = cedar
            .patterns
            .iter()
            .map(|p| {
                Regex::new(&p.regex)
                    .map(|r| (p.key.clone(), p.attr.clone(), r))
                    .map_err(|e| invalid(format!("pattern `{}`: {e}", p.key)))
            })
            .collect::<Result<_, _>>()?;
        let actions = crate::config::METHODS
            .iter()
            .filter_map(|m| uid("Mesh::Action", m).map(|u| (m.to_string(), u)))
            .collect();
        Ok(CompiledAuthz::Cedar(Box::new(CedarState {
            mode: cedar.mode,
            policies,
            resource,
            headers: cedar.headers.clone(),
            query: cedar.query.clone(),
            patterns,
            actions,
        })))
    }
}

/// The caller of an inbound request, prepared once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    principal: EntityUid,
    entities: Entities,
    /// The verified SPIFFE id, when there is one.
    pub identity: Option<String>,
}

impl Peer {
    /// A caller without a verified identity (plaintext under permissive mTLS).
    pub fn anonymous() -> Peer {
        Peer {
            principal: anonymous_uid(),
            entities: Entities::empty(),
            identity: None,
        }
    }

    /// A caller that presented `spiffe_id`. Identities of another trust domain, or not of
    /// the `ns/NS/sa/SA` form, are anonymous (but keep their id for logs).
    pub fn from_spiffe_id(spiffe_id: &str, trust_domain: &str) -> Peer {
        let Some((_, ns, sa)) =
            parse_spiffe_id(spiffe_id).filter(|(domain, _, _)| *domain == trust_domain)
        else {
            return Peer {
                identity: Some(spiffe_id.to_string()),
                ..Peer::anonymous()
            };
        };
        let principal = uid("Mesh::Service", &format!("{ns}/{sa}"));
        let namespace = uid("Mesh::Namespace", ns);
        let (Some(principal), Some(namespace)) = (principal, namespace) else {
            return Peer::anonymous();
        };
        let entity = Entity::new_no_attrs(principal.clone(), HashSet::from([namespace]));
        let entities =
            Entities::from_entities([entity], None).unwrap_or_else(|_| Entities::empty());
        Peer {
            principal,
            entities,
            identity: Some(spiffe_id.to_string()),
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
    /// that allowed. Empty for a deny because nothing allowed.
    pub policies: Vec<String>,
    /// Policies that failed to evaluate (they are ignored, as Cedar does).
    pub errors: Vec<String>,
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
        match (self.decision, self.policies.as_slice()) {
            (Verdict::Allow, []) => "allowed".into(),
            (Verdict::Allow, ids) => format!("allowed by policy {}", ids.join(", ")),
            (Verdict::Deny, []) => "no policy allows this request".into(),
            (Verdict::Deny, ids) => format!("denied by policy {}", ids.join(", ")),
        }
    }
}

impl Config {
    /// Authorizes an inbound `request` from `peer` with this workload's policies.
    pub fn authorize<R: RequestView + ?Sized>(&self, request: &R, peer: &Peer) -> AuthzDecision {
        let state = match &self.authz {
            CompiledAuthz::AllowAll => {
                return AuthzDecision {
                    decision: Verdict::Allow,
                    enforced: true,
                    policies: vec!["default_policy allow".into()],
                    errors: Vec::new(),
                };
            }
            CompiledAuthz::DenyAll => {
                return AuthzDecision {
                    decision: Verdict::Deny,
                    enforced: true,
                    policies: vec!["default_policy deny".into()],
                    errors: Vec::new(),
                };
            }
            CompiledAuthz::Cedar(state) => state,
        };
        let enforced = state.mode == PolicyMode::Enforce;
        let deny = |error: String| AuthzDecision {
            decision: Verdict::Deny,
            enforced,
            policies: Vec::new(),
            errors: vec![error],
        };
        let method = request.method();
        let action = match state.actions.iter().find(|(m, _)| m == method) {
            Some((_, action)) => action.clone(),
            None => match uid("Mesh::Action", method) {
                Some(action) => action,
                None => return deny(format!("method `{method}` cannot be authorized")),
            },
        };
        let context = match context(state, request) {
            Ok(context) => context,
            Err(error) => return deny(error),
        };
        let cedar_request = match Request::new(
            peer.principal.clone(),
            action,
            state.resource.clone(),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(e.to_string()),
        };
        let response =
            Authorizer::new().is_authorized(&cedar_request, &state.policies, &peer.entities);
        let decision = match response.decision() {
            Decision::Allow => Verdict::Allow,
            Decision::Deny => Verdict::Deny,
        };
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policies.sort();
        AuthzDecision {
            decision,
            enforced,
            policies,
            errors: response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

fn context<R: RequestView + ?Sized>(state: &CedarState, request: &R) -> Result<Context, String> {
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
    let headers = record(
        state
            .headers
            .iter()
            .map(|h| {
                (
                    h.clone(),
                    RestrictedExpression::new_string(
                        request.header(h).unwrap_or_default().to_string(),
                    ),
                )
            })
            .collect(),
    )?;
    let has_headers = RestrictedExpression::new_set(
        state
            .headers
            .iter()
            .filter(|h| request.header(h).is_some())
            .map(|h| RestrictedExpression::new_string(h.clone())),
    );
    let query = record(
        state
            .query
            .iter()
            .map(|q| {
                (
                    q.clone(),
                    RestrictedExpression::new_string(
                        request.query_param(q).unwrap_or_default().into_owned(),
                    ),
                )
            })
            .collect(),
    )?;
    let has_query = RestrictedExpression::new_set(
        state
            .query
            .iter()
            .filter(|q| request.query_param(q).is_some())
            .map(|q| RestrictedExpression::new_string(q.clone())),
    );
    let matched = record(
        state
            .patterns
            .iter()
            .map(|(key, attr, regex)| {
                (
                    key.clone(),
                    RestrictedExpression::new_bool(regex.is_match(&text(attr))),
                )
            })
            .collect(),
    )?;
    Context::from_pairs([
        (
            "path".to_string(),
            RestrictedExpression::new_string(request.path().to_string()),
        ),
        (
            "host".to_string(),
            RestrictedExpression::new_string(request.host().to_string()),
        ),
        ("headers".to_string(), headers),
        ("has_headers".to_string(), has_headers),
        ("query".to_string(), query),
        ("has_query".to_string(), has_query),
        ("matched".to_string(), matched),
    ])
    .map_err(|e| e.to_string())
}
