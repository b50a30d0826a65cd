//! Conditions (`when ...`, LANGUAGE.md §5): each attribute has a type and a set of
//! operators; values must have the attribute's type. Regexes and globs are checked here.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{CmpOp, Expr, ExprKind, LiteralKind, Operand, OperandKind, StrLit, Value};

use crate::diag::{TYPE_MISMATCH, did_you_mean};
use crate::ir::{Caller, Cond, CondKind, Method, TextAttr, TextOp};

use super::values::Type;
use super::{Cx, pattern, route};

/// The attribute an operand names, typed.
enum Attr {
    Method,
    Text(TextAttr),
    Source,
}

pub fn lower(cx: &mut Cx<'_>, expr: &Expr) -> Option<Cond> {
    let origin = cx.origin(expr.span);
    let kind = match &expr.kind {
        ExprKind::Or(a, b) => {
            let (a, b) = (lower(cx, a), lower(cx, b));
            CondKind::Any(flatten(a?, b?, true))
        }
        ExprKind::And(a, b) => {
            let (a, b) = (lower(cx, a), lower(cx, b));
            CondKind::All(flatten(a?, b?, false))
        }
        ExprKind::Not(e) => CondKind::Not(Box::new(lower(cx, e)?)),
        ExprKind::Group(e) => return lower(cx, e),
        ExprKind::Compare { lhs, op, rhs } => compare(cx, lhs, op.node, op.span, rhs)?,
        ExprKind::In { lhs, list } => in_list(cx, lhs, list)?,
        ExprKind::Exists(operand) => match attribute(cx, operand)? {
            Attr::Text(attr @ (TextAttr::Header(_) | TextAttr::Query(_))) => CondKind::Exists(attr),
            _ => {
                cx.push(
                    Diagnostic::error(
                        TYPE_MISMATCH,
                        "`exists` applies to `header(...)` and `query(...)`",
                        operand.span,
                        "always present",
                    )
                    .with_help("write `exists header(\"name\")` or `exists query(\"name\")`"),
                );
                return None;
            }
        },
    };
    Some(Cond { kind, origin })
}

fn flatten(a: Cond, b: Cond, any: bool) -> Vec<Cond> {
    let mut out = Vec::new();
    for c in [a, b] {
        match c.kind {
            CondKind::Any(inner) if any => out.extend(inner),
            CondKind::All(inner) if !any => out.extend(inner),
            kind => out.push(Cond {
                kind,
                origin: c.origin,
            }),
        }
    }
    out
}

const ATTRIBUTES_HELP: &str = "conditions start with a request attribute: `method`, `path`, `host`, `header(\"name\")`, `query(\"name\")` or `source`";

/// The attribute an operand names, or `E0004`.
fn attribute(cx: &mut Cx<'_>, operand: &Operand) -> Option<Attr> {
    Some(match &operand.kind {
        OperandKind::Method => Attr::Method,
        OperandKind::Path => Attr::Text(TextAttr::Path),
        OperandKind::Host => Attr::Text(TextAttr::Host),
        OperandKind::Source => Attr::Source,
        OperandKind::Header(name) => Attr::Text(TextAttr::Header(route::header_name(cx, name)?)),
        OperandKind::Query(name) => Attr::Text(TextAttr::Query(name.value.clone())),
        OperandKind::Literal(lit) => {
            cx.push(
                Diagnostic::error(
                    TYPE_MISMATCH,
                    format!(
                        "expected a request attribute, found {}",
                        lit.kind.type_name()
                    ),
                    operand.span,
                    "not an attribute",
                )
                .with_help(ATTRIBUTES_HELP),
            );
            return None;
        }
        OperandKind::Ref(r) => {
            cx.push(
                Diagnostic::error(
                    TYPE_MISMATCH,
                    format!(
                        "expected a request attribute, found `{}`",
                        mesh_lang::format::ref_text(r)
                    ),
                    operand.span,
                    "not an attribute",
                )
                .with_help(ATTRIBUTES_HELP),
            );
            return None;
        }
    })
}

fn is_attribute(operand: &Operand) -> bool {
    !matches!(operand.kind, OperandKind::Literal(_) | OperandKind::Ref(_))
}

