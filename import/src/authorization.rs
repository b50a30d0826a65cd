//! Istio AuthorizationPolicy → `policy` members. A policy first becomes a [`Part`] (its
//! targets and its `allow`/`deny` lines); once every service is known, [`assemble`] gives
//! each service the parts that select it, with Istio's rule that a workload no ALLOW
//! policy selects accepts every request (`allow from authenticated`, or `any` under
//! `mtls permissive`).

use crate::fields::At;
use crate::lit;
use crate::model::{Cond, Mesh, Policy};
use crate::object::Object;
use crate::routing;

/// Istio's root namespace: policies there without a selector apply to the whole mesh.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Which workloads a policy selects.
pub enum Target {
    /// These services (namespace, name).
    Services(Vec<(String, String)>),
    /// Every service of a namespace.
    Namespace(String),
    /// Every service.
    Mesh,
}

/// A translated AuthorizationPolicy.
pub struct Part {
    /// What it selects.
    pub target: Target,
    /// Whether its action is ALLOW (it then takes part in "some ALLOW policy selects it").
    pub allow: bool,
    /// `AuthorizationPolicy x (ns)`.
    pub object: String,
    /// What comments cite: the object, and what it does when that is not obvious.
    pub source: String,
    /// Its members.
    pub members: Vec<Member>,
    /// The ports its rules name, which the services it selects must declare.
    pub ports: Vec<u16>,
}

/// An `allow` or `deny` of a policy, kept apart from its text until the namespace it is
/// written in is known (a mesh-wide policy names callers relative to each service's
/// namespace).
pub struct Member {
    /// `allow` or `deny`.
    verb: &'static str,
    /// The callers.
    callers: Vec<Caller>,
    /// ` when ... { ... }`, possibly empty.
    tail: String,
}

/// One caller of a `from` list.
#[derive(Clone, PartialEq)]
pub enum Caller {
    /// A service (namespace, name).
    Service(String, String),
    /// `any`, `authenticated` or `namespace NS`.
    Word(String),
}

impl Member {
    /// The member as written in namespace `ns`.
    fn text(&self, ns: &str) -> String {
        let callers: Vec<String> = self
            .callers
            .iter()
            .map(|c| match c {
                Caller::Service(n, s) => lit::caller_ref(n, s, ns),
                Caller::Word(w) => w.clone(),
            })
            .collect();
        format!("{} from {}{}", self.verb, callers.join(", "), self.tail)
    }
}

/// Translates one AuthorizationPolicy; `None` when it is not imported at all.
pub fn translate(obj: &Object<'_>, mesh: &mut Mesh) -> Option<Part> {
    let spec = obj.spec();
    let f = spec.fields()?;
    let action = f
        .take("action")
        .and_then(|a| a.at().str().map(|s| (s, a)))
        .map_or(("ALLOW".to_string(), None), |(s, a)| (s, Some(a)));
    let allow = match action.0.as_str() {
        "ALLOW" => true,
        "DENY" => false,
        other => {
            let why = match other {
                "AUDIT" => "AUDIT policies are not expressible (the language's `mode audit` \
                            stops a whole policy from enforcing)"
                    .to_string(),
                "CUSTOM" => "CUSTOM (external) authorization is not expressible".to_string(),
                _ => format!("action {other:?} is not one Istio knows"),
            };
            if let Some(a) = &action.1 {
                a.at().not_expressible(&why);
            }
            for key in ["selector", "targetRef", "targetRefs", "rules", "provider"] {
                f.skip(key);
            }
            return None;
        }
    };
    let target = target(obj, &f)?;
    if let Target::Services(services) = &target {
        let why = format!("a service {} selects", obj.ctx.object);
        for (ns, name) in services {
            mesh.service(ns, name, &crate::declared(&why));
        }
    }
    let caller_any = if mesh.permissive.is_some() {
        "any"
    } else {
        "authenticated"
    };
    let mut members = Vec::new();
    let mut ports = Vec::new();
    let verb = if allow { "allow" } else { "deny" };
    let mut source = obj.ctx.object.clone();
    match f.take("rules") {
        None => {
            source.push_str(if allow {
                ": no rules, so it allows nothing"
            } else {
                ": no rules, so it denies nothing"
            });
        }
        Some(rules) => {
            for item in rules.at().items() {
                for (callers, tail) in rule(item.at(), obj, mesh, caller_any, &mut ports) {
                    members.push(Member {
                        verb,
                        callers,
                        tail,
                    });
                }
            }
        }
    }
    f.not_expressible(
        "provider",
        "external authorization providers are not expressible",
    );
    Some(Part {
        target,
        allow,
        object: obj.ctx.object.clone(),
        source,
        members,
        ports,
    })
}

