//! The echo answer: the JSON every request gets back (who answered, and the method, path,
//! query and headers that arrived), and the query knobs that change it — `delay`,
//! `fail` and `status` — so a mesh's timeouts, retries and outlier handling can be
//! exercised without writing a single app.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::server::App;

/// The body of every answer.
pub type Body = Full<Bytes>;

/// Answers `request` with the echo JSON, after applying its query knobs.
pub async fn answer(app: &App, request: Request<Incoming>) -> Response<Body> {
    let knobs = match Knobs::parse(request.uri().query()) {
        Ok(knobs) => knobs,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let mut echo = echo(app, &request);
    if let Some(delay) = knobs.delay {
        tokio::time::sleep(delay).await;
    }
    if knobs
        .fail
        .is_some_and(|probability| fastrand::f64() < probability)
    {
        echo.insert("failed".to_owned(), Value::Bool(true));
        return json(StatusCode::SERVICE_UNAVAILABLE, &Value::Object(echo));
    }
    json(knobs.status.unwrap_or(StatusCode::OK), &Value::Object(echo))
}

/// The echo object: `service`, `subset`, `method`, `path`, `query`, `headers`.
pub fn echo<B>(app: &App, request: &Request<B>) -> Map<String, Value> {
    let mut echo = Map::new();
    echo.insert("service".to_owned(), Value::from(app.service.as_str()));
    echo.insert("subset".to_owned(), app.subset.as_deref().into());
    echo.insert("method".to_owned(), Value::from(request.method().as_str()));
    echo.insert("path".to_owned(), Value::from(request.uri().path()));
    echo.insert("query".to_owned(), request.uri().query().into());
    echo.insert("headers".to_owned(), headers(request.headers()));
    echo
}

/// Headers as a JSON object of lower-case names; repeated values joined with ", ".
fn headers(headers: &HeaderMap) -> Value {
    let mut joined: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        joined
            .entry(name.as_str())
            .and_modify(|values| {
                values.push_str(", ");
                values.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    Value::Object(
        joined
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect(),
    )
}

/// A JSON response with `status`.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// The query parameters that change the answer, applied in this order.
#[derive(Debug, Default, PartialEq)]
struct Knobs {
    /// Sleep this long before answering.
    delay: Option<Duration>,
    /// Answer 503 with this probability.
    fail: Option<f64>,
    /// Answer with this status.
    status: Option<StatusCode>,
}

impl Knobs {
    /// Reads the knobs from a query string; other parameters are ignored and a repeated
    /// knob takes its last value. The error names the bad parameter.
    fn parse(query: Option<&str>) -> Result<Knobs, String> {
        let mut knobs = Knobs::default();
        for pair in query.unwrap_or("").split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "delay" => knobs.delay = Some(parse_delay(value)?),
                "fail" => knobs.fail = Some(parse_fail(value)?),
                "status" => knobs.status = Some(parse_status(value)?),
                _ => {}
            }
        }
        Ok(knobs)
    }
}

/// `200ms`, `1s`, `2m`, `500us` (fractions allowed, e.g. `1.5s`).
fn parse_delay(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!("bad delay `{value}`: expected a duration with a unit (us, ms, s, m), e.g. 200ms")
    };
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "us" | "µs" => number / 1_000_000.0,
        "ms" => number / 1_000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// A probability between 0 and 1.
fn parse_fail(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(probability) if (0.0..=1.0).contains(&probability) => Ok(probability),
        _ => Err(format!(
            "bad fail `{value}`: expected a probability between 0 and 1, e.g. 0.3"
        )),
    }
}

/// A final status code, 200 to 599.
fn parse_status(value: &str) -> Result<StatusCode, String> {
    match value.parse::<u16>() {
        Ok(code @ 200..=599) => StatusCode::from_u16(code).map_err(|error| error.to_string()),
        _ => Err(format!(
            "bad status `{value}`: expected an HTTP status code between 200 and 599"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_take_units() {
        assert_eq!(parse_delay("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_delay("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_delay("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_delay("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_delay("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["x", "", "200", "ms", "-1s", "1h", "1e999s", "1..2s"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn knobs_name_the_bad_parameter() {
        assert!(Knobs::parse(Some("status=abc")).is_err_and(|e| e.contains("status")));
        assert!(Knobs::parse(Some("fail=2")).is_err_and(|e| e.contains("fail")));
        assert!(Knobs::parse(Some("fail=NaN")).is_err());
        assert!(Knobs::parse(Some("status=99")).is_err());
        assert!(Knobs::parse(Some("delay=x")).is_err_and(|e| e.contains("delay")));
        assert_eq!(
            Knobs::parse(Some("a=b&status=418&fail=0&&x")),
            Ok(Knobs {
                delay: None,
                fail: Some(0.0),
                status: Some(StatusCode::IM_A_TEAPOT),
            })
        );
        assert_eq!(Knobs::parse(None), Ok(Knobs::default()));
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("x-a", HeaderValue::from_static("2"));
        map.append("X-B", HeaderValue::from_static("3"));
        assert_eq!(
            headers(&map),
            serde_json::json!({"x-a": "1, 2", "x-b": "3"})
        );
    }
}
