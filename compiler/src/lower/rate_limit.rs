//! Rate limits (LANGUAGE.md §10): `rate_limit [NAME] RATE [burst N] [per caller] [when
//! COND]` in a policy. Each becomes a token bucket the callee's agent keeps; this module
//! types and ranges the rate and burst, names unnamed limits by position, refuses two
//! limits of one name, and checks conditions as in rules (`source` is the caller; L7
//! conditions on a tcp-only service are `E0011`). A limit on a service without an HTTP
//! port can never apply: `W0009`.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{self, LiteralKind, Span, TimeUnit};

use crate::diag::{DUPLICATE, RATE_LIMIT_WITHOUT_HTTP};
use crate::ir::{Micros, Protocol, RateLimit, Service};

use super::values::Type;
use super::{Cx, cond, tcp};

/// Lowers the `position`-th (1-based) `rate_limit` of a policy of `service`; `earlier`
/// are the limits lowered before it (for duplicate names).
pub fn lower(
    cx: &mut Cx<'_>,
    limit: &ast::RateLimit,
    span: Span,
    position: usize,
    service: &Service,
    earlier: &[RateLimit],
) -> Option<RateLimit> {
    let name = match &limit.name {
        Some(ident) => ident.name.clone(),
        None => position.to_string(),
    };
    let mut ok = true;
    if let Some(first) = earlier.iter().find(|l| l.name == name) {
        let at = limit.name.as_ref().map_or(span, |n| n.span);
        let mut d = Diagnostic::error(
            DUPLICATE,
            format!("two rate limits are named `{name}`"),
            at,
            "second limit with this name",
        )
        .with_help("metrics, `mesh-error` answers and test expectations tell limits apart by name: rename one");
        d = d.with_label_in(
            first.origin.file,
            first.origin.span,
            "first limit with this name",
        );
        cx.push(d);
        ok = false;
    }
    let rate = rate(cx, &limit.rate);
    let burst = match &limit.burst {
        Some(lit) => burst(cx, lit),
        None => rate.map(|(requests, period)| default_burst(requests, period)),
    };
    let before = cx.findings.len();
    let when = match &limit.when {
        Some(expr) => {
            let lowered = cond::lower(cx, expr);
            if let Some(when) = &lowered {
                tcp::forbid_l7_cond(cx, service, when);
            }
            ok &= lowered.is_some();
            lowered
        }
        None => None,
    };
    let reported_l7 = cx.findings[before..]
        .iter()
        .any(|f| f.diagnostic.code == crate::diag::L7_ON_TCP);
    if !reported_l7 && !service.ports.iter().any(|p| p.protocol != Protocol::Tcp) {
        let mut d = Diagnostic::warning(
            RATE_LIMIT_WITHOUT_HTTP,
            format!(
                "this rate limit never applies: `{}` has no HTTP port",
                service.name
            ),
            span,
            "never applies",
        )
        .with_help(
            "rate limits count HTTP requests; opaque TCP connections are not limited: remove the limit, or give the service an http port",
        );
        d = d.with_label_in(
            service.name_origin.file,
            service.name_origin.span,
            format!("`{}` has no HTTP port", service.name),
        );
        cx.push(d);
    }
    let ((requests, period), burst) = (rate?, burst?);
    ok.then(|| RateLimit {
        name,
        origin: cx.origin(span),
        requests,
        period,
        burst,
        per_caller: limit.per_caller.is_some(),
        when,
    })
}

/// `N/s`, `N/m` (or `N/h`): requests per period, at least 1 and at most `u32::MAX`.
fn rate(cx: &mut Cx<'_>, lit: &ast::Literal) -> Option<(u32, Micros)> {
    let rate = cx.rate(lit)?;
    let period = match rate.per {
        TimeUnit::Seconds => 1_000_000,
        TimeUnit::Minutes => 60_000_000,
        TimeUnit::Hours => 3_600_000_000,
        TimeUnit::Micros | TimeUnit::Millis => {
            cx.out_of_range(
                format!(
                    "a rate limit counts requests per second, minute or hour, not per {}",
                    rate.per.suffix()
                ),
                lit.span,
                "period too short",
                "write the rate per second or per minute: `100/s`, `600/m`",
            );
            return None;
        }
    };
    if rate.count == 0 {
        cx.out_of_range(
            "a rate limit of 0 admits no request".into(),
            lit.span,
            "zero rate",
            "the smallest rate is `1/s` or `1/m`; to refuse every request, write a `deny`",
        );
        return None;
    }
    let Ok(requests) = u32::try_from(rate.count) else {
        cx.out_of_range(
            format!("rate {} is too large", rate.count),
            lit.span,
            "out of range",
            &format!(
                "a rate limit admits at most {} requests per period",
                u32::MAX
            ),
        );
        return None;
    };
    Some((requests, period))
}

/// `burst N`: an Int from 1 to `u32::MAX`.
fn burst(cx: &mut Cx<'_>, lit: &ast::Literal) -> Option<u32> {
    match &lit.kind {
        LiteralKind::Int(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                cx.out_of_range(
                    format!("burst {n} is out of range"),
                    lit.span,
                    "out of range",
                    &format!(
                        "a burst is how many requests the bucket holds: from 1 to {}",
                        u32::MAX
                    ),
                );
                None
            }
        },
        _ => {
            cx.mismatch(
                Type::Int,
                lit.kind.type_name(),
                lit.span,
                Some("a burst is a number of requests: `burst 200`".into()),
            );
            None
        }
    }
}

/// The burst of a limit that sets none: its rate per second, rounded up, at least 1
/// (`100/s` → 100, `90/m` → 2).
pub fn default_burst(requests: u32, period: Micros) -> u32 {
    let per_second = (u64::from(requests) * 1_000_000).div_ceil(period.max(1));
    u32::try_from(per_second.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::default_burst;

    #[test]
    fn the_default_burst_is_the_rate_per_second_rounded_up() {
        assert_eq!(default_burst(100, 1_000_000), 100);
        assert_eq!(default_burst(600, 60_000_000), 10);
        assert_eq!(default_burst(90, 60_000_000), 2);
        assert_eq!(default_burst(1, 60_000_000), 1);
        assert_eq!(default_burst(7200, 3_600_000_000), 2);
    }
}
