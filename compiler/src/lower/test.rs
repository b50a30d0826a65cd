//! Tests (LANGUAGE.md §8, §10): requests, connections and expectations are checked like
//! the rest of the mesh — unknown services, subsets, rules and ports are errors here, not
//! at `meshc test` time. A `connect` case goes to a tcp port of its service and expects
//! only `allow`, `deny` and `backend`; `rate_limit NAME` names a limit of the callee's
//! policy, by name or by position. A `request` without `from` comes from outside the mesh
//! and goes to a gateway (`to gateway/NAME`); its `rule` expectations name the gateway's
//! host rules. `rule none` expects that no rule matches.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, Expectation, ParamKind, TestCase};

use crate::diag::{TYPE_MISMATCH, UNKNOWN_REF, did_you_mean};
use crate::ir::{
    Callee, Caller, Case, Expect, GatewayId, Mesh, Probe, Protocol, ServiceId, Target, Test,
};
use crate::resolve::{Decl, quoted_list};

use super::{Cx, cond, route, tcp};

/// `expect rule none` expects that no rule matches, unless a rule is named so (as `retry
/// none` means no retries unless a profile is named so).
const NO_RULE: &str = "none";

pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Test>, mesh: &Mesh) -> Option<Test> {
    let mut cases = Vec::new();
    let mut ok = true;
    for case in &decl.node.cases {
        let lowered = match &case.node {
            TestCase::Case { request, expect } => lower_case(cx, request, expect, case.span, mesh),
            TestCase::Connect { connect, expect } => {
                lower_connect(cx, connect, expect, case.span, mesh)
            }
            TestCase::Error => None,
        };
        match lowered {
            Some(c) => cases.push(c),
            None => ok = false,
        }
    }
    ok.then(|| Test {
        name: decl.node.name.value.clone(),
        origin: decl.origin(),
        cases,
    })
}

fn lower_case(
    cx: &mut Cx<'_>,
    request: &ast::Request,
    expect: &[ast::Spanned<Expectation>],
    span: mesh_lang::ast::Span,
    mesh: &Mesh,
) -> Option<Case> {
    let method = cond::method_value(
        cx,
        &ast::Value::Ref(ast::Ref {
            namespace: None,
            name: request.method.clone(),
            subset: None,
            span: request.method.span,
        }),
    );
    let (from, to) = match &request.from {
        Some(from) => (
            cond::source_value(cx, &ast::Value::Ref(from.clone())),
            cx.symbols
                .resolve_service(&request.to, cx.namespace, cx.file, cx.findings)
                .map(|r| Callee::Service(r.service)),
        ),
        None => {
            let gateway = gateway_entry(cx, &request.to);
            (gateway.map(Caller::Gateway), gateway.map(Callee::Gateway))
        }
    };
    if request.from.is_some() && request.to.subset.is_some() {
        cx.push(
            Diagnostic::error(
                crate::diag::TYPE_MISMATCH,
                "a request goes to a service, not a subset",
                request.to.span,
                "names a subset",
            )
            .with_help(
                "the route picks the subset: name the service, and expect `backend SERVICE.SUBSET`",
            ),
        );
        return None;
    }
    let mut ok = request.path.value.starts_with('/');
    if !ok {
        cx.out_of_range(
            format!("`{}` is not a request path", request.path.value),
            request.path.span,
            "must start with `/`",
            "request paths start with `/`",
        );
    }
    let mut headers = Vec::new();
    let mut query = Vec::new();
    for param in &request.params {
        match param.kind {
            ParamKind::Header => match route::header_name(cx, &param.name) {
                Some(name) => headers.push((name, param.value.value.clone())),
                None => ok = false,
            },
            ParamKind::Query => query.push((param.name.value.clone(), param.value.value.clone())),
        }
    }
    let (method, from, to) = (method?, from?, to?);
    let (expectations, expect_ok) = expectations(cx, expect, to, mesh, false);
    ok &= expect_ok;
    ok.then(|| Case {
        origin: cx.origin(span),
        request: cx.origin(request.span),
        probe: Probe::Request {
            method,
            path: request.path.value.clone(),
            headers,
            query,
        },
        from,
        to,
        expect: expectations,
    })
}

