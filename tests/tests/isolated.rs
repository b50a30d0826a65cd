//! `meshc up --isolated` end to end (needs root, as CI has): every workload in its own
//! network namespace behind capture rules, apps with no proxy settings calling services
//! by plain address. Traffic starts inside a workload's namespace as an app's would:
//! HTTP routed and split by the mesh, opaque TCP (client-first and server-first) over
//! mTLS between agents and authorized by identity, callers no policy allows refused, no
//! capture loop, direct connectivity back once the rules are removed. Every namespace is
//! removed when `meshc up` stops, also when a test fails (the harness stops it on drop).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesh_e2e::netns::{connect, get, inside};
use mesh_e2e::{Mesh, root};
use serde_json::Value;

fn up(mesh: &str) -> Mesh {
    Mesh::up(&root().join(mesh), &["--isolated"])
}

/// A workload's namespace path and address from the state file.
fn pod(mesh: &Mesh, service: &str, subset: Option<&str>) -> (String, String) {
    let workload = mesh.workload(service, subset);
    (
        workload["netns"].as_str().unwrap().to_string(),
        workload["ip"].as_str().unwrap().to_string(),
    )
}

/// A service's address (`IP:PORT`) from the state file, on `port` instead of its first.
fn service_addr(mesh: &Mesh, service: &str, port: Option<u16>) -> SocketAddr {
    let address: SocketAddr = mesh.state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no service {service} in {}", mesh.state))["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    SocketAddr::new(address.ip(), port.unwrap_or(address.port()))
}

/// The agent's metrics of a workload, read from inside its namespace.
fn metrics(netns: &str) -> String {
    inside(netns, || {
        get("127.0.0.1:15000".parse().unwrap(), "admin", "/metrics", &[])
            .unwrap()
            .1
    })
}

