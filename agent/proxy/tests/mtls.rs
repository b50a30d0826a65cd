//! Identity, mTLS and authorization end to end, with real rustls and certificates made in
//! the test: a `client` agent calls a `reviews` agent whose inbound is strict mTLS and
//! guarded by Cedar policies. Allowed calls reach the app; others get 403 naming the
//! decision; callers without a certificate, with one from another CA, or with an expired
//! one are refused at the handshake; audit mode lets a would-be deny through and counts
//! it; the outbound side refuses a server presenting the wrong SPIFFE id; rotating the
//! certificates under load fails no request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mesh_identity::rustls::ClientConfig;
use mesh_identity::rustls::pki_types::ServerName;
use mesh_identity::{Ca, Identity, SpiffeId};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENT: &str = "spiffe://cluster.local/ns/ns/sa/client";
const REVIEWS: &str = "spiffe://cluster.local/ns/ns/sa/reviews";
const DAY: Duration = Duration::from_secs(24 * 3600);

const POLICIES: &str = r#"@id("reviews.mesh:3 allow from client")
permit (principal == Mesh::Service::"ns/client", action in [Mesh::Action::"GET"], resource == Mesh::Service::"ns/reviews")
when { context.path like "/allowed/*" };

@id("reviews.mesh:7 deny from any")
forbid (principal, action, resource == Mesh::Service::"ns/reviews")
when { context.path like "/allowed/secret*" };
"#;