/// The gateway a request without `from` enters; `E0004` when `to` names a service.
fn gateway_entry(cx: &mut Cx<'_>, to: &ast::Ref) -> Option<GatewayId> {
    match cx
        .symbols
        .resolve_caller(to, cx.namespace, cx.file, cx.findings)?
    {
        Caller::Gateway(id) => Some(id),
        Caller::Service(_) => {
            cx.push(
                Diagnostic::error(
                    TYPE_MISMATCH,
                    "a request without `from` comes from outside the mesh and enters a gateway",
                    to.span,
                    "a service, not a gateway",
                )
                .with_help(format!(
                    "name the caller: `from CALLER to {}`, or send the request to a gateway: `to gateway/NAME header \"host\" = \"…\"`",
                    mesh_lang::format::ref_text(to)
                )),
            );
            None
        }
    }
}

fn lower_connect(
    cx: &mut Cx<'_>,
    connect: &ast::Connect,
    expect: &[ast::Spanned<Expectation>],
    span: mesh_lang::ast::Span,
    mesh: &Mesh,
) -> Option<Case> {
    let from = cond::source_value(cx, &ast::Value::Ref(connect.from.clone()));
    let to = cx
        .symbols
        .resolve_service(&connect.to, cx.namespace, cx.file, cx.findings)?;
    if connect.to.subset.is_some() {
        cx.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                "a connection goes to a service, not a subset",
                connect.to.span,
                "names a subset",
            )
            .with_help(
                "the route picks the subset: name the service, and expect `backend SERVICE.SUBSET`",
            ),
        );
        return None;
    }
    let service = mesh.service(to.service)?;
    let port = tcp::service_port(cx, service, &connect.port, true);
    if let Some(number) = port
        && let Some(declared) = service.port(number)
        && declared.protocol != Protocol::Tcp
    {
        cx.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                format!(
                    "port {number} of `{}` is not a tcp port: a `connect` case opens an opaque TCP connection",
                    service.name
                ),
                connect.port.span,
                "not a tcp port",
            )
            .with_help(format!(
                "test HTTP ports with `request METHOD \"PATH\" from ... to {}`, or declare the port `port tcp {number}`",
                service.name
            )),
        );
        return None;
    }
    let (expectations, ok) = expectations(cx, expect, Callee::Service(to.service), mesh, true);
    let (from, port) = (from?, port?);
    ok.then(|| Case {
        origin: cx.origin(span),
        request: cx.origin(connect.span),
        probe: Probe::Connect { port },
        from,
        to: Callee::Service(to.service),
        expect: expectations,
    })
}

/// The rate limit of `to` that `rate_limit NAME` names: by name, or by its 1-based
/// position among the policy's limits. `E0002` with a suggestion otherwise.
fn rate_limit_name(
    cx: &mut Cx<'_>,
    name: &ast::Ident,
    to: ServiceId,
    mesh: &Mesh,
) -> Option<String> {
    let service = mesh.service(to)?;
    let limits: Vec<&str> = service
        .policy
        .as_ref()
        .map(|p| p.rate_limits.iter().map(|l| l.name.as_str()).collect())
        .unwrap_or_default();
    if limits.contains(&name.name.as_str()) {
        return Some(name.name.clone());
    }
    let by_position = name
        .name
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| limits.get(i));
    if let Some(found) = by_position {
        return Some((*found).to_string());
    }
    let mut d = Diagnostic::error(
        UNKNOWN_REF,
        format!(
            "the policy of `{}` has no rate limit `{}`",
            service.name, name.name
        ),
        name.span,
        "unknown rate limit",
    );
    d = match did_you_mean(&name.name, limits.iter().copied()) {
        Some(close) => d.with_help(format!("did you mean `{close}`?")),
        None if limits.is_empty() => d.with_help(format!(
            "`{}` has no rate limits: add `rate_limit RATE` to its policy",
            service.name
        )),
        None => d.with_help(format!(
            "its rate limits are {} (unnamed limits go by their position)",
            quoted_list(&limits)
        )),
    };
    cx.push(d);
    None
}

