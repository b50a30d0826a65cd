//! `meshc stat --state FILE | --kubernetes [--by rule] [--window S] [-w] [--format json]`:
//! what the running mesh is doing, as `linkerd viz stat` shows it. Every agent of the
//! `meshc up` state file (or, with `--kubernetes`, of the cluster's running meshed pods,
//! through the API server; replicas of a workload add up) is scraped twice, `--window`
//! apart; per workload, from its agents' inbound
//! side: requests per second, success rate (answers that are not 5xx), latency
//! percentiles (p50, p95, p99, from the request-duration histogram as Prometheus's
//! `histogram_quantile` reads it), the share of requests that arrived over mTLS (the
//! rest came in plaintext under permissive mTLS) and requests denied by policy per
//! second. With `--by
//! rule`, per caller, called service and route rule from the callers' outbound side:
//! requests per second and success rate. `-w` redraws every window until Ctrl-C.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::Exit;
use super::scrape::{self, Agent, agents};

/// Where the agents are.
pub enum Source {
    /// The workloads of a `meshc up --state` file.
    State(PathBuf),
    /// A cluster's meshed pods (kubeconfig `context`, one `namespace` or all).
    Kubernetes {
        context: Option<String>,
        namespace: Option<String>,
    },
}

/// What `meshc stat` was asked for.
pub struct Request {
    pub source: Source,
    /// Seconds.
    pub window: f64,
    pub by_rule: bool,
    pub watch: bool,
    pub json: bool,
}

/// The counters of one agent at one moment.
#[derive(Clone, Default)]
struct Snapshot {
    /// Inbound requests and 5xx answers.
    requests: f64,
    failures: f64,
    /// Inbound latency histogram: (upper bound, cumulative count), ascending.
    buckets: Vec<(f64, f64)>,
    /// Requests denied by an enforced policy.
    denied: f64,
    /// Inbound requests over mTLS, and in plaintext.
    mtls: f64,
    plaintext: f64,
    /// Outbound requests and 5xx answers per (called service, rule).
    outbound: BTreeMap<(String, String), (f64, f64)>,
}

/// A workload's row.
#[derive(serde::Serialize)]
struct Row {
    workload: String,
    requests_per_second: f64,
    success_rate: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// The share of the window's requests that arrived over mTLS.
    mtls_share: Option<f64>,
    denied_per_second: f64,
}

/// A (caller, service, rule) row of `--by rule`.
#[derive(serde::Serialize)]
struct RuleRow {
    caller: String,
    service: String,
    rule: String,
    requests_per_second: f64,
    success_rate: Option<f64>,
}

pub fn run(request: &Request) -> Exit {
    let window = match Duration::try_from_secs_f64(request.window) {
        Ok(window) if (0.1..=3600.0).contains(&request.window) => window,
        _ => {
            eprintln!("error: --window is seconds between 0.1 and 3600");
            return Exit::Trouble;
        }
    };
    let runtime = match super::mesh_input::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    runtime.block_on(async {
        let found = match &request.source {
            Source::State(state) => agents(state),
            Source::Kubernetes { context, namespace } => {
                scrape::pods(context.as_deref(), namespace.as_deref()).await
            }
        };
        let agents = match found {
            Ok(agents) if agents.is_empty() => {
                eprintln!("error: no agents to scrape (no meshed pods are running)");
                return Exit::Trouble;
            }
            Ok(agents) => agents,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Trouble;
            }
        };
        let workloads = workloads(&agents);
        let mut before = match snapshots(&agents, &workloads).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Trouble;
            }
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep(window) => {}
                _ = tokio::signal::ctrl_c() => return Exit::Ok,
            }
            let after = match snapshots(&agents, &workloads).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Trouble;
                }
            };
            let seconds = window.as_secs_f64();
            let rows = rows(&workloads, &before, &after, seconds);
            let rules = request
                .by_rule
                .then(|| rule_rows(&workloads, &before, &after, seconds));
            let text = if request.json {
                let document = serde_json::json!({
                    "window_seconds": seconds,
                    "workloads": rows,
                    "rules": rules,
                });
                serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
            } else {
                table(&rows, rules.as_deref())
            };
            if request.watch {
                // Clear the screen and go home, as `watch` does.
                print!("\x1b[2J\x1b[H{text}");
            } else {
                print!("{text}");
                return Exit::Ok;
            }
            before = after;
        }
    })
}

