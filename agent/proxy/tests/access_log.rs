//! The access log end to end: agents whose config turns `access_log json` on write one
//! JSON object per request on stdout — the caller's agent an `outbound` line, the callee's
//! an `inbound` line naming the verified peer and the authorization decision — with
//! Envoy's default fields; with the log off (the default) nothing is written, and a config
//! reload turns it on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use mesh_identity::{Ca, SpiffeId};
use serde_json::{Value, json};
use support::*;

const CLIENT: &str = "spiffe://cluster.local/ns/ns/sa/client";
const REVIEWS: &str = "spiffe://cluster.local/ns/ns/sa/reviews";
const DAY: Duration = Duration::from_secs(24 * 3600);

const POLICIES: &str = r#"@id("reviews.mesh:3 allow from client")
permit (principal == Mesh::Service::"ns/client", action, resource == Mesh::Service::"ns/reviews")
when { context.path like "/allowed/*" };
"#;

fn with_log(mut config: Value, on: bool) -> Value {
    if on {
        config["mesh"]["telemetry"] = json!({"tracing_milli": 0, "access_log": "json"});
    }
    config
}

fn reviews_config(log: bool) -> Value {
    with_log(
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
        log,
    )
}

fn client_config(log: bool) -> Value {
    // `ratings` has no endpoints: its requests fail below the routing decision.
    let mut config = config(vec![
        service(
            "reviews",
            &[],
            vec![rule("all", Value::Null, "reviews", &[(None, 100)])],
        ),
        service(
            "ratings",
            &[],
            vec![rule("none", Value::Null, "ratings", &[(None, 100)])],
        ),
    ]);
    config["outbound"]["services"][0]["identity"] = json!(REVIEWS);
    with_log(config, log)
}

struct Pair {
    client: Agent,
    client_log: std::sync::mpsc::Receiver<String>,
    reviews: Agent,
    reviews_log: std::sync::mpsc::Receiver<String>,
    app: Upstream,
    client_dir: tempfile::TempDir,
    _reviews_dir: tempfile::TempDir,
}

impl Pair {
    async fn start(log: bool) -> Pair {
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
        write(reviews_dir.path(), "config.json", &reviews_config(log));
        write(reviews_dir.path(), "endpoints.json", &endpoints(&[]));
        let (reviews, reviews_log) =
            Agent::start_logged(reviews_dir.path(), app.addr, &["--identity-dir", &id]);
        let client_dir = tempfile::tempdir().unwrap();
        let id = issue(client_dir.path(), CLIENT);
        write(client_dir.path(), "config.json", &client_config(log));
        write(
            client_dir.path(),
            "endpoints.json",
            &endpoints(&[("reviews", None, reviews.inbound)]),
        );
        let (client, client_log) = Agent::start_logged(
            client_dir.path(),
            "127.0.0.1:9".parse().unwrap(),
            &["--identity-dir", &id],
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
            client_log,
            reviews,
            reviews_log,
            app,
            client_dir,
            _reviews_dir: reviews_dir,
        }
    }

    async fn call(&self, path: &str, request_id: &str) -> Got {
        Http::default()
            .send(
                self.client.outbound,
                "GET",
                "reviews",
                path,
                &[("x-request-id", request_id), ("user-agent", "test-agent/1")],
            )
            .await
    }
}

