//! The pod proxy (`GET /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH`): as the real API
//! server, the request is sent on to the pod — here to its `status.podIP` and `PORT` over
//! plain HTTP/1.0 — and the pod's answer comes back. Tests point a pod's IP at a process
//! on loopback to reach it through the API.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest answer passed back.
const MAX_ANSWER: u64 = 16 << 20;

/// A pod-proxy path, split: namespace, pod, port, and the path on the pod (with `/`).
pub fn parse(path: &str) -> Option<(&str, &str, u16, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once("/pods/")?;
    let (target, rest) = rest.split_once("/proxy")?;
    let (pod, port) = target.split_once(':')?;
    let port = port.parse().ok()?;
    let on_pod = if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    };
    Some((namespace, pod, port, on_pod))
}

/// `GET path_and_query` on `pod`'s IP at `port`: the status and body, or why not.
pub async fn get(pod: &Value, port: u16, path_and_query: &str) -> Result<(u16, Vec<u8>), String> {
    let ip = pod["status"]["podIP"]
        .as_str()
        .ok_or("the pod has no IP yet")?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| format!("cannot connect to {ip}:{port}: {e}"))?;
        let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{ip}:{port} did not answer"))??;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the pod's answer has no head")?;
    let status = std::str::from_utf8(&answer[..end])
        .ok()
        .and_then(|head| head.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("the pod's answer has no status")?;
    Ok((status, answer[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_parse() {
        assert_eq!(
            parse("/api/v1/namespaces/bookinfo/pods/reviews-1:15000/proxy/metrics"),
            Some(("bookinfo", "reviews-1", 15000, "/metrics".to_string()))
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/pods/p:80/proxy"),
            Some(("ns", "p", 80, "/".to_string()))
        );
        assert_eq!(parse("/api/v1/namespaces/ns/pods/p/proxy/x"), None);
        assert_eq!(parse("/api/v1/namespaces/ns/pods/p:http/proxy/x"), None);
        assert_eq!(parse("/api/v1/namespaces/ns/pods/p"), None);
    }
}
