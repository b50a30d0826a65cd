//! What a workload's conditions can tell apart: every atomic test its route rules, gateway
//! rules and Cedar policies make on a request, collected from the compiled configs of both
//! versions. Routes are read from their `Match` trees; policies (generated and inline
//! `cedar` blocks alike) from Cedar's JSON form of each policy, so the analysis sees
//! exactly what the agent evaluates.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use cedar_policy::PolicySet;
use mesh_config::glob::Glob;
use mesh_config::schema::{Attr, Authz, CedarAuthz, Match, TextOp};
use serde_json::Value;

use super::witness;

/// A string attribute of a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Dim {
    /// The path.
    Path,
    /// The host.
    Host,
    /// A header, by lower-case name.
    Header(String),
    /// A query parameter.
    Query(String),
}

impl Dim {
    fn of(attr: &Attr) -> Dim {
        match attr {
            Attr::Path => Dim::Path,
            Attr::Host => Dim::Host,
            Attr::Header(name) => Dim::Header(name.clone()),
            Attr::Query(name) => Dim::Query(name.clone()),
        }
    }
}

/// One test of a string attribute.
#[derive(Debug)]
pub(super) enum Atom {
    /// Equal to this value (`==`, `!=`, `in [...]`).
    Eq(String),
    /// Starts with this prefix.
    Prefix(String),
    /// Matches this glob (`like`, `paths [...]`, Cedar `like`).
    Glob(Glob),
    /// A regex search finds a match (`matches`).
    Regex(Box<regex::Regex>),
}

impl Atom {
    /// Whether `value` passes the test.
    pub(super) fn holds(&self, value: &str) -> bool {
        match self {
            Atom::Eq(v) => value == v,
            Atom::Prefix(p) => value.starts_with(p.as_str()),
            Atom::Glob(g) => g.matches(value),
            Atom::Regex(r) => r.is_match(value),
        }
    }
}

/// The tests made on one attribute, and values that fall in their classes.
#[derive(Debug, Default)]
pub(super) struct DimTests {
    /// Values the tests name or accept.
    pub(super) candidates: BTreeSet<String>,
    /// The tests.
    pub(super) atoms: Vec<Atom>,
}

impl DimTests {
    fn add(&mut self, op: TextOp, value: &str) {
        match op {
            TextOp::Eq | TextOp::Ne => self.equal(value),
            TextOp::StartsWith => {
                self.candidates.insert(value.to_string());
                self.candidates
                    .insert(format!("{value}{}", witness::FILLER));
                self.atoms.push(Atom::Prefix(value.to_string()));
            }
            TextOp::Like => self.glob(value),
            TextOp::Matches => self.regex(value),
        }
    }

    fn equal(&mut self, value: &str) {
        self.candidates.insert(value.to_string());
        self.atoms.push(Atom::Eq(value.to_string()));
    }

    fn glob(&mut self, glob: &str) {
        if let Ok(compiled) = Glob::new(glob) {
            self.candidates.extend(witness::glob_witnesses(glob));
            self.atoms.push(Atom::Glob(compiled));
        }
    }

    fn regex(&mut self, regex: &str) {
        if let Ok(compiled) = regex::Regex::new(regex) {
            self.candidates
                .extend(witness::regex_witness(regex, &compiled));
            self.atoms.push(Atom::Regex(Box::new(compiled)));
        }
    }
}

/// Everything the conditions of one workload (both versions) test.
#[derive(Debug, Default)]
pub(super) struct Conditions {
    /// Per attribute, its tests; an attribute listed with no tests is only tested for
    /// presence (`exists`, or read by a policy).
    pub(super) dims: BTreeMap<Dim, DimTests>,
    /// Each set of methods a condition or an action scope names.
    pub(super) method_sets: Vec<BTreeSet<String>>,
    /// Caller identities named (`namespace/service_account`).
    pub(super) identities: BTreeSet<String>,
    /// Caller namespaces named.
    pub(super) namespaces: BTreeSet<String>,
    /// Callers a route's `source` names (service keys).
    pub(super) sources: BTreeSet<String>,
}

impl Conditions {
    fn dim(&mut self, dim: Dim) -> &mut DimTests {
        self.dims.entry(dim).or_default()
    }

    /// Adds the tests of a route or gateway rule's condition.
    pub(super) fn add_match(&mut self, m: &Match) {
        match m {
            Match::All(items) | Match::Any(items) => items.iter().for_each(|i| self.add_match(i)),
            Match::Not(inner) => self.add_match(inner),
            Match::Method { methods, .. } => {
                self.method_sets.push(methods.iter().cloned().collect());
            }
            Match::Text { attr, op, value } => self.dim(Dim::of(attr)).add(*op, value),
            Match::TextIn { attr, values } => {
                let dim = self.dim(Dim::of(attr));
                values.iter().for_each(|v| dim.equal(v));
            }
            Match::Exists { attr } => {
                self.dim(Dim::of(attr));
            }
            Match::Source { services, .. } => self.sources.extend(services.iter().cloned()),
        }
    }

