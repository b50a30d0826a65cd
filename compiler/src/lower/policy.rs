//! Authorization policies (LANGUAGE.md §7, §10): callers, conditions, methods, path globs,
//! ports and rate limits (`rate_limit.rs`); L7 members and conditions on a service with
//! only tcp ports are `E0011`. Inline Cedar is kept as text here and validated against
//! the mesh schema by the Cedar stage.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, AccessRule as AstRule, Constraint, PolicyMember, Source, Span, Value};

use crate::diag::{CONFLICT, DUPLICATE, TYPE_MISMATCH, UNKNOWN_REF, did_you_mean};
use crate::ir::{
    AccessRule, Caller, CedarBlock, Effect, Mesh, Policy, PolicyMode, Principal, Service,
};
use crate::resolve::Decl;

use super::values::Type;
use super::{Cx, cond, pattern, rate_limit, tcp};

pub fn lower(cx: &mut Cx<'_>, decl: &Decl<'_, ast::Policy>, mesh: &mut Mesh) {
    let node = decl.node;
    let Some(target) =
        cx.symbols
            .resolve_service(&node.service, cx.namespace, cx.file, cx.findings)
    else {
        return;
    };
    if node.service.subset.is_some() {
        cx.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                "a policy protects a whole service, not a subset",
                node.service.span,
                "names a subset",
            )
            .with_help("subsets of a service share its identity and its policy: name the service"),
        );
        return;
    }
    if let Some(existing) = mesh.service(target.service).and_then(|s| s.policy.as_ref()) {
        let first = existing.origin;
        let mut d = Diagnostic::error(
            CONFLICT,
            format!("service `{}` has two policies", node.service.name.name),
            node.service.span,
            "second policy",
        )
        .with_help("a service has at most one policy: merge the rules into one `policy` block");
        d = d.with_label_in(
            first.file,
            Span::new(first.span.start, first.span.start + 6),
            "first policy",
        );
        cx.push(d);
        return;
    }
    let mut policy = Policy {
        origin: decl.origin(),
        mode: PolicyMode::Enforce,
        rules: Vec::new(),
        cedar: Vec::new(),
        rate_limits: Vec::new(),
    };
    let mut rate_limit_position = 0;
    let Some(service) = mesh.service(target.service) else {
        return;
    };
    let mut mode_seen = false;
    for member in &node.members {
        match &member.node {
            PolicyMember::Mode(mode) => {
                if mode_seen {
                    cx.push(Diagnostic::error(
                        DUPLICATE,
                        "`mode` is set twice",
                        member.span,
                        "set again here",
                    ));
                    continue;
                }
                mode_seen = true;
                let words = [
                    ("enforce", PolicyMode::Enforce),
                    ("audit", PolicyMode::Audit),
                ];
                if let Some(mode) = cx.vocabulary(mode, "a policy mode", &words) {
                    policy.mode = mode;
                }
            }
            PolicyMember::Allow(rule) => {
                if let Some(rule) = access_rule(cx, rule, Effect::Allow, member.span, service) {
                    policy.rules.push(rule);
                }
            }
            PolicyMember::Deny(rule) => {
                if let Some(rule) = access_rule(cx, rule, Effect::Deny, member.span, service) {
                    policy.rules.push(rule);
                }
            }
            PolicyMember::Cedar(text) => policy.cedar.push(CedarBlock {
                text: text.value.clone(),
                origin: cx.origin(text.span),
                verbatim_at: text.verbatim_at,
            }),
            PolicyMember::RateLimit(limit) => {
                rate_limit_position += 1;
                if let Some(limit) = rate_limit::lower(
                    cx,
                    limit,
                    member.span,
                    rate_limit_position,
                    service,
                    &policy.rate_limits,
                ) {
                    policy.rate_limits.push(limit);
                }
            }
            PolicyMember::Error => {}
        }
    }
    if let Some(service) = mesh.services.get_mut(target.service.0 as usize) {
        service.policy = Some(policy);
    }
}

