//! `meshc graph PATH... [--state FILE] [-o FILE.dot|FILE.svg]`: the mesh as a picture, as
//! people know it from Kiali. Services are nodes, grouped by namespace, with their
//! subsets beside them; an edge is a call the policies allow (exactly the neighbours the
//! compiled configs give each workload, so a pair the policies deny has none). Edges into
//! a service whose policy only audits are dashed and say so; edges the policies cannot
//! be read for (no policy under `default_policy allow`, inline Cedar) are dotted.
//! Ingress gateways are nodes in their namespace too, with an edge to each service their
//! host rules route to.
//!
//! With `--state` (the file `meshc up --state` writes) every caller's agent is scraped
//! twice, `--window` apart, and each edge carries the live request rate and success rate
//! (answers that are not 5xx) of the calls it carries.
//!
//! DOT goes to stdout or a `.dot` file; a `.svg` file is drawn by Graphviz's `dot`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_compiler::emit::{self, Neighbours};
use mesh_compiler::ir::{self, Effect, Mesh, PolicyMode};
use mesh_compiler::report::Style;

use super::{Exit, report_human, scrape};

/// What `meshc graph` was asked to draw.
pub struct Request {
    pub paths: Vec<PathBuf>,
    pub state: Option<PathBuf>,
    /// Seconds.
    pub window: f64,
    pub out: Option<PathBuf>,
}

/// How much an edge is known to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An allow rule of the callee's enforced policy lets the caller in.
    Allowed,
    /// The callee's policy is in audit mode: nothing is blocked.
    Audit,
    /// Not read from rules: no policy under `default_policy allow`, or inline Cedar.
    Unanalysed,
}

/// Traffic seen on an edge over the window.
#[derive(Clone, Copy, Debug, Default)]
struct Live {
    requests: f64,
    failures: f64,
}

struct Edge {
    from: String,
    to: String,
    kind: Kind,
    live: Option<Live>,
}

pub fn run(request: &Request, style: Style) -> Exit {
    let checked = match mesh_compiler::check_paths(&request.paths) {
        Ok(checked) => checked,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    if checked.errors() > 0 {
        report_human(&checked, style);
        eprintln!("error: not drawn: the mesh has errors");
        return Exit::Findings;
    }
    let window = match Duration::try_from_secs_f64(request.window) {
        Ok(window) if (0.1..=3600.0).contains(&request.window) => window,
        _ => {
            eprintln!("error: --window is seconds between 0.1 and 3600");
            return Exit::Trouble;
        }
    };
    let mut edges = edges(&checked.mesh, &checked.cedar);
    if let Some(state) = &request.state {
        match live(state, window) {
            Ok(traffic) => {
                for edge in &mut edges {
                    edge.live = Some(
                        traffic
                            .get(&(edge.from.clone(), edge.to.clone()))
                            .copied()
                            .unwrap_or_default(),
                    );
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Trouble;
            }
        }
    }
    let dot = dot(&checked.mesh, &edges, window);
    match &request.out {
        None => {
            print!("{dot}");
            Exit::Ok
        }
        Some(path) if path.extension().is_some_and(|e| e == "svg") => svg(&dot, path),
        Some(path) => match std::fs::write(path, dot) {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                Exit::Trouble
            }
        },
    }
}

/// The calls the policies allow: each workload's outbound services, as compiled.
fn edges(mesh: &Mesh, cedar: &mesh_compiler::cedar::CedarOutput) -> Vec<Edge> {
    let configs = emit::workloads(mesh, cedar, Neighbours::Allowed);
    let by_key: BTreeMap<String, &ir::Service> =
        mesh.services.iter().map(|s| (s.key(), s)).collect();
    let callers = mesh
        .services
        .iter()
        .map(ir::Service::key)
        .zip(configs)
        .chain(
            emit::gateways(mesh, cedar)
                .into_iter()
                .map(|(key, config)| (gateway_node(&key), config)),
        );
    let mut edges = Vec::new();
    for (caller, config) in callers {
        for callee in &config.outbound.services {
            let Some(target) = by_key.get(&callee.service) else {
                continue;
            };
            let kind = match &target.policy {
                None if mesh.default_policy == Effect::Allow => Kind::Unanalysed,
                None => continue,
                Some(policy) if policy.mode == PolicyMode::Audit => Kind::Audit,
                Some(policy) if !policy.cedar.is_empty() => Kind::Unanalysed,
                Some(_) => Kind::Allowed,
            };
            edges.push(Edge {
                from: caller.clone(),
                to: callee.service.clone(),
                kind,
                live: None,
            });
        }
    }
    edges
}

/// A gateway's node: `gateway/NS/NAME`.
fn gateway_node(key: &str) -> String {
    format!("gateway/{key}")
}

/// Requests per (caller, callee) service over `window`, from the agents of the state file
/// (a sidecar's outbound requests, a gateway's).
fn live(state: &Path, window: Duration) -> Result<BTreeMap<(String, String), Live>, String> {
    let agents: Vec<(String, scrape::Admin, &str)> = scrape::agents(state)?
        .into_iter()
        .map(|agent| (agent.service, agent.admin, "outbound"))
        .chain(
            scrape::gateways(state)?
                .into_iter()
                .map(|gateway| (gateway_node(&gateway.service), gateway.admin, "gateway")),
        )
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let before = totals(&agents).await?;
        tokio::time::sleep(window).await;
        let after = totals(&agents).await?;
        let seconds = window.as_secs_f64();
        Ok(after
            .into_iter()
            .map(|(pair, now)| {
                let then = before.get(&pair).copied().unwrap_or_default();
                let live = Live {
                    requests: (now.requests - then.requests).max(0.0) / seconds,
                    failures: (now.failures - then.failures).max(0.0) / seconds,
                };
                (pair, live)
            })
            .collect())
    })
}

