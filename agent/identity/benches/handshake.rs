//! What one full mutual TLS 1.3 handshake between two mesh workloads costs in CPU: both
//! sides in memory (rustls `ClientConnection` and `ServerConnection` handing each other
//! their bytes, no sockets), each verifying the other's certificate chain and SPIFFE id.
//! This is the per-connection price of mTLS in the agent; see `README.md` for the number.
//! A resumed handshake (a client reconnecting with a session ticket: no certificates, no
//! signatures) is measured beside it for comparison. Besides wall time, both are measured
//! in CPU time of the benchmark thread, which other processes on a busy machine do not
//! inflate.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_identity::rustls::client::Resumption;
use mesh_identity::rustls::pki_types::ServerName;
use mesh_identity::rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ServerConfig, ServerConnection,
};
use mesh_identity::{
    Ca, ClientAuth, Identity, SpiffeId, client_config, peer_spiffe_id, server_config,
};

fn identity(ca: &Ca, id: &SpiffeId) -> Identity {
    let issued = ca.issue(id, Duration::from_secs(3600)).unwrap();
    Identity::from_pem(
        issued.cert_pem().as_bytes(),
        issued.key_pem().as_bytes(),
        issued.ca_pem().as_bytes(),
    )
    .unwrap()
}

/// Moves everything `from` wants to send into `to`, and lets `to` process it; returns
/// how many bytes moved.
fn pump<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) -> usize {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
        to.process_new_packets().unwrap();
    }
    buf.len()
}

/// One handshake; returns the id each side saw and what kind of handshake it was.
fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> ((SpiffeId, SpiffeId), HandshakeKind) {
    let name = ServerName::try_from("reviews.mesh").unwrap();
    let mut client = ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut server = ServerConnection::new(Arc::clone(server)).unwrap();
    while client.is_handshaking() || server.is_handshaking() {
        let sent = pump(&mut *client, &mut *server) + pump(&mut *server, &mut *client);
        assert!(sent > 0, "the handshake stalled");
    }
    (
        (
            peer_spiffe_id(server.peer_certificates().unwrap()).unwrap(),
            peer_spiffe_id(client.peer_certificates().unwrap()).unwrap(),
        ),
        client.handshake_kind().unwrap(),
    )
}

fn handshake_benchmark(c: &mut Criterion) {
    let ca = Ca::generate("mesh CA").unwrap();
    let frontend = SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/frontend").unwrap();
    let reviews = SpiffeId::parse("spiffe://cluster.local/ns/bookinfo/sa/reviews").unwrap();
    let ids = (frontend.clone(), reviews.clone());
    let server = server_config(&identity(&ca, &reviews), ClientAuth::Required).unwrap();
    let resuming = client_config(&identity(&ca, &frontend), &reviews).unwrap();
    let mut full = (*resuming).clone();
    full.resumption = Resumption::disabled();
    let full = Arc::new(full);

    for _ in 0..2 {
        assert_eq!(
            handshake(&full, &server),
            (ids.clone(), HandshakeKind::Full)
        );
    }
    handshake(&resuming, &server);
    assert_eq!(handshake(&resuming, &server), (ids, HandshakeKind::Resumed));

    let mut group = c.benchmark_group("mtls");
    group.bench_function("full mutual handshake, wall time", |b| {
        b.iter(|| black_box(handshake(&full, &server)))
    });
    if thread_cpu_time().is_some() {
        group.bench_function("full mutual handshake, CPU time", |b| {
            b.iter_custom(|iters| on_cpu(iters, || handshake(&full, &server)))
        });
        group.bench_function("resumed handshake, CPU time", |b| {
            b.iter_custom(|iters| on_cpu(iters, || handshake(&resuming, &server)))
        });
    }
    group.finish();
}

/// The CPU time this thread spends running `f` `iters` times.
fn on_cpu<T>(iters: u64, mut f: impl FnMut() -> T) -> Duration {
    let start = thread_cpu_time().unwrap();
    for _ in 0..iters {
        black_box(f());
    }
    thread_cpu_time().unwrap().saturating_sub(start)
}

/// How long this thread has run on a CPU (Linux: `se.sum_exec_runtime` in
/// `/proc/thread-self/sched`, milliseconds with nanosecond digits). Wall time on a shared
/// 2-core machine counts the time other processes hold the core; this does not.
fn thread_cpu_time() -> Option<Duration> {
    let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    let line = sched
        .lines()
        .find(|line| line.starts_with("se.sum_exec_runtime"))?;
    let millis: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(millis / 1000.0))
}

criterion_group!(benches, handshake_benchmark);
criterion_main!(benches);
