#!/usr/bin/env python3
"""The generated mesh of tests/support/src/synthetic.rs, byte for byte, for the compiler
scale runs: `gen_mesh.py SERVICES > big.mesh`. Services spread over namespaces of 100,
each with two subsets, a route with a header rule and a canary split, a policy that lets
its neighbour call it, and a test of that call."""
import sys


def generate(services: int) -> str:
    out = [
        'mesh big {\n  trust_domain "cluster.local"\n  mtls strict\n  default_policy deny\n}\n\n'
        "retry careful {\n  attempts 3\n  per_try_timeout 250ms\n  on [5xx, reset, connect_failure]\n"
        "  backoff 25ms..250ms\n  budget 20% min 10/s\n}\n\n"
    ]
    per_namespace = 100
    namespaces = -(-services // per_namespace)
    for ns in range(namespaces):
        out.append(f"namespace ns-{ns} {{\n")
        count = min(per_namespace, services - ns * per_namespace)
        for i in range(count):
            if i % 10 == 9 and namespaces > 1:
                caller = f"ns-{(ns + 1) % namespaces}/svc-{i}"
            else:
                caller = f"svc-{(i + 1) % count}"
            out.append(f"""  /// Service number {i} of namespace {ns}.
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

""")
        out.append("}\n\n")
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(generate(int(sys.argv[1])))
