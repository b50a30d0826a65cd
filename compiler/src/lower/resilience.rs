//! Circuit breaking and outlier ejection (LANGUAGE.md §10): a service's `limits { ... }`
//! and `outlier { ... }` blocks, which every caller's agent enforces towards it. Limits
//! are at least 1 (a limit of 0 would refuse everything); outlier members are in range,
//! and those not written take Envoy's defaults (5 in a row, 10 s, 30 s, 10%). A block or
//! member given twice is `E0003`, pointing at both.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{LimitsMember, Literal, LiteralKind, OutlierMember, Span, Spanned};

use crate::diag::DUPLICATE;
use crate::ir::{Limits, Outlier};

use super::Cx;
use super::values::Type;

/// Tracks which members of one block were given, for `E0003`.
#[derive(Default)]
struct Seen(Vec<(&'static str, Span)>);

impl Seen {
    /// Whether `name` is new; reports `E0003` otherwise.
    fn first(&mut self, cx: &mut Cx<'_>, name: &'static str, span: Span) -> bool {
        if let Some((_, first)) = self.0.iter().find(|(n, _)| *n == name) {
            cx.push(
                Diagnostic::error(
                    DUPLICATE,
                    format!("`{name}` is given twice"),
                    span,
                    "given again here",
                )
                .with_label(*first, "first given here")
                .with_help("give each member once"),
            );
            return false;
        }
        self.0.push((name, span));
        true
    }
}

/// `limits { ... }`.
pub fn limits(cx: &mut Cx<'_>, members: &[Spanned<LimitsMember>]) -> Limits {
    let mut limits = Limits::default();
    let mut seen = Seen::default();
    for member in members {
        let (name, lit, slot) = match &member.node {
            LimitsMember::MaxConnections(lit) => {
                ("max_connections", lit, &mut limits.max_connections)
            }
            LimitsMember::MaxPending(lit) => ("max_pending", lit, &mut limits.max_pending),
            LimitsMember::MaxRequests(lit) => ("max_requests", lit, &mut limits.max_requests),
            LimitsMember::Error => continue,
        };
        if !seen.first(cx, name, member.span) {
            continue;
        }
        *slot = at_least_one(
            cx,
            lit,
            name,
            "a limit of 0 would refuse every request: the smallest is 1; leave the member out for no limit",
        );
    }
    limits
}

/// `outlier { ... }`, defaults filled in.
pub fn outlier(cx: &mut Cx<'_>, members: &[Spanned<OutlierMember>]) -> Outlier {
    let mut outlier = Outlier::default();
    let mut seen = Seen::default();
    for member in members {
        match &member.node {
            OutlierMember::Consecutive5xx(lit) => {
                if seen.first(cx, "consecutive_5xx", member.span)
                    && let Some(n) = at_least_one(
                        cx,
                        lit,
                        "consecutive_5xx",
                        "an endpoint is ejected after this many 5xx answers in a row: at least 1",
                    )
                {
                    outlier.consecutive_5xx = n;
                }
            }
            OutlierMember::Interval(lit) => {
                if seen.first(cx, "interval", member.span)
                    && let Some(d) = positive_duration(cx, lit, "interval")
                {
                    outlier.interval = d;
                }
            }
            OutlierMember::BaseEjection(lit) => {
                if seen.first(cx, "base_ejection", member.span)
                    && let Some(d) = positive_duration(cx, lit, "base_ejection")
                {
                    outlier.base_ejection = d;
                }
            }
            OutlierMember::MaxEjected(lit) => {
                if seen.first(cx, "max_ejected", member.span)
                    && let Some(p) = cx.percent(lit)
                {
                    outlier.max_ejected = p;
                }
            }
            OutlierMember::Error => {}
        }
    }
    outlier
}

/// An Int from 1 to `u32::MAX`; `E0006` with `help` otherwise.
fn at_least_one(cx: &mut Cx<'_>, lit: &Literal, name: &str, help: &str) -> Option<u32> {
    match &lit.kind {
        LiteralKind::Int(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                cx.out_of_range(
                    format!("{name} {n} is out of range"),
                    lit.span,
                    "out of range",
                    help,
                );
                None
            }
        },
        other => {
            cx.mismatch(Type::Int, other.type_name(), lit.span, None);
            None
        }
    }
}

/// A Duration longer than 0.
fn positive_duration(cx: &mut Cx<'_>, lit: &Literal, name: &str) -> Option<u64> {
    let d = cx.duration(lit)?;
    if d == 0 {
        cx.out_of_range(
            format!("{name} 0 is out of range"),
            lit.span,
            "zero duration",
            &format!("`{name}` must be longer than 0"),
        );
        return None;
    }
    Some(d)
}
