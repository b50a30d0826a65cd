//! The load benchmark's upstream: answers every request on `ADDR` with `200` and a fixed
//! body of `SIZE` bytes (default 1024), over HTTP/1.1 (keep-alive) or h2c, told apart per
//! connection. `mesh-perf-upstream ADDR [SIZE] [THREADS]`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: mesh-perf-upstream ADDR [SIZE] [THREADS]"))?;
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let body = Bytes::from(vec![b'x'; size]);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?
        .block_on(serve(addr, body))
}

async fn serve(addr: SocketAddr, body: Bytes) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/octet-stream")
                            .body(Full::new(body))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
