//! The tap (`GET /tap` on the admin listener, what `meshc tap` reads): a live stream of the
//! requests and opaque TCP connections passing this agent, one JSON object per line with
//! the access log's fields ([`crate::access_log::Entry`]), as `linkerd viz tap` shows them.
//!
//! It costs nothing while no one taps: the request path asks [`Tap::active`] (one atomic
//! load) and records nothing more when it is false. While someone taps, a finished
//! request's entry is published to a broadcast channel; each tap's task filters it
//! (`?direction=`, `to=`, `method=`, `path=`), writes it as a line and stops after
//! `max=` lines or when the client goes. Everything is bounded: at most [`MAX_TAPS`]
//! streams at once (more are refused with 503), [`BACKLOG`] entries waiting per stream;
//! a tap that falls behind loses entries — counted in `mesh_tap_events_dropped_total`
//! and told to the client as a `{"dropped": N}` line — instead of slowing requests or
//! growing memory. The admin listener is the only way in: taps are for operators.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{broadcast, mpsc, watch};

use crate::access_log::Entry;
use crate::http::{Body, BoxError, boxed, error_response};

/// Taps streaming at once, at most.
pub const MAX_TAPS: usize = 4;
/// Entries waiting for one tap's client, at most.
pub const BACKLOG: usize = 1024;
/// Lines buffered between a tap's task and its response body.
const LINES: usize = 16;

/// The agent's tap: who is listening, and the channel finished requests go to.
pub struct Tap {
    taps: AtomicUsize,
    entries: broadcast::Sender<Arc<Entry>>,
    dropped: Counter,
    /// True once the agent shuts down: streams end so draining need not wait for them.
    stopping: watch::Sender<bool>,
}

impl Tap {
    /// A tap counting the entries its listeners lose in `dropped`.
    pub fn new(dropped: Counter) -> Tap {
        Tap {
            taps: AtomicUsize::new(0),
            entries: broadcast::channel(BACKLOG).0,
            dropped,
            stopping: watch::Sender::new(false),
        }
    }

    /// Ends every stream (the agent is shutting down) and refuses new ones.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Whether anyone is tapping: the request path records entries only then.
    pub fn active(&self) -> bool {
        self.taps.load(Ordering::Relaxed) > 0
    }

    /// Hands `entry` to the taps (dropped when none listens any more).
    pub fn publish(&self, entry: Arc<Entry>) {
        let _ = self.entries.send(entry);
    }

    /// Answers `GET /tap?{query}`: a stream of the matching entries as JSON lines, or why
    /// not (400 for a bad query, 503 when [`MAX_TAPS`] taps are streaming).
    pub fn subscribe(self: &Arc<Self>, query: Option<&str>) -> Response<Body> {
        let filter = match Filter::parse(query.unwrap_or("")) {
            Ok(filter) => filter,
            Err(why) => return error_response(StatusCode::BAD_REQUEST, "bad-tap", &why),
        };
        if *self.stopping.borrow() {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "the agent is shutting down",
            );
        }
        let admitted = self
            .taps
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_TAPS).then_some(n + 1)
            });
        if admitted.is_err() {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "tap-busy",
                &format!("{MAX_TAPS} taps are streaming already; try again when one ends"),
            );
        }
        let listening = Listening(Arc::clone(self));
        let entries = self.entries.subscribe();
        let (lines, body) = mpsc::channel(LINES);
        let stopping = self.stopping.subscribe();
        tokio::spawn(stream(listening, entries, filter, lines, stopping));
        let mut response = Response::new(boxed(Lines(body)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        response
    }
}