fn target(obj: &Object<'_>, f: &crate::fields::Fields<'_>) -> Option<Target> {
    if let Some(sel) = f.take("selector") {
        let labels = sel
            .at()
            .fields()
            .and_then(|s| s.take("matchLabels"))
            .map(|m| m.at().string_map())
            .unwrap_or_default();
        return match labels.as_slice() {
            [(k, app)] if k == "app" && lit::is_ident(app) => {
                Some(Target::Services(vec![(obj.namespace.clone(), app.clone())]))
            }
            _ => {
                sel.at().not_expressible(
                    "a policy protects whole services: only a selector `app: SERVICE` is \
                     expressible, so this policy is not imported",
                );
                f.skip("rules");
                None
            }
        };
    }
    let refs: Vec<_> = f
        .take("targetRef")
        .map(|t| vec![t])
        .or_else(|| f.take("targetRefs").map(|t| t.at().items()))
        .unwrap_or_default();
    if !refs.is_empty() {
        let mut services = Vec::new();
        for r in refs {
            let Some(rf) = r.at().fields() else { continue };
            let kind = rf.str("kind").unwrap_or_default();
            rf.skip("group");
            let name = rf.str("name").unwrap_or_default();
            let ns = rf.str("namespace").unwrap_or_else(|| obj.namespace.clone());
            if kind == "Service" && lit::is_ident(&name) {
                services.push((ns, name));
            } else {
                r.at().not_expressible(&format!(
                    "only a Service is expressible as a policy's target, not a {kind}"
                ));
            }
        }
        if services.is_empty() {
            f.skip("rules");
            return None;
        }
        return Some(Target::Services(services));
    }
    Some(if obj.namespace == ROOT_NAMESPACE {
        Target::Mesh
    } else {
        Target::Namespace(obj.namespace.clone())
    })
}

/// One rule as callers and the text after them, one per source and operation.
fn rule(
    at: &At<'_>,
    obj: &Object<'_>,
    mesh: &mut Mesh,
    any: &str,
    ports: &mut Vec<u16>,
) -> Vec<(Vec<Caller>, String)> {
    let Some(f) = at.fields() else {
        return Vec::new();
    };
    // Each source: callers and a condition; all sources with no condition merge.
    let mut sources: Vec<(Vec<Caller>, Option<Cond>)> = Vec::new();
    if let Some(from) = f.take("from") {
        for item in from.at().items() {
            let Some(ff) = item.at().fields() else {
                continue;
            };
            let Some(src) = ff.take("source") else {
                continue;
            };
            sources.push(source(src.at(), obj, mesh, any));
        }
    }
    let everyone = Caller::Word(any.to_string());
    if sources.is_empty() {
        sources.push((vec![everyone.clone()], None));
    }
    if sources.iter().all(|(_, c)| c.is_none()) {
        let mut callers: Vec<Caller> = Vec::new();
        for (c, _) in sources.drain(..) {
            for caller in c {
                if !callers.contains(&caller) {
                    callers.push(caller);
                }
            }
        }
        if callers.contains(&everyone) {
            callers = vec![everyone];
        }
        sources.push((callers, None));
    }
    let mut operations: Vec<(Vec<String>, Option<Cond>)> = Vec::new();
    if let Some(to) = f.take("to") {
        for item in to.at().items() {
            let Some(tf) = item.at().fields() else {
                continue;
            };
            if let Some(op) = tf.take("operation") {
                operations.push(operation(op.at(), ports));
            }
        }
    }
    if operations.is_empty() {
        operations.push((Vec::new(), None));
    }
    let mut conditions = Vec::new();
    if let Some(when) = f.take("when") {
        for item in when.at().items() {
            if let Some(c) = condition(item.at()) {
                conditions.push(c);
            }
        }
    }
    let mut lines = Vec::new();
    for (callers, source_cond) in &sources {
        for (constraints, op_cond) in &operations {
            let mut all: Vec<Cond> = Vec::new();
            all.extend(source_cond.clone());
            all.extend(op_cond.clone());
            all.extend(conditions.iter().cloned());
            let mut tail = String::new();
            if let Some(c) = Cond::all(all) {
                tail.push_str(&format!(" when {}", c.text()));
            }
            if !constraints.is_empty() {
                tail.push_str(&format!(" {{ {} }}", constraints.join("  ")));
            }
            lines.push((callers.clone(), tail));
        }
    }
    lines
}

