//! `meshc tap WORKLOAD --state FILE [--to SVC] [--path P] [--method M] [--direction D]
//! [--max N] [--format json]`: the requests passing a workload's agents as they happen,
//! as `linkerd viz tap` shows them. Every agent of the workload (each subset's, or the
//! gateway's) in the `meshc up` state file is asked for its admin `/tap` stream with the
//! filters; their lines are merged as they arrive and printed, one per finished request
//! or opaque TCP connection, until `--max` lines, Ctrl-C, or the agents end the streams.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::Exit;
use super::mesh_input;
use super::scrape::{self, Admin, Agent, agents, gateways};

/// What `meshc tap` was asked for.
pub struct Request {
    pub workload: String,
    pub state: PathBuf,
    pub to: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
    pub direction: Option<String>,
    pub max: Option<u64>,
    pub json: bool,
}

/// How long an agent may take to answer the tap request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest line read from a tap stream.
const MAX_LINE: usize = 1 << 20;

pub fn run(request: &Request) -> Exit {
    let agents = match tapped(request) {
        Ok(agents) => agents,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Trouble;
        }
    };
    let runtime = match mesh_input::runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let query = query(request);
    runtime.block_on(async {
        let (lines, mut received) = mpsc::channel::<Result<(String, String), String>>(64);
        for agent in agents {
            let (lines, query) = (lines.clone(), query.clone());
            tokio::spawn(async move {
                if let Err(e) = stream(&agent, &query, &lines).await {
                    let _ = lines.send(Err(e)).await;
                }
            });
        }
        drop(lines);
        let mut printed = 0_u64;
        loop {
            let next = tokio::select! {
                next = received.recv() => next,
                _ = tokio::signal::ctrl_c() => return Exit::Ok,
            };
            match next {
                None => return Exit::Ok,
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return Exit::Trouble;
                }
                Some(Ok((workload, line))) => {
                    let Some(text) = render(&workload, &line, request.json) else {
                        continue;
                    };
                    print!("{text}");
                    if !line.starts_with("{\"dropped\"") {
                        printed += 1;
                    }
                    if request.max.is_some_and(|max| printed >= max) {
                        return Exit::Ok;
                    }
                }
            }
        }
    })
}

/// The agents of the workload named `request.workload`: `name`, `namespace/name`, either
/// with `.subset` for one subset's agent, or `gateway/NAME` for a gateway.
fn tapped(request: &Request) -> Result<Vec<Agent>, String> {
    let wanted = request.workload.as_str();
    let all = match wanted.strip_prefix("gateway/") {
        Some(_) => gateways(&request.state)?,
        None => agents(&request.state)?,
    };
    let name = wanted.strip_prefix("gateway/").unwrap_or(wanted);
    let found: Vec<Agent> = all.into_iter().filter(|agent| names(agent, name)).collect();
    if found.is_empty() {
        let known = agents(&request.state)?
            .into_iter()
            .map(|a| a.label.replace(' ', "."))
            .chain(
                gateways(&request.state)?
                    .into_iter()
                    .map(|g| format!("gateway/{}", g.label)),
            )
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "no workload {wanted:?} in {}; its workloads: {known}",
            request.state.display()
        ));
    }
    Ok(found)
}

/// Whether `name` (`svc`, `ns/svc`, `svc.subset`, `ns/svc.subset`) names `agent`.
fn names(agent: &Agent, name: &str) -> bool {
    let (service, subset) = match agent.label.split_once(' ') {
        Some((service, subset)) => (service, Some(subset)),
        None => (agent.label.as_str(), None),
    };
    let (wanted, wanted_subset) = match name.split_once('.') {
        Some((service, subset)) => (service, Some(subset)),
        None => (name, None),
    };
    let service_matches =
        service == wanted || service.rsplit_once('/').is_some_and(|(_, n)| n == wanted);
    service_matches && (wanted_subset.is_none() || wanted_subset == subset)
}

/// The `/tap` query for `request`'s filters (the agent applies them; `max` is counted
/// here too, across agents).
fn query(request: &Request) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let pairs = [
        ("to", request.to.as_deref()),
        ("path", request.path.as_deref()),
        ("method", request.method.as_deref()),
        ("direction", request.direction.as_deref()),
    ];
    for (key, value) in pairs {
        if let Some(value) = value {
            query.append_pair(key, value);
        }
    }
    if let Some(max) = request.max {
        query.append_pair("max", &max.to_string());
    }
    query.finish()
}

/// Streams `agent`'s tap lines into `lines` until the agent ends the stream.
async fn stream(
    agent: &Agent,
    query: &str,
    lines: &mpsc::Sender<Result<(String, String), String>>,
) -> Result<(), String> {
    let Admin::Local(addr) = agent.admin else {
        return Err(format!("{}: only local agents can be tapped", agent.label));
    };
    let path = if query.is_empty() {
        "/tap".to_string()
    } else {
        format!("/tap?{query}")
    };
    let response = tokio::time::timeout(ANSWER_TIMEOUT, scrape::get(addr, &path))
        .await
        .map_err(|_| format!("{}: the agent at {addr} did not answer", agent.label))?
        .map_err(|e| format!("{}: {e}", agent.label))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        return Err(format!(
            "{} refused the tap ({status}): {text}",
            agent.label
        ));
    }
    let workload = agent.label.replace(' ', ".");
    let mut pending = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("{}: the tap stream broke: {e}", agent.label))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if lines.send(Ok((workload.clone(), line))).await.is_err() {
                return Ok(());
            }
        }
        if pending.len() > MAX_LINE {
            return Err(format!(
                "{}: a tap line longer than {MAX_LINE} bytes",
                agent.label
            ));
        }
    }
    Ok(())
}

