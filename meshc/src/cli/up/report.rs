//! What `meshc up` tells its user and its scripts once the mesh runs: a table of the
//! workloads and their addresses with `curl` commands to try, and the `--state` file.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::{Callee, Plan, Workload};

/// The table and the commands to try, for people.
pub fn table(plan: &Plan, dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mesh {} is up: {} workload{}{} (configs, certificates and logs in {})\n",
        plan.mesh,
        plan.workloads.len(),
        if plan.workloads.len() == 1 { "" } else { "s" },
        match plan.gateways.len() {
            0 => String::new(),
            1 => " and 1 gateway".to_string(),
            n => format!(" and {n} gateways"),
        },
        dir.display()
    );
    let width = plan
        .workloads
        .iter()
        .map(|w| w.label().len())
        .max()
        .unwrap_or(0)
        .max("WORKLOAD".len());
    let _ = writeln!(
        out,
        "{:width$}  {:21}  {:21}  {:21}  APP",
        "WORKLOAD", "OUTBOUND", "INBOUND", "ADMIN"
    );
    for w in &plan.workloads {
        let _ = writeln!(
            out,
            "{:width$}  {:21}  {:21}  {:21}  {}",
            w.label(),
            w.ports.outbound.to_string(),
            w.ports.inbound.to_string(),
            w.ports.admin.to_string(),
            w.ports.app
        );
    }
    if !plan.services.is_empty() {
        let _ = writeln!(
            out,
            "\nEach workload has its own network namespace and address; apps call services \
             by plain address, with no proxy settings, and capture hands the connection to \
             their agent. Services:"
        );
        for s in &plan.services {
            let _ = writeln!(out, "  {:30} {}:{}", s.service, s.ip, s.port);
        }
        if let (Some(pod), Some(service)) = (
            plan.workloads.first().and_then(|w| w.pod.as_ref()),
            plan.services.iter().find(|s| {
                plan.workloads
                    .first()
                    .is_some_and(|w| w.callees.iter().any(|c| c.service == s.service))
            }),
        ) {
            let name = service.names.first().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "\nTry, as {}:\n  sudo ip netns exec {} curl -s http://{name}:{}/",
                plan.workloads
                    .first()
                    .map(Workload::label)
                    .unwrap_or_default(),
                pod.netns,
                service.port
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "\nA request sent to a workload's OUTBOUND address is a call made as that workload:"
    );
    for (caller, callee, host) in examples(plan) {
        let _ = writeln!(
            out,
            "  curl -s -H 'Host: {host}' http://{}/   # {} -> {callee}",
            caller.ports.outbound,
            caller.label()
        );
    }
    if let Some((caller, _, host)) = examples(plan).into_iter().next() {
        let _ = writeln!(
            out,
            "  curl -s http://{}/call/{host}/   # {}'s app calls {host} through its own agent",
            caller.ports.app,
            caller.label()
        );
    }
    if let Some(first) = plan.workloads.first() {
        let _ = writeln!(
            out,
            "  curl -s http://{}/metrics   # {}'s agent metrics",
            first.ports.admin,
            first.label()
        );
    }
    gateway_lines(plan, &mut out);
    let _ = writeln!(out, "\nCtrl-C stops the mesh.");
    out
}

/// The gateways' addresses, with a request to try through each listener.
fn gateway_lines(plan: &Plan, out: &mut String) {
    if plan.gateways.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nIngress gateways (clients outside the mesh come in here):"
    );
    for gateway in &plan.gateways {
        let host = gateway
            .hosts
            .iter()
            .find(|h| !h.contains('*'))
            .cloned()
            .unwrap_or_else(|| "localhost".to_string());
        for (port, tls, address) in &gateway.listeners {
            let scheme = if *tls { "https" } else { "http" };
            let _ = writeln!(
                out,
                "  {}: {scheme}://{host}:{} (listener {port}, admin {})",
                gateway.label(),
                address.port(),
                gateway.admin
            );
            let _ = writeln!(
                out,
                "    curl -s{} --resolve {host}:{}:{} {scheme}://{host}:{}{}",
                if *tls { "k" } else { "" },
                address.port(),
                address.ip(),
                address.port(),
                gateway.example_path
            );
        }
    }
}

/// One call per caller service (its first subset) to another service it may call, the
/// routed ones first (that is where splits and rules show).
fn examples(plan: &Plan) -> Vec<(&Workload, &str, &str)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut calls: Vec<(&Workload, &Callee)> = plan
        .workloads
        .iter()
        .filter(|w| seen.insert(w.service.as_str()))
        .filter_map(|w| {
            w.callees
                .iter()
                .filter(|c| c.service != w.service)
                .max_by_key(|c| c.routed)
                .map(|c| (w, c))
        })
        .collect();
    calls.sort_by_key(|(_, callee)| !callee.routed);
    calls
        .into_iter()
        .take(6)
        .map(|(w, c)| (w, c.service.as_str(), c.host.as_str()))
        .collect()
}

/// The `--state` document: the mesh and every workload's addresses (and the process ids,
/// so a script can check or clean up).
pub fn state(
    plan: &Plan,
    pids: &[(Option<u32>, Option<u32>)],
    gateway_pids: &[Option<u32>],
) -> serde_json::Value {
    let workloads: Vec<_> = plan
        .workloads
        .iter()
        .zip(pids)
        .map(|(w, (agent, app))| {
            let mut value = serde_json::json!({
                "service": w.service,
                "subset": w.subset,
                "identity": w.identity,
                "outbound": w.ports.outbound.to_string(),
                "inbound": w.ports.inbound.to_string(),
                "admin": w.ports.admin.to_string(),
                "app": w.ports.app.to_string(),
                "agent_pid": agent,
                "app_pid": app,
            });
            if let Some(pod) = &w.pod {
                value["ip"] = pod.ip.to_string().into();
                value["netns"] = super::isolated::netns_path(&pod.netns)
                    .display()
                    .to_string()
                    .into();
            }
            value
        })
        .collect();
    let mut state = serde_json::json!({ "mesh": plan.mesh, "workloads": workloads });
    if !plan.gateways.is_empty() {
        state["gateways"] = plan
            .gateways
            .iter()
            .zip(gateway_pids)
            .map(|(g, pid)| {
                let listeners: serde_json::Map<String, serde_json::Value> = g
                    .listeners
                    .iter()
                    .map(|(port, _, address)| (port.to_string(), address.to_string().into()))
                    .collect();
                serde_json::json!({
                    "gateway": g.key,
                    "identity": g.identity,
                    "admin": g.admin.to_string(),
                    "listeners": listeners,
                    "hosts": g.hosts,
                    "agent_pid": pid,
                })
            })
            .collect();
    }
    if !plan.services.is_empty() {
        state["services"] = plan
            .services
            .iter()
            .map(|s| {
                serde_json::json!({
                    "service": s.service,
                    "address": std::net::SocketAddr::from((s.ip, s.port)).to_string(),
                })
            })
            .collect();
    }
    state
}

/// Writes `value` to `path` atomically (aside, then renamed): a script polling for the
/// file never reads half of it.
pub fn write_state(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n";
    let aside = path.with_extension("tmp~");
    std::fs::write(&aside, text)
        .and_then(|()| std::fs::rename(&aside, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