fn compare(
    cx: &mut Cx<'_>,
    lhs: &Operand,
    op: CmpOp,
    op_span: mesh_lang::ast::Span,
    rhs: &Operand,
) -> Option<CondKind> {
    // `"GET" == method` reads backwards but means the same for `==` and `!=`.
    let (lhs, rhs) =
        if !is_attribute(lhs) && is_attribute(rhs) && matches!(op, CmpOp::Eq | CmpOp::Ne) {
            (rhs, lhs)
        } else {
            (lhs, rhs)
        };
    let attr = attribute(cx, lhs)?;
    let negated = op == CmpOp::Ne;
    match attr {
        Attr::Method => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                operator_mismatch(cx, op, op_span, "Method", "`==`, `!=` and `in`");
                return None;
            }
            let method = method_operand(cx, rhs)?;
            Some(CondKind::Method {
                negated,
                methods: vec![method],
            })
        }
        Attr::Source => {
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                operator_mismatch(cx, op, op_span, "Service", "`==`, `!=` and `in`");
                return None;
            }
            let caller = source_operand(cx, rhs)?;
            Some(source_cond(negated, &[caller]))
        }
        Attr::Text(attr) => {
            let value = string_operand(cx, rhs)?;
            let op = match op {
                CmpOp::Eq => TextOp::Eq,
                CmpOp::Ne => TextOp::Ne,
                CmpOp::StartsWith => TextOp::StartsWith,
                CmpOp::Matches => {
                    if !pattern::check_regex(cx, value) {
                        return None;
                    }
                    TextOp::Matches
                }
                CmpOp::Like => {
                    if !pattern::check_glob(cx, value) {
                        return None;
                    }
                    TextOp::Like
                }
            };
            Some(CondKind::Text {
                attr,
                op,
                value: value.value.clone(),
            })
        }
    }
}

fn operator_mismatch(
    cx: &mut Cx<'_>,
    op: CmpOp,
    span: mesh_lang::ast::Span,
    ty: &str,
    allowed: &str,
) {
    cx.push(
        Diagnostic::error(
            TYPE_MISMATCH,
            format!("`{}` does not apply to {ty}", op.as_str()),
            span,
            format!("not an operator of {ty}"),
        )
        .with_help(format!("{ty} values compare with {allowed}")),
    );
}

fn in_list(cx: &mut Cx<'_>, lhs: &Operand, list: &[Value]) -> Option<CondKind> {
    let attr = attribute(cx, lhs)?;
    match attr {
        Attr::Method => {
            let methods: Vec<Option<Method>> = list.iter().map(|v| method_value(cx, v)).collect();
            Some(CondKind::Method {
                negated: false,
                methods: methods.into_iter().collect::<Option<Vec<_>>>()?,
            })
        }
        Attr::Source => {
            let callers: Vec<Option<Caller>> = list.iter().map(|v| source_value(cx, v)).collect();
            let callers = callers.into_iter().collect::<Option<Vec<_>>>()?;
            Some(source_cond(false, &callers))
        }
        Attr::Text(attr) => {
            let values: Vec<Option<String>> = list
                .iter()
                .map(|v| match v {
                    Value::Literal(lit) => cx.string(lit).map(str::to_string),
                    Value::Ref(r) => {
                        cx.mismatch(
                            Type::String,
                            &format!("`{}`", mesh_lang::format::ref_text(r)),
                            r.span,
                            Some("quote it".into()),
                        );
                        None
                    }
                })
                .collect();
            Some(CondKind::TextIn {
                attr,
                values: values.into_iter().collect::<Option<Vec<_>>>()?,
            })
        }
    }
}

fn string_operand<'o>(cx: &mut Cx<'_>, operand: &'o Operand) -> Option<&'o StrLit> {
    match &operand.kind {
        OperandKind::Literal(lit) => match &lit.kind {
            LiteralKind::Str(s) => Some(s),
            other => {
                cx.mismatch(Type::String, other.type_name(), lit.span, None);
                None
            }
        },
        OperandKind::Ref(r) => {
            let text = mesh_lang::format::ref_text(r);
            cx.mismatch(
                Type::String,
                &format!("`{text}`"),
                operand.span,
                Some(format!("quote it: \"{text}\"")),
            );
            None
        }
        _ => {
            cx.mismatch(Type::String, "a request attribute", operand.span, None);
            None
        }
    }
}