/// One tap streaming: counted in [`Tap::taps`] until dropped.
struct Listening(Arc<Tap>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.taps.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Forwards matching entries to a tap's client until it goes or has `max` of them.
async fn stream(
    listening: Listening,
    mut entries: broadcast::Receiver<Arc<Entry>>,
    filter: Filter,
    lines: mpsc::Sender<Bytes>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut sent = 0_u64;
    loop {
        let line = tokio::select! {
            () = lines.closed() => break,
            _ = stopping.wait_for(|stopping| *stopping) => break,
            received = entries.recv() => match received {
                Ok(entry) if filter.matches(&entry) => match serde_json::to_vec(&*entry) {
                    Ok(mut line) => {
                        line.push(b'\n');
                        sent += 1;
                        line
                    }
                    Err(_) => continue,
                },
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    listening.0.dropped.inc_by(missed);
                    format!("{{\"dropped\":{missed}}}\n").into_bytes()
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if lines.send(Bytes::from(line)).await.is_err() {
            break;
        }
        if filter.max.is_some_and(|max| sent >= max) {
            break;
        }
    }
}

/// Which entries a tap wants.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    /// `inbound`, `outbound` or `gateway`.
    direction: Option<String>,
    /// A service: `name` or `namespace/name`, matched against the backend (the called
    /// service, or this workload's for inbound) and the authority's host.
    to: Option<String>,
    /// The method, exactly (case-insensitive).
    method: Option<String>,
    /// A path prefix.
    path: Option<String>,
    /// Stop after this many lines.
    max: Option<u64>,
}

impl Filter {
    /// Reads `direction=…&to=…&method=…&path=…&max=…` (URL-encoded; unknown keys refused).
    fn parse(query: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match &*key {
                "direction" => {
                    if !matches!(&*value, "inbound" | "outbound" | "gateway") {
                        return Err(format!(
                            "direction must be inbound, outbound or gateway, not {value:?}"
                        ));
                    }
                    filter.direction = Some(value);
                }
                "to" => filter.to = Some(value),
                "method" => filter.method = Some(value.to_ascii_uppercase()),
                "path" => {
                    if !value.starts_with('/') {
                        return Err(format!("path must start with `/`, not {value:?}"));
                    }
                    filter.path = Some(value);
                }
                "max" => match value.parse() {
                    Ok(max) if max > 0 => filter.max = Some(max),
                    _ => return Err(format!("max must be a positive number, not {value:?}")),
                },
                other => {
                    return Err(format!(
                        "unknown tap parameter {other:?} (direction, to, method, path, max)"
                    ));
                }
            }
        }
        Ok(filter)
    }

    fn matches(&self, entry: &Entry) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        same(&self.direction, Some(entry.direction))
            && same(&self.method, entry.method.as_deref())
            && self
                .path
                .as_deref()
                .is_none_or(|prefix| entry.path.as_deref().is_some_and(|p| p.starts_with(prefix)))
            && self.to.as_deref().is_none_or(|to| names(entry, to))
    }
}

/// Whether `to` (`name` or `namespace/name`) names the entry's backend service or its
/// authority's host.
fn names(entry: &Entry, to: &str) -> bool {
    // `namespace/name.subset`: the service is before the subset.
    let service = entry
        .backend
        .as_deref()
        .map(|b| b.split_once('.').map_or(b, |(service, _)| service));
    let service_matches =
        service.is_some_and(|s| s == to || s.rsplit_once('/').is_some_and(|(_, name)| name == to));
    let host = entry.authority.as_deref().map(|a| {
        a.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(a, |(host, _)| host)
    });
    let host_matches = host.is_some_and(|h| {
        h == to
            || h.split('.').next() == Some(to)
            || to
                .split_once('/')
                .is_some_and(|(ns, name)| h == name || h.starts_with(&format!("{name}.{ns}")))
    });
    service_matches || host_matches
}

/// A tap's response body: the lines its task sends.
struct Lines(mpsc::Receiver<Bytes>);

impl HttpBody for Lines {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|line| Ok(Frame::data(line))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(direction: &'static str, backend: &str, authority: &str, path: &str) -> Entry {
        Entry {
            direction,
            method: Some("GET".into()),
            path: Some(path.into()),
            backend: Some(backend.into()),
            authority: Some(authority.into()),
            ..Entry::default()
        }
    }

