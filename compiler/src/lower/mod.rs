//! Checking and lowering: the syntax trees of a loaded mesh become one [`ir::Mesh`], every
//! reference resolved and every value typed, with a finding for each problem on the way.
//! A construct with an error is left out of the result (or lowered partially) so one
//! mistake does not hide the next.

mod cond;
mod gateway;
mod pattern;
mod policy;
mod rate_limit;
mod resilience;
mod retry;
mod route;
mod service;
mod tcp;
mod telemetry;
mod test;
mod values;

use mesh_lang::Diagnostic;
use mesh_lang::ast::{Ident, MeshMember, Span};

use crate::diag::{CONFLICT, DUPLICATE, Finding, TYPE_MISMATCH, did_you_mean};
use crate::ir::{self, Effect, Mtls, Origin};
use crate::load::{FileId, Loaded};
use crate::resolve::{self, Symbols};

pub use route::human_micros;

/// The context of checking one file: where findings go and what names mean.
pub struct Cx<'a> {
    /// Every loaded file.
    pub loaded: &'a Loaded,
    /// Every declaration.
    pub symbols: &'a Symbols<'a>,
    /// Findings so far.
    pub findings: &'a mut Vec<Finding>,
    /// The file being checked.
    pub file: FileId,
    /// The namespace being checked.
    pub namespace: &'a str,
}

impl Cx<'_> {
    /// Records a finding in the current file.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.findings.push(Finding {
            file: self.file,
            diagnostic,
        });
    }

    /// The current file's origin for `span`.
    pub fn origin(&self, span: Span) -> Origin {
        Origin {
            file: self.file,
            span,
        }
    }

    /// One word of a fixed vocabulary (`balance ewma`, `mtls strict`); `E0004` otherwise.
    pub fn vocabulary<T: Copy>(
        &mut self,
        ident: &Ident,
        what: &str,
        words: &[(&str, T)],
    ) -> Option<T> {
        if let Some((_, value)) = words.iter().find(|(w, _)| *w == ident.name) {
            return Some(*value);
        }
        let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
        let mut help = format!(
            "{what} is one of {}",
            resolve::quoted_list(&names).replace(" and ", " or ")
        );
        if let Some(close) = did_you_mean(&ident.name, names.iter().copied()) {
            help = format!("did you mean `{close}`? {help}");
        }
        self.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                format!("expected {what}, found `{}`", ident.name),
                ident.span,
                format!("not {what}"),
            )
            .with_help(help),
        );
        None
    }
}

/// Checks a loaded mesh and lowers it.
pub fn lower(loaded: &Loaded, findings: &mut Vec<Finding>) -> ir::Mesh {
    let symbols = resolve::collect(loaded, findings);
    let mut mesh = settings(loaded, &symbols, findings);
    mesh.namespaces = symbols.namespaces.iter().map(|n| n.to_string()).collect();
    mesh.services = symbols
        .services
        .iter()
        .map(|decl| {
            let mut cx = Cx {
                loaded,
                symbols: &symbols,
                findings,
                file: decl.file,
                namespace: decl.namespace,
            };
            service::lower(&mut cx, decl)
        })
        .collect();
    mesh.retries = symbols
        .retries
        .iter()
        .map(|decl| {
            let mut cx = Cx {
                loaded,
                symbols: &symbols,
                findings,
                file: decl.file,
                namespace: decl.namespace,
            };
            retry::lower_profile(&mut cx, decl)
        })
        .collect();
    let gateways: Vec<ir::Gateway> = symbols
        .gateways
        .iter()
        .map(|decl| {
            let mut cx = Cx {
                loaded,
                symbols: &symbols,
                findings,
                file: decl.file,
                namespace: decl.namespace,
            };
            gateway::lower(&mut cx, decl, &mesh)
        })
        .collect();
    mesh.gateways = gateways;
    for decl in &symbols.routes {
        let mut cx = Cx {
            loaded,
            symbols: &symbols,
            findings,
            file: decl.file,
            namespace: decl.namespace,
        };
        route::lower(&mut cx, decl, &mut mesh);
    }
    for decl in &symbols.policies {
        let mut cx = Cx {
            loaded,
            symbols: &symbols,
            findings,
            file: decl.file,
            namespace: decl.namespace,
        };
        policy::lower(&mut cx, decl, &mut mesh);
    }
    let mut test_names: std::collections::BTreeMap<&str, (FileId, Span)> = Default::default();
    for decl in &symbols.tests {
        let name = decl.node.name.value.as_str();
        if let Some((first_file, first_span)) = test_names.get(name).copied() {
            let mut d = Diagnostic::error(
                DUPLICATE,
                format!("two tests are named \"{name}\""),
                decl.node.name.span,
                "second test with this name",
            );
            if first_file == decl.file {
                d = d.with_label(first_span, "first test with this name");
            }
            findings.push(Finding {
                file: decl.file,
                diagnostic: d
                    .with_help("test names identify failures in reports: make them unique"),
            });
        } else {
            test_names.insert(name, (decl.file, decl.node.name.span));
        }
        let mut cx = Cx {
            loaded,
            symbols: &symbols,
            findings,
            file: decl.file,
            namespace: decl.namespace,
        };
        if let Some(test) = test::lower(&mut cx, decl, &mesh) {
            mesh.tests.push(test);
        }
    }
    mesh
}

