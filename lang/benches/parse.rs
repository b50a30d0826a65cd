//! Parser throughput on a generated mesh of 10,000 services, each with a route, a policy
//! and a test. Reports bytes per second (criterion's `Throughput::Bytes`).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::fmt::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn generated_mesh(services: usize) -> String {
    let mut src = String::from(
        "mesh big {\n  trust_domain \"cluster.local\"\n  mtls strict\n  default_policy deny\n}\n\n",
    );
    src.push_str("retry careful {\n  attempts 3\n  per_try_timeout 250ms\n  on [5xx, reset, connect_failure]\n  backoff 25ms..250ms\n  budget 20% min 10/s\n}\n\n");
    for i in 0..services {
        let caller = (i + 1) % services;
        let _ = write!(
            src,
            r#"/// Service number {i}.
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
  allow from svc-{caller} {{
    methods [GET, POST]
    paths ["/api/*"]
  }}
  deny from any when path starts_with "/admin"
}}

test "svc-{caller} calls svc-{i}" {{
  request GET "/api/x" from svc-{caller} to svc-{i} header "x-beta" = "1"
  expect allow, rule beta, backend svc-{i}.v2
}}

"#
        );
    }
    src
}

fn parse_benchmark(c: &mut Criterion) {
    let src = generated_mesh(10_000);
    assert!(mesh_lang::parse(&src).diagnostics.is_empty());
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(src.len() as u64));
    group.sample_size(10);
    group.bench_function("10k services", |b| {
        b.iter(|| mesh_lang::parse(std::hint::black_box(&src)))
    });
    group.bench_function("format 10k services", |b| {
        let parsed = mesh_lang::parse(&src);
        b.iter(|| mesh_lang::format_file(std::hint::black_box(&src), &parsed.file))
    });
    group.finish();
}

criterion_group!(benches, parse_benchmark);
criterion_main!(benches);
