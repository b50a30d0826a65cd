//! End-to-end tests of `mesh-demo`: the real binary on 127.0.0.1, spoken to over real
//! HTTP/1.1 — the echo JSON, the query knobs, and `/call` through a second instance
//! standing in for the sidecar.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Every read and connect is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A running `mesh-demo`, killed on drop.
struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Demo {
    /// Starts `mesh-demo --service SERVICE [--subset S] --listen 127.0.0.1:0 --sidecar SIDECAR`
    /// and waits for its `{"listen": ...}` line.
    fn start(service: &str, subset: Option<&str>, sidecar: &str) -> Demo {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-demo"));
        command.args([
            "--service",
            service,
            "--listen",
            "127.0.0.1:0",
            "--sidecar",
            sidecar,
        ]);
        if let Some(subset) = subset {
            command.args(["--subset", subset]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mesh-demo");
        let stdout = child.stdout.take().unwrap();
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = send.send(line);
        });
        let line = match receive.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(error) => {
                let _ = child.kill();
                panic!("no listen line from mesh-demo: {error}");
            }
        };
        let announced: Value = serde_json::from_str(&line).expect("listen line is JSON");
        let addr = announced["listen"].as_str().unwrap().parse().unwrap();
        Demo { child, addr }
    }

    /// Sends one HTTP/1.1 request and returns the status and the parsed JSON body.
    fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut stream = TcpStream::connect_timeout(&self.addr, TIMEOUT).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut request =
            format!("{method} {target} HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, body)
    }

    fn get(&self, target: &str) -> (u16, Value) {
        self.request("GET", target, &[])
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sidecar address nothing listens on.
const NOWHERE: &str = "127.0.0.1:9";

#[test]
fn echoes_the_request() {
    let demo = Demo::start("bookinfo/reviews", None, NOWHERE);
    let (status, body) = demo.request(
        "POST",
        "/reviews/1?a=b",
        &[("end-user", "jason"), ("x-multi", "1"), ("X-Multi", "2")],
    );
    assert_eq!(status, 200);
    assert_eq!(body["service"], "bookinfo/reviews");
    assert_eq!(body["subset"], Value::Null);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/reviews/1");
    assert_eq!(body["query"], "a=b");
    assert_eq!(body["headers"]["end-user"], "jason");
    assert_eq!(body["headers"]["x-multi"], "1, 2");
    assert_eq!(body["headers"]["host"], "demo");
    assert!(body.get("failed").is_none());

    let (_, body) = demo.get("/");
    assert_eq!(body["query"], Value::Null);
    assert_eq!(body["path"], "/");
}

#[test]
fn echoes_the_subset() {
    let demo = Demo::start("bookinfo/reviews", Some("v2"), NOWHERE);
    let (status, body) = demo.get("/anything");
    assert_eq!(status, 200);
    assert_eq!(body["subset"], "v2");
}

#[test]
fn status_and_fail_knobs() {
    let demo = Demo::start("bookinfo/ratings", None, NOWHERE);
    let (status, body) = demo.get("/?status=418");
    assert_eq!(status, 418);
    assert_eq!(body["query"], "status=418");
    for _ in 0..10 {
        let (status, body) = demo.get("/?fail=1");
        assert_eq!(status, 503);
        assert_eq!(body["failed"], true);
        assert_eq!(body["service"], "bookinfo/ratings");
        let (status, body) = demo.get("/?fail=0");
        assert_eq!(status, 200);
        assert!(body.get("failed").is_none());
    }
}

#[test]
fn delay_knob_waits() {
    let demo = Demo::start("bookinfo/ratings", None, NOWHERE);
    let started = Instant::now();
    let (status, _) = demo.get("/?delay=300ms");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn bad_knobs_are_400_naming_the_parameter() {
    let demo = Demo::start("bookinfo/ratings", None, NOWHERE);
    for (query, parameter) in [
        ("status=abc", "status"),
        ("fail=2", "fail"),
        ("delay=x", "delay"),
    ] {
        let (status, body) = demo.get(&format!("/?{query}"));
        assert_eq!(status, 400, "{query}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(parameter), "{query}: {error}");
    }
}

#[test]
fn calls_go_through_the_sidecar() {
    let sidecar = Demo::start("mesh/sidecar", None, NOWHERE);
    let app = Demo::start(
        "bookinfo/productpage",
        Some("v1"),
        &sidecar.addr.to_string(),
    );
    let (status, body) = app.request(
        "PUT",
        "/call/reviews/x/y?status=503&k=v",
        &[
            ("end-user", "jason"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
        ],
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["service"], "bookinfo/productpage");
    assert_eq!(body["subset"], "v1");
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["path"], "/call/reviews/x/y");
    assert_eq!(body["query"], "status=503&k=v");
    let call = &body["call"];
    assert_eq!(call["service"], "reviews");
    assert_eq!(call["status"], 503);
    assert_eq!(call["mesh_error"], Value::Null);
    let inner = &call["body"];
    assert_eq!(inner["service"], "mesh/sidecar");
    assert_eq!(inner["method"], "PUT");
    assert_eq!(inner["path"], "/x/y");
    assert_eq!(inner["query"], "status=503&k=v");
    assert_eq!(inner["headers"]["host"], "reviews");
    assert_eq!(inner["headers"]["end-user"], "jason");
    assert!(inner["headers"].get("x-hop").is_none(), "{inner}");

    let (status, body) = app.get("/call/reviews.bookinfo");
    assert_eq!(status, 200);
    assert_eq!(body["call"]["body"]["path"], "/");
    assert_eq!(body["call"]["body"]["query"], Value::Null);
    assert_eq!(body["call"]["body"]["headers"]["host"], "reviews.bookinfo");
}

#[test]
fn nested_calls_chain_through_sidecars() {
    // The innermost instance answers; the middle one is both "sidecar" and the app
    // that makes the second call.
    let ratings = Demo::start("bookinfo/ratings", None, NOWHERE);
    let reviews = Demo::start("bookinfo/reviews", None, &ratings.addr.to_string());
    let product = Demo::start("bookinfo/productpage", None, &reviews.addr.to_string());
    let (status, body) = product.get("/call/reviews/call/ratings/ratings/1");
    assert_eq!(status, 200, "{body}");
    let reviews_answer = &body["call"]["body"];
    assert_eq!(reviews_answer["service"], "bookinfo/reviews");
    assert_eq!(reviews_answer["path"], "/call/ratings/ratings/1");
    assert_eq!(
        reviews_answer["call"]["body"]["service"],
        json!("bookinfo/ratings")
    );
    assert_eq!(reviews_answer["call"]["body"]["path"], "/ratings/1");
}

#[test]
fn unreachable_sidecar_is_502() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().to_string();
    drop(listener);
    let app = Demo::start("bookinfo/productpage", None, &closed);
    let (status, body) = app.get("/call/reviews/x");
    assert_eq!(status, 502);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("cannot reach the sidecar at {closed}: ")),
        "{error}"
    );
}

#[test]
fn call_without_a_service_is_400() {
    let app = Demo::start("bookinfo/productpage", None, NOWHERE);
    let (status, body) = app.get("/call/");
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("/call/<service>"));
}
