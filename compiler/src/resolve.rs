//! Name resolution: one scope per namespace holding its services and retry profiles, the
//! routes, policies and tests declared in it, and the lookup of references
//! (`svc`, `svc.subset`, `ns/svc`, `ns/svc.subset`) with "did you mean" suggestions.
//! Duplicate names are `E0003`; unknown names `E0002`.

use std::collections::BTreeMap;

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, Ident, Item, ItemKind, Ref, Span};

use crate::diag::{DUPLICATE, Finding, TYPE_MISMATCH, UNKNOWN_REF, did_you_mean};
use crate::ir::{Caller, GatewayId, Origin, RetryId, ServiceId};
use crate::load::{FileId, Loaded};

/// The namespace of items outside any `namespace` block.
pub const DEFAULT_NAMESPACE: &str = "default";

/// An item and where it is declared.
#[derive(Debug)]
pub struct Decl<'a, T> {
    /// Its file.
    pub file: FileId,
    /// Its namespace.
    pub namespace: &'a str,
    /// The whole item.
    pub item: &'a Item,
    /// The item's node.
    pub node: &'a T,
    /// Whether it comes from the standard library.
    pub is_std: bool,
}

impl<T> Clone for Decl<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Decl<'_, T> {}

impl<T> Decl<'_, T> {
    /// Where the item is.
    pub fn origin(&self) -> Origin {
        Origin {
            file: self.file,
            span: self.item.span,
        }
    }
}

/// Every declaration of the mesh, by namespace.
#[derive(Debug, Default)]
pub struct Symbols<'a> {
    /// `mesh` blocks.
    pub meshes: Vec<Decl<'a, ast::MeshDecl>>,
    /// Services, sorted by (namespace, name); the index is the [`ServiceId`].
    pub services: Vec<Decl<'a, ast::Service>>,
    /// Retry profiles, sorted by (namespace, name); the index is the [`RetryId`].
    pub retries: Vec<Decl<'a, ast::RetryProfile>>,
    /// Routes in load order.
    pub routes: Vec<Decl<'a, ast::Route>>,
    /// Policies in load order.
    pub policies: Vec<Decl<'a, ast::Policy>>,
    /// Tests in load order.
    pub tests: Vec<Decl<'a, ast::Test>>,
    /// Gateways, sorted by (namespace, name); the index is the [`GatewayId`].
    pub gateways: Vec<Decl<'a, ast::Gateway>>,
    service_index: BTreeMap<(&'a str, &'a str), ServiceId>,
    gateway_index: BTreeMap<(&'a str, &'a str), GatewayId>,
    retry_index: BTreeMap<(&'a str, &'a str), RetryId>,
    /// Namespaces that hold at least one item.
    pub namespaces: Vec<&'a str>,
}

/// What a name in a namespace scope refers to (services, gateways and retry profiles
/// share it).
#[derive(Clone, Copy)]
enum Named<'a> {
    Service(Decl<'a, ast::Service>),
    Retry(Decl<'a, ast::RetryProfile>),
    Gateway(Decl<'a, ast::Gateway>),
}

impl<'a> Named<'a> {
    fn name(&self) -> &'a Ident {
        match self {
            Named::Service(d) => &d.node.name,
            Named::Retry(d) => &d.node.name,
            Named::Gateway(d) => &d.node.name,
        }
    }

    fn file(&self) -> FileId {
        match self {
            Named::Service(d) => d.file,
            Named::Retry(d) => d.file,
            Named::Gateway(d) => d.file,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Named::Service(_) => "service",
            Named::Retry(_) => "retry profile",
            Named::Gateway(_) => "gateway",
        }
    }
}

/// Collects every declaration; reports duplicate names.
pub fn collect<'a>(loaded: &'a Loaded, findings: &mut Vec<Finding>) -> Symbols<'a> {
    let mut symbols = Symbols::default();
    let mut scope: BTreeMap<(&'a str, &'a str), Named<'a>> = BTreeMap::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for file in &loaded.files {
        for item in &file.ast.items {
            if let ItemKind::Namespace(ns) = &item.kind {
                namespaces.insert(ns.name.name.as_str());
                for inner in &ns.items {
                    declare(
                        &mut symbols,
                        &mut scope,
                        findings,
                        file.id,
                        file.is_std,
                        &ns.name.name,
                        inner,
                    );
                }
            } else {
                if !matches!(
                    item.kind,
                    ItemKind::Import(_) | ItemKind::Mesh(_) | ItemKind::Error
                ) {
                    namespaces.insert(DEFAULT_NAMESPACE);
                }
                declare(
                    &mut symbols,
                    &mut scope,
                    findings,
                    file.id,
                    file.is_std,
                    DEFAULT_NAMESPACE,
                    item,
                );
            }
        }
    }
    for named in scope.into_values() {
        match named {
            Named::Service(d) => symbols.services.push(d),
            Named::Retry(d) => symbols.retries.push(d),
            Named::Gateway(d) => symbols.gateways.push(d),
        }
    }
    for (i, d) in symbols.gateways.iter().enumerate() {
        symbols.gateway_index.insert(
            (d.namespace, d.node.name.name.as_str()),
            GatewayId(i as u32),
        );
    }
    for (i, d) in symbols.services.iter().enumerate() {
        symbols.service_index.insert(
            (d.namespace, d.node.name.name.as_str()),
            ServiceId(i as u32),
        );
    }
    for (i, d) in symbols.retries.iter().enumerate() {
        symbols
            .retry_index
            .insert((d.namespace, d.node.name.name.as_str()), RetryId(i as u32));
    }
    symbols.namespaces = namespaces.into_iter().collect();
    symbols
}