/// One tap line of `workload` for people (or as JSON with the workload added); `None`
/// for a line that is not an entry.
fn render(workload: &str, line: &str, json: bool) -> Option<String> {
    let mut entry: serde_json::Value = serde_json::from_str(line).ok()?;
    if let Some(dropped) = entry.get("dropped").and_then(serde_json::Value::as_u64) {
        return Some(if json {
            format!("{{\"workload\":{workload:?},\"dropped\":{dropped}}}\n")
        } else {
            format!("{workload}  … {dropped} requests not shown (the tap fell behind)\n")
        });
    }
    if json {
        entry["workload"] = workload.into();
        return Some(entry.to_string() + "\n");
    }
    let text = |key: &str| entry.get(key).and_then(serde_json::Value::as_str);
    let number = |key: &str| entry.get(key).and_then(serde_json::Value::as_u64);
    let arrow = match text("direction") {
        Some("inbound") => "<-",
        Some("gateway") => "=>",
        _ => "->",
    };
    let mut out = format!("{workload} {arrow} ");
    match text("method") {
        Some(method) => {
            let _ = write!(
                out,
                "{method} {} {} {}ms",
                text("path").unwrap_or(""),
                number("response_code").unwrap_or(0),
                number("duration").unwrap_or(0),
            );
        }
        None => {
            let _ = write!(
                out,
                "TCP {} sent={}B received={}B {}ms",
                text("backend").unwrap_or("passthrough"),
                number("bytes_received").unwrap_or(0),
                number("bytes_sent").unwrap_or(0),
                number("duration").unwrap_or(0),
            );
        }
    }
    for (label, key) in [
        ("host", "authority"),
        ("rule", "rule"),
        ("backend", "backend"),
        ("upstream", "upstream_host"),
        ("flags", "response_flags"),
        ("from", "peer"),
    ] {
        if text("method").is_none() && matches!(key, "backend" | "authority") {
            continue;
        }
        if let Some(value) = text(key) {
            let _ = write!(out, " {label}={value}");
        }
    }
    if let Some(decision) = text("decision") {
        let _ = write!(out, " [{decision}]");
    }
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(label: &str) -> Agent {
        Agent {
            label: label.into(),
            service: label.split(' ').next().unwrap_or(label).into(),
            admin: Admin::Local("127.0.0.1:1".parse().expect("address")),
        }
    }

    #[test]
    fn workloads_are_named_with_or_without_namespace_and_subset() {
        let v2 = agent("bookinfo/reviews v2");
        assert!(names(&v2, "reviews"));
        assert!(names(&v2, "bookinfo/reviews"));
        assert!(names(&v2, "reviews.v2"));
        assert!(names(&v2, "bookinfo/reviews.v2"));
        assert!(!names(&v2, "reviews.v1"));
        assert!(!names(&v2, "other/reviews"));
        assert!(!names(&v2, "ratings"));
        let details = agent("bookinfo/details");
        assert!(names(&details, "details"));
        assert!(!names(&details, "details.v1"));
    }

    #[test]
    fn lines_render_for_people() {
        let http = r#"{"direction":"inbound","method":"GET","authority":"reviews:9080","path":"/reviews/1","response_code":200,"duration":3,"rule":"jason","backend":"bookinfo/reviews.v2","peer":"spiffe://mesh.local/ns/bookinfo/sa/productpage","decision":"allow: p1"}"#;
        assert_eq!(
            render("bookinfo/reviews.v2", http, false).as_deref(),
            Some(
                "bookinfo/reviews.v2 <- GET /reviews/1 200 3ms host=reviews:9080 rule=jason \
                 backend=bookinfo/reviews.v2 from=spiffe://mesh.local/ns/bookinfo/sa/productpage \
                 [allow: p1]\n"
            )
        );
        let tcp = r#"{"direction":"outbound","protocol":"TCP","backend":"db/postgres","bytes_received":10,"bytes_sent":20,"duration":7}"#;
        assert_eq!(
            render("app", tcp, false).as_deref(),
            Some("app -> TCP db/postgres sent=10B received=20B 7ms\n")
        );
        let json = render("app", tcp, true).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid");
        assert_eq!(value["workload"], "app");
        assert_eq!(value["bytes_sent"], 20);
        assert!(
            render("app", r#"{"dropped":7}"#, false)
                .is_some_and(|l| l.contains("7 requests not shown"))
        );
        assert_eq!(render("app", "not json", false), None);
    }

    #[test]
    fn filters_become_the_query() {
        let request = Request {
            workload: "reviews".into(),
            state: PathBuf::new(),
            to: Some("bookinfo/ratings".into()),
            path: Some("/ratings".into()),
            method: None,
            direction: Some("outbound".into()),
            max: Some(5),
            json: false,
        };
        assert_eq!(
            query(&request),
            "to=bookinfo%2Fratings&path=%2Fratings&direction=outbound&max=5"
        );
    }
}
