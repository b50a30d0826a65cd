//! The mesh being built: the few shapes of the language the import writes (services,
//! routes, policies, the mesh block), filled by the translations of each kind and then
//! printed by [`crate::render`]. Members that need no structure are kept as text.

use std::collections::BTreeMap;

/// Everything imported, by namespace.
#[derive(Default, Debug)]
pub struct Mesh {
    /// Why the mesh block says `mtls permissive`, when a PeerAuthentication asked for it.
    pub permissive: Option<String>,
    /// Namespaces by name; `default` is written at the top level.
    pub namespaces: BTreeMap<String, Namespace>,
}

/// The items of one namespace.
#[derive(Default, Debug)]
pub struct Namespace {
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Routes by service name.
    pub routes: BTreeMap<String, Route>,
    /// Policies by service name.
    pub policies: BTreeMap<String, Policy>,
}

/// A service declaration.
#[derive(Default, Debug)]
pub struct Service {
    /// Comment lines above it: where it was seen.
    pub comments: Vec<String>,
    /// Pod labels, when a Kubernetes Service's selector is not the default `app: NAME`.
    pub labels: Vec<(String, String)>,
    /// The service account, when the import learned one.
    pub identity: Option<String>,
    /// Port number to protocol (`http`, `http2`, `grpc`, `tcp`).
    pub ports: BTreeMap<u16, &'static str>,
    /// Subsets, in the order they were found.
    pub subsets: Vec<Subset>,
    /// The balancer, when a DestinationRule chose one.
    pub balance: Option<&'static str>,
    /// `limits { ... }` members.
    pub limits: Vec<(&'static str, String)>,
    /// `outlier { ... }` members; `Some` turns ejection on.
    pub outlier: Option<Vec<(&'static str, String)>>,
}

/// A subset of a service.
#[derive(Debug)]
pub struct Subset {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Vec<(String, String)>,
}

/// A route: rules in order.
#[derive(Default, Debug)]
pub struct Route {
    /// Comment lines above it: the objects it comes from.
    pub comments: Vec<String>,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// One rule of a route.
#[derive(Debug)]
pub struct Rule {
    /// Its name (an identifier, unique in the route).
    pub name: String,
    /// The comment inside it: the YAML path it comes from.
    pub comment: String,
    /// Its condition; none matches every request.
    pub when: Option<Cond>,
    /// Where its requests go.
    pub dest: Dest,
    /// Other members, each a line of text (`timeout 2s`, `fault { ... }`).
    pub members: Vec<String>,
}

/// The destination of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    /// `to REF`.
    To(String),
    /// `split { REF PERCENT ... }`, percents as written.
    Split(Vec<(String, String)>),
}

/// An authorization policy: its members as lines of text (comments included).
#[derive(Default, Debug)]
pub struct Policy {
    /// Comment lines above it.
    pub comments: Vec<String>,
    /// Members, each a line (`allow from a, b { methods [GET] }`, `// ...`).
    pub members: Vec<String>,
}

/// A condition, printed with the parentheses the precedence needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// A comparison, as text (`path starts_with "/a"`).
    Atom(String),
    /// `!(...)`.
    Not(Box<Cond>),
    /// Every one holds.
    And(Vec<Cond>),
    /// One holds.
    Or(Vec<Cond>),
}

impl Cond {
    /// All of `conds` (none: `None`, one: itself).
    pub fn all(mut conds: Vec<Cond>) -> Option<Cond> {
        match conds.len() {
            0 => None,
            1 => conds.pop(),
            _ => Some(Cond::And(conds)),
        }
    }

    /// Any of `conds` (none: `None`, one: itself).
    pub fn any(mut conds: Vec<Cond>) -> Option<Cond> {
        match conds.len() {
            0 => None,
            1 => conds.pop(),
            _ => Some(Cond::Or(conds)),
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Cond::Or(_) => 1,
            Cond::And(_) => 2,
            Cond::Atom(_) | Cond::Not(_) => 3,
        }
    }

    /// The condition as `.mesh` text.
    pub fn text(&self) -> String {
        let part = |c: &Cond, min: u8| {
            if c.precedence() < min {
                format!("({})", c.text())
            } else {
                c.text()
            }
        };
        match self {
            Cond::Atom(text) => text.clone(),
            Cond::Not(inner) => format!("!({})", inner.text()),
            Cond::And(parts) => parts
                .iter()
                .map(|c| part(c, 2))
                .collect::<Vec<_>>()
                .join(" && "),
            Cond::Or(parts) => parts
                .iter()
                .map(|c| part(c, 1))
                .collect::<Vec<_>>()
                .join(" || "),
        }
    }
}

impl Mesh {
    /// The namespace `name`, created when new.
    pub fn namespace(&mut self, name: &str) -> &mut Namespace {
        self.namespaces.entry(name.to_string()).or_default()
    }

    /// The service `name` of namespace `ns`, declared (with `why` as its comment) when new.
    pub fn service(&mut self, ns: &str, name: &str, why: &str) -> &mut Service {
        let service = self
            .namespace(ns)
            .services
            .entry(name.to_string())
            .or_default();
        if service.comments.is_empty() {
            service.comments.push(why.to_string());
        }
        service
    }

    /// Whether service `name` of namespace `ns` has subset `subset`.
    pub fn has_subset(&self, ns: &str, name: &str, subset: &str) -> bool {
        self.namespaces
            .get(ns)
            .and_then(|n| n.services.get(name))
            .is_some_and(|s| s.subsets.iter().any(|x| x.name == subset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_get_the_parentheses_precedence_needs() {
        let a = || Cond::Atom("a".into());
        let c = Cond::And(vec![Cond::Or(vec![a(), a()]), Cond::Not(Box::new(a()))]);
        assert_eq!(c.text(), "(a || a) && !(a)");
        let d = Cond::Or(vec![Cond::And(vec![a(), a()]), a()]);
        assert_eq!(d.text(), "a && a || a");
    }
}
