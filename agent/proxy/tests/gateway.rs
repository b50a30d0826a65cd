//! Ingress gateways end to end: a real `mesh-agent --gateway public` in front of real
//! sidecar agents and HTTP apps, with certificates from a test CA. Clients outside the
//! mesh reach the gateway over TLS (SNI picks the certificate) or plain HTTP; host and
//! path rules route to the services, splits distribute, and the services' policies see
//! the gateway's SPIFFE id. Unknown hosts get 404, requests without a host 400; renewed
//! certificate files are served to new handshakes, broken ones are refused while the last
//! good one stays; configs for the other mode are refused at start and on reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_identity::rustls::pki_types::pem::PemObject;
use mesh_identity::rustls::pki_types::{CertificateDer, ServerName};
use mesh_identity::rustls::{ClientConfig, RootCertStore};
use mesh_identity::{Ca, SpiffeId};
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const INGRESS: &str = "spiffe://cluster.local/ns/ns/sa/ingress";
const FRONTEND: &str = "spiffe://cluster.local/ns/ns/sa/frontend";
const CATALOG: &str = "spiffe://cluster.local/ns/ns/sa/catalog";
const DAY: Duration = Duration::from_secs(24 * 3600);
const TLS_PORT: u16 = 8443;
const PLAIN_PORT: u16 = 8080;

/// The frontend lets only the gateway in, and not to `/api/private*`.
const FRONTEND_POLICIES: &str = r#"@id("frontend.mesh:3 allow from gateway")
permit (principal == Mesh::Service::"ns/ingress", action, resource == Mesh::Service::"ns/frontend");

@id("frontend.mesh:5 deny private")
forbid (principal, action, resource == Mesh::Service::"ns/frontend")
when { context.path like "/api/private*" };
"#;

