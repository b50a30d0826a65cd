//! Parser and formatter throughput on a generated mesh of 10,000 services, each with a
//! route, a policy and a test. Reports bytes per second (criterion's `Throughput::Bytes`).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use mesh_test_support::synthetic;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn parse_benchmark(c: &mut Criterion) {
    let src = synthetic::generate(10_000);
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