/// A workload: its label and service, and the indexes of its agents.
struct Workload {
    label: String,
    service: String,
}

/// The workloads of `agents` by label (several agents: replicas), each agent's workload
/// index beside.
fn workloads(agents: &[Agent]) -> (Vec<Workload>, Vec<usize>) {
    let mut labels: Vec<&str> = agents.iter().map(|a| a.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let of = agents
        .iter()
        .map(|a| labels.binary_search(&a.label.as_str()).unwrap_or(0))
        .collect();
    let workloads = labels
        .iter()
        .map(|label| Workload {
            label: (*label).to_string(),
            service: agents
                .iter()
                .find(|a| a.label == *label)
                .map(|a| a.service.clone())
                .unwrap_or_default(),
        })
        .collect();
    (workloads, of)
}

/// Every workload's counters now: the sum of its agents'.
async fn snapshots(
    agents: &[Agent],
    workloads: &(Vec<Workload>, Vec<usize>),
) -> Result<Vec<Snapshot>, String> {
    let mut out = vec![Snapshot::default(); workloads.0.len()];
    for (agent, &workload) in agents.iter().zip(&workloads.1) {
        let text = agent.admin.get("/metrics").await?;
        if let Some(sum) = out.get_mut(workload) {
            sum.add(&snapshot(&text));
        }
    }
    Ok(out)
}

impl Snapshot {
    /// Adds another agent's counters (a replica of the same workload).
    fn add(&mut self, other: &Snapshot) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.denied += other.denied;
        self.mtls += other.mtls;
        self.plaintext += other.plaintext;
        for &(bound, count) in &other.buckets {
            match self.buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, sum)) => *sum += count,
                None => self.buckets.push((bound, count)),
            }
        }
        self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (key, (count, failed)) in &other.outbound {
            let sum = self.outbound.entry(key.clone()).or_default();
            sum.0 += count;
            sum.1 += failed;
        }
    }
}

fn snapshot(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let label =
        |sample: &scrape::Sample, name: &str| sample.labels.get(name).cloned().unwrap_or_default();
    for sample in scrape::samples(text, "mesh_requests_total") {
        let failed = label(&sample, "status").starts_with('5');
        match label(&sample, "direction").as_str() {
            "inbound" => {
                snapshot.requests += sample.value;
                if failed {
                    snapshot.failures += sample.value;
                }
            }
            "outbound" => {
                let entry = snapshot
                    .outbound
                    .entry((label(&sample, "service"), label(&sample, "rule")))
                    .or_default();
                entry.0 += sample.value;
                if failed {
                    entry.1 += sample.value;
                }
            }
            _ => {}
        }
    }
    for sample in scrape::samples(text, "mesh_request_duration_seconds_bucket") {
        if label(&sample, "direction") != "inbound" {
            continue;
        }
        let le = label(&sample, "le");
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        snapshot.buckets.push((bound, sample.value));
    }
    snapshot.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    for sample in scrape::samples(text, "mesh_inbound_tls_requests_total") {
        match label(&sample, "tls").as_str() {
            "mtls" => snapshot.mtls += sample.value,
            "plaintext" => snapshot.plaintext += sample.value,
            _ => {}
        }
    }
    for sample in scrape::samples(text, "mesh_authz_decisions_total") {
        if label(&sample, "decision") != "allow" && label(&sample, "mode") == "enforce" {
            snapshot.denied += sample.value;
        }
    }
    snapshot
}

