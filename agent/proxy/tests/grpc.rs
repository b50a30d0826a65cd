//! HTTP/2 end to end: a gRPC-style call (h2c from the app, `te: trailers`, a streamed
//! body ending in trailers) passes through the agent to an HTTP/2 upstream and back with
//! its trailers intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::*;
use tokio::net::TcpListener;

/// An HTTP/2-only upstream answering every call with one message and `grpc-status: 0`
/// trailers; it echoes the `te` header it saw in `x-saw-te`.
async fn grpc_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let te = request.headers().get("te").cloned();
                    let received = request.into_body().collect().await.unwrap().to_bytes();
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    trailers.insert("grpc-message", "ok".parse().unwrap());
                    let frames = vec![
                        Ok::<_, std::convert::Infallible>(Frame::data(received)),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let mut response =
                        Response::new(StreamBody::new(futures_util::stream::iter(frames)));
                    response
                        .headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    if let Some(te) = te {
                        response.headers_mut().insert("x-saw-te", te);
                    }
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_call_over_h2c_keeps_its_trailers() {
    let (upstream, _task) = grpc_upstream().await;
    let mut greeter = service("greeter", &[], vec![]);
    greeter["ports"] = json!([{"protocol": "grpc", "number": 50051}]);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config.json", &config(vec![greeter]));
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("greeter", None, upstream)]),
    );
    let agent = Agent::start(dir.path(), "127.0.0.1:9".parse().unwrap());

    // The app dials `greeter:50051` and lands on the agent (as iptables redirection
    // does): the connection goes to the agent, the `:authority` names the service.
    let stream = tokio::net::TcpStream::connect(agent.outbound)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method("POST")
        .uri("http://greeter:50051/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-saw-te"], "trailers");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrived");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x05hello");
}
