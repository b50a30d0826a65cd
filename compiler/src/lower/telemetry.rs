//! `telemetry { tracing PERCENT  access_log off|json }` in the `mesh` block (LANGUAGE.md
//! §10): both members optional, defaults 0% and `off`; each at most once.

use mesh_lang::Diagnostic;
use mesh_lang::ast::{Percent, Span, Spanned, TelemetryMember};

use crate::diag::DUPLICATE;
use crate::ir::Telemetry;

use super::Cx;

/// Checks and lowers the members of a `telemetry` block.
pub fn lower(cx: &mut Cx<'_>, members: &[Spanned<TelemetryMember>]) -> Telemetry {
    let mut telemetry = Telemetry {
        tracing: Percent { milli: 0 },
        access_log: false,
    };
    let (mut tracing_at, mut access_log_at): (Option<Span>, Option<Span>) = (None, None);
    for member in members {
        match &member.node {
            TelemetryMember::Tracing(share) => {
                if twice(cx, "tracing", tracing_at, member.span) {
                    continue;
                }
                tracing_at = Some(member.span);
                if let Some(share) = cx.percent(share) {
                    telemetry.tracing = share;
                }
            }
            TelemetryMember::AccessLog(format) => {
                if twice(cx, "access_log", access_log_at, member.span) {
                    continue;
                }
                access_log_at = Some(member.span);
                let words = [("off", false), ("json", true)];
                if let Some(on) = cx.vocabulary(format, "an access log format", &words) {
                    telemetry.access_log = on;
                }
            }
            TelemetryMember::Error => {}
        }
    }
    telemetry
}

/// `E0003` when `what` was already set at `first`.
fn twice(cx: &mut Cx<'_>, what: &str, first: Option<Span>, span: Span) -> bool {
    let Some(first) = first else {
        return false;
    };
    cx.push(
        Diagnostic::error(
            DUPLICATE,
            format!("`{what}` is set twice"),
            span,
            "set again here",
        )
        .with_label(first, "first set here")
        .with_help(format!("keep one `{what}`")),
    );
    true
}