fn spiffe(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// The `reviews` workload's config: strict mTLS and the policies above in `mode`.
fn reviews_config(mode: &str) -> Value {
    json!({
        "version": 1,
        "mesh": {"name": "test", "trust_domain": "cluster.local"},
        "workload": {
            "service": "ns/reviews",
            "identity": REVIEWS,
            "ports": [{"protocol": "http", "number": 9080}]
        },
        "inbound": {"mtls": "strict", "authz": {
            "kind": "cedar", "mode": mode, "policies": POLICIES,
            "headers": [], "query": [], "patterns": []
        }},
        "outbound": {"egress": "allow", "services": []}
    })
}

/// Two agents: `client` (calling `reviews` via its outbound) and `reviews` (in front of
/// an app), each with an identity issued by `ca`.
struct Pair {
    client: Agent,
    reviews: Agent,
    app: Upstream,
    _dirs: Vec<tempfile::TempDir>,
    ca: Ca,
}

impl Pair {
    async fn start(mode: &str, reviews_identity: &str) -> Pair {
        let ca = Ca::generate("test mesh CA").unwrap();
        let app = Upstream::start("reviews-app").await;

        let reviews_dir = tempfile::tempdir().unwrap();
        let reviews_id = reviews_dir.path().join("identity");
        ca.issue(&spiffe(reviews_identity), DAY)
            .unwrap()
            .write(&reviews_id)
            .unwrap();
        write(reviews_dir.path(), "config.json", &reviews_config(mode));
        write(reviews_dir.path(), "endpoints.json", &endpoints(&[]));
        let reviews = Agent::start_with(
            reviews_dir.path(),
            app.addr,
            &["--identity-dir", reviews_id.to_str().unwrap()],
        );

        let client_dir = tempfile::tempdir().unwrap();
        let client_id = client_dir.path().join("identity");
        ca.issue(&spiffe(CLIENT), DAY)
            .unwrap()
            .write(&client_id)
            .unwrap();
        let mut config = config(vec![service("reviews", &[], vec![])]);
        config["outbound"]["services"][0]["identity"] = json!(REVIEWS);
        write(client_dir.path(), "config.json", &config);
        write(
            client_dir.path(),
            "endpoints.json",
            &endpoints(&[("reviews", None, reviews.inbound)]),
        );
        // The caller's agent runs on one thread (`--threads 1`: a current-thread runtime),
        // the callee's on the default pool, so every test of a pair covers both.
        let client = Agent::start_with(
            client_dir.path(),
            "127.0.0.1:9".parse().unwrap(),
            &[
                "--identity-dir",
                client_id.to_str().unwrap(),
                "--threads",
                "1",
            ],
        );
        let pair = Pair {
            client,
            reviews,
            app,
            _dirs: vec![reviews_dir, client_dir],
            ca,
        };
        pair.wait_ready().await;
        pair
    }

    async fn wait_ready(&self) {
        let http = Http::default();
        for agent in [&self.client, &self.reviews] {
            let mut ready = false;
            for _ in 0..100 {
                if http.get(agent.admin, "admin", "/ready").await.status == 200 {
                    ready = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ready, "agent at {} never became ready", agent.admin);
        }
    }

    async fn call(&self, path: &str) -> Got {
        Http::default()
            .get(self.client.outbound, "reviews", path)
            .await
    }

    async fn metrics(&self) -> String {
        Http::default()
            .get(self.reviews.admin, "admin", "/metrics")
            .await
            .body
    }
}

/// A TLS client straight to `reviews`' inbound, presenting `identity` (or nothing);
/// returns whether an HTTP request over it got an answer.
async fn direct_tls(to: std::net::SocketAddr, identity: Option<&Identity>, ca: &Ca) -> bool {
    let config = match identity {
        Some(identity) => {
            Arc::unwrap_or_clone(mesh_identity::client_config(identity, &spiffe(REVIEWS)).unwrap())
        }
        None => {
            // No client certificate: trust the mesh CA but present nothing.
            let mut roots = mesh_identity::rustls::RootCertStore::empty();
            for cert in rustls_pemfile(ca.bundle_pem()) {
                roots.add(cert).unwrap();
            }
            ClientConfig::builder_with_provider(mesh_identity::crypto_provider())
                .with_protocol_versions(&[&mesh_identity::rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
    };
    let exchange = async {
        let tcp = TcpStream::connect(to).await.ok()?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::IpAddress(to.ip().into());
        let mut tls = connector.connect(name, tcp).await.ok()?;
        tls.write_all(b"GET /allowed/x HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1"))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("bounded exchange")
        .unwrap_or(false)
}

fn rustls_pemfile(pem: &str) -> Vec<mesh_identity::rustls::pki_types::CertificateDer<'static>> {
    use mesh_identity::rustls::pki_types::pem::PemObject;
    mesh_identity::rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_callers_get_through_and_others_get_403_naming_the_decision() {
    let pair = Pair::start("enforce", REVIEWS).await;

    let got = pair.call("/allowed/1").await;
    assert_eq!(
        (got.status, got.name()),
        (200, "reviews-app".into()),
        "{}",
        got.body
    );

    // The app learns the verified caller (Envoy's XFCC); a forged header is replaced.
    let got = Http::default()
        .send(
            pair.client.outbound,
            "GET",
            "reviews",
            "/allowed/2",
            &[(
                "x-forwarded-client-cert",
                "URI=spiffe://cluster.local/ns/ns/sa/admin",
            )],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(
        got.json()["headers"]["x-forwarded-client-cert"],
        format!("By={REVIEWS};URI={CLIENT}")
    );

    let got = pair.call("/other").await;
    assert_eq!(got.status, 403, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "denied");
    assert_eq!(got.body.trim(), "no policy allows this request");

    let got = pair.call("/allowed/secret").await;
    assert_eq!(got.status, 403);
    assert_eq!(
        got.body.trim(),
        "denied by policy reviews.mesh:7 deny from any"
    );
    assert_eq!(pair.app.hits(), 2, "denied requests never reach the app");

    let metrics = pair.metrics().await;
    for line in [
        r#"mesh_authz_decisions_total{decision="allow",mode="enforce",policy="reviews.mesh:3 allow from client"} 2"#,
        r#"mesh_authz_decisions_total{decision="deny",mode="enforce",policy=""} 1"#,
        r#"mesh_authz_decisions_total{decision="deny",mode="enforce",policy="reviews.mesh:7 deny from any"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_mtls_refuses_plaintext_foreign_and_expired_certificates() {
    let pair = Pair::start("enforce", REVIEWS).await;
    let inbound = pair.reviews.inbound;

    // Plaintext: no HTTP answer (at most a TLS alert), then the connection closes.
    let mut plain = TcpStream::connect(inbound).await.unwrap();
    plain
        .write_all(b"GET /allowed/x HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(!answer.starts_with(b"HTTP"), "plaintext got {answer:?}");

    // A valid certificate of this mesh works directly too (the control case).
    let ours = pair.ca.issue(&spiffe(CLIENT), DAY).unwrap();
    let ours = Identity::from_pem(
        ours.cert_pem().as_bytes(),
        ours.key_pem().as_bytes(),
        ours.ca_pem().as_bytes(),
    )
    .unwrap();
    assert!(direct_tls(inbound, Some(&ours), &pair.ca).await);

    // No client certificate.
    assert!(!direct_tls(inbound, None, &pair.ca).await);

    // A certificate from another CA (that trusts reviews' CA, so only the client side
    // can fail).
    let other = Ca::generate("another CA").unwrap();
    let foreign = other.issue(&spiffe(CLIENT), DAY).unwrap();
    let foreign = Identity::from_pem(
        foreign.cert_pem().as_bytes(),
        foreign.key_pem().as_bytes(),
        format!("{}{}", foreign.ca_pem(), pair.ca.bundle_pem()).as_bytes(),
    )
    .unwrap();
    assert!(!direct_tls(inbound, Some(&foreign), &pair.ca).await);

    // An expired certificate of the right CA.
    let now = SystemTime::now();
    let expired = pair
        .ca
        .issue_with_validity(
            &spiffe(CLIENT),
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    let expired = Identity::from_pem_at(
        expired.cert_pem().as_bytes(),
        expired.key_pem().as_bytes(),
        expired.ca_pem().as_bytes(),
        now - Duration::from_secs(5400),
    )
    .unwrap();
    assert!(!direct_tls(inbound, Some(&expired), &pair.ca).await);
    assert_eq!(
        pair.app.hits(),
        1,
        "only the control request reached the app"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_mode_lets_a_would_be_deny_through_and_counts_it() {
    let pair = Pair::start("audit", REVIEWS).await;
    let got = pair.call("/other").await;
    assert_eq!((got.status, got.name()), (200, "reviews-app".into()));
    let metrics = pair.metrics().await;
    let line = r#"mesh_authz_decisions_total{decision="deny",mode="audit",policy=""} 1"#;
    assert!(metrics.contains(line), "missing {line} in\n{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbound_side_refuses_a_server_with_the_wrong_spiffe_id() {
    // `reviews` presents a valid certificate of the mesh, but for `ratings`.
    let pair = Pair::start("enforce", "spiffe://cluster.local/ns/ns/sa/ratings").await;
    let got = pair.call("/allowed/1").await;
    assert_eq!(got.status, 502, "{}", got.body);
    assert_eq!(got.headers["mesh-error"], "connect-failed");
    assert!(got.body.contains(REVIEWS), "{}", got.body);
    assert_eq!(pair.app.hits(), 0);
}

const IDENTITY_OK: &str = r#"mesh_reloads_total{kind="identity",result="ok"} "#;
const IDENTITY_FAILED: &str = r#"mesh_reloads_total{kind="identity",result="failed"} "#;

/// The value of the metric line starting with `prefix`, 0 when absent.
fn counter(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_certificates_under_load_fails_no_request() {
    let pair = Arc::new(Pair::start("enforce", REVIEWS).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (pair, stop, ok, failed) = (
            Arc::clone(&pair),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let got = pair.call("/allowed/1").await;
                if got.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("failed during rotation: {} {}", got.status, got.body);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 100 rotations: 50 rounds of both agents' certificates.
    for round in 0..50 {
        for (agent, id) in [(&pair.reviews, REVIEWS), (&pair.client, CLIENT)] {
            let dir = Path::new(&agent.dir).join("identity");
            pair.ca
                .issue(&spiffe(id), DAY)
                .unwrap()
                .write(&dir)
                .unwrap();
        }
        // Both agents pick the new files up (watch or resync) while traffic flows.
        let mut reloaded = false;
        for _ in 0..100 {
            if counter(&pair.metrics().await, IDENTITY_OK) >= round + 2 {
                reloaded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            reloaded,
            "reviews did not reload its identity (round {round})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "too little traffic to mean anything"
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    // Each rotation swapped the files as one step: no reload ever read a key beside
    // another certificate.
    assert_eq!(counter(&pair.metrics().await, IDENTITY_FAILED), 0);

    // A broken certificate file is rejected; the last good identity stays in use.
    let dir = pair.reviews.dir.join("identity");
    let failed_before = counter(&pair.metrics().await, IDENTITY_FAILED);
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    let mut rejected = false;
    for _ in 0..100 {
        if counter(&pair.metrics().await, IDENTITY_FAILED) > failed_before {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejected, "the broken certificate was not rejected");
    assert_eq!(pair.call("/allowed/1").await.status, 200);
}

/// Migration (Istio's auto-mTLS): an endpoint the endpoints file marks `meshed: false`
/// has no agent yet; it is reached in plaintext at its app while the mesh is permissive,
/// and refused with the reason under strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_without_an_agent_are_plaintext_when_permissive_and_refused_when_strict() {
    let ca = Ca::generate("migration CA").unwrap();
    let app = Upstream::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity");
    ca.issue(&spiffe(CLIENT), DAY)
        .unwrap()
        .write(&identity)
        .unwrap();
    let mut endpoints = support::endpoints(&[("legacy", None, app.addr)]);
    endpoints["endpoints"][0]["meshed"] = json!(false);
    let mut config = support::config(vec![support::service("legacy", &[], vec![])]);
    write(dir.path(), "config.json", &config);
    write(dir.path(), "endpoints.json", &endpoints);
    let agent = Agent::start_with(
        dir.path(),
        app.addr,
        &["--identity-dir", identity.to_str().unwrap()],
    );
    let http = Http::default();
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.get(agent.outbound, "legacy", "/").await.status == 200
        })
        .await,
        "a permissive mesh reaches the uninjected app in plaintext"
    );
    assert_eq!(app.hits(), 1);

    config["inbound"]["mtls"] = json!("strict");
    write(dir.path(), "config.json", &config);
    assert!(
        eventually(Duration::from_secs(10), async || {
            let got = http.get(agent.outbound, "legacy", "/").await;
            got.status == 502
                && got
                    .headers
                    .get("mesh-error")
                    .is_some_and(|v| v == "not-meshed")
                && got.body.contains("has no mesh agent")
        })
        .await,
        "strict refuses an endpoint without an agent, saying why"
    );
}
