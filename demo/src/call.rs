//! `ANY /call/<service>/<rest...>`: calls another service the way a meshed app does —
//! origin-form `/<rest>` with `Host: <service>` sent to the agent's outbound listener
//! (`--sidecar`), or, without one, to `<service>` itself (a name or `IP:PORT`), which
//! transparent capture hands to the agent — and wraps the downstream's answer in the echo
//! JSON. The local query is not applied here: it is passed on to the downstream call
//! unchanged.

use std::error::Error;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::answer::{self, Body};
use crate::server::App;

/// How long a call (connecting, the answer and its body) may take before it is a 504.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The pooled HTTP/1.1 client to the sidecar.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Incoming>;

/// Headers that belong to one connection and are never forwarded.
const HOP_BY_HOP: [&str; 5] = [
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A client that keeps connections to the sidecar alive for reuse.
pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Whether `path` asks for a call.
pub fn is_call(path: &str) -> bool {
    path == "/call" || path.starts_with("/call/")
}

/// Calls the service named in the path through the sidecar and answers with its status.
pub async fn call(app: &App, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let Some((service, rest)) = split(path) else {
        return answer::error(
            StatusCode::BAD_REQUEST,
            "a call needs a service: /call/<service>/<path>",
        );
    };
    let service = service.to_owned();
    let Ok(host) = HeaderValue::from_str(&service) else {
        return answer::error(
            StatusCode::BAD_REQUEST,
            &format!("`{service}` is not a valid service authority"),
        );
    };
    let target = match request.uri().query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let uri = match Uri::builder()
        .scheme("http")
        .authority(
            app.sidecar
                .map_or_else(|| service.clone(), |sidecar| sidecar.to_string()),
        )
        .path_and_query(target.as_str())
        .build()
    {
        Ok(uri) => uri,
        Err(error) => {
            return answer::error(
                StatusCode::BAD_REQUEST,
                &format!("cannot call `{target}`: {error}"),
            );
        }
    };
    let mut echo = answer::echo(app, &request);
    let (parts, body) = request.into_parts();
    let mut downstream = Request::new(body);
    *downstream.method_mut() = parts.method;
    *downstream.uri_mut() = uri;
    *downstream.headers_mut() = forwarded(parts.headers);
    downstream.headers_mut().insert(HOST, host);

    let sent = tokio::time::timeout(TIMEOUT, send(&app.client, downstream)).await;
    let (status, headers, body) = match sent {
        Ok(Ok(answer)) => answer,
        Ok(Err(CallError::Connect(error))) => {
            return answer::error(
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {}: {}", via(app, &service), chain(&error)),
            );
        }
        Ok(Err(CallError::Failed(error))) => {
            return answer::error(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "the call to {service} through {} failed: {error}",
                    via(app, &service)
                ),
            );
        }
        Err(_elapsed) => {
            return answer::error(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the call to {service} timed out after {}s",
                    TIMEOUT.as_secs()
                ),
            );
        }
    };
    let mesh_error = headers
        .get("mesh-error")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let body = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    echo.insert(
        "call".to_owned(),
        serde_json::json!({
            "service": service,
            "status": status.as_u16(),
            "mesh_error": mesh_error,
            "body": body,
        }),
    );
    answer::json(status, &Value::Object(echo))
}

/// What a call connects to, for messages.
fn via(app: &App, service: &str) -> String {
    match app.sidecar {
        Some(sidecar) => format!("the sidecar at {sidecar}"),
        None => service.to_string(),
    }
}

/// `/call/<service>/<rest>` → (`service`, `rest`); `rest` may be empty.
fn split(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/call/")?;
    let (service, rest) = after.split_once('/').unwrap_or((after, ""));
    (!service.is_empty()).then_some((service, rest))
}

/// The incoming headers minus hop-by-hop ones (including those the `Connection` header
/// names), `host` and `content-length`.
fn forwarded(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
    headers.remove(HOST);
    headers.remove(CONTENT_LENGTH);
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
    headers
}

/// Why a call got no answer.
enum CallError {
    /// The sidecar could not be reached.
    Connect(hyper_util::client::legacy::Error),
    /// The exchange failed after connecting.
    Failed(String),
}

/// Sends `request` and reads the whole answer.
async fn send(
    client: &Client,
    request: Request<Incoming>,
) -> Result<(StatusCode, HeaderMap, bytes::Bytes), CallError> {
    let response = client.request(request).await.map_err(|error| {
        if error.is_connect() {
            CallError::Connect(error)
        } else {
            CallError::Failed(chain(&error))
        }
    })?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|error| CallError::Failed(format!("reading the answer: {}", chain(&error))))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// An error and its sources, joined with ": ".
fn chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_rest() {
        assert_eq!(split("/call/reviews/x/y"), Some(("reviews", "x/y")));
        assert_eq!(split("/call/reviews"), Some(("reviews", "")));
        assert_eq!(split("/call/reviews/"), Some(("reviews", "")));
        assert_eq!(
            split("/call/reviews.bookinfo/call/ratings/ratings/1"),
            Some(("reviews.bookinfo", "call/ratings/ratings/1"))
        );
        assert_eq!(split("/call/"), None);
        assert_eq!(split("/call"), None);
    }

    #[test]
    fn hop_by_hop_host_and_length_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "secret"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("host", "demo"),
            ("content-length", "3"),
            ("end-user", "jason"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let kept = forwarded(headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["end-user"]);
    }
}