#[allow(clippy::too_many_arguments, reason = "one call site, a walk's state")]
fn declare<'a>(
    symbols: &mut Symbols<'a>,
    scope: &mut BTreeMap<(&'a str, &'a str), Named<'a>>,
    findings: &mut Vec<Finding>,
    file: FileId,
    is_std: bool,
    namespace: &'a str,
    item: &'a Item,
) {
    let named = match &item.kind {
        ItemKind::Mesh(node) => {
            symbols.meshes.push(Decl {
                file,
                namespace,
                item,
                node,
                is_std,
            });
            return;
        }
        ItemKind::Route(node) => {
            symbols.routes.push(Decl {
                file,
                namespace,
                item,
                node,
                is_std,
            });
            return;
        }
        ItemKind::Policy(node) => {
            symbols.policies.push(Decl {
                file,
                namespace,
                item,
                node,
                is_std,
            });
            return;
        }
        ItemKind::Test(node) => {
            symbols.tests.push(Decl {
                file,
                namespace,
                item,
                node,
                is_std,
            });
            return;
        }
        ItemKind::Service(node) => Named::Service(Decl {
            file,
            namespace,
            item,
            node,
            is_std,
        }),
        ItemKind::Retry(node) => Named::Retry(Decl {
            file,
            namespace,
            item,
            node,
            is_std,
        }),
        ItemKind::Gateway(node) => Named::Gateway(Decl {
            file,
            namespace,
            item,
            node,
            is_std,
        }),
        ItemKind::Import(_) | ItemKind::Namespace(_) | ItemKind::Error => return,
    };
    let name = named.name();
    match scope.get(&(namespace, name.name.as_str())) {
        Some(first) => {
            findings.push(duplicate(
                named.kind(),
                name,
                file,
                first.kind(),
                first.name(),
                first.file(),
            ));
        }
        None => {
            scope.insert((namespace, name.name.as_str()), named);
        }
    }
}

/// `E0003` for `name` (in `file`) that repeats `first` (in `first_file`).
pub fn duplicate(
    kind: &str,
    name: &Ident,
    file: FileId,
    first_kind: &str,
    first: &Ident,
    first_file: FileId,
) -> Finding {
    let diagnostic = Diagnostic::error(
        DUPLICATE,
        format!("`{}` is defined more than once", name.name),
        name.span,
        format!("{kind} `{}` defined again here", name.name),
    );
    let diagnostic = diagnostic
        .with_label_in(
            first_file,
            first.span,
            format!("first defined here as a {first_kind}"),
        )
        .with_help(
            "services, gateways and retry profiles share one scope per namespace: rename one of them",
        );
    Finding { file, diagnostic }
}

/// What a reference to a service resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// The service.
    pub service: ServiceId,
    /// The subset, if one was written (and exists).
    pub subset: Option<String>,
}

impl<'a> Symbols<'a> {
    /// The service `namespace/name`, if declared.
    pub fn service_id(&self, namespace: &str, name: &str) -> Option<ServiceId> {
        self.service_index.get(&(namespace, name)).copied()
    }