fn with_id(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |line| line["request_id"] == id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_json_line_on_both_agents() {
    let pair = Pair::start(true).await;
    let got = pair.call("/allowed/1?x=y", "req-1").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let limit = Duration::from_secs(10);

    let out = access_log_lines(&pair.client_log, 1, limit, with_id("req-1"));
    let [out] = out.as_slice() else {
        panic!("no outbound line: {out:?}")
    };
    assert_eq!(out["direction"], "outbound");
    assert_eq!(out["method"], "GET");
    assert_eq!(out["path"], "/allowed/1?x=y");
    assert_eq!(out["protocol"], "HTTP/1.1");
    assert_eq!(out["response_code"], 200);
    assert_eq!(out["response_flags"], Value::Null);
    assert_eq!(out["authority"], "reviews");
    assert_eq!(out["user_agent"], "test-agent/1");
    assert_eq!(out["rule"], "all");
    assert_eq!(out["backend"], "ns/reviews");
    assert_eq!(out["upstream_host"], pair.reviews.inbound.to_string());
    assert_eq!(out["bytes_received"], 0);
    assert_eq!(out["bytes_sent"], got.body.len());
    assert!(out["duration"].as_u64().is_some(), "{out}");
    assert!(out["upstream_service_time"].as_u64().is_some(), "{out}");
    let start = out["start_time"].as_str().unwrap();
    assert!(
        start.len() == 24 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );

    let inb = access_log_lines(&pair.reviews_log, 1, limit, with_id("req-1"));
    let [inb] = inb.as_slice() else {
        panic!("no inbound line: {inb:?}")
    };
    assert_eq!(inb["direction"], "inbound");
    assert_eq!(inb["peer"], CLIENT);
    assert_eq!(inb["response_code"], 200);
    assert_eq!(inb["upstream_host"], pair.app.addr.to_string());
    let decision = inb["decision"].as_str().unwrap();
    assert!(
        decision.starts_with("allow") && decision.contains("reviews.mesh:3 allow from client"),
        "{decision}"
    );

    // A denied request: 403 on both sides, the callee's line names the decision.
    let got = pair.call("/secret", "req-2").await;
    assert_eq!(got.status, 403, "{}", got.body);
    let inb = access_log_lines(&pair.reviews_log, 1, limit, with_id("req-2"));
    assert_eq!(inb.len(), 1, "{inb:?}");
    assert_eq!(inb[0]["response_code"], 403);
    assert_eq!(inb[0]["response_flags"], "denied");
    assert_eq!(inb[0]["decision"], "deny: no policy allows this request");
    let out = access_log_lines(&pair.client_log, 1, limit, with_id("req-2"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["response_code"], 403);

    // A request the agent fails after routing it still names its rule and backend.
    let got = Http::default()
        .send(
            pair.client.outbound,
            "GET",
            "ratings",
            "/",
            &[("x-request-id", "req-3")],
        )
        .await;
    assert_eq!(got.status, 503, "{}", got.body);
    let out = access_log_lines(&pair.client_log, 1, limit, with_id("req-3"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["response_flags"], "no-endpoints");
    assert_eq!(out[0]["rule"], "none");
    assert_eq!(out[0]["backend"], "ns/ratings");
    assert_eq!(out[0]["upstream_host"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_turned_on_by_a_reload() {
    let pair = Pair::start(false).await;
    let got = pair.call("/allowed/1", "quiet").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let lines = access_log_lines(&pair.client_log, 1, Duration::from_millis(500), |_| true);
    assert!(lines.is_empty(), "the log is off but wrote {lines:?}");

    write(pair.client_dir.path(), "config.json", &client_config(true));
    let http = Http::default();
    let logged = eventually(Duration::from_secs(10), async || {
        http.get(pair.client.outbound, "reviews", "/allowed/2")
            .await;
        !access_log_lines(&pair.client_log, 1, Duration::from_millis(100), |l| {
            l["direction"] == "outbound"
        })
        .is_empty()
    })
    .await;
    assert!(logged, "the reload never turned the access log on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_tcp_connection_is_one_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // An echo server as the app's TCP port.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let echo_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });

    let ca = Ca::generate("test mesh CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("identity");
    ca.issue(&SpiffeId::parse(REVIEWS).unwrap(), DAY)
        .unwrap()
        .write(&id)
        .unwrap();
    let mut config = reviews_config(true);
    config["inbound"]["authz"] = json!({"kind": "allow_all"});
    config["workload"]["ports"] = json!([
        {"protocol": "http", "number": 9080},
        {"protocol": "tcp", "number": 5432}
    ]);
    write(dir.path(), "config.json", &config);
    write(dir.path(), "endpoints.json", &endpoints(&[]));
    let (reviews, log) = Agent::start_logged(
        dir.path(),
        "127.0.0.1:9".parse().unwrap(),
        &[
            "--identity-dir",
            id.to_str().unwrap(),
            "--app-port",
            &format!("5432={echo_addr}"),
        ],
    );
    let http = Http::default();
    let ready = eventually(Duration::from_secs(10), async || {
        http.get(reviews.admin, "admin", "/ready").await.status == 200
    })
    .await;
    assert!(ready);

    // A peer agent's opaque TCP: mTLS with ALPN `mesh-tcp`, the preamble, then bytes.
    let client = ca.issue(&SpiffeId::parse(CLIENT).unwrap(), DAY).unwrap();
    let identity = mesh_identity::Identity::from_pem(
        client.cert_pem().as_bytes(),
        client.key_pem().as_bytes(),
        client.ca_pem().as_bytes(),
    )
    .unwrap();
    let mut tls = std::sync::Arc::unwrap_or_clone(
        mesh_identity::client_config(&identity, &SpiffeId::parse(REVIEWS).unwrap()).unwrap(),
    );
    tls.alpn_protocols = vec![b"mesh-tcp".to_vec()];
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(reviews.inbound)
            .await
            .unwrap();
        let name =
            mesh_identity::rustls::pki_types::ServerName::IpAddress(reviews.inbound.ip().into());
        let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        stream.write_all(&[0, 0x15, 0x38]).await.unwrap(); // preamble: port 5432
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("bounded exchange");

    let lines = access_log_lines(&log, 1, Duration::from_secs(10), |l| l["protocol"] == "TCP");
    let [line] = lines.as_slice() else {
        panic!("no TCP line: {lines:?}")
    };
    assert_eq!(line["direction"], "inbound");
    assert_eq!(line["peer"], CLIENT);
    assert_eq!(line["backend"], "ns/reviews");
    assert_eq!(line["bytes_received"], 5);
    assert_eq!(line["bytes_sent"], 5);
    assert_eq!(line["method"], Value::Null);
    assert_eq!(
        line["upstream_host"],
        echo_addr.to_string(),
        "the app's port the connection went to"
    );
    echo_task.abort();
}
