//! Is a workload up? Its agent's admin `/ready` answers 200 (config, endpoints and
//! identity loaded) and its demo app accepts connections. Polled with a real HTTP/1.1
//! client (hyper) until a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::plan::{Gateway, Workload};

/// The status of `GET path` on `addr`, or why there is none.
pub async fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// Waits until every workload is ready or `limit` passes; on timeout, says which are
/// not and why.
pub async fn wait_ready(workloads: &[Workload], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<&Workload> = workloads.iter().collect();
    loop {
        let mut still = Vec::new();
        let mut reasons = Vec::new();
        for workload in pending {
            match ready(workload).await {
                Ok(()) => {}
                Err(reason) => {
                    reasons.push(format!("{}: {reason}", workload.label()));
                    still.push(workload);
                }
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(reasons.join("\n  "));
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`wait_ready`] for `--isolated` workloads: each probed from inside its namespace,
/// at its loopback addresses (capture leaves loopback alone).
pub async fn wait_ready_isolated(workloads: &[Workload], limit: Duration) -> Result<(), String> {
    let probes = workloads.iter().filter_map(|workload| {
        let pod = workload.pod.clone()?;
        let mut local = workload.clone();
        let localhost = std::net::Ipv4Addr::LOCALHOST;
        local.ports.admin = SocketAddr::from((localhost, local.ports.admin.port()));
        local.ports.app = SocketAddr::from((localhost, local.app_port));
        Some(tokio::task::spawn_blocking(move || {
            super::isolated::in_namespace(super::isolated::netns_path(&pod.netns), move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| {
                        runtime.block_on(wait_ready(std::slice::from_ref(&local), limit))
                    })
            })
            .and_then(|ready| ready)
        }))
    });
    let mut reasons = Vec::new();
    for probe in probes.collect::<Vec<_>>() {
        match probe.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => reasons.push(reason),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons.join("\n  "))
    }
}

/// Waits until every gateway's agent answers `/ready` with 200, or `limit` passes.
pub async fn wait_gateways_ready(gateways: &[Gateway], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    for gateway in gateways {
        loop {
            match get_status(gateway.admin, "/ready").await {
                Ok(200) => break,
                Ok(status) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{}: the agent is not ready (/ready answered {status})",
                        gateway.label()
                    ));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{}: the agent's admin listener: {e}",
                        gateway.label()
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(())
}

async fn ready(workload: &Workload) -> Result<(), String> {
    TcpStream::connect(workload.ports.app).await.map_err(|e| {
        format!(
            "the demo app at {} does not answer: {e}",
            workload.ports.app
        )
    })?;
    match get_status(workload.ports.admin, "/ready").await {
        Ok(200) => Ok(()),
        Ok(status) => Err(format!("the agent is not ready (/ready answered {status})")),
        Err(e) => Err(format!("the agent's admin listener: {e}")),
    }
}
