//! Compiling a generated mesh of 1,000 services in memory: emission alone (one config per
//! workload, serialized, plus the schema and the index, as `meshc compile` writes them)
//! and the whole pipeline (check, then emit). The whole-process numbers (`meshc compile`
//! wall time, peak memory, output sizes at 1k and 10k services) are in `compiler/README.md`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup"
)]

use mesh_test_support::synthetic;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_compiler::{check_loaded, emit, load::load_sources};

fn compile_benchmark(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    let services = 1_000;
    let src = synthetic::generate(services);
    let checked = check_loaded(load_sources(vec![("big.mesh".into(), src.clone())]));
    // No errors; the generator's cross-namespace call chains do trip W0004 (see the README).
    assert_eq!(
        checked.errors(),
        0,
        "the generated mesh must have no errors"
    );
    let files = emit::files(&checked.mesh, &checked.cedar);
    // One config per workload, the schema and the index.
    assert_eq!(files.len(), services + 2);
    group.bench_function(format!("emit {services} services"), |b| {
        b.iter(|| emit::files(&checked.mesh, &checked.cedar))
    });
    group.bench_function(format!("check and emit {services} services"), |b| {
        b.iter(|| {
            let checked = check_loaded(load_sources(vec![("big.mesh".into(), src.clone())]));
            emit::files(&checked.mesh, &checked.cedar)
        })
    });
    group.finish();
}

criterion_group!(benches, compile_benchmark);
criterion_main!(benches);
