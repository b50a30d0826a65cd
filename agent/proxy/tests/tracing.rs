//! Distributed tracing end to end: two sidecars (the caller's and the callee's, mTLS
//! between them) in front of a real app, each exporting spans with OTLP/HTTP to a real
//! receiver started here (a hyper server decoding the protobuf bodies with the
//! `opentelemetry-proto` types). A request is one trace across both agents, the callee's
//! server span the child of the caller's client span and the app's parent; incoming
//! context is kept (its sampled flag decides), a malformed `traceparent` replaced, B3
//! headers passed untouched; a collector that is down or slow costs requests nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_identity::{Ca, SpiffeId};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::{Value, json};
use support::*;

const CLIENT: &str = "spiffe://cluster.local/ns/ns/sa/client";
const REVIEWS: &str = "spiffe://cluster.local/ns/ns/sa/reviews";
const DAY: Duration = Duration::from_secs(24 * 3600);

const POLICIES: &str = r#"@id("reviews.mesh:3 allow from client")
permit (principal == Mesh::Service::"ns/client", action, resource == Mesh::Service::"ns/reviews")
when { context.path like "/allowed/*" };
"#;

/// A span as the receiver got it, with its resource's `service.name`.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    instance: String,
    span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Exported {
    fn trace(&self) -> String {
        hex(&self.span.trace_id)
    }

    fn id(&self) -> String {
        hex(&self.span.span_id)
    }

    fn parent(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    fn attr(&self, key: &str) -> Value {
        attribute(&self.span.attributes, key)
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Value {
    match attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
    {
        Some(any_value::Value::StringValue(v)) => json!(v),
        Some(any_value::Value::IntValue(v)) => json!(v),
        Some(other) => json!(format!("{other:?}")),
        None => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real OTLP/HTTP receiver: decodes `POST /v1/traces` bodies and keeps their spans.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Exported>>>,
    posts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver answering each export after `delay`.
    async fn start(delay: Duration) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let (task_spans, task_posts) = (Arc::clone(&spans), Arc::clone(&posts));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (spans, posts) = (Arc::clone(&task_spans), Arc::clone(&task_posts));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (spans, posts) = (Arc::clone(&spans), Arc::clone(&posts));
                        async move {
                            posts.fetch_add(1, Ordering::SeqCst);
                            let good = request.method() == "POST"
                                && request.uri().path() == "/v1/traces"
                                && request.headers()["content-type"] == "application/x-protobuf";
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            tokio::time::sleep(delay).await;
                            let decoded = ExportTraceServiceRequest::decode(body);
                            let status = match (good, decoded) {
                                (true, Ok(export)) => {
                                    let mut spans = spans.lock().unwrap();
                                    for rs in export.resource_spans {
                                        let attrs =
                                            rs.resource.map(|r| r.attributes).unwrap_or_default();
                                        let name = |k: &str| {
                                            attribute(&attrs, k).as_str().unwrap_or("").to_string()
                                        };
                                        for ss in rs.scope_spans {
                                            for span in ss.spans {
                                                spans.push(Exported {
                                                    service: name("service.name"),
                                                    instance: name("service.instance.id"),
                                                    span,
                                                });
                                            }
                                        }
                                    }
                                    200
                                }
                                _ => 400,
                            };
                            let mut response = Response::new(Full::new(Bytes::from(
                                ExportTraceServiceResponse::default().encode_to_vec(),
                            )));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            spans,
            posts,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of trace `trace`, once there are `count` (within 10 s).
    async fn trace(&self, trace: &str, count: usize) -> Vec<Exported> {
        let spans = || -> Vec<Exported> {
            self.spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace() == trace)
                .cloned()
                .collect()
        };
        eventually(Duration::from_secs(10), async || spans().len() >= count).await;
        spans()
    }

    fn all(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }
}

fn telemetry(mut config: Value, tracing_milli: u32) -> Value {
    config["mesh"]["telemetry"] = json!({"tracing_milli": tracing_milli, "access_log": "off"});
    config
}

fn reviews_config(tracing_milli: u32) -> Value {
    telemetry(
        json!({
            "version": 1,
            "mesh": {"name": "test", "trust_domain": "cluster.local"},
            "workload": {
                "service": "ns/reviews",
                "identity": REVIEWS,
                "ports": [{"protocol": "http", "number": 9080}]
            },
            "inbound": {"mtls": "strict", "authz": {
                "kind": "cedar", "mode": "enforce", "policies": POLICIES,
                "headers": [], "query": [], "patterns": []
            }},
            "outbound": {"egress": "allow", "services": []}
        }),
        tracing_milli,
    )
}

fn client_config(tracing_milli: u32) -> Value {
    let mut all = rule("all", Value::Null, "reviews", &[(None, 100)]);
    all["retry"] = retry(3, None, None);
    let mut config = config(vec![service("reviews", &[], vec![all])]);
    config["outbound"]["services"][0]["identity"] = json!(REVIEWS);
    telemetry(config, tracing_milli)
}

/// Caller's sidecar → callee's sidecar → app, exporting to `client_otlp` and
/// `reviews_otlp` (`None`: no exporter).
struct Pair {
    client: Agent,
    reviews: Agent,
    _app: Upstream,
    _dirs: [tempfile::TempDir; 2],
}

impl Pair {
    async fn start(
        tracing_milli: u32,
        client_otlp: Option<&str>,
        reviews_otlp: Option<&str>,
        extra: &[&str],
    ) -> Pair {
        let ca = Ca::generate("test mesh CA").unwrap();
        // `/allowed/flaky` fails its first try (503), then answers.
        let flaky = Arc::new(AtomicUsize::new(0));
        let app = Upstream::with("reviews-app", move |request| {
            let mut reply = Reply::ok();
            if request.uri().path() == "/allowed/flaky" && flaky.fetch_add(1, Ordering::SeqCst) == 0
            {
                reply.status = 503;
            }
            reply
        })
        .await;
        let issue = |dir: &std::path::Path, id: &str| {
            let path = dir.join("identity");
            ca.issue(&SpiffeId::parse(id).unwrap(), DAY)
                .unwrap()
                .write(&path)
                .unwrap();
            path.to_str().unwrap().to_string()
        };
        let flags = |id: &str, otlp: Option<&str>| {
            let mut flags = vec!["--identity-dir".to_string(), id.to_string()];
            if let Some(url) = otlp {
                flags.extend(["--otlp-endpoint".to_string(), url.to_string()]);
            }
            flags.extend(extra.iter().map(|s| s.to_string()));
            flags
        };
        let reviews_dir = tempfile::tempdir().unwrap();
        let id = issue(reviews_dir.path(), REVIEWS);
        write(
            reviews_dir.path(),
            "config.json",
            &reviews_config(tracing_milli),
        );
        write(reviews_dir.path(), "endpoints.json", &endpoints(&[]));
        let reviews_flags = flags(&id, reviews_otlp);
        let reviews_flags: Vec<&str> = reviews_flags.iter().map(String::as_str).collect();
        let reviews = Agent::start_with(reviews_dir.path(), app.addr, &reviews_flags);
        let client_dir = tempfile::tempdir().unwrap();
        let id = issue(client_dir.path(), CLIENT);
        write(
            client_dir.path(),
            "config.json",
            &client_config(tracing_milli),
        );
        write(
            client_dir.path(),
            "endpoints.json",
            &endpoints(&[("reviews", None, reviews.inbound)]),
        );
        let client_flags = flags(&id, client_otlp);
        let client_flags: Vec<&str> = client_flags.iter().map(String::as_str).collect();
        let client = Agent::start_with(
            client_dir.path(),
            "127.0.0.1:9".parse().unwrap(),
            &client_flags,
        );
        let http = Http::default();
        for agent in [&client, &reviews] {
            let ready = eventually(Duration::from_secs(10), async || {
                http.get(agent.admin, "admin", "/ready").await.status == 200
            })
            .await;
            assert!(ready, "agent at {} never became ready", agent.admin);
        }
        Pair {
            client,
            reviews,
            _app: app,
            _dirs: [client_dir, reviews_dir],
        }
    }

    async fn call(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        Http::default()
            .send(self.client.outbound, "GET", "reviews", path, headers)
            .await
    }
}

/// The `traceparent` the app got: (trace id, parent id, flags).
fn app_traceparent(got: &Got) -> (String, String, String) {
    let value = got.json()["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("the app got no traceparent: {}", got.body))
        .to_string();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert_eq!(
        (parts[1].len(), parts[2].len(), parts[3].len()),
        (32, 16, 2),
        "{value}"
    );
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_through_two_agents_is_one_trace() {
    let receiver = Receiver::start(Duration::ZERO).await;
    let url = receiver.url();
    let pair = Pair::start(100_000, Some(&url), Some(&url), &[]).await;
    let b3 = [
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    let got = pair.call("/allowed/1?x=y", &b3).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, app_parent, flags) = app_traceparent(&got);
    assert_eq!(flags, "01", "a new trace at 100% is sampled");
    for (name, value) in b3 {
        assert_eq!(
            got.json()["headers"][name],
            value,
            "B3 header {name} passes unchanged"
        );
    }

    let spans = receiver.trace(&trace, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = spans
        .iter()
        .find(|s| s.service == "ns/client")
        .expect("the caller's span");
    let server = spans
        .iter()
        .find(|s| s.service == "ns/reviews")
        .expect("the callee's span");
    assert_eq!(client.span.kind, SpanKind::Client as i32);
    assert_eq!(server.span.kind, SpanKind::Server as i32);
    assert!(
        client.span.parent_span_id.is_empty(),
        "the trace starts at the caller's agent"
    );
    assert_eq!(
        server.parent(),
        client.id(),
        "the callee's span is the caller's child"
    );
    assert_eq!(
        app_parent,
        server.id(),
        "the app's parent is the callee agent's span"
    );
    assert_ne!(client.instance, server.instance);
    assert!(!client.instance.is_empty());
    for span in [client, server] {
        assert_eq!(span.attr("http.request.method"), "GET");
        assert_eq!(span.attr("url.path"), "/allowed/1", "no query");
        assert_eq!(span.attr("http.response.status_code"), 200);
        assert_eq!(span.attr("mesh.error"), Value::Null);
        assert!(span.span.start_time_unix_nano > 0);
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    }
    assert!(client.span.start_time_unix_nano <= server.span.start_time_unix_nano);
    assert_eq!(client.attr("mesh.rule"), "all");
    assert_eq!(client.attr("mesh.backend"), "ns/reviews");
    assert_eq!(client.attr("mesh.retry.attempts"), 1);
    assert_eq!(server.attr("mesh.peer.identity"), CLIENT);
    assert_eq!(
        client.attr("mesh.peer.identity"),
        REVIEWS,
        "the callee's required id"
    );
    let decision = server.attr("mesh.authz.decision");
    assert!(
        decision
            .as_str()
            .is_some_and(|d| d.starts_with("allow") && d.contains("reviews.mesh:3")),
        "{decision}"
    );

    // A retried request: one client span counting both tries, a server span per try.
    let got = pair.call("/allowed/flaky", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, _, _) = app_traceparent(&got);
    let spans = receiver.trace(&trace, 3).await;
    let client = spans
        .iter()
        .find(|s| s.service == "ns/client")
        .expect("the caller's span");
    assert_eq!(client.attr("mesh.retry.attempts"), 2, "{spans:#?}");
    let servers: Vec<_> = spans.iter().filter(|s| s.service == "ns/reviews").collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    assert!(servers.iter().all(|s| s.parent() == client.id()));
    let mut statuses: Vec<_> = servers
        .iter()
        .map(|s| s.attr("http.response.status_code"))
        .collect();
    statuses.sort_by_key(|s| s.as_i64());
    assert_eq!(statuses, [json!(200), json!(503)]);

    // A denied request: the callee's span names the decision and the mesh error.
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let got = pair.call("/secret", &[("traceparent", traceparent)]).await;
    assert_eq!(got.status, 403, "{}", got.body);
    let spans = receiver.trace("0af7651916cd43dd8448eb211c80319c", 2).await;
    let server = spans
        .iter()
        .find(|s| s.service == "ns/reviews")
        .expect("the callee's span");
    assert_eq!(server.attr("mesh.error"), "denied");
    assert_eq!(server.attr("http.response.status_code"), 403);
    assert_eq!(
        server.attr("mesh.authz.decision"),
        "deny: no policy allows this request"
    );
    let client = spans
        .iter()
        .find(|s| s.service == "ns/client")
        .expect("the caller's span");
    assert_eq!(
        client.parent(),
        "b7ad6b7169203331",
        "the incoming parent is kept"
    );

    // A malformed traceparent is replaced by a new trace (its tracestate dropped).
    let bad = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1";
    let got = pair
        .call(
            "/allowed/2",
            &[("traceparent", bad), ("tracestate", "vendor=1")],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, _, flags) = app_traceparent(&got);
    assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(flags, "01");
    assert_eq!(got.json()["headers"]["tracestate"], Value::Null);
    let spans = receiver.trace(&trace, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = spans
        .iter()
        .find(|s| s.service == "ns/client")
        .expect("the caller's span");
    assert!(client.span.parent_span_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_context_decides_at_zero_percent() {
    let receiver = Receiver::start(Duration::ZERO).await;
    let url = receiver.url();
    let pair = Pair::start(0, Some(&url), Some(&url), &[]).await;

    // Sampled upstream of the mesh: kept, with its tracestate, and exported.
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let got = pair
        .call(
            "/allowed/1",
            &[("traceparent", sampled), ("tracestate", "vendor=1")],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, _, flags) = app_traceparent(&got);
    assert_eq!(
        (trace.as_str(), flags.as_str()),
        ("4bf92f3577b34da6a3ce929d0e0e4736", "01")
    );
    assert_eq!(got.json()["headers"]["tracestate"], "vendor=1");
    let spans = receiver.trace(&trace, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = spans
        .iter()
        .find(|s| s.service == "ns/client")
        .expect("the caller's span");
    assert_eq!(client.parent(), "00f067aa0ba902b7");

    // Not sampled upstream, and no context at all: propagated, never exported.
    let unsampled = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let got = pair.call("/allowed/2", &[("traceparent", unsampled)]).await;
    let (trace, parent, flags) = app_traceparent(&got);
    assert_eq!(
        (trace.as_str(), flags.as_str()),
        ("5bf92f3577b34da6a3ce929d0e0e4736", "00")
    );
    assert_ne!(parent, "00f067aa0ba902b7", "each hop has its own span id");
    let got = pair.call("/allowed/3", &[]).await;
    let (fresh, _, flags) = app_traceparent(&got);
    assert_eq!(flags, "00", "at 0% a new trace is not sampled");
    // Past the exporters' flush interval, the first trace's spans only.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let traces: Vec<String> = receiver.all().iter().map(Exported::trace).collect();
    assert!(
        traces
            .iter()
            .all(|t| t == "4bf92f3577b34da6a3ce929d0e0e4736")
            && traces.len() == 2,
        "{traces:?} (fresh: {fresh})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_or_slow_collector_does_not_slow_requests() {
    // The caller's collector is down (nothing listens); the callee's answers after 30 s
    // (past the export timeout) and the callee's queue holds 4 spans.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let slow = Receiver::start(Duration::from_secs(30)).await;
    let url = slow.url();
    let pair = Pair::start(100_000, Some(&down), Some(&url), &["--otlp-queue", "4"]).await;
    let started = Instant::now();
    let mut sent = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(3) && sent < 1000 {
        let one = Instant::now();
        let got = pair.call("/allowed/1", &[]).await;
        assert_eq!(got.status, 200, "{}", got.body);
        slowest = slowest.max(one.elapsed());
        sent += 1;
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a request took {slowest:?}"
    );
    assert!(sent > 10, "only {sent} requests in 3 s");
    let http = Http::default();
    let dropped = eventually(Duration::from_secs(10), async || {
        let text = http.get(pair.reviews.admin, "admin", "/metrics").await.body;
        metric(&text, "mesh_trace_spans_dropped_total") > 0
    })
    .await;
    assert!(dropped, "the callee's full queue never dropped a span");
    assert!(
        slow.posts.load(Ordering::SeqCst) >= 1,
        "the slow collector got an export"
    );
    let failed = eventually(Duration::from_secs(10), async || {
        let text = http.get(pair.client.admin, "admin", "/metrics").await.body;
        metric(&text, "mesh_trace_exports_failed_total") > 0
    })
    .await;
    assert!(
        failed,
        "exports to a collector that is down count as failed"
    );
}

/// A stopping agent sends the spans it holds before it exits: the batch that would have
/// waited a second for more goes at once (SIGTERM right after the request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_sent_before_the_agent_exits() {
    let receiver = Receiver::start(Duration::ZERO).await;
    let url = receiver.url();
    let mut pair = Pair::start(100_000, Some(&url), None, &[]).await;
    let got = pair.call("/allowed/1", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, _, _) = app_traceparent(&got);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pair.client.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exited = tokio::task::block_in_place(|| pair.client.wait_exit(Duration::from_secs(10)));
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
    let spans: Vec<Exported> = receiver
        .all()
        .into_iter()
        .filter(|s| s.trace() == trace)
        .collect();
    assert_eq!(
        spans.len(),
        1,
        "the caller's span was sent before it exited"
    );
    assert_eq!(spans[0].service, "ns/client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_context_still_propagates() {
    let pair = Pair::start(100_000, None, None, &[]).await;
    let got = pair.call("/allowed/1", &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (_, _, flags) = app_traceparent(&got);
    assert_eq!(flags, "01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_span_is_the_parent_of_the_callee_s() {
    const INGRESS: &str = "spiffe://cluster.local/ns/ns/sa/ingress";
    let receiver = Receiver::start(Duration::ZERO).await;
    let url = receiver.url();
    let ca = Ca::generate("test mesh CA").unwrap();
    let app = Upstream::start("reviews-app").await;
    let issue = |dir: &std::path::Path, id: &str| {
        let path = dir.join("identity");
        ca.issue(&SpiffeId::parse(id).unwrap(), DAY)
            .unwrap()
            .write(&path)
            .unwrap();
        path.to_str().unwrap().to_string()
    };
    let reviews_dir = tempfile::tempdir().unwrap();
    let id = issue(reviews_dir.path(), REVIEWS);
    let mut config = reviews_config(100_000);
    config["inbound"]["authz"] = json!({"kind": "allow_all"});
    write(reviews_dir.path(), "config.json", &config);
    write(reviews_dir.path(), "endpoints.json", &endpoints(&[]));
    let reviews = Agent::start_with(
        reviews_dir.path(),
        app.addr,
        &["--identity-dir", &id, "--otlp-endpoint", &url],
    );

    let gateway_dir = tempfile::tempdir().unwrap();
    let id = issue(gateway_dir.path(), INGRESS);
    let mut reviews_service = service("reviews", &[], vec![]);
    reviews_service["identity"] = json!(REVIEWS);
    let config = telemetry(
        json!({
            "version": 1,
            "mesh": {"name": "test", "trust_domain": "cluster.local"},
            "workload": {"service": "ns/ingress", "identity": INGRESS, "ports": []},
            "inbound": {"mtls": "strict", "authz": {"kind": "deny_all"}},
            "outbound": {"egress": "deny", "services": [reviews_service]},
            "gateway": {
                "name": "public",
                "listeners": [{"port": 8080, "tls": null}],
                "hosts": [{"host": "shop.example.com", "rules": [
                    rule("all", Value::Null, "reviews", &[(None, 100)])
                ]}]
            }
        }),
        100_000,
    );
    write(gateway_dir.path(), "config.json", &config);
    write(
        gateway_dir.path(),
        "endpoints.json",
        &endpoints(&[("reviews", None, reviews.inbound)]),
    );
    let gateway = GatewayAgent::start(
        gateway_dir.path(),
        "public",
        &[8080],
        &["--identity-dir", &id, "--otlp-endpoint", &url],
    );
    let http = Http::default();
    for admin in [gateway.admin, reviews.admin] {
        let ready = eventually(Duration::from_secs(10), async || {
            http.get(admin, "admin", "/ready").await.status == 200
        })
        .await;
        assert!(ready, "agent at {admin} never became ready");
    }

    let got = http
        .get(
            gateway.listeners[&8080],
            "shop.example.com",
            "/allowed/1?q=1",
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let (trace, app_parent, flags) = app_traceparent(&got);
    assert_eq!(flags, "01");
    let spans = receiver.trace(&trace, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let edge = spans
        .iter()
        .find(|s| s.service == "ns/ingress")
        .expect("the gateway's span");
    let server = spans
        .iter()
        .find(|s| s.service == "ns/reviews")
        .expect("the callee's span");
    assert_eq!(edge.span.kind, SpanKind::Server as i32);
    assert!(edge.span.parent_span_id.is_empty());
    assert_eq!(edge.attr("mesh.direction"), "gateway");
    assert_eq!(edge.attr("mesh.rule"), "all");
    assert_eq!(edge.attr("mesh.backend"), "ns/reviews");
    assert_eq!(edge.attr("mesh.retry.attempts"), 1);
    assert_eq!(edge.attr("url.path"), "/allowed/1");
    assert_eq!(edge.span.name, "GET ns/reviews");
    assert_eq!(edge.attr("mesh.peer.identity"), REVIEWS);
    assert_eq!(server.parent(), edge.id());
    assert_eq!(server.attr("mesh.peer.identity"), INGRESS);
    assert_eq!(app_parent, server.id());

    // A host no entry serves: the gateway's own 404, traced with its cause.
    let got = http
        .send(
            gateway.listeners[&8080],
            "GET",
            "elsewhere.example.com",
            "/",
            &[(
                "traceparent",
                "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )],
        )
        .await;
    assert_eq!(got.status, 404, "{}", got.body);
    let spans = receiver.trace("1af7651916cd43dd8448eb211c80319c", 1).await;
    let [edge] = spans.as_slice() else {
        panic!("one gateway span: {spans:#?}")
    };
    assert_eq!(edge.attr("mesh.error"), "no-route");
    assert_eq!(edge.attr("http.response.status_code"), 404);
    assert_eq!(edge.parent(), "b7ad6b7169203331");
}
