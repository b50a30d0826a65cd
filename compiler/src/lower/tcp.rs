//! Opaque TCP (LANGUAGE.md §10): a tcp port carries bytes, not requests, so conditions on
//! the method, path, host, headers or query cannot apply to a service whose ports are all
//! tcp (`E0011`), and port numbers written in policies and tests must be the service's.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{Literal, LiteralKind, Span};

use crate::diag::{L7_ON_TCP, UNKNOWN_REF};
use crate::ir::{Cond, CondKind, Service, TextAttr};

use super::Cx;
use super::values::Type;

/// `E0011` at `span` when `service` has only tcp ports; `what` names what is read there.
pub fn forbid_l7(cx: &mut Cx<'_>, service: &Service, span: Span, what: &str) {
    if !service.tcp_only() {
        return;
    }
    let mut d = Diagnostic::error(
        L7_ON_TCP,
        format!(
            "{what} cannot be decided for `{}`: all its ports are opaque TCP",
            service.name
        ),
        span,
        "needs an HTTP request",
    )
    .with_help(
        "opaque TCP carries bytes, not HTTP requests: only `source` conditions and `ports` apply to it; give the service an http port for L7 rules",
    );
    d = d.with_label_in(
        service.name_origin.file,
        service.name_origin.span,
        format!("`{}` has only tcp ports", service.name),
    );
    cx.push(d);
}

/// `E0011` for every part of `cond` that reads the request, when `service` is tcp only.
pub fn forbid_l7_cond(cx: &mut Cx<'_>, service: &Service, cond: &Cond) {
    if !service.tcp_only() {
        return;
    }
    for read in cond.request_reads() {
        let what = match &read.kind {
            CondKind::Method { .. } => "the method".to_string(),
            CondKind::Text { attr, .. }
            | CondKind::TextIn { attr, .. }
            | CondKind::Exists(attr) => match attr {
                TextAttr::Path => "the path".to_string(),
                TextAttr::Host => "the host".to_string(),
                TextAttr::Header(name) => format!("header `{name}`"),
                TextAttr::Query(name) => format!("query parameter `{name}`"),
            },
            CondKind::All(_) | CondKind::Any(_) | CondKind::Not(_) | CondKind::Source { .. } => {
                continue;
            }
        };
        forbid_l7(cx, service, read.origin.span, &what);
    }
}

/// A port number of `service` written as `lit`: an integer, or (`quoted`) a string
/// holding one. Out of 1–65535 is `E0006`, a port the service does not declare `E0002`.
pub fn service_port(
    cx: &mut Cx<'_>,
    service: &Service,
    lit: &Literal,
    quoted: bool,
) -> Option<u16> {
    let number = match &lit.kind {
        LiteralKind::Str(s) if quoted => match s.value.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                cx.mismatch(
                    Type::Int,
                    &format!("\"{}\"", s.value),
                    lit.span,
                    Some("a port is a number: `connect \"5432\" ...` or `connect 5432 ...`".into()),
                );
                return None;
            }
        },
        LiteralKind::Int(n) => *n,
        _ => {
            cx.int_in(lit, 1, 65535, "port")?;
            return None;
        }
    };
    if !(1..=65535).contains(&number) {
        cx.out_of_range(
            format!("port {number} is out of range"),
            lit.span,
            "out of range",
            "port goes from 1 to 65535",
        );
        return None;
    }
    let number = u16::try_from(number).ok()?;
    if service.port(number).is_some() {
        return Some(number);
    }
    let declared: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
    let help = if declared.is_empty() {
        format!(
            "`{}` declares no ports: add `port tcp {number}` to it",
            service.name
        )
    } else {
        format!(
            "the ports of `{}` are {}",
            service.name,
            declared.join(", ")
        )
    };
    cx.push(
        Diagnostic::error(
            UNKNOWN_REF,
            format!("service `{}` has no port {number}", service.name),
            lit.span,
            "not a port of the service",
        )
        .with_help(help),
    );
    None
}
