//! The finite set of representative requests: one value per class of every attribute the
//! conditions test, one method per class of the method sets they name, one caller per
//! class of the identities and namespaces they name — and the product of those. Two
//! requests that agree on every class are treated alike by every condition of both
//! versions, so evaluating one per combination decides them all (exactly for equality,
//! membership, presence and prefixes; `like` and `matches` contribute one witness each).

use std::collections::{BTreeMap, BTreeSet};

use mesh_config::{Peer, SimpleRequest};

use super::conditions::{Conditions, Dim, DimTests};
use super::witness::FILLER;
use crate::ir::Method;

/// At most this many combinations are evaluated per workload and kind of question; a
/// larger product is cut there and the result says so.
pub(super) const MAX_CLASSES: usize = 50_000;

/// A method no method set can name: the class of non-standard methods.
const EXTENSION_METHOD: &str = "PROPFIND";

/// A caller as authorization tells callers apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum CallerClass {
    /// An identity a policy names (`namespace/service_account`).
    Identity(String),
    /// An identity no policy names, in a namespace one names.
    InNamespace(String),
    /// An identity in a namespace no policy names.
    Outside,
    /// A caller without a verified identity (plaintext under permissive mTLS).
    Anonymous,
}

/// The caller classes of one workload, and the made-up names standing for the unnamed.
pub(super) struct Callers {
    /// Every class, named identities first.
    pub(super) classes: Vec<CallerClass>,
    /// A service account no named identity has.
    account: String,
    /// A namespace no policy names.
    namespace: String,
}

impl Callers {
    pub(super) fn new(conditions: &Conditions) -> Callers {
        let namespaces: BTreeSet<&str> = conditions
            .namespaces
            .iter()
            .map(String::as_str)
            .chain(
                conditions
                    .identities
                    .iter()
                    .filter_map(|i| i.split_once('/').map(|(ns, _)| ns)),
            )
            .collect();
        let accounts: BTreeSet<&str> = conditions
            .identities
            .iter()
            .filter_map(|i| i.split_once('/').map(|(_, sa)| sa))
            .collect();
        let mut classes: Vec<CallerClass> = conditions
            .identities
            .iter()
            .cloned()
            .map(CallerClass::Identity)
            .collect();
        classes.extend(
            conditions
                .namespaces
                .iter()
                .cloned()
                .map(CallerClass::InNamespace),
        );
        classes.extend([CallerClass::Outside, CallerClass::Anonymous]);
        Callers {
            classes,
            account: fresh("unnamed", |n| accounts.contains(n)),
            namespace: fresh("unnamed", |n| namespaces.contains(n)),
        }
    }

    /// The identity (`namespace/service_account`) standing for `class`.
    pub(super) fn identity(&self, class: &CallerClass) -> Option<String> {
        match class {
            CallerClass::Identity(id) => Some(id.clone()),
            CallerClass::InNamespace(ns) => Some(format!("{ns}/{}", self.account)),
            CallerClass::Outside => Some(format!("{}/{}", self.namespace, self.account)),
            CallerClass::Anonymous => None,
        }
    }

    /// The caller as the agent sees it, in `trust_domain`.
    pub(super) fn peer(&self, class: &CallerClass, trust_domain: &str) -> Peer {
        match self.identity(class).and_then(|id| {
            let (ns, sa) = id.split_once('/')?;
            Some(format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}"))
        }) {
            Some(spiffe) => Peer::from_spiffe_id(&spiffe, trust_domain),
            None => Peer::anonymous(),
        }
    }
}