fn source(
    at: &At<'_>,
    obj: &Object<'_>,
    mesh: &mut Mesh,
    any: &str,
) -> (Vec<Caller>, Option<Cond>) {
    let Some(f) = at.fields() else {
        return (vec![Caller::Word(any.to_string())], None);
    };
    let mut callers = Vec::new();
    let mut conds = Vec::new();
    if let Some(p) = f.take("principals") {
        for (principal, item) in p.at().strings() {
            if let Some(c) = principal_caller(&principal, item.at(), obj, mesh, any) {
                callers.push(c);
            }
        }
    }
    if let Some(n) = f.take("namespaces") {
        for (ns, item) in n.at().strings() {
            if let Some(c) = namespace_caller(&ns, item.at(), mesh, any) {
                callers.push(c);
            }
        }
    }
    if let Some(np) = f.take("notPrincipals") {
        let mut not = Vec::new();
        for (principal, item) in np.at().strings() {
            match principal_caller(&principal, item.at(), obj, mesh, any) {
                Some(Caller::Service(ns, name)) => not.push(Cond::Atom(format!(
                    "source == {}",
                    lit::caller_ref(&ns, &name, &obj.namespace)
                ))),
                Some(Caller::Word(_)) => item.at().not_expressible(
                    "excluding a namespace or every caller is not expressible as a condition",
                ),
                None => {}
            }
        }
        if let Some(c) = Cond::any(not) {
            conds.push(Cond::Not(Box::new(c)));
        }
    }
    for key in [
        "notNamespaces",
        "requestPrincipals",
        "notRequestPrincipals",
        "ipBlocks",
        "notIpBlocks",
        "remoteIpBlocks",
        "notRemoteIpBlocks",
    ] {
        f.not_expressible(
            key,
            "not expressible: the language knows callers by mesh identity and namespace",
        );
    }
    if callers.is_empty() {
        callers.push(Caller::Word(any.to_string()));
    }
    (callers, Cond::all(conds))
}

/// `TRUST_DOMAIN/ns/NS/sa/SA` as a caller: the service with that identity (declared
/// when none is known), `namespace NS` for `sa/*`, every caller for `*`.
fn principal_caller(
    principal: &str,
    at: &At<'_>,
    obj: &Object<'_>,
    mesh: &mut Mesh,
    any: &str,
) -> Option<Caller> {
    if principal == "*" {
        return Some(Caller::Word(any.to_string()));
    }
    let parts: Vec<&str> = principal.split('/').collect();
    let [_trust_domain, "ns", ns, "sa", sa] = parts.as_slice() else {
        at.not_expressible(&format!(
            "principal {principal:?} is not expressible: the language knows callers by \
             TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT"
        ));
        return None;
    };
    if !lit::is_ident(ns) || ns.contains('*') {
        at.not_expressible(&format!(
            "principal {principal:?}: only exact namespaces are expressible"
        ));
        return None;
    }
    if *sa == "*" {
        mesh.namespace(ns);
        return Some(Caller::Word(format!("namespace {ns}")));
    }
    if !lit::is_ident(sa) {
        at.not_expressible(&format!(
            "principal {principal:?}: only exact service accounts (or `*`) are expressible"
        ));
        return None;
    }
    let name = identity_owner(mesh, ns, sa).unwrap_or_else(|| {
        let why = format!(
            "declared by meshc import for principal {principal} of {}: the workloads running \
             as service account {sa}; merge it into their service",
            obj.ctx.object
        );
        mesh.service(ns, sa, &why).identity = Some((*sa).to_string());
        (*sa).to_string()
    });
    Some(Caller::Service((*ns).to_string(), name))
}