    #[test]
    fn queries_parse_and_bad_ones_say_why() {
        let filter = Filter::parse(
            "direction=outbound&to=bookinfo%2Freviews&method=get&path=%2Freviews&max=3",
        )
        .expect("valid");
        assert_eq!(
            filter,
            Filter {
                direction: Some("outbound".into()),
                to: Some("bookinfo/reviews".into()),
                method: Some("GET".into()),
                path: Some("/reviews".into()),
                max: Some(3),
            }
        );
        assert_eq!(Filter::parse("").expect("empty"), Filter::default());
        for (query, says) in [
            ("direction=sideways", "direction must be"),
            ("path=reviews", "must start with `/`"),
            ("max=0", "positive"),
            ("max=lots", "positive"),
            ("colour=blue", "unknown tap parameter \"colour\""),
        ] {
            let error = Filter::parse(query).expect_err(query);
            assert!(error.contains(says), "{query}: {error}");
        }
    }

    #[test]
    fn entries_match_by_service_name_host_path_and_direction() {
        let outbound = entry(
            "outbound",
            "bookinfo/reviews.v2",
            "reviews:9080",
            "/reviews/1",
        );
        let to = |to: &str| Filter {
            to: Some(to.into()),
            ..Filter::default()
        };
        assert!(to("reviews").matches(&outbound));
        assert!(to("bookinfo/reviews").matches(&outbound));
        assert!(!to("ratings").matches(&outbound));
        assert!(!to("other/reviews").matches(&entry("outbound", "bookinfo/reviews", "x", "/")));
        // Unrouted (passthrough) requests match by their host.
        let passthrough = Entry {
            backend: None,
            ..entry("outbound", "", "reviews.bookinfo.svc:9080", "/")
        };
        assert!(to("reviews").matches(&passthrough));
        assert!(to("bookinfo/reviews").matches(&passthrough));
        let path = Filter {
            path: Some("/reviews".into()),
            direction: Some("outbound".into()),
            ..Filter::default()
        };
        assert!(path.matches(&outbound));
        assert!(!path.matches(&entry("inbound", "bookinfo/reviews", "r", "/reviews/1")));
        assert!(!path.matches(&entry("outbound", "bookinfo/reviews", "r", "/ratings")));
        let tcp = Entry {
            direction: "outbound",
            ..Entry::default()
        };
        assert!(!path.matches(&tcp), "TCP connections have no path");
        assert!(Filter::default().matches(&tcp));
    }

    #[tokio::test]
    async fn a_tap_streams_matching_entries_and_is_counted_while_it_lasts() {
        let tap = Arc::new(Tap::new(Counter::default()));
        assert!(!tap.active());
        let response = tap.subscribe(Some("path=/a&max=2"));
        assert_eq!(response.status(), StatusCode::OK);
        assert!(tap.active());
        for path in ["/b", "/a/1", "/a/2", "/a/3"] {
            tap.publish(Arc::new(entry("inbound", "ns/s", "s", path)));
        }
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&body)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["path"], "/a/1");
        assert_eq!(lines[1]["path"], "/a/2");
        // The task ended after `max` lines: the tap is free again.
        for _ in 0..100 {
            if !tap.active() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!tap.active());
    }

    #[tokio::test]
    async fn taps_beyond_the_limit_are_refused_and_a_slow_one_loses_entries() {
        let dropped = Counter::default();
        let tap = Arc::new(Tap::new(dropped.clone()));
        let streams: Vec<_> = (0..MAX_TAPS).map(|_| tap.subscribe(None)).collect();
        assert_eq!(
            tap.subscribe(None).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // No one reads: the first stream's backlog overflows.
        for i in 0..(BACKLOG + LINES + 100) {
            tap.publish(Arc::new(entry("inbound", "ns/s", "s", &format!("/{i}"))));
            tokio::task::yield_now().await;
        }
        let mut body = streams.into_iter().next().expect("one").into_body();
        let mut dropped_line = None;
        while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
            let line = frame.into_data().unwrap_or_default();
            if line.starts_with(b"{\"dropped\"") {
                dropped_line = Some(line);
                break;
            }
        }
        assert!(dropped_line.is_some(), "the client is told it lost entries");
        assert!(dropped.get() > 0);
    }
}