fn method_operand(cx: &mut Cx<'_>, operand: &Operand) -> Option<Method> {
    match &operand.kind {
        OperandKind::Ref(r) => method_value(cx, &Value::Ref(r.clone())),
        OperandKind::Literal(lit) => method_value(cx, &Value::Literal(lit.clone())),
        _ => {
            method_mismatch(cx, "a request attribute", operand.span, None);
            None
        }
    }
}

/// A method literal: `GET`, `POST`, …
pub fn method_value(cx: &mut Cx<'_>, value: &Value) -> Option<Method> {
    match value {
        Value::Ref(r) if r.namespace.is_none() && r.subset.is_none() => {
            if let Some(method) = Method::parse(&r.name.name) {
                return Some(method);
            }
            let upper = r.name.name.to_ascii_uppercase();
            let suggestion = if Method::parse(&upper).is_some() {
                Some(upper)
            } else {
                did_you_mean(&upper, Method::ALL.iter().map(|m| m.as_str())).map(str::to_string)
            };
            method_mismatch(cx, &format!("`{}`", r.name.name), r.span, suggestion);
            None
        }
        Value::Ref(r) => {
            method_mismatch(
                cx,
                &format!("`{}`", mesh_lang::format::ref_text(r)),
                r.span,
                None,
            );
            None
        }
        Value::Literal(lit) => {
            let suggestion = match &lit.kind {
                LiteralKind::Str(s) if Method::parse(&s.value.to_ascii_uppercase()).is_some() => {
                    Some(s.value.to_ascii_uppercase())
                }
                _ => None,
            };
            method_mismatch(cx, lit.kind.type_name(), lit.span, suggestion);
            None
        }
    }
}

fn method_mismatch(
    cx: &mut Cx<'_>,
    found: &str,
    span: mesh_lang::ast::Span,
    suggestion: Option<String>,
) {
    let list = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE, without quotes";
    let help = match suggestion {
        Some(s) => format!("did you mean `{s}`? methods are {list}"),
        None => format!("methods are {list}"),
    };
    cx.push(
        Diagnostic::error(
            TYPE_MISMATCH,
            format!("expected Method, found {found}"),
            span,
            "expected Method",
        )
        .with_help(help),
    );
}

/// `source == ...` / `source in [...]` over services and gateways.
fn source_cond(negated: bool, callers: &[Caller]) -> CondKind {
    let services = callers
        .iter()
        .filter_map(|c| match c {
            Caller::Service(id) => Some(*id),
            Caller::Gateway(_) => None,
        })
        .collect();
    let gateways = callers
        .iter()
        .filter_map(|c| match c {
            Caller::Gateway(id) => Some(*id),
            Caller::Service(_) => None,
        })
        .collect();
    CondKind::Source {
        negated,
        services,
        gateways,
    }
}

fn source_operand(cx: &mut Cx<'_>, operand: &Operand) -> Option<Caller> {
    match &operand.kind {
        OperandKind::Ref(r) => source_value(cx, &Value::Ref(r.clone())),
        OperandKind::Literal(lit) => source_value(cx, &Value::Literal(lit.clone())),
        _ => {
            cx.mismatch_service("a request attribute", operand.span);
            None
        }
    }
}

/// A service or gateway named as a caller (`source == frontend`,
/// `source == gateway/public`); subsets share their service's identity, so they cannot be
/// told apart as callers.
pub fn source_value(cx: &mut Cx<'_>, value: &Value) -> Option<Caller> {
    match value {
        Value::Ref(r) => {
            let resolved = cx
                .symbols
                .resolve_caller(r, cx.namespace, cx.file, cx.findings)?;
            if r.subset.is_some() {
                cx.push(
                    Diagnostic::error(
                        TYPE_MISMATCH,
                        "a caller is a service, not a subset",
                        r.span,
                        "names a subset",
                    )
                    .with_help("subsets of a service share its identity; name the service"),
                );
                return None;
            }
            Some(resolved)
        }
        Value::Literal(lit) => {
            cx.mismatch_service(lit.kind.type_name(), lit.span);
            None
        }
    }
}

impl Cx<'_> {
    fn mismatch_service(&mut self, found: &str, span: mesh_lang::ast::Span) {
        self.push(
            Diagnostic::error(
                TYPE_MISMATCH,
                format!("expected Service, found {found}"),
                span,
                "expected Service",
            )
            .with_help(
                "name a service without quotes: `source == frontend` or `source == shop/frontend`",
            ),
        );
    }
}