/// `base`, or `base-N` with the smallest N that is not `taken`.
pub(super) fn fresh(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

/// One method per class: methods in the same named sets are alike.
pub(super) fn methods(sets: &[BTreeSet<String>]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    Method::ALL
        .iter()
        .map(|m| m.as_str())
        .chain([EXTENSION_METHOD])
        .filter(|m| seen.insert(sets.iter().map(|s| s.contains(*m)).collect::<Vec<_>>()))
        .map(str::to_string)
        .collect()
}

/// One value per class of an attribute (`None`: a header or query parameter absent),
/// shortest first within a class. `default` is what a request carries when nothing is
/// tested (the path `/`, the workload's host).
fn values(dim: &Dim, tests: &DimTests, default: &str) -> Vec<Option<String>> {
    let optional = matches!(dim, Dim::Header(_) | Dim::Query(_));
    let unmatched = match dim {
        Dim::Path => format!("/{FILLER}"),
        _ => FILLER.to_string(),
    };
    let mut pool: Vec<&str> = tests
        .candidates
        .iter()
        .map(String::as_str)
        .chain([default, unmatched.as_str()])
        .collect();
    pool.sort_by_key(|v| (v.len(), *v));
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    if optional {
        seen.insert((false, signature(tests, "")));
        out.push(None);
    }
    for value in pool {
        if seen.insert((true, signature(tests, value))) {
            out.push(Some(value.to_string()));
        }
    }
    out
}

fn signature(tests: &DimTests, value: &str) -> Vec<bool> {
    tests.atoms.iter().map(|a| a.holds(value)).collect()
}

/// The requests of one question: methods and attribute values, each a list of classes.
pub(super) struct Space {
    methods: Vec<String>,
    dims: Vec<(Dim, Vec<Option<String>>)>,
    default_host: String,
    /// Whether a condition tests the host (examples then show it).
    pub(super) host_tested: bool,
}

impl Space {
    /// The classes of requests `conditions` tell apart, sent to `default_host`.
    pub(super) fn new(conditions: &Conditions, default_host: &str) -> Space {
        let mut dims: BTreeMap<Dim, Vec<Option<String>>> = conditions
            .dims
            .iter()
            .map(|(dim, tests)| {
                let default = match dim {
                    Dim::Path => "/",
                    Dim::Host => default_host,
                    Dim::Header(_) | Dim::Query(_) => FILLER,
                };
                (dim.clone(), values(dim, tests, default))
            })
            .collect();
        dims.entry(Dim::Path)
            .or_insert_with(|| vec![Some("/".into())]);
        Space {
            methods: methods(&conditions.method_sets),
            host_tested: dims.contains_key(&Dim::Host),
            dims: dims.into_iter().collect(),
            default_host: default_host.to_string(),
        }
    }

    /// The number of classes along each axis: the method, then each attribute.
    pub(super) fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.methods.len())
            .chain(self.dims.iter().map(|(_, values)| values.len()))
            .collect()
    }

    /// The request of the classes `digits` (one per axis of [`Space::sizes`]).
    pub(super) fn request(&self, digits: &[usize], port: u16) -> SimpleRequest {
        let mut request = SimpleRequest {
            method: digits
                .first()
                .and_then(|d| self.methods.get(*d))
                .cloned()
                .unwrap_or_default(),
            path: "/".into(),
            host: self.default_host.clone(),
            headers: Vec::new(),
            query: Vec::new(),
            port,
        };
        for ((dim, values), digit) in self.dims.iter().zip(digits.iter().skip(1)) {
            let Some(Some(value)) = values.get(*digit) else {
                continue;
            };
            match dim {
                Dim::Path => request.path.clone_from(value),
                Dim::Host => request.host.clone_from(value),
                Dim::Header(name) => request.headers.push((name.clone(), value.clone())),
                Dim::Query(name) => request.query.push((name.clone(), value.clone())),
            }
        }
        request
    }
}

/// Calls `visit` with every combination of digits below `sizes` (the last axis fastest),
/// at most `limit` of them; returns the number of combinations there are (saturating).
pub(super) fn enumerate(sizes: &[usize], limit: usize, mut visit: impl FnMut(&[usize])) -> usize {
    let total = sizes
        .iter()
        .try_fold(1usize, |acc, n| acc.checked_mul(*n))
        .unwrap_or(usize::MAX);
    let mut digits = vec![0; sizes.len()];
    for _ in 0..total.min(limit) {
        visit(&digits);
        for (digit, size) in digits.iter_mut().zip(sizes).rev() {
            *digit += 1;
            if *digit < *size {
                break;
            }
            *digit = 0;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_config::schema::{Attr, Match, TextOp};

    #[test]
    fn methods_in_the_same_sets_share_a_class() {
        let sets = [
            BTreeSet::from(["GET".to_string()]),
            Method::ALL.iter().map(|m| m.as_str().to_string()).collect(),
        ];
        assert_eq!(methods(&sets), ["GET", "HEAD", EXTENSION_METHOD]);
        assert_eq!(methods(&[]), ["GET"]);
    }

    #[test]
    fn values_keep_one_per_class_and_absence() {
        let mut c = Conditions::default();
        c.add_match(&Match::Text {
            attr: Attr::Path,
            op: TextOp::StartsWith,
            value: "/api/".into(),
        });
        c.add_match(&Match::Text {
            attr: Attr::Header("end-user".into()),
            op: TextOp::Eq,
            value: "jason".into(),
        });
        let space = Space::new(&c, "reviews");
        assert_eq!(space.sizes(), [1, 2, 3]);
        let mut seen = Vec::new();
        let total = enumerate(&space.sizes(), 100, |d| {
            let r = space.request(d, 80);
            seen.push(format!("{} {} {:?}", r.method, r.path, r.headers));
        });
        assert_eq!(total, 6);
        assert_eq!(
            seen,
            [
                r#"GET / []"#,
                r#"GET / [("end-user", "x")]"#,
                r#"GET / [("end-user", "jason")]"#,
                r#"GET /api/ []"#,
                r#"GET /api/ [("end-user", "x")]"#,
                r#"GET /api/ [("end-user", "jason")]"#,
            ]
        );
    }

    #[test]
    fn enumeration_stops_at_the_limit_and_reports_the_total() {
        let mut n = 0;
        assert_eq!(enumerate(&[10, 10, 10], 7, |_| n += 1), 1000);
        assert_eq!(n, 7);
        assert_eq!(enumerate(&[usize::MAX, 2], 1, |_| {}), usize::MAX);
    }

    #[test]
    fn unnamed_callers_get_names_no_policy_uses() {
        let mut c = Conditions::default();
        c.identities.insert("unnamed/unnamed".into());
        c.namespaces.insert("prod".into());
        let callers = Callers::new(&c);
        assert_eq!(
            callers.identity(&CallerClass::InNamespace("prod".into())),
            Some("prod/unnamed-2".into())
        );
        assert_eq!(
            callers.identity(&CallerClass::Outside),
            Some("unnamed-2/unnamed-2".into())
        );
        assert_eq!(callers.classes.len(), 4);
    }
}
