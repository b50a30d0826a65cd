//! Gateways (LANGUAGE.md §10): `listen` ports with their certificates, `host` entries
//! with the rules of a route (whose targets may be any service), and the `identity` the
//! gateway calls mesh services as. Certificate paths are resolved against the directory of
//! the file that declares them; the files need not exist at check time (they are usually
//! secrets kept outside the repository).

use std::path::Path;

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, GatewayMember, RouteMember, Span, StrLit, Tls, TlsMember};

use crate::diag::{DUPLICATE, GATEWAY_INCOMPLETE, GATEWAY_TO_TCP, TYPE_MISMATCH};
use crate::ir::{Cond, CondKind, Gateway, GatewayHost, Listener, Mesh, Rule, TlsFiles};
use crate::resolve::Decl;

use super::{Cx, route, service};

/// Checks and lowers one `gateway` block; `mesh` holds the lowered services and retry
/// profiles its rules refer to.
pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Gateway>, mesh: &Mesh) -> Gateway {
    let node = decl.node;
    let mut gateway = Gateway {
        namespace: decl.namespace.to_string(),
        name: node.name.name.clone(),
        doc: decl.item.doc.clone(),
        origin: decl.origin(),
        name_origin: cx.origin(node.name.span),
        identity: node.name.name.clone(),
        listeners: Vec::new(),
        hosts: Vec::new(),
    };
    let mut identity_span: Option<Span> = None;
    let mut listen_spans: Vec<(u16, Span)> = Vec::new();
    let mut host_spans: Vec<(String, Span)> = Vec::new();
    let (mut any_listen, mut any_host) = (false, false);
    for member in &node.members {
        match &member.node {
            GatewayMember::Listen { port, tls } => {
                any_listen = true;
                let port = cx.int_in(port, 1, 65535, "port").map(|n| n as u16);
                let tls = tls.as_ref().and_then(|t| tls_files(cx, t));
                let Some(port) = port else { continue };
                if let Some((_, first)) = listen_spans.iter().find(|(p, _)| *p == port) {
                    let first = *first;
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!("the gateway listens on port {port} twice"),
                            member.span,
                            "listens again here",
                        )
                        .with_label(first, "first listens here")
                        .with_help("one `listen` per port: remove one"),
                    );
                    continue;
                }
                listen_spans.push((port, member.span));
                gateway.listeners.push(Listener {
                    port,
                    tls,
                    origin: cx.origin(member.span),
                });
            }
            GatewayMember::Host(host) => {
                any_host = true;
                let lowered = self::host(cx, host, member.span, mesh);
                let name = host.name.value.to_ascii_lowercase();
                if let Some((_, first)) = host_spans.iter().find(|(h, _)| *h == name) {
                    let first = *first;
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            format!("host \"{}\" is listed twice", host.name.value),
                            host.name.span,
                            "listed again here",
                        )
                        .with_label(first, "first listed here")
                        .with_help("host names are case-insensitive: merge the rules into one `host` block"),
                    );
                    continue;
                }
                host_spans.push((name, host.name.span));
                if let Some(lowered) = lowered {
                    gateway.hosts.push(lowered);
                }
            }
            GatewayMember::Identity(s) => {
                if let Some(first) = identity_span {
                    cx.push(
                        Diagnostic::error(
                            DUPLICATE,
                            "`identity` is set twice",
                            member.span,
                            "set again here",
                        )
                        .with_label(first, "first set here")
                        .with_help("a gateway has one identity: keep one"),
                    );
                    continue;
                }
                identity_span = Some(member.span);
                if service::is_dns_name(&s.value) {
                    gateway.identity = s.value.clone();
                } else {
                    cx.out_of_range(
                        format!("`{}` is not a valid service account name", s.value),
                        s.span,
                        "invalid identity",
                        "a Kubernetes service account name: lower-case letters, digits, `-` and `.`, as in `ingress`",
                    );
                }
            }
            GatewayMember::Error => {
                // A member that did not parse may have been the missing listener or host.
                any_listen = true;
                any_host = true;
            }
        }
    }
    if !any_listen {
        incomplete(
            cx,
            node.name.span,
            &format!("gateway `{}` listens on no port", node.name.name),
            "add `listen 8080` (plain HTTP) or `listen 8443 tls { cert \"PATH\" key \"PATH\" }`",
        );
    }
    if !any_host {
        incomplete(
            cx,
            node.name.span,
            &format!("gateway `{}` serves no host", node.name.name),
            "add `host \"NAME\" { rule NAME { to SERVICE } }`; `host \"*\"` serves every host",
        );
    }
    gateway
}

fn incomplete(cx: &mut Cx<'_>, span: Span, message: &str, help: &str) {
    cx.push(Diagnostic::error(GATEWAY_INCOMPLETE, message, span, "incomplete").with_help(help));
}