/// The `mesh` settings: defaults, then the standard library's blocks, then the user's one.
fn settings(loaded: &Loaded, symbols: &Symbols<'_>, findings: &mut Vec<Finding>) -> ir::Mesh {
    let mut mesh = ir::Mesh {
        name: "mesh".into(),
        trust_domain: "cluster.local".into(),
        mtls: Mtls::Strict,
        default_policy: Effect::Deny,
        mtls_origin: None,
        services: Vec::new(),
        retries: Vec::new(),
        namespaces: Vec::new(),
        tests: Vec::new(),
        gateways: Vec::new(),
        telemetry: None,
    };
    let mut user_decl: Option<(FileId, Span)> = None;
    let ordered = symbols
        .meshes
        .iter()
        .filter(|d| d.is_std)
        .chain(symbols.meshes.iter().filter(|d| !d.is_std));
    for decl in ordered {
        if !decl.is_std {
            if let Some((file, span)) = user_decl {
                let mut d = Diagnostic::error(
                    CONFLICT,
                    "a mesh has at most one `mesh` block",
                    decl.node.name.span,
                    "second `mesh` block",
                )
                .with_help("merge the settings into one `mesh` block");
                if file == decl.file {
                    d = d.with_label(span, "first `mesh` block");
                }
                findings.push(Finding {
                    file: decl.file,
                    diagnostic: d,
                });
                continue;
            }
            user_decl = Some((decl.file, decl.node.name.span));
            mesh.name = decl.node.name.name.clone();
        }
        let mut cx = Cx {
            loaded,
            symbols,
            findings,
            file: decl.file,
            namespace: resolve::DEFAULT_NAMESPACE,
        };
        let mut telemetry_seen = false;
        for member in &decl.node.members {
            match &member.node {
                MeshMember::TrustDomain(s) => {
                    // Held to the agent's SPIFFE parser, so every id built on it parses.
                    if mesh_config::vocab::spiffe::check_trust_domain(&s.value).is_err() {
                        cx.out_of_range(
                            format!("`{}` is not a trust domain", s.value),
                            s.span,
                            "invalid trust domain",
                            "a trust domain is a DNS-like name such as `cluster.local`",
                        );
                    } else {
                        mesh.trust_domain = s.value.clone();
                    }
                }
                MeshMember::Mtls(mode) => {
                    let words = [("strict", Mtls::Strict), ("permissive", Mtls::Permissive)];
                    if let Some(mtls) = cx.vocabulary(mode, "an mTLS mode", &words) {
                        mesh.mtls = mtls;
                        if !decl.is_std {
                            mesh.mtls_origin = Some(cx.origin(member.span));
                        }
                    }
                }
                MeshMember::DefaultPolicy(p) => {
                    let words = [("allow", Effect::Allow), ("deny", Effect::Deny)];
                    if let Some(effect) = cx.vocabulary(p, "a default policy", &words) {
                        mesh.default_policy = effect;
                    }
                }
                MeshMember::Telemetry(members) => {
                    if telemetry_seen {
                        cx.push(
                            Diagnostic::error(
                                DUPLICATE,
                                "`telemetry` is set twice",
                                member.span,
                                "set again here",
                            )
                            .with_help(
                                "put every telemetry setting in one `telemetry { ... }` block",
                            ),
                        );
                        continue;
                    }
                    telemetry_seen = true;
                    mesh.telemetry = Some(telemetry::lower(&mut cx, members));
                }
                MeshMember::Error => {}
            }
        }
    }
    mesh
}
