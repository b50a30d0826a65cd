//! Checking generated meshes of 1,000 and 10,000 services in memory: load (parse), resolve,
//! type-check and lint. The whole-process numbers (`meshc check` wall time and peak
//! memory) are measured with `compiler/examples/gen-mesh.rs`; see `compiler/README.md`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup"
)]

use mesh_test_support::synthetic;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_compiler::{check_loaded, load::load_sources};

fn check_benchmark(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    for services in [1_000, 10_000] {
        let src = synthetic::generate(services);
        let checked = check_loaded(load_sources(vec![("big.mesh".into(), src.clone())]));
        // No errors; the generator's cross-namespace call chains do trip W0004 (README).
        assert_eq!(
            checked.errors(),
            0,
            "the generated mesh must have no errors"
        );
        group.bench_function(format!("{services} services"), |b| {
            b.iter(|| check_loaded(load_sources(vec![("big.mesh".into(), src.clone())])))
        });
    }
    group.finish();
}

criterion_group!(benches, check_benchmark);
criterion_main!(benches);