fn spiffe(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A sidecar workload's config: strict mTLS, `authz`, calling nothing.
fn sidecar_config(service: &str, identity: &str, authz: Value) -> Value {
    json!({
        "version": 1,
        "mesh": {"name": "test", "trust_domain": "cluster.local"},
        "workload": {
            "service": format!("ns/{service}"),
            "identity": identity,
            "ports": [{"protocol": "http", "number": 8080}]
        },
        "inbound": {"mtls": "strict", "authz": authz},
        "outbound": {"egress": "deny", "services": []}
    })
}

/// The gateway `public`: TLS on 8443 (the shop's certificate; admin's own by SNI), plain
/// on 8080; `shop.example.com` sends `/api` to the frontend and the rest split between
/// the catalog's v1 and v2; `admin.example.com` goes to the frontend.
fn gateway_config(name: &str, certs: &Path) -> Value {
    let file = |n: &str| certs.join(n).to_str().unwrap().to_string();
    let api = json!({"text": {"attr": "path", "op": "starts_with", "value": "/api"}});
    json!({
        "version": 1,
        "mesh": {"name": "test", "trust_domain": "cluster.local",
                 "telemetry": {"tracing_milli": 0, "access_log": "json"}},
        "workload": {"service": "ns/ingress", "identity": INGRESS, "ports": []},
        "inbound": {"mtls": "strict", "authz": {"kind": "deny_all"}},
        "outbound": {"egress": "deny", "services": [
            service("frontend", &[], vec![]),
            service("catalog", &["v1", "v2"], vec![]),
        ]},
        "gateway": {
            "name": name,
            "listeners": [
                {"port": TLS_PORT, "tls": {"cert": file("shop.pem"), "key": file("shop-key.pem")}},
                {"port": PLAIN_PORT, "tls": null}
            ],
            "hosts": [
                {"host": "shop.example.com", "rules": [
                    rule("api", api, "frontend", &[(None, 100)]),
                    rule("rest", Value::Null, "catalog", &[(Some("v1"), 50), (Some("v2"), 50)]),
                ]},
                {"host": "admin.example.com",
                 "tls": {"cert": file("admin.pem"), "key": file("admin-key.pem")},
                 "rules": [rule("all", Value::Null, "frontend", &[(None, 100)])]}
            ]
        }
    })
}

/// Writes a serving certificate for `name` as `certs/FILE.pem` and `certs/FILE-key.pem`
/// (key first, each aside then renamed); returns the certificate's DER.
fn write_cert(ca: &Ca, certs: &Path, file: &str, name: &str) -> Vec<u8> {
    let cert = ca.issue_serving(&[name.to_string()], DAY).unwrap();
    for (suffix, pem) in [("-key.pem", &cert.key_pem), (".pem", &cert.cert_pem)] {
        let aside = certs.join(format!(".{file}{suffix}.tmp"));
        std::fs::write(&aside, pem).unwrap();
        std::fs::rename(&aside, certs.join(format!("{file}{suffix}"))).unwrap();
    }
    CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A running mesh: the gateway, the frontend's and the catalog's sidecars and apps.
struct Mesh {
    gateway: GatewayAgent,
    frontend_app: Upstream,
    catalog_apps: [Upstream; 2],
    _sidecars: Vec<Agent>,
    ca: Ca,
    dir: tempfile::TempDir,
    shop_cert: Vec<u8>,
    admin_cert: Vec<u8>,
}

impl Mesh {
    async fn start() -> Mesh {
        let ca = Ca::generate("test mesh CA").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sidecar = |service: &str, identity: &str, authz: Value, app: SocketAddr| {
            let workload = dir.path().join(service);
            std::fs::create_dir_all(&workload).unwrap();
            let id = workload.join("identity");
            ca.issue(&spiffe(identity), DAY)
                .unwrap()
                .write(&id)
                .unwrap();
            write(
                &workload,
                "config.json",
                &sidecar_config(service, identity, authz),
            );
            write(&workload, "endpoints.json", &endpoints(&[]));
            Agent::start_with(&workload, app, &["--identity-dir", id.to_str().unwrap()])
        };
        let frontend_app = Upstream::start("frontend").await;
        let catalog_apps = [
            Upstream::start("catalog-v1").await,
            Upstream::start("catalog-v2").await,
        ];
        let policies = json!({
            "kind": "cedar", "mode": "enforce", "policies": FRONTEND_POLICIES,
            "headers": [], "query": [], "patterns": []
        });
        let sidecars = vec![
            sidecar("frontend", FRONTEND, policies, frontend_app.addr),
            sidecar(
                "catalog-v1",
                CATALOG,
                json!({"kind": "allow_all"}),
                catalog_apps[0].addr,
            ),
            sidecar(
                "catalog-v2",
                CATALOG,
                json!({"kind": "allow_all"}),
                catalog_apps[1].addr,
            ),
        ];

        let gateway_dir = dir.path().join("gateway");
        let certs = gateway_dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        let shop_cert = write_cert(&ca, &certs, "shop", "shop.example.com");
        let admin_cert = write_cert(&ca, &certs, "admin", "admin.example.com");
        let id = gateway_dir.join("identity");
        ca.issue(&spiffe(INGRESS), DAY).unwrap().write(&id).unwrap();
        write(
            &gateway_dir,
            "config.json",
            &gateway_config("public", &certs),
        );
        write(
            &gateway_dir,
            "endpoints.json",
            &endpoints(&[
                ("frontend", None, sidecars[0].inbound),
                ("catalog", Some("v1"), sidecars[1].inbound),
                ("catalog", Some("v2"), sidecars[2].inbound),
            ]),
        );
        let gateway = GatewayAgent::start(
            &gateway_dir,
            "public",
            &[TLS_PORT, PLAIN_PORT],
            &["--identity-dir", id.to_str().unwrap()],
        );
        let mesh = Mesh {
            gateway,
            frontend_app,
            catalog_apps,
            _sidecars: sidecars,
            ca,
            dir,
            shop_cert,
            admin_cert,
        };
        let http = Http::default();
        let ready = eventually(Duration::from_secs(10), async || {
            http.get(mesh.gateway.admin, "admin", "/ready").await.status == 200
        })
        .await;
        assert!(ready, "the gateway did not get ready");
        mesh
    }

    fn certs(&self) -> std::path::PathBuf {
        self.dir.path().join("gateway").join("certs")
    }

    fn plain(&self) -> SocketAddr {
        self.gateway.listeners[&PLAIN_PORT]
    }

    fn tls(&self) -> SocketAddr {
        self.gateway.listeners[&TLS_PORT]
    }

    /// A TLS client trusting the test CA, offering `h2` and `http/1.1`.
    fn tls_client(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca.bundle_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = ClientConfig::builder_with_provider(mesh_identity::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    /// Handshakes with the TLS listener as `sni`: the leaf certificate presented and the
    /// connection, or the handshake error.
    async fn handshake(
        &self,
        sni: &str,
    ) -> Result<(Vec<u8>, tokio_rustls::client::TlsStream<TcpStream>), String> {
        let tcp = TcpStream::connect(self.tls()).await.unwrap();
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            self.tls_client().connect(name, tcp),
        )
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        Ok((leaf, stream))
    }

    /// `GET path` over TLS with SNI and host `host`, in whatever protocol ALPN chose.
    async fn get_tls(&self, host: &str, path: &str) -> Got {
        let (_, stream) = self.handshake(host).await.unwrap();
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let response = if h2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let request = hyper::Request::get(format!("https://{host}{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            let request = hyper::Request::get(path)
                .header("host", host)
                .body(Empty::<Bytes>::new())
                .unwrap();
            sender.send_request(request).await.unwrap()
        };
        got(response).await
    }
}

async fn got(response: hyper::Response<hyper::body::Incoming>) -> Got {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `GET path` over HTTP/1.1 to `addr` with exactly the `headers` given (no `Host`
/// unless listed).
async fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("response within 10s")
    .unwrap();
    got(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_hosts_and_paths_route_to_their_services() {
    let mesh = Mesh::start().await;

    // SNI: the host entry's own certificate, else the listener's.
    let (leaf, _) = mesh.handshake("shop.example.com").await.unwrap();
    assert!(
        leaf == mesh.shop_cert,
        "shop.example.com got another certificate"
    );
    let (leaf, _) = mesh.handshake("admin.example.com").await.unwrap();
    assert!(
        leaf == mesh.admin_cert,
        "admin.example.com got another certificate"
    );
    // A name no host serves gets the listener's certificate, which the client refuses.
    let refused = mesh.handshake("other.example.org").await;
    assert!(
        refused.is_err(),
        "a certificate for another name was accepted"
    );

    // Over TLS (h2 by ALPN: the host is the :authority), a path rule.
    let got = mesh.get_tls("shop.example.com", "/api/items").await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.name(), "frontend");
    let headers = &got.json()["headers"];
    assert_eq!(headers["host"], "shop.example.com");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    // The frontend's agent verified the gateway's identity (and its policy allows only it).
    assert_eq!(
        headers["x-forwarded-client-cert"],
        format!("By={FRONTEND};URI={INGRESS}")
    );
    let got = mesh.get_tls("admin.example.com", "/").await;
    assert_eq!((got.status, got.name()), (200, "frontend".to_string()));

    // The gateway's access log: a line per request, with its rule and backend.
    let lines = access_log_lines(&mesh.gateway.stdout, 1, Duration::from_secs(10), |l| {
        l["path"] == "/api/items"
    });
    let [line] = lines.as_slice() else {
        panic!("no access-log line: {lines:?}")
    };
    assert_eq!(line["direction"], "gateway");
    assert_eq!(line["protocol"], "HTTP/2");
    assert_eq!(line["authority"], "shop.example.com");
    assert_eq!(line["rule"], "api");
    assert_eq!(line["backend"], "ns/frontend");
    assert_eq!(line["response_code"], 200);

    // Plain HTTP/1.1: the Host header routes; the client's Host and forwarded-for are kept.
    let got = raw_get(
        mesh.plain(),
        "/api/x",
        &[
            ("host", "shop.example.com:8080"),
            ("x-forwarded-for", "10.1.2.3"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.name(), "frontend");
    let headers = &got.json()["headers"];
    assert_eq!(headers["host"], "shop.example.com:8080");
    assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");

    // The rest of the shop is split between the catalog's versions.
    let http = Http::default();
    for _ in 0..40 {
        let got = http.get(mesh.plain(), "shop.example.com", "/items").await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert!(got.name().starts_with("catalog-v"), "{}", got.body);
    }
    let (v1, v2) = (mesh.catalog_apps[0].hits(), mesh.catalog_apps[1].hits());
    assert_eq!(v1 + v2, 40);
    assert!(v1 >= 5 && v2 >= 5, "a 50/50 split sent {v1}/{v2}");

    // The frontend's policy forbids this path to everyone: its agent answers 403.
    let before = mesh.frontend_app.hits();
    let got = http
        .get(mesh.plain(), "shop.example.com", "/api/private/keys")
        .await;
    assert_eq!(got.status, 403, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "denied");
    assert_eq!(mesh.frontend_app.hits(), before);

    // Gateway requests are counted with direction "gateway".
    let metrics = http.get(mesh.gateway.admin, "admin", "/metrics").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mesh_requests_total{")
                && l.contains("direction=\"gateway\"")
                && l.contains("service=\"ns/catalog\"")
                && l.contains("subset=\"v1\"")
                && l.contains("rule=\"rest\"")),
        "{metrics}"
    );
    let handshakes = "mesh_gateway_tls_handshakes_total{port=\"8443\",result=\"ok\"}";
    assert!(
        metrics.lines().any(|l| l.starts_with(handshakes)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_get_404_and_requests_without_a_host_400() {
    let mesh = Mesh::start().await;
    let http = Http::default();
    let got = http.get(mesh.plain(), "elsewhere.example.org", "/").await;
    assert_eq!(got.status, 404, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "no-route");

    let got = raw_get(mesh.plain(), "/", &[]).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "no-authority");

    // The admin endpoint lists the listeners and where they are bound.
    let got = http.get(mesh.gateway.admin, "admin", "/gateway").await;
    assert_eq!(got.status, 200, "{}", got.body);
    let info = got.json();
    assert_eq!(info["name"], "public");
    let listeners = info["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 2);
    assert_eq!(listeners[0]["port"], TLS_PORT);
    assert_eq!(listeners[0]["tls"], true);
    assert_eq!(listeners[0]["address"], mesh.tls().to_string());
    assert_eq!(listeners[1]["address"], mesh.plain().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_files_reach_new_handshakes_and_broken_ones_are_refused() {
    let mesh = Mesh::start().await;
    let certs = mesh.certs();
    let renewed = write_cert(&mesh.ca, &certs, "shop", "shop.example.com");
    assert!(renewed != mesh.shop_cert);
    let seen = eventually(Duration::from_secs(10), async || {
        matches!(mesh.handshake("shop.example.com").await, Ok((leaf, _)) if leaf == renewed)
    })
    .await;
    assert!(seen, "new handshakes never got the renewed certificate");

    // A broken certificate file: the last good one stays, the failure is counted.
    std::fs::write(certs.join("shop.pem"), "not a certificate").unwrap();
    let http = Http::default();
    let counted = eventually(Duration::from_secs(10), async || {
        let _ = mesh.handshake("shop.example.com").await;
        http.get(mesh.gateway.admin, "admin", "/metrics")
            .await
            .body
            .lines()
            .any(|l| {
                l.starts_with("mesh_reloads_total{kind=\"gateway_certificate\",result=\"failed\"}")
            })
    })
    .await;
    assert!(counted, "the broken certificate was not counted");
    let (leaf, _) = mesh.handshake("shop.example.com").await.unwrap();
    assert!(leaf == renewed, "the last good certificate was not kept");
    let got = mesh.get_tls("shop.example.com", "/api/x").await;
    assert_eq!(got.status, 200, "{}", got.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_renames_the_gateway_is_refused_and_one_that_edits_rules_applies() {
    let mesh = Mesh::start().await;
    let dir = mesh.dir.path().join("gateway");
    let http = Http::default();
    let failed = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("mesh_reloads_total{kind=\"config\",result=\"failed\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = failed(&http.get(mesh.gateway.admin, "admin", "/metrics").await.body);
    write(
        &dir,
        "config.json",
        &gateway_config("renamed", &mesh.certs()),
    );
    let refused = eventually(Duration::from_secs(10), async || {
        failed(&http.get(mesh.gateway.admin, "admin", "/metrics").await.body) > before
    })
    .await;
    assert!(refused, "the renamed gateway's config was not refused");
    let got = http.get(mesh.plain(), "shop.example.com", "/api/x").await;
    assert_eq!((got.status, got.name()), (200, "frontend".to_string()));

    // A valid edit: `/api` now goes to the catalog too.
    let mut config = gateway_config("public", &mesh.certs());
    config["gateway"]["hosts"][0]["rules"][0]["backends"][0]["service"] = json!("ns/catalog");
    write(&dir, "config.json", &config);
    let applied = eventually(Duration::from_secs(10), async || {
        let got = http.get(mesh.plain(), "shop.example.com", "/api/x").await;
        got.name().starts_with("catalog-v")
    })
    .await;
    assert!(applied, "the edited rule never applied");
}

#[test]
fn configs_for_the_other_mode_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    write(dir.path(), "endpoints.json", &endpoints(&[]));

    // A sidecar's config run as a gateway.
    write(dir.path(), "config.json", &config(vec![]));
    let (status, stderr) = refusal(dir.path(), &["--gateway", "public"]).expect("refused");
    assert!(!status.success());
    assert!(stderr.contains("no gateway section"), "{stderr}");

    // Another gateway's config.
    write(
        dir.path(),
        "config.json",
        &gateway_config("private", &certs),
    );
    let (status, stderr) = refusal(dir.path(), &["--gateway", "public"]).expect("refused");
    assert!(!status.success());
    assert!(stderr.contains("gateway `private`'s"), "{stderr}");

    // A gateway's config run as a sidecar.
    let (status, stderr) = refusal(dir.path(), &[]).expect("refused");
    assert!(!status.success());
    assert!(stderr.contains("--gateway private"), "{stderr}");
}
