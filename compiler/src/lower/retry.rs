//! Retry profiles (LANGUAGE.md §6), named or inline, and references to them.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, RetryField, RetrySpec, Spanned, Value};

use crate::diag::{DUPLICATE, TYPE_MISMATCH, did_you_mean};
use crate::ir::{Budget, RetryOn, RetryPolicy, RetryProfile, RetryUse};
use crate::resolve::Decl;

use super::Cx;

pub fn lower_profile(cx: &mut Cx<'_>, decl: &Decl<'_, ast::RetryProfile>) -> RetryProfile {
    RetryProfile {
        namespace: decl.namespace.to_string(),
        name: decl.node.name.name.clone(),
        doc: decl.item.doc.clone(),
        origin: decl.origin(),
        name_origin: cx.origin(decl.node.name.span),
        is_std: decl.is_std,
        policy: lower_fields(cx, &decl.node.fields),
    }
}

/// `retry NAME`, `retry none` or `retry { ... }`.
pub fn lower_use(cx: &mut Cx<'_>, spec: &RetrySpec) -> Option<RetryUse> {
    match spec {
        RetrySpec::Inline(fields) => Some(RetryUse::Inline(lower_fields(cx, fields))),
        RetrySpec::Named(r) => match cx.symbols.retry_id(r, cx.namespace) {
            Some(id) => Some(RetryUse::Profile(id)),
            None if r.namespace.is_none() && r.subset.is_none() && r.name.name == "none" => {
                Some(RetryUse::Disabled)
            }
            None => {
                let d = cx.symbols.unknown_retry(r, cx.namespace);
                cx.push(d);
                None
            }
        },
    }
}

const CONDITIONS: [(&str, RetryOn); 4] = [
    ("gateway_error", RetryOn::GatewayError),
    ("reset", RetryOn::Reset),
    ("connect_failure", RetryOn::ConnectFailure),
    ("refused_stream", RetryOn::RefusedStream),
];

pub fn lower_fields(cx: &mut Cx<'_>, fields: &[Spanned<RetryField>]) -> RetryPolicy {
    let mut policy = RetryPolicy {
        attempts: 1,
        per_try_timeout: None,
        on: Vec::new(),
        backoff: None,
        budget: None,
    };
    let mut seen: Vec<(&'static str, mesh_lang::ast::Span)> = Vec::new();
    for field in fields {
        let name = match &field.node {
            RetryField::Attempts(_) => "attempts",
            RetryField::PerTryTimeout(_) => "per_try_timeout",
            RetryField::On(_) => "on",
            RetryField::Backoff { .. } => "backoff",
            RetryField::Budget { .. } => "budget",
            RetryField::Error => continue,
        };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let first = *first;
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    format!("`{name}` is set twice"),
                    field.span,
                    "set again here",
                )
                .with_label(first, "first set here"),
            );
            continue;
        }
        seen.push((name, field.span));
        match &field.node {
            RetryField::Attempts(n) => {
                if let Some(n) = cx.int_in(n, 1, 10, "attempts") {
                    policy.attempts = n as u32;
                }
            }
            RetryField::PerTryTimeout(d) => policy.per_try_timeout = cx.duration(d),
            RetryField::On(list) => {
                for value in list {
                    if let Some(on) = condition(cx, value)
                        && !policy.on.contains(&on)
                    {
                        policy.on.push(on);
                    }
                }
            }
            RetryField::Backoff { base, max } => {
                if let (Some(b), Some(m)) = (cx.duration(base), cx.duration(max)) {
                    if b > m {
                        cx.out_of_range(
                            "backoff base is greater than its maximum".into(),
                            base.span.to(max.span),
                            "base > max",
                            "write the smaller delay first: `backoff 25ms..250ms`",
                        );
                    } else {
                        policy.backoff = Some((b, m));
                    }
                }
            }
            RetryField::Budget { ratio, min } => {
                let ratio = cx.percent(ratio);
                let min = min.as_ref().map(|m| cx.rate(m));
                if let Some(ratio) = ratio {
                    policy.budget = Some(Budget {
                        ratio,
                        min: min.flatten(),
                    });
                }
            }
            RetryField::Error => {}
        }
    }
    if !seen.iter().any(|(name, _)| *name == "on") {
        policy.on = DEFAULT_ON.to_vec();
    }
    policy
}

/// What a profile without `on [...]` retries: Istio's default retry conditions
/// (`connect-failure`, `refused-stream`, `unavailable`), the failures where the request
/// surely did not reach the app or the app said to try again. Without a default, a
/// profile like `retry { attempts 3 }` would retry nothing while `meshc test` and the
/// W0004/W0005 lints count its attempts. `on []` still means no condition.
const DEFAULT_ON: [RetryOn; 3] = [
    RetryOn::ConnectFailure,
    RetryOn::RefusedStream,
    RetryOn::Status(503),
];

/// An entry of `on [...]`: a status code, a status class or a named condition.
fn condition(cx: &mut Cx<'_>, value: &Value) -> Option<RetryOn> {
    match value {
        Value::Literal(lit) => match &lit.kind {
            ast::LiteralKind::StatusClass(c) => Some(RetryOn::Class(*c)),
            ast::LiteralKind::Int(_) => cx.status(lit).map(RetryOn::Status),
            other => {
                let found = other.type_name();
                cx.mismatch(
                    super::values::Type::Status,
                    found,
                    lit.span,
                    Some("retry conditions are status codes (`503`), classes (`5xx`) or `gateway_error`, `reset`, `connect_failure`, `refused_stream`".into()),
                );
                None
            }
        },
        Value::Ref(r) => {
            let word = &r.name.name;
            if r.namespace.is_none()
                && r.subset.is_none()
                && let Some((_, on)) = CONDITIONS.iter().find(|(w, _)| w == word)
            {
                return Some(*on);
            }
            let names = CONDITIONS.iter().map(|(w, _)| *w);
            let mut d = Diagnostic::error(
                TYPE_MISMATCH,
                format!("expected a retry condition, found `{word}`"),
                r.span,
                "not a retry condition",
            );
            let help = "retry conditions are status codes (`503`), classes (`5xx`) or `gateway_error`, `reset`, `connect_failure`, `refused_stream`";
            d = match did_you_mean(word, names) {
                Some(close) => d.with_help(format!("did you mean `{close}`? {help}")),
                None => d.with_help(help),
            };
            cx.push(d);
            None
        }
    }
}
