//! `meshc up`'s own behaviour: it refuses to start a mesh with errors (showing the
//! diagnostics and starting nothing), a crashed agent is reported and restarted, and no
//! process outlives a `meshc up` killed with SIGKILL.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_e2e::{Http, Mesh, alive, meshc, running};

#[test]
fn a_mesh_with_errors_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.mesh"),
        "namespace shop {\n  service cart {\n    port http 8080\n  }\n  route cart {\n    rule all {\n      to carts\n    }\n  }\n}\n",
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let output = Command::new(meshc())
        .arg("up")
        .arg(dir.path())
        .args(["--base-port", "0", "--state"])
        .arg(&state)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("carts"),
        "the diagnostic is shown: {stderr}"
    );
    assert!(stderr.contains("nothing was started"), "{stderr}");
    assert!(!state.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_agent_is_reported_and_restarted() {
    let mesh = Mesh::up(Path::new("examples/bookinfo"), &[]);
    let http = Http::default();
    let productpage = mesh.addr("bookinfo/productpage", None, "outbound");
    let pid = mesh.workload("bookinfo/productpage", None)["agent_pid"]
        .as_u64()
        .unwrap();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    // Waited for by name: another workload's restart (a port taken by a concurrent test
    // between `meshc up` choosing it and its agent binding it) must not pass for this one.
    assert!(
        mesh.wait_stderr(
            "agent bookinfo/productpage exited unexpectedly",
            1,
            Duration::from_secs(10)
        ),
        "{}",
        mesh.stderr()
    );
    assert!(!alive(pid));

    // The restarted agent serves again on the same address.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = http
            .try_send(
                &productpage,
                "GET",
                "reviews",
                "/reviews/1",
                &[("end-user", "jason")],
            )
            .await;
        if let Ok(got) = answered
            && got.status == 200
        {
            assert_eq!(got.subset().as_deref(), Some("v2"));
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mesh.stop();
}

#[test]
fn no_process_outlives_a_killed_meshc_up() {
    let mut mesh = Mesh::up(Path::new("examples/bookinfo"), &[]);
    let children = mesh.child_pids();
    assert!(children.len() >= 8, "agents and apps: {children:?}");
    assert!(children.iter().all(|&pid| running(pid)), "{children:?}");
    mesh.kill_meshc();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<u64> = children.iter().copied().filter(|&p| running(p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after meshc up was killed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