    /// Adds a gateway's host entry: an exact host, `*.SUFFIX` or `*` (which every host
    /// matches, so it tests nothing).
    pub(super) fn add_host_entry(&mut self, host: &str) {
        let host = host.to_ascii_lowercase();
        let tests = self.dim(Dim::Host);
        if host.starts_with("*.") {
            tests.glob(&host);
        } else if host != "*" {
            tests.equal(&host);
        }
    }

    /// Adds the tests of a workload's authorization. Policies Cedar cannot parse add
    /// nothing (`Config::new` refuses them before any evaluation).
    pub(super) fn add_authz(&mut self, authz: &Authz) {
        let Authz::Cedar(cedar) = authz else {
            return;
        };
        self.add_cedar_context(cedar);
        let Ok(set) = PolicySet::from_str(&cedar.policies) else {
            return;
        };
        for policy in set.policies() {
            let Ok(json) = policy.to_json() else {
                continue;
            };
            for part in ["principal", "action"] {
                if let Some(scope) = json.get(part) {
                    self.scope(scope);
                }
            }
            if let Some(conditions) = json.get("conditions") {
                self.expr(conditions);
            }
        }
    }

    /// The headers, query parameters and regexes the context carries.
    fn add_cedar_context(&mut self, cedar: &CedarAuthz) {
        for header in &cedar.headers {
            self.dim(Dim::Header(header.clone()));
        }
        for name in &cedar.query {
            self.dim(Dim::Query(name.clone()));
        }
        for pattern in &cedar.patterns {
            self.dim(Dim::of(&pattern.attr)).regex(&pattern.regex);
        }
    }

    /// A principal or action scope: `== E`, `in E`, `in [E, ...]`.
    fn scope(&mut self, scope: &Value) {
        let mut entities: Vec<&Value> = scope.get("entity").into_iter().collect();
        if let Some(Value::Array(list)) = scope.get("entities") {
            entities.extend(list);
        }
        let actions: BTreeSet<String> = entities
            .iter()
            .filter_map(|e| entity(e))
            .filter(|(ty, _)| *ty == "Mesh::Action")
            .map(|(_, id)| id.to_string())
            .collect();
        if !actions.is_empty() {
            self.method_sets.push(actions);
        }
        // Actions were taken as one set above: each on its own would split every method.
        for (ty, id) in entities.iter().filter_map(|e| entity(e)) {
            if ty != "Mesh::Action" {
                self.entity(ty, id);
            }
        }
    }

    fn entity(&mut self, ty: &str, id: &str) {
        match ty {
            "Mesh::Service" => {
                self.identities.insert(id.to_string());
            }
            "Mesh::Namespace" => {
                self.namespaces.insert(id.to_string());
            }
            "Mesh::Action" => {
                self.method_sets.push(BTreeSet::from([id.to_string()]));
            }
            _ => {}
        }
    }

    /// Walks a condition in Cedar's JSON form: entity literals anywhere, and comparisons
    /// of a context attribute with literals.
    fn expr(&mut self, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| self.expr(i)),
            Value::Object(map) => {
                if let Some((ty, id)) = entity(value) {
                    self.entity(ty, id);
                    return;
                }
                for (key, body) in map {
                    self.operation(key, body);
                    self.expr(body);
                }
            }
            _ => {}
        }
    }

    fn operation(&mut self, op: &str, body: &Value) {
        let (left, right) = (body.get("left"), body.get("right"));
        match op {
            "==" | "!=" => {
                for (attr, other) in [(left, right), (right, left)] {
                    if let (Some(dim), Some(other)) = (attr.and_then(context_attr), other) {
                        let tests = self.dim(dim);
                        strings(other).iter().for_each(|v| tests.equal(v));
                    }
                }
            }
            "like" => {
                if let (Some(dim), Some(Value::Array(pattern))) =
                    (left.and_then(context_attr), body.get("pattern"))
                {
                    self.dim(dim).glob(&glob_of(pattern));
                }
            }
            "contains" => {
                // `["/a", "/b"].contains(context.path)`: membership.
                if let (Some(dim), Some(set)) = (right.and_then(context_attr), left) {
                    let tests = self.dim(dim);
                    strings(set).iter().for_each(|v| tests.equal(v));
                }
                // `context.has_headers.contains("x")`: `exists`.
                let set = left.and_then(context_path);
                for name in right.map(strings).unwrap_or_default() {
                    match set.as_deref() {
                        Some(["has_headers"]) => self.dim(Dim::Header(name)),
                        Some(["has_query"]) => self.dim(Dim::Query(name)),
                        _ => continue,
                    };
                }
            }
            _ => {}
        }
    }
}