/// `host "NAME" [tls { ... }] { RULES }`; `None` when the name is invalid.
fn host(cx: &mut Cx<'_>, host: &ast::GatewayHost, span: Span, mesh: &Mesh) -> Option<GatewayHost> {
    let name_ok = is_host_pattern(&host.name.value);
    if !name_ok {
        cx.out_of_range(
            format!("\"{}\" is not a host name", host.name.value),
            host.name.span,
            "not a host name, `*.SUFFIX` or `*`",
            "a gateway host is a DNS name (`shop.example.com`), a wildcard over its subdomains (`*.example.com`) or `*` for every host",
        );
    }
    let tls = host.tls.as_ref().and_then(|t| tls_files(cx, t));
    let mut rules: Vec<Rule> = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    for member in &host.rules {
        let RouteMember::Rule(rule) = &member.node else {
            continue;
        };
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == rule.name.name) {
            let first = *first;
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    format!("rule `{}` is defined twice in this host", rule.name.name),
                    rule.name.span,
                    "defined again here",
                )
                .with_label(first, "first defined here")
                .with_help(
                    "rule names identify rules in tests, metrics and logs: make them unique",
                ),
            );
            continue;
        }
        names.push((rule.name.name.clone(), rule.name.span));
        let lowered = route::lower_rule(cx, rule, member.span, None, mesh);
        if let Some(when) = &lowered.when {
            forbid_source(cx, when);
        }
        check_http_targets(cx, &lowered, mesh);
        route::check_retry_fits(
            cx,
            mesh,
            lowered.timeout,
            lowered.timeout.map(|_| lowered.origin),
            lowered.retry.as_ref(),
            lowered.retry_origin,
        );
        rules.push(lowered);
    }
    name_ok.then(|| GatewayHost {
        host: host.name.value.clone(),
        tls,
        rules,
        origin: cx.origin(span),
    })
}

/// `E0004` for `source` in a gateway rule: the gateway's clients come from outside the
/// mesh and have no mesh identity, so the caller would always be the gateway itself.
fn forbid_source(cx: &mut Cx<'_>, cond: &Cond) {
    match &cond.kind {
        CondKind::All(items) | CondKind::Any(items) => {
            items.iter().for_each(|c| forbid_source(cx, c));
        }
        CondKind::Not(inner) => forbid_source(cx, inner),
        CondKind::Source { .. } => cx.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                "`source` has no meaning in a gateway rule",
                cond.origin.span,
                "a gateway's clients have no mesh identity",
            )
            .with_help("a gateway routes requests from outside the mesh: match on `host`, `path`, `method`, headers or query instead"),
        ),
        CondKind::Method { .. }
        | CondKind::Text { .. }
        | CondKind::TextIn { .. }
        | CondKind::Exists(_) => {}
    }
}

/// `E0013` for a backend or mirror whose ports are all opaque TCP: a gateway routes HTTP.
fn check_http_targets(cx: &mut Cx<'_>, rule: &Rule, mesh: &Mesh) {
    let mut reported = Vec::new();
    for target in rule.targets() {
        let Some(service) = mesh.service(target.service) else {
            continue;
        };
        if service
            .ports
            .iter()
            .all(|p| p.protocol == crate::ir::Protocol::Tcp)
            && !reported.contains(&target.service)
        {
            reported.push(target.service);
            let what = if service.ports.is_empty() {
                "declares no port"
            } else {
                "has only tcp ports"
            };
            cx.push(
                Diagnostic::error(
                    GATEWAY_TO_TCP,
                    format!(
                        "gateway rule `{}` sends HTTP to `{}`, which {what}",
                        rule.name,
                        service.key()
                    ),
                    rule.origin.span,
                    "no HTTP port to send to",
                )
                .with_help(format!(
                    "a gateway routes HTTP requests: give `{}` a `port http N`, or route to another service",
                    service.name
                )),
            );
        }
    }
}

/// `tls { cert "PATH"  key "PATH" }` with both paths made absolute; `None` (and an error)
/// when one is missing, given twice or empty.
fn tls_files(cx: &mut Cx<'_>, tls: &Tls) -> Option<TlsFiles> {
    let mut cert: Option<&StrLit> = None;
    let mut key: Option<&StrLit> = None;
    let mut ok = true;
    for member in &tls.members {
        let (slot, path, what) = match &member.node {
            TlsMember::Cert(path) => (&mut cert, path, "cert"),
            TlsMember::Key(path) => (&mut key, path, "key"),
            TlsMember::Error => {
                ok = false;
                continue;
            }
        };
        if let Some(first) = slot {
            let first = first.span;
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    format!("`{what}` is given twice"),
                    member.span,
                    "given again here",
                )
                .with_label(first, "first given here")
                .with_help(format!("a `tls` block has one `{what}`: keep one")),
            );
            ok = false;
            continue;
        }
        if path.value.is_empty() {
            cx.out_of_range(
                format!("the `{what}` path is empty"),
                path.span,
                "empty path",
                "name a PEM file; relative paths are relative to this `.mesh` file",
            );
            ok = false;
        }
        *slot = Some(path);
    }
    let missing: Vec<&str> = [("cert", cert.is_none()), ("key", key.is_none())]
        .into_iter()
        .filter_map(|(what, missing)| missing.then_some(what))
        .collect();
    if !missing.is_empty() && tls.members.iter().all(|m| m.node != TlsMember::Error) {
        incomplete(
            cx,
            Span::new(tls.span.start, tls.span.start + 3),
            &format!("this `tls` block has no `{}`", missing.join("` and no `")),
            "TLS needs a certificate and its key: `tls { cert \"PATH\" key \"PATH\" }`",
        );
    }
    let (cert, key) = (cert?, key?);
    ok.then(|| TlsFiles {
        cert: cx.resolve_path(&cert.value),
        key: cx.resolve_path(&key.value),
    })
}

impl Cx<'_> {
    /// `path` relative to the directory of the current file, made absolute (without
    /// touching the file system beyond the working directory).
    fn resolve_path(&self, path: &str) -> String {
        let base = self
            .loaded
            .file(self.file)
            .and_then(|f| Path::new(&f.source.name).parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let joined = base.join(path);
        std::path::absolute(&joined)
            .unwrap_or(joined)
            .to_string_lossy()
            .into_owned()
    }
}

/// A host name as the agent matches it: a DNS name (letters, digits, `-`, `_`), `*.` and a
/// DNS name, or `*`.
pub fn is_host_pattern(name: &str) -> bool {
    if name == "*" {
        return true;
    }
    let name = name.strip_prefix("*.").unwrap_or(name);
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
