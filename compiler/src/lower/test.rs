//! Tests (LANGUAGE.md §8): requests and expectations are checked like the rest of the
//! mesh — unknown services, subsets and rules are errors here, not at `meshc test` time.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, Expectation, ParamKind, TestCase};

use crate::diag::{UNKNOWN_REF, did_you_mean};
use crate::ir::{Case, Expect, Mesh, Target, Test};
use crate::resolve::{Decl, quoted_list};

use super::{Cx, cond, route};

pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Test>, mesh: &Mesh) -> Option<Test> {
    let mut cases = Vec::new();
    let mut ok = true;
    for case in &decl.node.cases {
        let TestCase::Case { request, expect } = &case.node else {
            ok = false;
            continue;
        };
        match lower_case(cx, request, expect, case.span, mesh) {
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
    let from = cond::source_value(cx, &ast::Value::Ref(request.from.clone()));
    let to = cx
        .symbols
        .resolve_service(&request.to, cx.namespace, cx.file, cx.findings);
    if request.to.subset.is_some() {
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
    let mut expectations = Vec::new();
    for e in expect {
        let lowered = match &e.node {
            Expectation::Allow => Some(Expect::Allow),
            Expectation::Deny => Some(Expect::Deny),
            Expectation::Rule(name) => {
                let rules: Vec<&str> = mesh
                    .service(to.service)
                    .and_then(|s| s.route.as_ref())
                    .map(|r| r.rules.iter().map(|r| r.name.as_str()).collect())
                    .unwrap_or_default();
                if rules.contains(&name.name.as_str()) {
                    Some(Expect::Rule(name.name.clone()))
                } else {
                    let service = mesh
                        .service(to.service)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    let mut d = Diagnostic::error(
                        UNKNOWN_REF,
                        format!("the route of `{service}` has no rule `{}`", name.name),
                        name.span,
                        "unknown rule",
                    );
                    d = match did_you_mean(&name.name, rules.iter().copied()) {
                        Some(close) => d.with_help(format!("did you mean `{close}`?")),
                        None if rules.is_empty() => {
                            d.with_help(format!("`{service}` has no route rules"))
                        }
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
        };
        match lowered {
            Some(l) => expectations.push((l, cx.origin(e.span))),
            None => ok = false,
        }
    }
    ok.then(|| Case {
        origin: cx.origin(span),
        request: cx.origin(request.span),
        method,
        path: request.path.value.clone(),
        from,
        to: to.service,
        headers,
        query,
        expect: expectations,
    })
}
