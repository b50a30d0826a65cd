//! `meshc up --watch`: an edit that changes a split takes effect in the running mesh
//! without failing a single request in flight, and a broken edit is reported and changes
//! nothing.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mesh_e2e::{Http, Mesh, root};

const SPLIT: &str = "      split {\n        reviews.v1 50%\n        reviews.v3 50%\n      }\n";
const ALL_V3: &str = "      to reviews.v3\n";

#[tokio::test(flavor = "multi_thread")]
async fn edits_reload_without_failed_requests_and_broken_edits_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bookinfo.mesh");
    let original = std::fs::read_to_string(root().join("examples/bookinfo/bookinfo.mesh")).unwrap();
    assert_eq!(original.matches(SPLIT).count(), 1);
    std::fs::write(&file, &original).unwrap();
    let mesh = Mesh::up(dir.path(), &["--watch"]);
    assert!(
        mesh.wait_stderr("watching", 1, Duration::from_secs(10)),
        "{}",
        mesh.stderr()
    );
    let productpage = mesh.addr("bookinfo/productpage", None, "outbound");

    // Traffic all along: every answer must be a 200 from v1 or v3.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (stop, productpage) = (Arc::clone(&stop), productpage.clone());
        async move {
            let http = Http::default();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let got = http.get(&productpage, "reviews", "/reviews/1", &[]).await;
                assert_eq!(
                    got.status, 200,
                    "a request failed during reloads: {}",
                    got.body
                );
                seen.push((Instant::now(), got.subset().unwrap()));
            }
            seen
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The split becomes "everything to v3".
    std::fs::write(&file, original.replace(SPLIT, ALL_V3)).unwrap();
    let edited = Instant::now();
    assert!(
        mesh.wait_stderr("recompiled: ", 1, Duration::from_secs(15)),
        "{}",
        mesh.stderr()
    );
    let http = Http::default();
    let mut in_a_row = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while in_a_row < 50 {
        assert!(Instant::now() < deadline, "the edit never took effect");
        let got = http.get(&productpage, "reviews", "/reviews/1", &[]).await;
        in_a_row = if got.subset().as_deref() == Some("v3") {
            in_a_row + 1
        } else {
            0
        };
    }

    // A broken edit: reported, and the mesh keeps routing as before.
    std::fs::write(
        &file,
        original
            .replace(ALL_V3, "      to reviews.v9\n")
            .replace(SPLIT, "      to reviews.v9\n"),
    )
    .unwrap();
    assert!(
        mesh.wait_stderr("the running mesh is unchanged", 1, Duration::from_secs(15)),
        "{}",
        mesh.stderr()
    );
    assert!(
        mesh.stderr().contains("v9"),
        "the diagnostics name the problem:\n{}",
        mesh.stderr()
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for _ in 0..50 {
        let got = http.get(&productpage, "reviews", "/reviews/1", &[]).await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.subset().as_deref(), Some("v3"));
    }

    stop.store(true, Ordering::Relaxed);
    let seen = traffic.await.unwrap();
    assert!(
        seen.len() > 20,
        "too little traffic to tell: {}",
        seen.len()
    );
    assert!(
        seen.iter()
            .any(|(at, subset)| *at < edited && subset == "v1"),
        "before the edit v1 served too"
    );
    mesh.stop();
}
