//! The harness of the end-to-end tests: starts `meshc up` (the real binary, which starts
//! real agents and demo apps) on a mesh, waits for its `--state` file, sends requests
//! through workloads' outbound addresses, and stops everything it started when dropped —
//! also when a test fails.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a panic is a failure report"
)]

pub mod netns;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long a mesh may take to come up (debug builds, a busy 2-core machine).
const UP_LIMIT: Duration = Duration::from_secs(120);

pub use mesh_test_support::workspace_root as root;

/// The `meshc` binary under test, built beside this test with the `mesh-agent` and
/// `mesh-demo` binaries `meshc up` starts (each checked to be there).
pub fn meshc() -> PathBuf {
    for bin in ["mesh-agent", "mesh-demo"] {
        mesh_test_support::binary(bin);
    }
    mesh_test_support::binary("meshc")
}

/// A running `meshc up`.
pub struct Mesh {
    child: Child,
    /// Its stderr, captured to a file.
    log: PathBuf,
    /// The parsed `--state` document.
    pub state: Value,
    /// Where the `--state` document is.
    pub state_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mesh {
    /// `meshc up PATH --base-port 0 --state FILE EXTRA...`, run in the workspace root,
    /// waited for until the state file appears.
    pub fn up(path: &Path, extra: &[&str]) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let state_path = dir.path().join("state.json");
        let log = dir.path().join("meshc.log");
        let child = Command::new(meshc())
            .arg("up")
            .arg(path)
            .args(["--base-port", "0", "--state"])
            .arg(&state_path)
            .args(extra)
            .current_dir(root())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut mesh = Mesh {
            child,
            log,
            state: Value::Null,
            state_path: state_path.clone(),
            _dir: dir,
        };
        let deadline = Instant::now() + UP_LIMIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&state_path)
                && let Ok(state) = serde_json::from_str(&text)
            {
                mesh.state = state;
                return mesh;
            }
            if let Some(status) = mesh.child.try_wait().unwrap() {
                panic!(
                    "meshc up exited ({status}) before the mesh was up:\n{}",
                    mesh.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the mesh did not come up within {UP_LIMIT:?}:\n{}",
                mesh.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What `meshc up` has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until stderr contains `text` `times` times; false after `limit`.
    pub fn wait_stderr(&self, text: &str, times: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stderr().matches(text).count() >= times {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The workload of `service` (`ns/name`) and `subset`.
    pub fn workload(&self, service: &str, subset: Option<&str>) -> &Value {
        self.state["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["service"] == service && w["subset"].as_str() == subset)
            .unwrap_or_else(|| panic!("no workload {service} {subset:?} in {}", self.state))
    }

    /// An address of a workload: `outbound`, `inbound`, `admin` or `app`.
    pub fn addr(&self, service: &str, subset: Option<&str>, which: &str) -> String {
        self.workload(service, subset)[which]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Stops `meshc up` as a user would (SIGTERM) and waits for it; returns its stderr.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.stderr()
    }

    fn terminate(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            self.kill_leftovers();
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.kill_leftovers();
    }

    /// Kills `meshc up` alone with SIGKILL (no chance to stop its children) and reaps it.
    pub fn kill_meshc(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The pids of every agent and app `meshc up` recorded.
    pub fn child_pids(&self) -> Vec<u64> {
        let Some(workloads) = self.state["workloads"].as_array() else {
            return Vec::new();
        };
        workloads
            .iter()
            .flat_map(|w| ["agent_pid", "app_pid"].map(|key| w[key].as_u64()))
            .flatten()
            .collect()
    }

    /// `meshc up` did not stop its children itself: kill them by the pids it recorded.
    fn kill_leftovers(&self) {
        let Some(workloads) = self.state["workloads"].as_array() else {
            return;
        };
        for w in workloads {
            for key in ["agent_pid", "app_pid"] {
                if let Some(pid) = w[key].as_u64() {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Whether process `pid` exists.
pub fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether process `pid` exists and has not exited (a zombie — dead, not yet reaped by
/// whoever adopted it — is not running).
pub fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) STATE ...`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Got {
    /// The status code.
    pub status: u16,
    /// The `mesh-error` header, if any.
    pub mesh_error: Option<String>,
    /// The body as text.
    pub body: String,
    /// How long it took.
    pub elapsed: Duration,
}

impl Got {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The `subset` the demo app that answered names.
    pub fn subset(&self) -> Option<String> {
        self.json()["subset"].as_str().map(str::to_string)
    }
}

/// A pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Http {
    /// `method path` sent to `addr` with `Host: host` and `headers`; panics when no
    /// answer comes (within 20s).
    pub async fn send(
        &self,
        addr: &str,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Got {
        self.try_send(addr, method, host, path, headers)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Http::send`], with the failure to get an answer as an error.
    pub async fn try_send(
        &self,
        addr: &str,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Got, String> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", host);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = builder.body(Full::new(Bytes::new())).unwrap();
        let started = Instant::now();
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .map_err(|_| format!("no answer from {addr}{path} within 20s"))?
            .map_err(|e| format!("request to {addr}{path} failed: {e}"))?;
        let status = response.status().as_u16();
        let mesh_error = response
            .headers()
            .get("mesh-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer from {addr}{path}: {e}"))?
            .to_bytes();
        Ok(Got {
            status,
            mesh_error,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        })
    }

    /// `GET path` to `host` through the outbound address `outbound`: a call made as the
    /// workload owning it.
    pub async fn get(
        &self,
        outbound: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Got {
        self.send(outbound, "GET", host, path, headers).await
    }
}

/// `GET path` over TLS to `addr`, sending SNI and `Host` `host` and trusting only the
/// certificates in the PEM file `trust` (a gateway's own certificate, self-signed in the
/// examples), over HTTP/1.1; panics when no answer comes within 20 s.
pub async fn https_get(addr: &str, host: &str, path: &str, trust: &Path) -> Got {
    use mesh_identity::rustls::pki_types::pem::PemObject;
    use mesh_identity::rustls::pki_types::{CertificateDer, ServerName};
    use mesh_identity::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(trust).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(mesh_identity::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from(host.to_string()).unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let started = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let mesh_error = response
            .headers()
            .get("mesh-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Got {
            status,
            mesh_error,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        }
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from https://{addr}{path} within 20s"))
}

/// The sum of every series of metric `name` (e.g. `mesh_retries_total`) whose labels
/// contain `labels` (e.g. `service="shop/checkout"`), from the agent admin at `admin`.
pub async fn metric(http: &Http, admin: &str, name: &str, labels: &str) -> f64 {
    let got = http.get(admin, "admin", "/metrics", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    got.body
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An OTLP/HTTP collector for the tests: accepts `POST /v1/traces` on loopback, answers
/// 200, and keeps each request's (protobuf) body.
pub struct OtlpSink {
    /// Its base URL, for `--otlp-endpoint`.
    pub url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Bytes>>>,
}

impl OtlpSink {
    /// Starts a collector on a free loopback port (serving until the test's runtime ends).
    pub async fn start() -> OtlpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let body = request.into_body().collect().await?.to_bytes();
                            kept.lock().unwrap().push(body);
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        OtlpSink { url, bodies }
    }

    /// How many export requests so far carried `bytes` (e.g. a trace id, as the 16 raw
    /// bytes protobuf encodes it).
    pub fn exports_containing(&self, bytes: &[u8]) -> usize {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|body| body.windows(bytes.len()).any(|w| w == bytes))
            .count()
    }
}
