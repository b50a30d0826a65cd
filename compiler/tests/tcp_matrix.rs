//! Opaque TCP semantics through `mesh_config`, as the agent sees them: a mixed mesh (a
//! tcp-only service with a caller-decided rule and a route-level split, a service with an
//! http and a tcp port, and inline Cedar using `Mesh::Action::"TCP"` and `context.port`)
//! is compiled to the JSON `meshc compile` writes and loaded with `Config::from_json`.
//! A matrix of (caller × request-or-connection × port) rows checks the authorization
//! verdict, and the routing of connections (`route_connection`) and requests checks the
//! rule, the backends and the connect and idle timeouts.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeMap;

use mesh_config::{Config, Peer, SimpleRequest, Verdict};

const MESH: &str = r##"
mesh shop { trust_domain "example.org" }
namespace shop {
  service orders { port http 8080 }
  service billing { port http 8080 }
  service audit { port http 8080 }
  service ledger {
    port tcp 5432
    port tcp 5433
    subset primary { role = "primary" }
    subset replica { role = "replica" }
  }
  service warehouse {
    port http 8080
    port tcp 9000
  }
  route ledger {
    connect_timeout 2s
    idle_timeout 10m
    rule billing-reads when source == billing { to ledger.replica }
    split { ledger.primary 75%  ledger.replica 25% }
  }
  route warehouse {
    rule api when path starts_with "/api" && source == orders { to warehouse }
  }
  policy ledger {
    allow from orders
    allow from billing { ports [5433] }
    deny from billing when source == billing { ports [5432] }
    cedar r#"
      permit(principal == Mesh::Service::"shop/audit", action == Mesh::Action::"TCP", resource)
      when { context.port == 5433 };
    "#
  }
  policy warehouse {
    allow from orders, billing
    deny from any when path starts_with "/admin"
    deny from billing { methods [DELETE] }
    allow from audit { ports [9000] }
  }
}
"##;

fn configs() -> BTreeMap<String, Config> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tcp.mesh");
    std::fs::write(&file, MESH).unwrap();
    let checked = mesh_compiler::check_paths(&[file]).unwrap();
    assert_eq!(checked.findings, [], "the mesh must check clean");
    mesh_compiler::emit::files(&checked.mesh, &checked.cedar)
        .into_iter()
        .filter_map(|(path, text)| {
            let key = path.strip_suffix(".json")?.to_string();
            (key != "index").then(|| (key, Config::from_json(text.as_bytes()).unwrap()))
        })
        .collect()
}

fn peer(service: &str) -> Peer {
    Peer::from_spiffe_id(
        &format!("spiffe://example.org/ns/shop/sa/{service}"),
        "example.org",
    )
}

/// What a row sends: a connection to a port, or `METHOD PATH` to a port.
enum Probe {
    Connect(u16),
    Http(&'static str, &'static str, u16),
}

#[test]
fn authorization_matrix() {
    use Probe::{Connect, Http};
    let configs = configs();
    let rows: &[(&str, &str, Probe, bool)] = &[
        // A plain `allow from orders` admits connections on every port.
        ("ledger", "orders", Connect(5432), true),
        ("ledger", "orders", Connect(5433), true),
        // `ports` narrows: billing only on 5433; the deny on 5432 is redundant but decided.
        ("ledger", "billing", Connect(5433), true),
        ("ledger", "billing", Connect(5432), false),
        // Inline Cedar on the TCP action and the port.
        ("ledger", "audit", Connect(5433), true),
        ("ledger", "audit", Connect(5432), false),
        ("ledger", "warehouse", Connect(5432), false),
        // Mixed service: the path deny and the methods deny are HTTP only.
        ("warehouse", "orders", Connect(9000), true),
        ("warehouse", "orders", Http("GET", "/admin/x", 8080), false),
        ("warehouse", "orders", Http("GET", "/api/x", 8080), true),
        ("warehouse", "billing", Connect(9000), true),
        (
            "warehouse",
            "billing",
            Http("DELETE", "/api/x", 8080),
            false,
        ),
        ("warehouse", "billing", Http("GET", "/api/x", 8080), true),
        // `ports [9000]` on an allow: the tcp port, not HTTP on 8080.
        ("warehouse", "audit", Connect(9000), true),
        ("warehouse", "audit", Http("GET", "/api/x", 8080), false),
    ];
    let mut failures = Vec::new();
    for (to, from, probe, want) in rows {
        let config = &configs[&format!("shop/{to}")];
        let (decision, what) = match probe {
            Connect(port) => (
                config.authorize_connection(*port, &peer(from)),
                format!("connect {port}"),
            ),
            Http(method, path, port) => (
                config.authorize(
                    &SimpleRequest::new(method, path, to).on_port(*port),
                    &peer(from),
                ),
                format!("{method} {path} on {port}"),
            ),
        };
        assert!(decision.errors.is_empty(), "{what}: {:?}", decision.errors);
        let got = decision.decision == Verdict::Allow;
        if got != *want {
            failures.push(format!(
                "{from} → {to} {what}: want {}, got {:?} ({})",
                if *want { "allow" } else { "deny" },
                decision.decision,
                decision.reason()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn connections_are_routed_by_caller_decided_rules_and_the_route_level_split() {
    let configs = configs();
    let route = |from: &str, to: &str, draw: u32| {
        let config = &configs[&format!("shop/{from}")];
        let index = config.service_by_key(&format!("shop/{to}")).unwrap();
        let decision = config.route_connection(index, draw).unwrap();
        let backends: Vec<(String, u32)> = decision
            .backends
            .iter()
            .map(|b| {
                (
                    format!(
                        "{}.{}",
                        b.backend.service,
                        b.backend.subset.clone().unwrap_or_default()
                    ),
                    b.weight_milli,
                )
            })
            .collect();
        (
            decision.rule.map(|r| r.name.clone()),
            backends,
            decision.service.connect_timeout_us,
            decision.service.idle_timeout_us,
        )
    };
    let (rule, backends, connect, idle) = route("billing", "ledger", 0);
    assert_eq!(rule.as_deref(), Some("billing-reads"));
    assert_eq!(backends, [("shop/ledger.replica".to_string(), 100_000)]);
    assert_eq!((connect, idle), (Some(2_000_000), Some(600_000_000)));
    let (rule, backends, _, _) = route("orders", "ledger", 0);
    assert_eq!(rule.as_deref(), Some("default"), "the route-level split");
    assert_eq!(
        backends,
        [
            ("shop/ledger.primary".to_string(), 75_000),
            ("shop/ledger.replica".to_string(), 25_000)
        ]
    );
    // A rule that reads the path never takes a connection: the whole service does.
    let (rule, backends, connect, idle) = route("orders", "warehouse", 0);
    assert_eq!(rule, None);
    assert_eq!(backends, [("shop/warehouse.".to_string(), 100_000)]);
    assert_eq!((connect, idle), (None, None));
    // HTTP requests still see the rule, and the route-level split as their last rule.
    let config = &configs["shop/orders"];
    let index = config.service_by_key("shop/warehouse").unwrap();
    let request = SimpleRequest::new("GET", "/api/x", "warehouse").on_port(8080);
    let decision = config.route(index, &request, 0).unwrap();
    assert_eq!(decision.rule.map(|r| r.name.as_str()), Some("api"));
    let index = config.service_by_key("shop/ledger").unwrap();
    let request = SimpleRequest::new("GET", "/", "ledger");
    let decision = config.route(index, &request, 0).unwrap();
    assert_eq!(decision.rule.map(|r| r.name.as_str()), Some("default"));
}