fn access_rule(
    cx: &mut Cx<'_>,
    rule: &AstRule,
    effect: Effect,
    span: Span,
    service: &Service,
) -> Option<AccessRule> {
    let mut ok = true;
    let mut from = Vec::new();
    let mut from_origins = Vec::new();
    for source in &rule.from {
        let (principal, source_span) = match source {
            Source::Any(s) => (Some(Principal::Any), *s),
            Source::Authenticated(s) => (Some(Principal::Authenticated), *s),
            Source::Namespace { name, span } => {
                if cx.symbols.has_namespace(&name.name) {
                    (Some(Principal::Namespace(name.name.clone())), *span)
                } else {
                    let mut d = Diagnostic::error(
                        UNKNOWN_REF,
                        format!("unknown namespace `{}`", name.name),
                        name.span,
                        "no namespace of that name",
                    );
                    if let Some(close) =
                        did_you_mean(&name.name, cx.symbols.namespaces.iter().copied())
                    {
                        d = d.with_help(format!("did you mean `{close}`?"));
                    }
                    cx.push(d);
                    (None, *span)
                }
            }
            Source::Service(r) => (
                cond::source_value(cx, &Value::Ref(r.clone())).map(|caller| match caller {
                    Caller::Service(id) => Principal::Service(id),
                    Caller::Gateway(id) => Principal::Gateway(id),
                }),
                r.span,
            ),
        };
        match principal {
            Some(p) => {
                from.push(p);
                from_origins.push(cx.origin(source_span));
            }
            None => ok = false,
        }
    }
    let when = match &rule.when {
        Some(expr) => {
            let lowered = cond::lower(cx, expr);
            ok &= lowered.is_some();
            if let Some(when) = &lowered {
                tcp::forbid_l7_cond(cx, service, when);
            }
            lowered
        }
        None => None,
    };
    let mut methods: Option<Vec<_>> = None;
    let mut paths: Option<Vec<String>> = None;
    let mut ports: Option<Vec<u16>> = None;
    for constraint in &rule.constraints {
        match &constraint.node {
            Constraint::Methods(_) => {
                tcp::forbid_l7(cx, service, constraint.span, "`methods`");
            }
            Constraint::Paths(_) => tcp::forbid_l7(cx, service, constraint.span, "`paths`"),
            Constraint::Ports(_) | Constraint::Error => {}
        }
        match &constraint.node {
            Constraint::Ports(list) => {
                if ports.is_some() {
                    cx.push(Diagnostic::error(
                        DUPLICATE,
                        "`ports` is given twice",
                        constraint.span,
                        "given again here",
                    ));
                    continue;
                }
                let mut out = Vec::new();
                for value in list {
                    let port = match value {
                        Value::Literal(lit) => tcp::service_port(cx, service, lit, false),
                        Value::Ref(r) => {
                            let text = mesh_lang::format::ref_text(r);
                            cx.mismatch(
                                Type::Int,
                                &format!("`{text}`"),
                                r.span,
                                Some("ports are numbers: `ports [5432]`".into()),
                            );
                            None
                        }
                    };
                    match port {
                        Some(p) if !out.contains(&p) => out.push(p),
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                ports = Some(out);
            }
            Constraint::Methods(list) => {
                if methods.is_some() {
                    cx.push(Diagnostic::error(
                        DUPLICATE,
                        "`methods` is given twice",
                        constraint.span,
                        "given again here",
                    ));
                    continue;
                }
                let mut out = Vec::new();
                for value in list {
                    match cond::method_value(cx, value) {
                        Some(m) if !out.contains(&m) => out.push(m),
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                methods = Some(out);
            }
            Constraint::Paths(list) => {
                if paths.is_some() {
                    cx.push(Diagnostic::error(
                        DUPLICATE,
                        "`paths` is given twice",
                        constraint.span,
                        "given again here",
                    ));
                    continue;
                }
                let mut out = Vec::new();
                for value in list {
                    match value {
                        Value::Literal(lit) => match &lit.kind {
                            ast::LiteralKind::Str(s) => {
                                if pattern::check_glob(cx, s) {
                                    out.push(s.value.clone());
                                } else {
                                    ok = false;
                                }
                            }
                            other => {
                                cx.mismatch(
                                    Type::String,
                                    other.type_name(),
                                    lit.span,
                                    Some("paths are globs such as \"/cart/*\"".into()),
                                );
                                ok = false;
                            }
                        },
                        Value::Ref(r) => {
                            let text = mesh_lang::format::ref_text(r);
                            cx.mismatch(
                                Type::String,
                                &format!("`{text}`"),
                                r.span,
                                Some("paths are quoted globs such as \"/cart/*\"".into()),
                            );
                            ok = false;
                        }
                    }
                }
                paths = Some(out);
            }
            Constraint::Error => ok = false,
        }
    }
    ok.then_some(AccessRule {
        effect,
        origin: cx.origin(span),
        from,
        from_origins,
        when,
        methods,
        paths,
        ports,
    })
}