/// `(type, id)` of an entity reference, `{"type": T, "id": I}` or `{"__entity": {...}}`.
fn entity(value: &Value) -> Option<(&str, &str)> {
    let value = value.get("__entity").unwrap_or(value);
    Some((value.get("type")?.as_str()?, value.get("id")?.as_str()?))
}

/// The attribute path below `context` of an expression: `context.headers.x` is
/// `["headers", "x"]`.
fn context_path(value: &Value) -> Option<Vec<&str>> {
    if value.get("Var").and_then(Value::as_str) == Some("context") {
        return Some(Vec::new());
    }
    let dot = value.get(".")?;
    let mut path = context_path(dot.get("left")?)?;
    path.push(dot.get("attr")?.as_str()?);
    Some(path)
}

/// The request attribute a context expression reads.
fn context_attr(value: &Value) -> Option<Dim> {
    match context_path(value)?.as_slice() {
        ["path"] => Some(Dim::Path),
        ["host"] => Some(Dim::Host),
        ["headers", name] => Some(Dim::Header((*name).to_string())),
        ["query", name] => Some(Dim::Query((*name).to_string())),
        _ => None,
    }
}

/// The string literals of a literal or a set of literals.
fn strings(value: &Value) -> Vec<String> {
    match (value.get("Value"), value.get("Set")) {
        (Some(Value::String(s)), _) => vec![s.clone()],
        (_, Some(Value::Array(items))) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// A Cedar `like` pattern (`[{"Literal": "/a"}, "Wildcard"]`) as a glob.
fn glob_of(pattern: &[Value]) -> String {
    let mut glob = String::new();
    for piece in pattern {
        match piece.get("Literal").and_then(Value::as_str) {
            Some(literal) => {
                for c in literal.chars() {
                    if matches!(c, '*' | '\\') {
                        glob.push('\\');
                    }
                    glob.push(c);
                }
            }
            None => glob.push('*'),
        }
    }
    glob
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_config::schema::{Authz, CedarAuthz, Pattern, PolicyMode};

    fn cedar(policies: &str) -> Authz {
        Authz::Cedar(CedarAuthz {
            mode: PolicyMode::Enforce,
            policies: policies.into(),
            headers: vec!["x-debug".into()],
            query: Vec::new(),
            patterns: vec![Pattern {
                key: "m0".into(),
                attr: Attr::Path,
                regex: r"^/r/\d+$".into(),
            }],
        })
    }

    #[test]
    fn cedar_policies_yield_their_principals_actions_and_context_tests() {
        let mut c = Conditions::default();
        c.add_authz(&cedar(
            r#"
            permit (principal == Mesh::Service::"bookinfo/pp", action in [Mesh::Action::"GET", Mesh::Action::"HEAD"], resource)
            when { context.path like "/api/*" && context.headers["x-debug"] == "1" };
            forbid (principal, action, resource)
            when { principal in Mesh::Namespace::"dev" && context.has_headers.contains("x-trace") && ["/a", "/b"].contains(context.path) == false && context.host != "h.example" };
            "#,
        ));
        assert_eq!(c.identities, BTreeSet::from(["bookinfo/pp".to_string()]));
        assert_eq!(c.namespaces, BTreeSet::from(["dev".to_string()]));
        assert_eq!(
            c.method_sets,
            [BTreeSet::from(["GET".to_string(), "HEAD".to_string()])]
        );
        let path = &c.dims[&Dim::Path];
        assert!(path.candidates.contains("/api/x"), "{path:?}");
        assert!(path.candidates.contains("/r/0"), "{path:?}");
        assert_eq!(
            c.dims[&Dim::Header("x-debug".into())].candidates,
            BTreeSet::from(["1".to_string()])
        );
        assert!(c.dims.contains_key(&Dim::Header("x-trace".into())));
        assert!(c.dims[&Dim::Host].candidates.contains("h.example"));
    }

    #[test]
    fn route_conditions_yield_their_tests_and_sources() {
        let mut c = Conditions::default();
        c.add_match(&Match::All(vec![
            Match::Text {
                attr: Attr::Path,
                op: TextOp::StartsWith,
                value: "/v2/".into(),
            },
            Match::Not(Box::new(Match::TextIn {
                attr: Attr::Header("end-user".into()),
                values: vec!["jason".into(), "kim".into()],
            })),
            Match::Method {
                methods: vec!["POST".into()],
                negated: true,
            },
            Match::Source {
                services: vec!["ns/a".into()],
                negated: false,
            },
        ]));
        assert_eq!(
            c.dims[&Dim::Path].candidates,
            BTreeSet::from(["/v2/".to_string(), "/v2/x".to_string()])
        );
        assert_eq!(c.dims[&Dim::Header("end-user".into())].atoms.len(), 2);
        assert_eq!(c.method_sets, [BTreeSet::from(["POST".to_string()])]);
        assert_eq!(c.sources, BTreeSet::from(["ns/a".to_string()]));
    }
}