fn rows(
    (workloads, _): &(Vec<Workload>, Vec<usize>),
    before: &[Snapshot],
    after: &[Snapshot],
    seconds: f64,
) -> Vec<Row> {
    workloads
        .iter()
        .zip(before.iter().zip(after))
        .map(|(workload, (then, now))| {
            let requests = (now.requests - then.requests).max(0.0);
            let failures = (now.failures - then.failures).max(0.0);
            let buckets: Vec<(f64, f64)> = now
                .buckets
                .iter()
                .map(|(bound, count)| {
                    let earlier = then
                        .buckets
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, (count - earlier).max(0.0))
                })
                .collect();
            let ms = |q| quantile(q, &buckets).map(|s| s * 1000.0);
            let mtls = (now.mtls - then.mtls).max(0.0);
            let plaintext = (now.plaintext - then.plaintext).max(0.0);
            Row {
                workload: workload.label.clone(),
                requests_per_second: requests / seconds,
                success_rate: (requests > 0.0).then(|| 1.0 - failures / requests),
                p50_ms: ms(0.5),
                p95_ms: ms(0.95),
                p99_ms: ms(0.99),
                mtls_share: (mtls + plaintext > 0.0).then(|| mtls / (mtls + plaintext)),
                denied_per_second: (now.denied - then.denied).max(0.0) / seconds,
            }
        })
        .collect()
}

fn rule_rows(
    (workloads, _): &(Vec<Workload>, Vec<usize>),
    before: &[Snapshot],
    after: &[Snapshot],
    seconds: f64,
) -> Vec<RuleRow> {
    // Subsets of one caller add up: a caller is its service.
    let mut totals: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
    for (workload, (then, now)) in workloads.iter().zip(before.iter().zip(after)) {
        for ((service, rule), (count, failed)) in &now.outbound {
            let (was, was_failed) = then
                .outbound
                .get(&(service.clone(), rule.clone()))
                .copied()
                .unwrap_or_default();
            let entry = totals
                .entry((workload.service.clone(), service.clone(), rule.clone()))
                .or_default();
            entry.0 += (count - was).max(0.0);
            entry.1 += (failed - was_failed).max(0.0);
        }
    }
    totals
        .into_iter()
        .map(|((caller, service, rule), (requests, failures))| RuleRow {
            caller,
            service,
            rule,
            requests_per_second: requests / seconds,
            success_rate: (requests > 0.0).then(|| 1.0 - failures / requests),
        })
        .collect()
}

/// The `q` quantile of a cumulative histogram (upper bound, count so far), interpolated
/// linearly within its bucket as Prometheus's `histogram_quantile` does; `None` when it
/// counted nothing.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                // Above the highest finite bound: that bound is all that is known.
                return Some(lower.0);
            }
            let within = count - lower.1;
            let share = if within > 0.0 {
                (rank - lower.1) / within
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.2}%", r * 100.0))
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.1}ms"))
}

fn table(rows: &[Row], rules: Option<&[RuleRow]>) -> String {
    let mut out = String::new();
    let width = rows
        .iter()
        .map(|r| r.workload.len())
        .max()
        .unwrap_or(0)
        .max("WORKLOAD".len());
    let _ = writeln!(
        out,
        "{:width$}  {:>9}  {:>8}  {:>9}  {:>9}  {:>9}  {:>8}  {:>8}",
        "WORKLOAD", "RPS", "SUCCESS", "P50", "P95", "P99", "MTLS", "DENIED/S"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:width$}  {:>9.1}  {:>8}  {:>9}  {:>9}  {:>9}  {:>8}  {:>8.1}",
            row.workload,
            row.requests_per_second,
            percent(row.success_rate),
            millis(row.p50_ms),
            millis(row.p95_ms),
            millis(row.p99_ms),
            percent(row.mtls_share),
            row.denied_per_second
        );
    }
    if let Some(rules) = rules {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:24}  {:24}  {:16}  {:>9}  {:>8}",
            "CALLER", "SERVICE", "RULE", "RPS", "SUCCESS"
        );
        for row in rules {
            let _ = writeln!(
                out,
                "{:24}  {:24}  {:16}  {:>9.1}  {:>8}",
                row.caller,
                row.service,
                if row.rule.is_empty() { "-" } else { &row.rule },
                row.requests_per_second,
                percent(row.success_rate)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [
            (0.001, 0.0),
            (0.01, 50.0),
            (0.1, 90.0),
            (f64::INFINITY, 100.0),
        ];
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(quantile(0.5, &buckets), 0.01));
        assert!(close(quantile(0.25, &buckets), 0.001 + 0.009 * 0.5));
        assert!(close(quantile(0.7, &buckets), 0.01 + 0.09 * 0.5));
        // Beyond the last finite bound only that bound is known.
        assert!(close(quantile(0.99, &buckets), 0.1));
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.5, &[]), None);
    }
}