/// The value of the first metric line containing every one of `parts`.
fn metric(text: &str, parts: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `payload` on a fresh connection to `addr` from inside `netns` and returns
/// everything read back until the server closes (empty when the connection was refused).
fn exchange(netns: &str, addr: SocketAddr, payload: &'static [u8]) -> Vec<u8> {
    inside(netns, move || {
        let Ok(mut stream) = connect(addr) else {
            return Vec::new();
        };
        let _ = stream.write_all(payload);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    })
}

#[test]
fn isolated_http_is_routed_split_and_authorized_without_proxy_settings() {
    let mesh = up("tests/fixtures/isolated");
    let (web, _) = pod(&mesh, "shop/web", None);
    let api = service_addr(&mesh, "shop/api", None);
    let counts = inside(&web, move || {
        let mut v1 = 0;
        let mut v2 = 0;
        let mut other = Vec::new();
        for i in 0..1000 {
            match get(api, "api", &format!("/items/{i}"), &[]) {
                Ok((200, body)) if body.contains("\"subset\":\"v1\"") => v1 += 1,
                Ok((200, body)) if body.contains("\"subset\":\"v2\"") => v2 += 1,
                answer => other.push(format!("{answer:?}")),
            }
        }
        (v1, v2, other)
    });
    let (v1, v2, other) = counts;
    assert!(
        other.is_empty(),
        "failed requests: {:?}",
        &other[..other.len().min(3)]
    );
    assert_eq!(v1 + v2, 1000);
    // 50/50 over 1,000: far outside this band is a broken split (p < 1e-9).
    assert!((400..=600).contains(&v1), "v1 {v1}, v2 {v2}");

    // The callee's agent saw mTLS requests from web's identity; web's agent routed each
    // request once (its own upstream connections are not captured again: no loop).
    let web_metrics = metrics(&web);
    let routed = metric(
        &web_metrics,
        &[
            "mesh_requests_total",
            "direction=\"outbound\"",
            "shop/api",
            "rule=\"halves\"",
        ],
    );
    assert_eq!(routed, 1000.0, "{web_metrics}");
    assert_eq!(
        metric(
            &web_metrics,
            &["mesh_protocol_detections_total", "protocol=\"http\""]
        ),
        1000.0
    );

    // A caller that no policy allows is refused by its own agent with a 403.
    let (intruder, _) = pod(&mesh, "shop/intruder", None);
    let (status, body) = inside(&intruder, move || get(api, "api", "/items/1", &[]).unwrap());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not call"), "{body}");
    mesh.stop();
}

#[test]
fn isolated_opaque_tcp_goes_over_mtls_and_is_authorized_by_identity() {
    let mesh = up("tests/fixtures/isolated");
    let (web, _) = pod(&mesh, "shop/web", None);
    let (ledger, _) = pod(&mesh, "shop/ledger", None);
    let (intruder, _) = pod(&mesh, "shop/intruder", None);

    // Client-first: an HTTP request sent as opaque bytes to a `port tcp` (the demo app
    // on 5432 answers it; the agents never parse it).
    let tcp = service_addr(&mesh, "shop/ledger", Some(5432));
    let answer = exchange(
        &web,
        tcp,
        b"GET /opaque HTTP/1.1\r\nHost: ledger\r\nConnection: close\r\n\r\n",
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\":\"/opaque\""), "{answer}");

    // Server-first: a banner server on ledger's second tcp port speaks before the client.
    let banner = start_banner(&ledger, 2525);
    let addr = service_addr(&mesh, "shop/ledger", Some(2525));
    let greeting = inside(&web, move || {
        let mut stream = connect(addr).unwrap();
        let mut line = [0u8; 18];
        stream.read_exact(&mut line).map(|()| line.to_vec())
    });
    drop(banner);
    assert_eq!(greeting.unwrap(), b"220 banner ready\r\n");

    // After a connection to ledger, web's agent keeps handshaken spares to ledger's agent
    // and the next connections take them (bounded: a spare is ready within milliseconds).
    let mut opened = 2;
    let mut used = 0.0;
    for _ in 0..50 {
        let answer = exchange(
            &web,
            tcp,
            b"GET /spare HTTP/1.1\r\nHost: ledger\r\nConnection: close\r\n\r\n",
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.contains("\"path\":\"/spare\""), "{answer}");
        opened += 1;
        used = metric(
            &metrics(&web),
            &["mesh_tcp_spare_connections_total", "result=\"used\""],
        );
        if used > 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(used >= 1.0, "no connection took a spare");

    // The callee's agent counts mTLS connections from web's identity, with bytes (spares
    // that no connection took are not connections).
    let ledger_metrics = metrics(&ledger);
    let from_web = [
        "mesh_tcp_connections_total",
        "direction=\"inbound\"",
        "peer=\"spiffe://cluster.local/ns/shop/sa/web\"",
        "tls=\"mtls\"",
        "result=\"allow\"",
    ];
    assert_eq!(
        metric(&ledger_metrics, &from_web),
        f64::from(opened),
        "{ledger_metrics}"
    );
    assert!(
        metric(
            &ledger_metrics,
            &[
                "mesh_tcp_bytes_total",
                "direction=\"inbound\"",
                "way=\"received\""
            ]
        ) > 0.0
    );

    // A caller no policy allows gets nothing back (bytes that are not HTTP: an HTTP
    // request would get its agent's 403 answer instead).
    let refused = exchange(&intruder, tcp, b"\x00\x01ledger-protocol-hello\n");
    assert!(refused.is_empty(), "{}", String::from_utf8_lossy(&refused));
    assert_eq!(
        metric(
            &metrics(&intruder),
            &["mesh_tcp_connections_total", "result=\"deny\""]
        ),
        1.0
    );
    mesh.stop();
}

#[test]
fn removing_the_capture_rules_restores_direct_connectivity() {
    let mesh = up("tests/fixtures/isolated");
    let (web, _) = pod(&mesh, "shop/web", None);
    let (api_pod, api_ip) = pod(&mesh, "shop/api", Some("v1"));
    let direct: SocketAddr = format!("{api_ip}:9090").parse().unwrap();
    // Captured at both ends: an endpoint's IP names its service, so web's agent routes
    // the connection to api over mTLS.
    let (status, _) = inside(&web, move || get(direct, "api", "/", &[]).unwrap());
    assert_eq!(status, 200);
    for netns in [&web, &api_pod] {
        let out = Command::new("ip")
            .args(["netns", "exec"])
            .arg(Path::new(netns).file_name().unwrap())
            .arg(agent())
            .args(["capture", "--remove"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = metric(
        &metrics(&web),
        &["mesh_requests_total", "direction=\"outbound\""],
    );
    let (status, body) = inside(&web, move || get(direct, "api", "/direct", &[]).unwrap());
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"path\":\"/direct\""), "{body}");
    let after = metric(
        &metrics(&web),
        &["mesh_requests_total", "direction=\"outbound\""],
    );
    assert_eq!(before, after, "the request went around the agent");
    mesh.stop();
}

#[test]
fn isolated_bookinfo_routes_by_header_with_plain_addresses() {
    let mesh = up("examples/bookinfo");
    let (productpage, _) = pod(&mesh, "bookinfo/productpage", None);
    let reviews = service_addr(&mesh, "bookinfo/reviews", None);
    let (status, body) = inside(&productpage, move || {
        get(reviews, "reviews", "/reviews/0", &[("end-user", "jason")]).unwrap()
    });
    assert_eq!(status, 200, "{body}");
    let json: Value =
        serde_json::from_str(&body[body.find('{').unwrap()..=body.rfind('}').unwrap()]).unwrap();
    assert_eq!(json["subset"], "v2", "{json}");
    mesh.stop();
}

#[test]
fn isolated_mode_needs_root() {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(mesh_e2e::meshc())
        .args(["up", "--isolated", "examples/bookinfo"])
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}

/// `mesh-agent` next to `meshc`.
fn agent() -> std::path::PathBuf {
    mesh_e2e::meshc().with_file_name("mesh-agent")
}

/// A server-first line protocol on `port` inside `netns`: it greets every client.
struct Banner(std::process::Child);

impl Drop for Banner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_banner(netns: &str, port: u16) -> Banner {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('127.0.0.1',{port}))\ns.listen(8)\nprint('up',flush=True)\n\
         while True:\n  c,_=s.accept()\n  c.sendall(b'220 banner ready\\r\\n')\n  c.close()\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec"])
        .arg(Path::new(netns).file_name().unwrap())
        .args(["python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = [0u8; 3];
    child.stdout.as_mut().unwrap().read_exact(&mut up).unwrap();
    assert_eq!(&up, b"up\n");
    std::thread::sleep(Duration::from_millis(50));
    Banner(child)
}