/// The expectations of a case to `to`; a connection (`connect`) may expect only `allow`,
/// `deny` and `backend`. Returns them, and whether all were fine.
fn expectations(
    cx: &mut Cx<'_>,
    expect: &[ast::Spanned<Expectation>],
    to: Callee,
    mesh: &Mesh,
    connect: bool,
) -> (Vec<(Expect, crate::ir::Origin)>, bool) {
    let mut ok = true;
    let mut expectations = Vec::new();
    for e in expect {
        let keyword = match &e.node {
            Expectation::Rule(_) => Some("rule"),
            Expectation::Timeout(_) => Some("timeout"),
            Expectation::Retries(_) => Some("retries"),
            Expectation::RateLimit(_) => Some("rate_limit"),
            Expectation::Allow | Expectation::Deny | Expectation::Backend { .. } => None,
        };
        if let (Some("rate_limit"), Callee::Gateway(_)) = (keyword, to) {
            cx.push(
                Diagnostic::error(
                    TYPE_MISMATCH,
                    "`rate_limit` cannot be expected of a request through a gateway",
                    e.span,
                    "not for a gateway request",
                )
                .with_help(
                    "expect the backend's rate limits in a case `from gateway/NAME to SERVICE`",
                ),
            );
            ok = false;
            continue;
        }
        if let Some(keyword) = keyword.filter(|_| connect) {
            cx.push(
                Diagnostic::error(
                    TYPE_MISMATCH,
                    format!("`{keyword}` cannot be expected of a connection"),
                    e.span,
                    "not for `connect`",
                )
                .with_help(if keyword == "rate_limit" {
                    "rate limits count HTTP requests, not connections; a `connect` case expects `allow`, `deny` or `backend REF [only]`"
                } else {
                    "a `connect` case expects `allow`, `deny` or `backend REF [only]`"
                }),
            );
            ok = false;
            continue;
        }
        let lowered = match &e.node {
            Expectation::Allow => Some(Expect::Allow),
            Expectation::Deny => Some(Expect::Deny),
            Expectation::Rule(name) => {
                let (rules, owner, empty): (Vec<&str>, String, String) = match to {
                    Callee::Service(to) => {
                        let name = mesh
                            .service(to)
                            .map(|s| s.name.as_str())
                            .unwrap_or_default();
                        (
                            mesh.service(to)
                                .and_then(|s| s.route.as_ref())
                                .map(|r| r.rules.iter().map(|r| r.name.as_str()).collect())
                                .unwrap_or_default(),
                            format!("the route of `{name}`"),
                            format!("`{name}` has no route rules"),
                        )
                    }
                    Callee::Gateway(g) => (
                        mesh.gateway(g)
                            .map(|g| {
                                g.hosts
                                    .iter()
                                    .flat_map(|h| &h.rules)
                                    .map(|r| r.name.as_str())
                                    .collect()
                            })
                            .unwrap_or_default(),
                        format!(
                            "gateway `{}`",
                            mesh.gateway(g).map(|g| g.name.as_str()).unwrap_or_default()
                        ),
                        "the gateway's hosts have no rules".to_string(),
                    ),
                };
                if rules.contains(&name.name.as_str()) {
                    Some(Expect::Rule(name.name.clone()))
                } else if name.name == NO_RULE {
                    Some(Expect::NoRule)
                } else {
                    let mut d = Diagnostic::error(
                        UNKNOWN_REF,
                        format!("{owner} has no rule `{}`", name.name),
                        name.span,
                        "unknown rule",
                    );
                    d = match did_you_mean(&name.name, rules.iter().copied()) {
                        Some(close) => d.with_help(format!("did you mean `{close}`?")),
                        None if rules.is_empty() => d.with_help(empty),
                        None => d.with_help(format!("its rules are {}", quoted_list(&rules))),
                    };
                    cx.push(d);
                    None
                }
            }
            Expectation::Backend { target, only } => cx
                .symbols
                .resolve_service(target, cx.namespace, cx.file, cx.findings)
                .map(|r| Expect::Backend {
                    target: Target {
                        service: r.service,
                        subset: r.subset,
                    },
                    only: *only,
                }),
            Expectation::Timeout(d) => cx.duration(d).map(Expect::Timeout),
            Expectation::Retries(n) => cx
                .int_in(n, 0, 9, "retries")
                .map(|n| Expect::Retries(n as u32)),
            Expectation::RateLimit(name) => match to {
                Callee::Service(to) => rate_limit_name(cx, name, to, mesh).map(Expect::RateLimit),
                Callee::Gateway(_) => None,
            },
        };
        match lowered {
            Some(l) => expectations.push((l, cx.origin(e.span))),
            None => ok = false,
        }
    }
    (expectations, ok)
}