/// Requests (in `direction`) and 5xx answers so far, per (caller, callee) service.
async fn totals(
    agents: &[(String, scrape::Admin, &str)],
) -> Result<BTreeMap<(String, String), Live>, String> {
    let mut totals: BTreeMap<(String, String), Live> = BTreeMap::new();
    for (caller, admin, direction) in agents {
        let text = admin.get("/metrics").await?;
        for sample in scrape::samples(&text, "mesh_requests_total") {
            if sample.labels.get("direction") != Some(&(*direction).to_string()) {
                continue;
            }
            let Some(callee) = sample.labels.get("service") else {
                continue;
            };
            let entry = totals.entry((caller.clone(), callee.clone())).or_default();
            entry.requests += sample.value;
            if sample
                .labels
                .get("status")
                .is_some_and(|s| s.starts_with('5'))
            {
                entry.failures += sample.value;
            }
        }
    }
    Ok(totals)
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The graph in Graphviz's DOT language.
fn dot(mesh: &Mesh, edges: &[Edge], window: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quoted(&mesh.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(
        out,
        "  node [shape=box, style=rounded, fontname=\"Helvetica\"];"
    );
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    let namespaces: BTreeSet<&str> = mesh
        .services
        .iter()
        .map(|s| s.namespace.as_str())
        .chain(mesh.gateways.iter().map(|g| g.namespace.as_str()))
        .collect();
    for namespace in namespaces {
        let _ = writeln!(
            out,
            "  subgraph {} {{",
            quoted(&format!("cluster_{namespace}"))
        );
        let _ = writeln!(
            out,
            "    label={};",
            quoted(&format!("namespace {namespace}"))
        );
        for gateway in mesh.gateways.iter().filter(|g| g.namespace == namespace) {
            let _ = writeln!(
                out,
                "    {} [label={}, shape=invhouse, class=\"gateway\"];",
                quoted(&gateway_node(&gateway.key())),
                quoted(&format!("gateway {}", gateway.name))
            );
        }
        for service in mesh.services.iter().filter(|s| s.namespace == namespace) {
            let key = service.key();
            let _ = writeln!(
                out,
                "    {} [label={}];",
                quoted(&key),
                quoted(&service.name)
            );
            for subset in &service.subsets {
                let node = format!("{key}.{}", subset.name);
                let _ = writeln!(
                    out,
                    "    {} [label={}, shape=ellipse, fontsize=10];",
                    quoted(&node),
                    quoted(&subset.name)
                );
                let _ = writeln!(
                    out,
                    "    {} -> {} [style=dotted, arrowhead=none, class=\"subset\"];",
                    quoted(&key),
                    quoted(&node)
                );
            }
        }
        let _ = writeln!(out, "  }}");
    }
    for edge in edges {
        let mut attributes = vec![format!(
            "class={}",
            quoted(match edge.kind {
                Kind::Allowed => "allowed",
                Kind::Audit => "audit",
                Kind::Unanalysed => "unanalysed",
            })
        )];
        let mut label = match edge.kind {
            Kind::Allowed => String::new(),
            Kind::Audit => {
                attributes.push("style=dashed".into());
                "audit".to_string()
            }
            Kind::Unanalysed => {
                attributes.push("style=dotted".into());
                String::new()
            }
        };
        if let Some(live) = edge.live {
            let text = if live.requests > 0.0 {
                let success = 100.0 * (1.0 - live.failures / live.requests);
                if success < 95.0 {
                    attributes.push("color=red, fontcolor=red".into());
                }
                format!("{:.1} rps, {success:.1}% ok", live.requests)
            } else {
                format!("idle ({}s)", window.as_secs_f64())
            };
            label = if label.is_empty() {
                text
            } else {
                format!("{label}\\n{text}")
            };
        }
        if !label.is_empty() {
            attributes.push(format!("label=\"{label}\""));
        }
        let _ = writeln!(
            out,
            "  {} -> {} [{}];",
            quoted(&edge.from),
            quoted(&edge.to),
            attributes.join(", ")
        );
    }
    let _ = writeln!(out, "}}");
    out
}

/// Draws `dot` into `path` with Graphviz.
fn svg(dot: &str, path: &Path) -> Exit {
    use std::io::Write as _;
    let child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            eprintln!(
                "error: cannot run Graphviz's `dot` ({e}): install Graphviz (Debian: apt-get \
                 install graphviz), or write DOT with `-o FILE.dot`"
            );
            return Exit::Trouble;
        }
    };
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(dot.as_bytes()));
    match (written, child.wait()) {
        (Some(Ok(())), Ok(status)) if status.success() => Exit::Ok,
        (_, status) => {
            eprintln!("error: `dot -Tsvg` failed ({status:?})");
            Exit::Trouble
        }
    }
}
