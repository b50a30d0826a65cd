//! The HTTP side: routing requests to the store, and streaming watches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::path::Target;
use crate::store::{Recorded, Store, status};

type Body = BoxBody<Bytes, Infallible>;

/// Serves connections until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Mutex<Store>>,
    changed: Arc<Notify>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (store, changed) = (Arc::clone(&store), Arc::clone(&changed));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (store, changed) = (Arc::clone(&store), Arc::clone(&changed));
                async move { Ok::<_, Infallible>(handle(request, store, changed).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status(code, reason, message))
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'%') => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            Some(b'+') => {
                out.push(b' ');
                i += 1;
            }
            Some(b) => {
                out.push(*b);
                i += 1;
            }
            None => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn handle(
    request: Request<Incoming>,
    store: Arc<Mutex<Store>>,
    changed: Arc<Notify>,
) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let raw_query = request.uri().query().unwrap_or_default().to_string();
    let content_type = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    {
        let mut s = lock(&store);
        s.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: raw_query.clone(),
            content_type: content_type.clone(),
        });
        if s.down {
            return error(503, "ServiceUnavailable", "the fake API server is down");
        }
    }
    if method == "GET"
        && let Some((namespace, pod, port, on_pod)) = crate::proxy::parse(&path)
    {
        let target = Target {
            api_version: "v1".into(),
            plural: "pods".into(),
            namespace: Some(namespace.into()),
            name: Some(pod.into()),
        };
        let Some(object) = lock(&store).get(&target).cloned() else {
            return error(404, "NotFound", &format!("pods \"{pod}\" not found"));
        };
        let path_and_query = if raw_query.is_empty() {
            on_pod
        } else {
            format!("{on_pod}?{raw_query}")
        };
        return match crate::proxy::get(&object, port, &path_and_query).await {
            Ok((code, body)) => {
                let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
                *response.status_mut() =
                    hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
                response
            }
            Err(why) => error(
                503,
                "ServiceUnavailable",
                &format!("error trying to reach service: {why}"),
            ),
        };
    }
    let q = query(&raw_query);
    let Some(target) = Target::parse(&path) else {
        return error(404, "NotFound", &format!("no route for {path}"));
    };
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    match (method.as_str(), &target.name) {
        ("GET", _) if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) => {
            watch(target, &q, selector, store, changed)
        }
        ("GET", Some(name)) => match lock(&store).get(&target) {
            Some(object) => json_response(200, object),
            None => error(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", target.plural),
            ),
        },
        ("GET", None) => {
            let s = lock(&store);
            let items = s.list(&target, &selector);
            json_response(
                200,
                &json!({
                    "apiVersion": target.api_version,
                    "kind": format!("{}List", target.kind()),
                    "metadata": {"resourceVersion": s.rv.to_string()},
                    "items": items,
                }),
            )
        }
        ("PATCH", Some(_)) => {
            if !content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/apply-patch+yaml"))
            {
                return error(
                    415,
                    "UnsupportedMediaType",
                    "only server-side apply (application/apply-patch+yaml) is implemented",
                );
            }
            let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()) else {
                return error(
                    400,
                    "BadRequest",
                    "fieldManager is required for apply patch",
                );
            };
            let Ok(body) = request.into_body().collect().await else {
                return error(400, "BadRequest", "cannot read the body");
            };
            let Ok(applied) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
                return error(400, "BadRequest", "the body is not JSON");
            };
            let force = q.get("force").is_some_and(|f| f == "true");
            let dry_run = q.contains_key("dryRun");
            let result = lock(&store).apply(&target, applied, manager, force, dry_run);
            changed.notify_waiters();
            match result {
                Ok((object, created)) => {
                    json_response(if created && !dry_run { 201 } else { 200 }, &object)
                }
                Err((code, body)) => json_response(code, &body),
            }
        }
        ("DELETE", Some(name)) => {
            let dry_run = q.contains_key("dryRun");
            let mut s = lock(&store);
            let found = if dry_run {
                s.get(&target).cloned()
            } else {
                s.delete(&target)
            };
            drop(s);
            changed.notify_waiters();
            match found {
                Some(object) => json_response(200, &object),
                None => error(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", target.plural),
                ),
            }
        }
        _ => error(
            405,
            "MethodNotAllowed",
            &format!("{method} {path} is not implemented"),
        ),
    }
}

/// A body fed from a channel: one chunk per watch event.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": kind, "object": object})))
}

fn watch(
    target: Target,
    q: &HashMap<String, String>,
    selector: String,
    store: Arc<Mutex<Store>>,
    changed: Arc<Notify>,
) -> Response<Body> {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (epoch, gone, initial) = {
        let s = lock(&store);
        let gone = from != 0 && from < s.compacted;
        // resourceVersion 0 (or none): start from the current state.
        let initial = if from == 0 {
            Some((s.list(&target, &selector), s.rv))
        } else {
            None
        };
        (s.watch_epoch, gone, initial)
    };
    tokio::spawn(async move {
        if gone {
            let _ = tx
                .send(line(
                    "ERROR",
                    &status(410, "Expired", &format!("too old resource version: {from}")),
                ))
                .await;
            return;
        }
        let mut last = from;
        if let Some((items, rv)) = initial {
            for item in &items {
                if tx.send(line("ADDED", item)).await.is_err() {
                    return;
                }
            }
            last = rv;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = changed.notified();
            let (events, rv) = {
                let s = lock(&store);
                if s.watch_epoch != epoch || s.down {
                    return;
                }
                (s.events_since(last, &target, &selector), s.rv)
            };
            for event in events {
                last = event.rv;
                if tx.send(line(event.kind, &event.object)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    // Idle: tell the client how far it is up to date.
                    if bookmarks {
                        last = last.max(rv);
                        let bookmark = json!({
                            "apiVersion": target.api_version,
                            "kind": target.kind(),
                            "metadata": {"resourceVersion": last.to_string()},
                        });
                        if tx.send(line("BOOKMARK", &bookmark)).await.is_err() {
                            return;
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let mut response = Response::new(ChannelBody(rx).boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