    /// The declaration of a service.
    pub fn service(&self, id: ServiceId) -> Option<&Decl<'a, ast::Service>> {
        self.services.get(id.0 as usize)
    }

    /// Whether `name` is a namespace with items.
    pub fn has_namespace(&self, name: &str) -> bool {
        self.namespaces.contains(&name)
    }

    /// Resolves a service reference written in `namespace`; the subset, when written, must
    /// exist. Reports `E0002` and returns `None` when it does not resolve.
    pub fn resolve_service(
        &self,
        r: &Ref,
        namespace: &str,
        file: FileId,
        findings: &mut Vec<Finding>,
    ) -> Option<ServiceRef> {
        let ns = r.namespace.as_ref().map_or(namespace, |n| n.name.as_str());
        if r.namespace.is_some() && !self.has_namespace(ns) {
            let namespace_ident = r.namespace.as_ref().map_or(r.span, |n| n.span);
            let mut d = Diagnostic::error(
                UNKNOWN_REF,
                format!("unknown namespace `{ns}`"),
                namespace_ident,
                "no namespace of that name",
            );
            if let Some(close) = did_you_mean(ns, self.namespaces.iter().copied()) {
                d = d.with_help(format!("did you mean `{close}`?"));
            }
            findings.push(Finding {
                file,
                diagnostic: d,
            });
            return None;
        }
        let Some(id) = self.service_id(ns, &r.name.name) else {
            let diagnostic = if self.gateway_id(ns, &r.name.name).is_some() {
                Diagnostic::error(
                    TYPE_MISMATCH,
                    format!("`{}` is a gateway, not a service", r.name.name),
                    r.span,
                    "a gateway",
                )
                .with_help("nothing in the mesh calls a gateway: routes, policies, backends and tests name services")
            } else {
                self.unknown_service(r, ns, namespace)
            };
            findings.push(Finding { file, diagnostic });
            return None;
        };
        let subset = match &r.subset {
            None => None,
            Some(subset) => {
                let service = self.service(id)?;
                let names = subset_names(service.node);
                if !names.contains(&subset.name.as_str()) {
                    let mut d = Diagnostic::error(
                        UNKNOWN_REF,
                        format!("service `{}` has no subset `{}`", r.name.name, subset.name),
                        subset.span,
                        "unknown subset",
                    );
                    d = match did_you_mean(&subset.name, names.iter().copied()) {
                        Some(close) => d.with_help(format!("did you mean `{close}`?")),
                        None if names.is_empty() => {
                            d.with_help(format!("`{}` declares no subsets", r.name.name))
                        }
                        None => d.with_help(format!("its subsets are {}", quoted_list(&names))),
                    };
                    findings.push(Finding {
                        file,
                        diagnostic: d,
                    });
                    return None;
                }
                Some(subset.name.clone())
            }
        };
        Some(ServiceRef {
            service: id,
            subset,
        })
    }

    fn unknown_service(&self, r: &Ref, ns: &str, from_namespace: &str) -> Diagnostic {
        let written = match &r.namespace {
            Some(n) => format!("{}/{}", n.name, r.name.name),
            None => r.name.name.clone(),
        };
        let mut d = Diagnostic::error(
            UNKNOWN_REF,
            format!("unknown service `{written}`"),
            Span::new(
                r.span.start,
                r.subset.as_ref().map_or(r.span.end, |_| r.name.span.end),
            ),
            format!("no service `{}` in namespace `{ns}`", r.name.name),
        );
        // Candidates: names in the same namespace, `ns/name` elsewhere.
        let candidates: Vec<String> = self
            .services
            .iter()
            .map(|s| {
                if s.namespace == ns {
                    s.node.name.name.clone()
                } else {
                    format!("{}/{}", s.namespace, s.node.name.name)
                }
            })
            .collect();
        let elsewhere: Vec<String> = self
            .services
            .iter()
            .filter(|s| {
                r.namespace.is_none()
                    && s.node.name.name == r.name.name
                    && s.namespace != from_namespace
            })
            .map(|s| format!("`{}/{}`", s.namespace, s.node.name.name))
            .collect();
        if !elsewhere.is_empty() {
            d = d.with_help(format!(
                "names resolve in their own namespace; write {}",
                elsewhere.join(" or ")
            ));
        } else if let Some(close) = did_you_mean(&written, candidates.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{close}`?"));
        }
        d
    }

    /// The gateway `namespace/name`, if declared.
    pub fn gateway_id(&self, namespace: &str, name: &str) -> Option<GatewayId> {
        self.gateway_index.get(&(namespace, name)).copied()
    }

    /// Resolves a caller written in `namespace` (a `from` entry, `source == ...`, a test's
    /// `from`): a service, or a gateway as `NAME`, `NS/NAME` or `gateway/NAME`. The last
    /// names the gateway NAME of `namespace`, else the only gateway of that name in the
    /// mesh, unless a namespace is actually named `gateway`. Reports `E0002` (or `E0004`
    /// for a subset) and returns `None` when it does not resolve.
    pub fn resolve_caller(
        &self,
        r: &Ref,
        namespace: &str,
        file: FileId,
        findings: &mut Vec<Finding>,
    ) -> Option<Caller> {
        let written_ns = r.namespace.as_ref().map(|n| n.name.as_str());
        let gateway = if written_ns == Some("gateway") && !self.has_namespace("gateway") {
            let gateway = self.gateway_id(namespace, &r.name.name).or_else(|| {
                let mut named = self
                    .gateways
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| g.node.name.name == r.name.name);
                match (named.next(), named.next()) {
                    (Some((i, _)), None) => Some(GatewayId(i as u32)),
                    _ => None,
                }
            });
            if gateway.is_none() {
                findings.push(Finding {
                    file,
                    diagnostic: self.unknown_gateway(r),
                });
                return None;
            }
            gateway
        } else {
            self.gateway_id(written_ns.unwrap_or(namespace), &r.name.name)
        };
        match gateway {
            Some(id) => {
                if r.subset.is_some() {
                    findings.push(Finding {
                        file,
                        diagnostic: Diagnostic::error(
                            TYPE_MISMATCH,
                            "a gateway has no subsets",
                            r.span,
                            "names a subset",
                        )
                        .with_help("name the gateway alone: `gateway/NAME`"),
                    });
                    return None;
                }
                Some(Caller::Gateway(id))
            }
            None => self
                .resolve_service(r, namespace, file, findings)
                .map(|s| Caller::Service(s.service)),
        }
    }

    fn unknown_gateway(&self, r: &Ref) -> Diagnostic {
        let ambiguous: Vec<String> = self
            .gateways
            .iter()
            .filter(|g| g.node.name.name == r.name.name)
            .map(|g| format!("`{}/{}`", g.namespace, g.node.name.name))
            .collect();
        let message = if ambiguous.len() > 1 {
            format!("gateway `{}` is ambiguous", r.name.name)
        } else {
            format!("unknown gateway `{}`", r.name.name)
        };
        let mut d = Diagnostic::error(UNKNOWN_REF, message, r.span, "no gateway of that name");
        let names: Vec<&str> = self
            .gateways
            .iter()
            .map(|g| g.node.name.name.as_str())
            .collect();
        if ambiguous.len() > 1 {
            d = d.with_help(format!(
                "several namespaces have a gateway of that name: write {}",
                ambiguous.join(" or ")
            ));
        } else if let Some(close) = did_you_mean(&r.name.name, names.iter().copied()) {
            d = d.with_help(format!("did you mean `gateway/{close}`?"));
        } else if names.is_empty() {
            d = d.with_help("the mesh declares no gateways: `gateway NAME { ... }`");
        }
        d
    }

    /// Resolves a retry profile reference written in `namespace`: that namespace first,
    /// then `default` (where the standard library's profiles live).
    pub fn retry_id(&self, r: &Ref, namespace: &str) -> Option<RetryId> {
        match &r.namespace {
            Some(ns) => self
                .retry_index
                .get(&(ns.name.as_str(), r.name.name.as_str()))
                .copied(),
            None => self
                .retry_index
                .get(&(namespace, r.name.name.as_str()))
                .or_else(|| {
                    self.retry_index
                        .get(&(DEFAULT_NAMESPACE, r.name.name.as_str()))
                })
                .copied(),
        }
    }

    /// `E0002` for a retry profile reference that does not resolve.
    pub fn unknown_retry(&self, r: &Ref, namespace: &str) -> Diagnostic {
        let mut d = Diagnostic::error(
            UNKNOWN_REF,
            format!("unknown retry profile `{}`", r.name.name),
            r.span,
            "no retry profile of that name",
        );
        let candidates = self
            .retries
            .iter()
            .filter(|p| p.namespace == namespace || p.namespace == DEFAULT_NAMESPACE)
            .map(|p| p.node.name.name.as_str());
        if let Some(close) = did_you_mean(&r.name.name, candidates) {
            d = d.with_help(format!("did you mean `{close}`?"));
        } else {
            d = d.with_help("define it with `retry NAME { ... }`, or `import \"std/retry\"` for the bundled profiles");
        }
        d
    }
}

/// The names of a service's subsets, in order.
pub fn subset_names(service: &ast::Service) -> Vec<&str> {
    service
        .members
        .iter()
        .filter_map(|m| match &m.node {
            ast::ServiceMember::Subset(s) => Some(s.name.name.as_str()),
            _ => None,
        })
        .collect()
}

/// "`a`, `b` and `c`".
pub fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