/// The service of namespace `ns` whose identity is `sa`.
fn identity_owner(mesh: &Mesh, ns: &str, sa: &str) -> Option<String> {
    let services = &mesh.namespaces.get(ns)?.services;
    services
        .iter()
        .find(|(_, s)| s.identity.as_deref() == Some(sa))
        .or_else(|| {
            services
                .iter()
                .find(|(name, s)| name.as_str() == sa && s.identity.is_none())
        })
        .map(|(name, _)| name.clone())
}

fn namespace_caller(ns: &str, at: &At<'_>, mesh: &mut Mesh, any: &str) -> Option<Caller> {
    if ns == "*" {
        return Some(Caller::Word(any.to_string()));
    }
    if !lit::is_ident(ns) {
        at.not_expressible(&format!(
            "namespace {ns:?}: only exact namespaces are expressible"
        ));
        return None;
    }
    mesh.namespace(ns);
    Some(Caller::Word(format!("namespace {ns}")))
}

/// An `Operation`: its constraints (`methods`, `paths`, `ports`) and condition (hosts
/// and the `not` fields).
fn operation(at: &At<'_>, all_ports: &mut Vec<u16>) -> (Vec<String>, Option<Cond>) {
    let Some(f) = at.fields() else {
        return (Vec::new(), None);
    };
    let mut constraints = Vec::new();
    let mut conds = Vec::new();
    if let Some(m) = f.take("methods") {
        let methods: Vec<String> = m
            .at()
            .strings()
            .into_iter()
            .filter_map(|(method, item)| known_method(&method, item.at()))
            .collect();
        if !methods.is_empty() {
            constraints.push(format!("methods [{}]", methods.join(", ")));
        }
    }
    if let Some(p) = f.take("paths") {
        let paths: Vec<String> = p
            .at()
            .strings()
            .into_iter()
            .filter_map(|(path, item)| glob(&path, item.at()))
            .collect();
        if !paths.is_empty() {
            constraints.push(format!("paths [{}]", paths.join(", ")));
        }
    }
    if let Some(p) = f.take("ports") {
        let mut ports = Vec::new();
        for (port, item) in p.at().strings() {
            match port.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => item
                    .at()
                    .bad_value(&format!("{port:?} is not a port number")),
            }
        }
        if !ports.is_empty() {
            all_ports.extend(&ports);
            constraints.push(format!(
                "ports [{}]",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if let Some(h) = f.take("hosts") {
        let any: Vec<Cond> = h
            .at()
            .strings()
            .into_iter()
            .map(|(host, _)| host_cond(&host))
            .collect();
        conds.extend(Cond::any(any));
    }
    for (key, negated) in [
        ("notHosts", "host"),
        ("notMethods", "method"),
        ("notPaths", "path"),
    ] {
        let Some(list) = f.take(key) else { continue };
        let mut any = Vec::new();
        for (value, item) in list.at().strings() {
            let c = match negated {
                "host" => Some(host_cond(&value)),
                "method" => {
                    known_method(&value, item.at()).map(|m| Cond::Atom(format!("method == {m}")))
                }
                _ => glob(&value, item.at()).map(|g| Cond::Atom(format!("path like {g}"))),
            };
            any.extend(c);
        }
        if let Some(c) = Cond::any(any) {
            conds.push(Cond::Not(Box::new(c)));
        }
    }
    f.not_expressible(
        "notPorts",
        "excluding ports is not expressible (list the ports that are allowed)",
    );
    (constraints, Cond::all(conds))
}

fn known_method(method: &str, at: &At<'_>) -> Option<String> {
    if routing::METHODS.contains(&method) {
        Some(method.to_string())
    } else {
        at.bad_value(&format!(
            "method {method:?} is not one the language knows ({})",
            routing::METHODS.join(", ")
        ));
        None
    }
}

/// An Istio path (exact, `prefix*`, `*suffix` or `*`) as the language's glob.
fn glob(path: &str, at: &At<'_>) -> Option<String> {
    if path.contains('{') {
        at.not_expressible(&format!("path template {path:?} is not expressible"));
        return None;
    }
    Some(lit::string(&path.replace('\\', "\\\\")))
}

fn host_cond(host: &str) -> Cond {
    let host = host.to_ascii_lowercase();
    if host.contains('*') {
        Cond::Atom(format!("host like {}", lit::string(&host)))
    } else {
        Cond::Atom(format!("host == {}", lit::string(&host)))
    }
}

/// A `when` condition: request headers and the caller's principal are expressible.
fn condition(at: &At<'_>) -> Option<Cond> {
    let f = at.fields()?;
    let key_field = f.take("key")?;
    let key = key_field.at().str()?;
    let values = f
        .take("values")
        .map(|v| v.at().strings())
        .unwrap_or_default();
    let not_values = f
        .take("notValues")
        .map(|v| v.at().strings())
        .unwrap_or_default();
    let subject = match key
        .strip_prefix("request.headers[")
        .and_then(|k| k.strip_suffix(']'))
    {
        Some(name) if routing::is_header_name(name) => {
            format!("header({})", lit::string(&name.to_ascii_lowercase()))
        }
        _ => {
            key_field.at().not_expressible(&format!(
                "condition key {key:?} is not expressible (request.headers[NAME] is)"
            ));
            return None;
        }
    };
    let matches = |list: &[(String, crate::fields::Owned<'_>)]| {
        Cond::any(
            list.iter()
                .map(|(v, _)| {
                    if v.contains('*') {
                        Cond::Atom(format!("{subject} like {}", lit::string(v)))
                    } else {
                        Cond::Atom(format!("{subject} == {}", lit::string(v)))
                    }
                })
                .collect(),
        )
    };
    let mut all = Vec::new();
    all.extend(matches(&values));
    if let Some(c) = matches(&not_values) {
        all.push(Cond::Not(Box::new(c)));
    }
    Cond::all(all)
}

/// Gives each service of `mesh` the policy made of the parts that select it; returns a
/// note for each part that selects no service of the mesh (a namespace-wide policy of a
/// namespace the input declares nothing in), which would otherwise leave no trace.
pub fn assemble(mesh: &mut Mesh, parts: &[Part]) -> Vec<String> {
    let any = if mesh.permissive.is_some() {
        "any"
    } else {
        "authenticated"
    };
    let names: Vec<(String, String)> = mesh
        .namespaces
        .iter()
        .flat_map(|(ns, n)| n.services.keys().map(move |s| (ns.clone(), s.clone())))
        .collect();
    let mut used = vec![false; parts.len()];
    for (ns, name) in names {
        let applies: Vec<&Part> = parts
            .iter()
            .filter(|p| match &p.target {
                Target::Services(s) => s.iter().any(|(n, x)| *n == ns && *x == name),
                Target::Namespace(n) => *n == ns,
                Target::Mesh => true,
            })
            .collect();
        for (i, part) in parts.iter().enumerate() {
            if applies.iter().any(|p| std::ptr::eq(*p, part)) {
                used[i] = true;
            }
        }
        let mut policy = Policy::default();
        if !applies.iter().any(|p| p.allow) {
            policy.members.push(
                "// no ALLOW AuthorizationPolicy selects this service: Istio lets every \
                 request through"
                    .to_string(),
            );
            policy.members.push(format!("allow from {any}"));
        }
        let mut ports = Vec::new();
        for part in &applies {
            policy.comments.push(format!("from {}", part.source));
            policy
                .members
                .extend(part.members.iter().map(|m| m.text(&ns)));
            ports.extend(&part.ports);
        }
        let namespace = mesh.namespace(&ns);
        if let Some(service) = namespace.services.get_mut(&name) {
            for port in ports {
                service.ports.entry(port).or_insert("http");
            }
        }
        namespace.policies.insert(name, policy);
    }
    parts
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(part, _)| {
            format!(
                "{} selects no service named in the input; services without a policy get the \
                 mesh's default_policy (deny)",
                part.object
            )
        })
        .collect()
}
