//! A generated mesh of any size for benchmarks: services spread over namespaces of 100,
//! each with two subsets, a route with a header rule and a canary split, a policy that
//! lets its neighbour call it, and a test of that call. The mesh checks clean (no errors,
//! no warnings), so every stage does its full work on it.

use std::fmt::Write;

/// The text of a mesh with `services` services.
pub fn generate(services: usize) -> String {
    let mut src = String::from(
        "mesh big {\n  trust_domain \"cluster.local\"\n  mtls strict\n  default_policy deny\n}\n\n\
         retry careful {\n  attempts 3\n  per_try_timeout 250ms\n  on [5xx, reset, connect_failure]\n  backoff 25ms..250ms\n  budget 20% min 10/s\n}\n\n",
    );
    let per_namespace = 100;
    let namespaces = services.div_ceil(per_namespace);
    for ns in 0..namespaces {
        let _ = writeln!(src, "namespace ns-{ns} {{");
        let count = per_namespace.min(services - ns * per_namespace);
        for i in 0..count {
            // The caller is the next service of the namespace; every tenth service is
            // called from the next namespace instead.
            let caller = if i % 10 == 9 && namespaces > 1 {
                format!("ns-{}/svc-{i}", (ns + 1) % namespaces)
            } else {
                format!("svc-{}", (i + 1) % count)
            };
            let _ = write!(
                src,
                r#"  /// Service number {i} of namespace {ns}.
  service svc-{i} {{
    port http 8080
    identity "svc-{i}-sa"
    subset v1 {{ version = "v1" }}
    subset v2 {{ version = "v2" }}
    balance ewma
  }}

  route svc-{i} {{
    timeout 2s
    retry careful
    rule beta when header("x-beta") == "1" && method in [GET, HEAD] {{
      to svc-{i}.v2
    }}
    rule canary when path starts_with "/api" {{
      split {{
        svc-{i}.v1 90%
        svc-{i}.v2 10%
      }}
    }}
  }}

  policy svc-{i} {{
    allow from {caller} {{
      methods [GET, POST]
      paths ["/api/*"]
    }}
    deny from any when path starts_with "/admin"
  }}

  test "svc-{i} of ns-{ns} is called by its neighbour" {{
    request GET "/api/x" from {caller} to svc-{i} header "x-beta" = "1"
    expect allow, rule beta, backend svc-{i}.v2
  }}

"#
            );
        }
        src.push_str("}\n\n");
    }
    src
}
