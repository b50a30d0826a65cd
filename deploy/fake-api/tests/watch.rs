//! The fake server's watch, over raw HTTP: events after the given resourceVersion only,
//! bookmarks when asked for, `410 Gone` (as an ERROR event) from compacted history, and
//! the request log.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]

use std::time::Duration;

use mesh_fake_api::FakeApi;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config_map(name: &str, value: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": name}},
        "data": {"k": value},
    })
}

/// Sends a GET and collects what arrives within `wait`.
async fn get(api: &FakeApi, path_and_query: &str, wait: Duration) -> String {
    let addr = api.url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path_and_query} HTTP/1.1\r\nHost: fake\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_bookmark_and_expire() {
    let api = FakeApi::start().await.unwrap();
    let first = api.put(config_map("a", "1")).unwrap();
    api.put(config_map("b", "1")).unwrap();

    let text = get(
        &api,
        &format!("/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion={first}&allowWatchBookmarks=true"),
        Duration::from_millis(400),
    )
    .await;
    assert!(text.contains("\"type\":\"ADDED\""), "{text}");
    assert!(text.contains("\"name\":\"b\""), "{text}");
    assert!(
        !text.contains("\"name\":\"a\""),
        "only changes after {first}: {text}"
    );
    assert!(text.contains("\"type\":\"BOOKMARK\""), "{text}");

    let text = get(
        &api,
        &format!("/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion={first}&labelSelector=app%3Da"),
        Duration::from_millis(400),
    )
    .await;
    assert!(!text.contains("\"type\":\"ADDED\""), "selector: {text}");
    assert!(!text.contains("BOOKMARK"), "not asked for: {text}");

    api.compact();
    let text = get(
        &api,
        &format!("/api/v1/namespaces/ns/configmaps?watch=true&resourceVersion={first}"),
        Duration::from_millis(400),
    )
    .await;
    assert!(text.contains("\"type\":\"ERROR\""), "{text}");
    assert!(text.contains("\"code\":410"), "{text}");

    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.query.contains("watch=true"))
    );
}
