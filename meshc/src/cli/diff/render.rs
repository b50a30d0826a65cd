//! The human form of a diff: a `git diff --stat`-like line per changed workload, then its
//! decision and route changes with one example request each, and a summary line.

use std::fmt::Write;

use mesh_compiler::diff::{
    DecisionChange, Direction, Example, MeshDiff, Presence, RouteChange, RouteView, WorkloadDiff,
};
use mesh_compiler::lower::human_micros;
use mesh_config::schema::FULL_WEIGHT;

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The whole report.
pub fn human(diff: &MeshDiff) -> String {
    if !diff.changed() {
        return "no change\n".into();
    }
    let width = diff
        .workloads
        .iter()
        .map(|w| w.workload.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for workload in &diff.workloads {
        let _ = writeln!(out, "{:width$}  {}", workload.workload, stat(workload));
    }
    for workload in &diff.workloads {
        out.push('\n');
        details(&mut out, workload);
    }
    let (widened, narrowed, routes) = diff.workloads.iter().fold((0, 0, 0), |acc, w| {
        (
            acc.0 + w.widened(),
            acc.1 + w.narrowed(),
            acc.2 + w.routes.len(),
        )
    });
    let _ = writeln!(
        out,
        "\n{} changed: {} widened, {} narrowed, {}",
        plural(diff.workloads.len(), "workload"),
        plural(widened, "decision"),
        narrowed,
        plural(routes, "route change"),
    );
    out
}

/// `2 decisions widened, 1 narrowed, route changed`.
fn stat(workload: &WorkloadDiff) -> String {
    let mut parts = Vec::new();
    match workload.presence {
        Presence::Added => parts.push("added".to_string()),
        Presence::Removed => parts.push("removed".to_string()),
        Presence::Both => {}
    }
    let (widened, narrowed) = (workload.widened(), workload.narrowed());
    if widened > 0 || narrowed > 0 {
        parts.push(format!(
            "{} widened, {narrowed} narrowed",
            plural(widened, "decision")
        ));
    }
    if !workload.routes.is_empty() {
        parts.push("route changed".into());
    }
    if !workload.coverage.complete() {
        parts.push("(partial)".into());
    }
    parts.join(", ")
}

fn details(out: &mut String, workload: &WorkloadDiff) {
    let _ = writeln!(out, "{}:", workload.workload);
    for change in &workload.decisions {
        decision(out, change);
    }
    for change in &workload.routes {
        route(out, change);
    }
    if !workload.gained_access.is_empty() {
        let _ = writeln!(out, "  gains access: {}", workload.gained_access.join(", "));
    }
    if !workload.lost_access.is_empty() {
        let _ = writeln!(out, "  loses access: {}", workload.lost_access.join(", "));
    }
    let c = workload.coverage;
    if !c.complete() {
        let _ = writeln!(
            out,
            "  partial: {} of {} authorization and {} of {} routing classes evaluated",
            c.authz_checked, c.authz_total, c.route_checked, c.route_total
        );
    }
}

fn more(classes: usize, shown: usize) -> String {
    match classes.saturating_sub(shown) {
        0 => String::new(),
        n => format!(" (+{} like it)", plural(n, "request class")),
    }
}

fn decision(out: &mut String, change: &DecisionChange) {
    let arrow = match change.direction {
        Direction::Widened => "DENY→ALLOW",
        Direction::Narrowed => "ALLOW→DENY",
    };
    let shown = change.examples.len().min(1);
    for example in change.examples.iter().take(1) {
        let _ = writeln!(
            out,
            "  {arrow}  {} from {}{}",
            request(example),
            change.caller,
            more(change.classes, shown)
        );
    }
    let policies = |p: &[String]| {
        if p.is_empty() {
            "no policy".to_string()
        } else {
            p.join(", ")
        }
    };
    let _ = writeln!(
        out,
        "              was: {}; now: {}",
        policies(&change.old_policies),
        policies(&change.new_policies)
    );
}

fn route(out: &mut String, change: &RouteChange) {
    let from = change
        .caller
        .as_ref()
        .map(|c| format!(" from {c}"))
        .unwrap_or_default();
    let shown = change.examples.len().min(1);
    for example in change.examples.iter().take(1) {
        let _ = writeln!(
            out,
            "  ROUTE       {}{from}{}",
            request(example),
            more(change.classes, shown)
        );
    }
    let _ = writeln!(
        out,
        "              {}",
        aspects(change.old.as_ref(), change.new.as_ref(), &change.aspects)
    );
}

/// `GET /path?q=v host h [name: value, ...]`, or `TCP port N`.
fn request(example: &Example) -> String {
    let Some(path) = &example.path else {
        return format!("{} port {}", example.method, example.port);
    };
    let mut text = format!("{} {path}", example.method);
    if !example.query.is_empty() {
        let pairs: Vec<String> = example
            .query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(text, "?{}", pairs.join("&"));
    }
    if let Some(host) = &example.host {
        let _ = write!(text, " host {host}");
    }
    if !example.headers.is_empty() {
        let headers: Vec<String> = example
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = write!(text, " [{}]", headers.join(", "));
    }
    text
}

/// `rule jason → shift, backends a → b 50%, c 50%`.
fn aspects(old: Option<&RouteView>, new: Option<&RouteView>, names: &[&str]) -> String {
    let (Some(old), Some(new)) = (old, new) else {
        let side = |v: Option<&RouteView>| v.map_or_else(|| "not routed".to_string(), summary);
        return format!("{} → {}", side(old), side(new));
    };
    names
        .iter()
        .map(|name| match *name {
            "rule" => format!("rule {} → {}", rule(old), rule(new)),
            "host" => format!(
                "host {} → {}",
                old.host.as_deref().unwrap_or("none"),
                new.host.as_deref().unwrap_or("none")
            ),
            "backends" => format!("backends {} → {}", backends(old), backends(new)),
            "timeout" => format!("timeout {} → {}", timeout(old), timeout(new)),
            "retries" => format!("retries {} → {}", retries(old), retries(new)),
            other => format!("{other} changed"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(view: &RouteView) -> String {
    format!("rule {}, backends {}", rule(view), backends(view))
}

fn rule(view: &RouteView) -> String {
    view.rule.clone().unwrap_or_else(|| "(none)".into())
}

fn backends(view: &RouteView) -> String {
    view.backends
        .iter()
        .map(|(name, weight)| {
            if *weight == FULL_WEIGHT {
                name.clone()
            } else {
                format!(
                    "{name} {}",
                    mesh_lang::ast::Percent {
                        milli: u64::from(*weight)
                    }
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn timeout(view: &RouteView) -> String {
    view.timeout_us.map_or_else(|| "none".into(), human_micros)
}

fn retries(view: &RouteView) -> String {
    view.retry.as_ref().map_or_else(
        || "0".into(),
        |r| format!("{} ({})", r.attempts.saturating_sub(1), r.profile),
    )
}
