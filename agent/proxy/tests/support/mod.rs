//! Test harness: real HTTP upstreams on 127.0.0.1, the real `mesh-agent` binary started
//! with config and endpoint files written by the test, and a client that sends requests
//! through the agent's outbound listener. Every process and task stops when its handle
//! drops, so a failing test leaves nothing behind.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What an upstream answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            status: 200,
            delay: Duration::ZERO,
        }
    }
}

type Behaviour = Arc<dyn Fn(&Request<Incoming>) -> Reply + Send + Sync>;

/// A real HTTP server answering `{"name": NAME, "path": ..., "headers": {...}}`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Upstream::with(name, |_| Reply::ok()).await
    }

    pub async fn with(
        name: &str,
        behaviour: impl Fn(&Request<Incoming>) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        Upstream::at(name, "127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    /// An upstream listening on `addr` (another loopback address, a given port).
    pub async fn at(
        name: &str,
        addr: SocketAddr,
        behaviour: impl Fn(&Request<Incoming>) -> Reply + Send + Sync + 'static,
    ) -> Upstream {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let behaviour: Behaviour = Arc::new(behaviour);
        let (task_hits, task_name) = (Arc::clone(&hits), name.to_string());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, name, behaviour) = (
                    Arc::clone(&task_hits),
                    task_name.clone(),
                    Arc::clone(&behaviour),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (hits, name, behaviour) =
                            (Arc::clone(&hits), name.clone(), Arc::clone(&behaviour));
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let reply = behaviour(&request);
                            let headers: BTreeMap<String, String> = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let body = json!({
                                "name": name,
                                "method": request.method().as_str(),
                                "path": request.uri().path(),
                                "headers": headers,
                            });
                            tokio::time::sleep(reply.delay).await;
                            let mut response =
                                Response::new(Full::new(Bytes::from(body.to_string())));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(reply.status).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            name: name.to_string(),
            hits,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A running `mesh-agent` process.
pub struct Agent {
    child: Child,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts the agent on `config` and `endpoints` files in `dir`.
    pub fn start(dir: &Path, app: SocketAddr) -> Agent {
        Agent::start_with(dir, app, &[])
    }

    /// Starts the agent with extra flags (for example `--identity-dir DIR`).
    pub fn start_with(dir: &Path, app: SocketAddr, extra: &[&str]) -> Agent {
        Agent::start_env(dir, app, extra, &[])
    }

    /// Starts the agent with extra flags and environment variables (for example
    /// `KUBECONFIG`).
    pub fn start_env(dir: &Path, app: SocketAddr, extra: &[&str], env: &[(&str, &Path)]) -> Agent {
        Agent::spawn(dir, app, extra, env).0
    }

    /// Starts the agent with extra flags, keeping its standard output: the lines after the
    /// bound-addresses line (the access log) arrive on the receiver.
    pub fn start_logged(
        dir: &Path,
        app: SocketAddr,
        extra: &[&str],
    ) -> (Agent, std::sync::mpsc::Receiver<String>) {
        let (agent, stdout) = Agent::spawn(dir, app, extra, &[]);
        (agent, lines(stdout))
    }

    fn spawn(
        dir: &Path,
        app: SocketAddr,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> (Agent, BufReader<std::process::ChildStdout>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-agent"))
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .args(extra)
            .args(["--config", dir.join("config.json").to_str().unwrap()])
            .args(["--endpoints", dir.join("endpoints.json").to_str().unwrap()])
            .args(["--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0"])
            .args(["--admin", "127.0.0.1:0", "--resync", "1s"])
            .args(["--drain-timeout", "5s"])
            .args(["--app", &app.to_string()])
            .env(
                "RUST_LOG",
                std::env::var("MESH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mesh-agent");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let bound: Value = serde_json::from_str(&line).expect("bound addresses line");
        let addr = |k: &str| bound[k].as_str().unwrap().parse().unwrap();
        let agent = Agent {
            outbound: addr("outbound"),
            inbound: addr("inbound"),
            admin: addr("admin"),
            dir: dir.to_path_buf(),
            child,
        };
        (agent, stdout)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A response as tests see it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `name` of the upstream that answered.
    pub fn name(&self) -> String {
        self.json()["name"].as_str().unwrap_or("").to_string()
    }
}

/// An HTTP client with pooled connections.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

impl Http {
    /// Sends `method path` to `host` through the proxy at `proxy` (origin-form with a
    /// Host header, as an app with a transparent redirect would).
    pub async fn send(
        &self,
        proxy: SocketAddr,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Got {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{proxy}{path}"))
            .header("host", host);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(Bytes::new())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .expect("response within 10s")
            .expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Got {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, proxy: SocketAddr, host: &str, path: &str) -> Got {
        self.send(proxy, "GET", host, path, &[]).await
    }
}

/// A workload config for `ns/client` calling the given outbound services.
pub fn config(outbound: Vec<Value>) -> Value {
    json!({
        "version": 1,
        "mesh": {"name": "test", "trust_domain": "cluster.local"},
        "workload": {
            "service": "ns/client",
            "identity": "spiffe://cluster.local/ns/ns/sa/client",
            "ports": [{"protocol": "http", "number": 8080}]
        },
        "inbound": {"mtls": "permissive", "authz": {"kind": "allow_all"}},
        "outbound": {"egress": "allow", "services": outbound}
    })
}

/// An outbound service `ns/NAME` with subsets `v1`, `v2`, … (label `version`) and rules.
pub fn service(name: &str, subsets: &[&str], rules: Vec<Value>) -> Value {
    json!({
        "service": format!("ns/{name}"),
        "authorities": [name, format!("{name}.ns"), format!("{name}.ns.svc"), format!("{name}.ns.svc.cluster.local")],
        "ports": [{"protocol": "http", "number": 8080}],
        "identity": format!("spiffe://cluster.local/ns/ns/sa/{name}"),
        "labels": {"app": name},
        "subsets": subsets.iter().map(|s| json!({"name": s, "labels": {"version": s}})).collect::<Vec<_>>(),
        "balance": "round_robin",
        "timeout_us": null,
        "retry": null,
        "rules": rules,
    })
}

/// A rule with no condition or `when`, sending to weighted backends of `ns/SERVICE`.
pub fn rule(name: &str, when: Value, service: &str, split: &[(Option<&str>, u32)]) -> Value {
    json!({
        "name": name,
        "when": when,
        "backends": split.iter().map(|(subset, percent)| json!({
            "service": format!("ns/{service}"), "subset": subset, "weight_milli": percent * 1000
        })).collect::<Vec<_>>(),
        "timeout_us": null,
        "retry": null,
        "mirrors": [],
        "fault": null,
        "set_headers": [],
        "remove_headers": [],
        "rewrite_prefix": null,
    })
}

/// A retry profile.
pub fn retry(attempts: u32, per_try_ms: Option<u64>, budget_percent: Option<u32>) -> Value {
    json!({
        "profile": "test",
        "attempts": attempts,
        "per_try_timeout_us": per_try_ms.map(|ms| ms * 1000),
        "on_status": [],
        "on_class": [5],
        "on_reset": true,
        "on_connect_failure": true,
        "on_refused_stream": false,
        "backoff": {"base_us": 1000, "max_us": 5000},
        "budget": budget_percent.map(|p| json!({"ratio_milli": p * 1000, "min_per_second": 0.0})),
    })
}

/// An endpoints document: `(service, version label, address)`.
pub fn endpoints(list: &[(&str, Option<&str>, SocketAddr)]) -> Value {
    json!({"endpoints": list.iter().map(|(service, version, addr)| {
        let mut labels = serde_json::Map::new();
        labels.insert("app".into(), json!(service));
        if let Some(v) = version { labels.insert("version".into(), json!(v)); }
        json!({"service": format!("ns/{service}"), "address": addr.to_string(), "labels": labels})
    }).collect::<Vec<_>>()})
}

/// Writes `value` to `dir/name` atomically (aside, then rename).
pub fn write(dir: &Path, name: &str, value: &Value) {
    let aside = dir.join(format!(".{name}.tmp"));
    std::fs::write(&aside, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    std::fs::rename(&aside, dir.join(name)).unwrap();
}

/// Polls `check` every 20 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A running `mesh-agent --gateway NAME` process.
pub struct GatewayAgent {
    child: Child,
    pub admin: SocketAddr,
    /// The gateway's listeners by config port.
    pub listeners: BTreeMap<u16, SocketAddr>,
    /// The rest of the agent's stdout (after the bound-addresses line), line by line.
    pub stdout: std::sync::mpsc::Receiver<String>,
}

impl Drop for GatewayAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayAgent {
    /// Starts gateway `name` on `config.json` and `endpoints.json` in `dir`, each config
    /// listener port in `ports` on a free loopback port, with `extra` flags.
    pub fn start(dir: &Path, name: &str, ports: &[u16], extra: &[&str]) -> GatewayAgent {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-agent"));
        command
            .args(extra)
            .args(["--gateway", name])
            .args(["--config", dir.join("config.json").to_str().unwrap()])
            .args(["--endpoints", dir.join("endpoints.json").to_str().unwrap()])
            .args(["--admin", "127.0.0.1:0", "--resync", "1s"])
            .args(["--drain-timeout", "5s"]);
        for port in ports {
            command.args(["--gateway-port", &format!("{port}=127.0.0.1:0")]);
        }
        let mut child = command
            .env(
                "RUST_LOG",
                std::env::var("MESH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mesh-agent --gateway");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let bound: Value = serde_json::from_str(&line).expect("bound addresses line");
        let listeners = bound["gateway"]
            .as_object()
            .expect("gateway listeners in the bound line")
            .iter()
            .map(|(port, addr)| {
                (
                    port.parse().unwrap(),
                    addr.as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        GatewayAgent {
            admin: bound["admin"].as_str().unwrap().parse().unwrap(),
            listeners,
            stdout: lines(stdout),
            child,
        }
    }
}

/// Runs `mesh-agent` on `config.json` in `dir` with `extra` flags, expecting it to refuse
/// to start: its exit status and standard error, or `None` if it still runs after 10 s.
pub fn refusal(dir: &Path, extra: &[&str]) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    // Loopback only, should a gateway start after all.
    let loopback: &[&str] = if extra.contains(&"--gateway") {
        &["--gateway-address", "127.0.0.1"]
    } else {
        &[]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-agent"))
        .args(extra)
        .args(loopback)
        .args(["--config", dir.join("config.json").to_str().unwrap()])
        .args(["--endpoints", dir.join("endpoints.json").to_str().unwrap()])
        .args(["--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mesh-agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return Some((status, stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The lines of `stdout`, read by a thread, as they come.
fn lines(stdout: BufReader<std::process::ChildStdout>) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The access-log lines (JSON objects) received within `limit` for which `pick` holds,
/// waiting until `want` of them arrived.
pub fn access_log_lines(
    stdout: &std::sync::mpsc::Receiver<String>,
    want: usize,
    limit: Duration,
    pick: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut found = Vec::new();
    while found.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = stdout.recv_timeout(left) else {
            break;
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("an access-log line is not JSON ({e}): {line}"));
        if pick(&value) {
            found.push(value);
        }
    }
    found
}
