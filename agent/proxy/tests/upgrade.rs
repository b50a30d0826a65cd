//! HTTP/1.1 upgrades through the agent: a WebSocket-style handshake (`Connection:
//! upgrade`, `Upgrade: websocket`) reaches the upstream with its upgrade headers, the `101`
//! comes back, and bytes then flow both ways over the joined connection — on the outbound
//! path to a mesh service and on the inbound path to the local app. An upstream that
//! declines the upgrade answers like any request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An HTTP/1.1 server that accepts `Upgrade: websocket` (and echoes every byte afterwards,
/// upper-cased so the test knows the upstream answered) and refuses other upgrades with 426.
async fn echo_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|mut request: Request<Incoming>| async move {
                    let wanted = request
                        .headers()
                        .get("upgrade")
                        .is_some_and(|v| v == "websocket");
                    let mut response = Response::new(Full::new(Bytes::new()));
                    if !wanted {
                        *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
                        return Ok::<_, Infallible>(response);
                    }
                    let upgraded = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(upgraded.await.unwrap());
                        let mut buf = [0u8; 64];
                        loop {
                            let n = io.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            let reply = buf[..n].to_ascii_uppercase();
                            if io.write_all(&reply).await.is_err() {
                                break;
                            }
                        }
                    });
                    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    let headers = response.headers_mut();
                    headers.insert("upgrade", "websocket".parse().unwrap());
                    headers.insert("connection", "upgrade".parse().unwrap());
                    Ok(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, task)
}

/// Sends a handshake for `host` asking for `protocol`; returns the response head and the
/// open connection.
async fn handshake(to: SocketAddr, host: &str, protocol: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(to).await.unwrap();
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed mid-head: {head:?}");
        head.push(byte[0]);
    }
    (
        String::from_utf8(head).unwrap().to_ascii_lowercase(),
        stream,
    )
}

/// Writes `message` and reads back as many bytes.
async fn echo(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut reply = vec![0u8; message.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut reply))
        .await
        .expect("echo in time")
        .unwrap();
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_upgrade_passes_through_outbound_and_inbound() {
    let (upstream, _task) = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &config(vec![service("chat", &[], vec![])]),
    );
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("chat", None, upstream)]),
    );
    let agent = Agent::start(dir.path(), upstream);

    for (listener, host) in [(agent.outbound, "chat"), (agent.inbound, "client")] {
        let (head, mut stream) = handshake(listener, host, "websocket").await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");
        assert!(head.contains("connection: upgrade"), "{head}");
        assert_eq!(echo(&mut stream, b"hello").await, b"HELLO");
        assert_eq!(echo(&mut stream, b"again").await, b"AGAIN");
    }

    // An upgrade the upstream declines is an ordinary response on an ordinary connection.
    let (head, _stream) = handshake(agent.outbound, "chat", "h2c-nope").await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
}
