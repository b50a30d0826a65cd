//! Latency of live diagnostics: the time from sending `didChange` to receiving the
//! `publishDiagnostics` it causes, through the real `mesh-lsp` binary over stdio, with the
//! default debounce included (what a user waits for after a keystroke). Two workspaces:
//! `examples/bookinfo`, and a generated 1,000-service mesh in 11 files where one file is
//! edited. Each edit alternately adds and removes an error, so every change publishes.
//! Run with `cargo bench -p mesh-lsp --bench latency`; the numbers are in
//! `editor/README.md`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_test_support::lsp::{Client, uri};
use mesh_test_support::synthetic;
use serde_json::json;

const ROUNDS: usize = 40;

/// CPU time (user + system) the process has used so far, from `/proc` (Linux); `None`
/// elsewhere. Clock ticks are taken as 1/100 s, the Linux default.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Writes the generated mesh as one file per namespace plus a header file.
fn generated(dir: &Path, services: usize) -> PathBuf {
    let src = synthetic::generate(services);
    let mut parts = src.split("\nnamespace ");
    let header = parts.next().unwrap();
    std::fs::write(dir.join("mesh.mesh"), header).unwrap();
    let mut first = None;
    for (i, part) in parts.enumerate() {
        let path = dir.join(format!("ns-{i:02}.mesh"));
        std::fs::write(&path, format!("namespace {part}")).unwrap();
        first.get_or_insert(path);
    }
    first.unwrap()
}

fn measure(name: &str, root: &Path, file: &Path, target: Duration) {
    let text = std::fs::read_to_string(file).unwrap();
    let broken = format!("{text}\nservice zz-broken {{ port http 99999 }}\n");
    let mut client = Client::start(env!("CARGO_BIN_EXE_mesh-lsp"));
    client.initialize(root, json!({}));
    let file_uri = uri(file);
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": file_uri, "languageId": "mesh", "version": 1, "text": text}}),
    );
    // Let the initial publications arrive.
    std::thread::sleep(Duration::from_millis(500));
    client.drain();
    let mut times = Vec::with_capacity(ROUNDS);
    let cpu_before = cpu_time(client.pid());
    for round in 0..ROUNDS {
        let add_error = round % 2 == 0;
        let body = if add_error { &broken } else { &text };
        let start = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": file_uri, "version": round + 2}, "contentChanges": [{"text": body}]}),
        );
        client.diagnostics(&file_uri, |d| d.is_empty() != add_error);
        times.push(start.elapsed());
        // Let the next edit be a new keystroke burst, not part of this one.
        std::thread::sleep(Duration::from_millis(30));
    }
    let cpu = cpu_before
        .zip(cpu_time(client.pid()))
        .map(|(before, after)| (after.saturating_sub(before)) / ROUNDS as u32);
    client.shutdown();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    let p95 = times[times.len() * 95 / 100];
    println!(
        "{name}: didChange → publishDiagnostics median {:.1} ms, p95 {:.1} ms, max {:.1} ms over {ROUNDS} edits; server CPU {} per edit (target < {} ms){}",
        ms(median),
        ms(p95),
        ms(times[times.len() - 1]),
        cpu.map_or("unknown".to_string(), |c| format!("{:.0} ms", ms(c))),
        target.as_millis(),
        if median < target {
            ""
        } else {
            "  ** over target **"
        }
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing heavy.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let bookinfo = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(bookinfo.path()).unwrap();
    let file = root.join("bookinfo.mesh");
    std::fs::copy(repo.join("examples/bookinfo/bookinfo.mesh"), &file).unwrap();
    measure("bookinfo", &root, &file, Duration::from_millis(50));

    let big = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(big.path()).unwrap();
    let file = generated(&root, 1_000);
    measure(
        "1,000 services in 11 files",
        &root,
        &file,
        Duration::from_millis(300),
    );
}
