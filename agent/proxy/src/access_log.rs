//! The access log (`telemetry { access_log json }`): one JSON object per line on standard
//! output for each HTTP request the agent handles (inbound, outbound, gateway) and each
//! opaque TCP connection, with Envoy's default access-log fields plus the mesh's own
//! (`direction`, `rule`, `backend`, `decision`, `peer`).
//!
//! Whether it is on is read from the request's config snapshot, once per request, so a
//! reload turns it on or off for new requests; when off nothing else is done. A request's
//! line is written when its response body ends (or is dropped), so the byte counts and the
//! duration cover the whole exchange.
//!
//! The same entries feed the tap ([`crate::tap`]) while someone taps: [`Sinks`] says, per
//! request, where its entry goes, and with neither nothing is recorded.
//!
//! Lines go through a bounded queue to one writer thread that writes each with a single
//! `write_all` on the locked stdout: a slow reader of stdout never blocks the request
//! path. When the queue is full the line is dropped and counted
//! (`mesh_access_log_dropped_total`) — losing log lines beats adding latency.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use mesh_config::schema::AccessLog as Format;
use prometheus_client::metrics::counter::Counter;

use crate::error::ProxyError;
use crate::http::{Body, BoxError, MESH_ERROR, boxed};
use crate::stack::Answer;
use crate::state::Snapshot;
use crate::tap::Tap;

/// Lines waiting for the writer at most.
const QUEUE: usize = 8192;

/// Whether `snapshot`'s config turns the access log on.
pub fn enabled(snapshot: &Snapshot) -> bool {
    snapshot
        .config
        .config
        .source()
        .mesh
        .telemetry
        .is_some_and(|t| t.access_log == Format::Json)
}

/// Where a request's (or connection's) entry goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sinks {
    /// The access log (the config's `access_log json`).
    pub log: bool,
    /// The tap (someone is tapping).
    pub tap: bool,
}

impl Sinks {
    /// Whether the entry goes anywhere: when not, nothing is recorded.
    pub fn any(self) -> bool {
        self.log || self.tap
    }
}

/// Where finished entries go: the access log's writer (started by the first line) and
/// the tap.
pub struct Writer {
    queue: OnceLock<Option<SyncSender<Vec<u8>>>>,
    dropped: Counter,
    tap: Arc<Tap>,
}

impl Writer {
    /// A writer counting dropped lines in `dropped`, publishing to `tap`.
    pub fn new(dropped: Counter, tap: Arc<Tap>) -> Writer {
        Writer {
            queue: OnceLock::new(),
            dropped,
            tap,
        }
    }

    /// Where an entry of a request handled on `snapshot` goes, now.
    pub fn sinks(&self, snapshot: Option<&Snapshot>) -> Sinks {
        Sinks {
            log: snapshot.is_some_and(enabled),
            tap: self.tap.active(),
        }
    }

    /// Sends a finished `entry` to `sinks`.
    pub fn finish(&self, sinks: Sinks, entry: Entry) {
        if sinks.log {
            self.write(&entry);
        }
        if sinks.tap && self.tap.active() {
            self.tap.publish(Arc::new(entry));
        }
    }

    /// Queues `entry` as one line; drops (and counts) it when the queue is full.
    fn write(&self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
            let started = std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || {
                    for line in rx {
                        let mut stdout = std::io::stdout().lock();
                        if stdout
                            .write_all(&line)
                            .and_then(|()| stdout.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(error) => {
                    tracing::error!(%error, "cannot start the access-log writer; access log off");
                    None
                }
            }
        });
        match queue.as_ref().map(|q| q.try_send(line)) {
            Some(Ok(())) => {}
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                self.dropped.inc();
            }
        }
    }
}

/// One access-log line. Envoy's default fields (as `snake_case` keys), then the mesh's.
#[derive(Debug, Default, serde::Serialize)]
pub struct Entry {
    /// When the request (or connection) started, RFC 3339 UTC with milliseconds.
    pub start_time: String,
    /// The method (`null` for TCP).
    pub method: Option<String>,
    /// The path and query as the client sent them.
    pub path: Option<String>,
    /// `HTTP/1.1`, `HTTP/2` … or `TCP`.
    pub protocol: &'static str,
    /// The response status (0: no response was sent).
    pub response_code: u16,
    /// The agent's `mesh-error` cause when it answered itself (Envoy's response flags).
    pub response_flags: Option<String>,
    /// Request body bytes (client to server; for TCP, bytes sent by the client).
    pub bytes_received: u64,
    /// Response body bytes (for TCP, bytes sent back to the client).
    pub bytes_sent: u64,
    /// Milliseconds from the request's start to the response's end.
    pub duration: u64,
    /// Milliseconds until the upstream's response head arrived.
    pub upstream_service_time: Option<u64>,
    /// The request's `x-forwarded-for`.
    pub x_forwarded_for: Option<String>,
    /// The request's `user-agent`.
    pub user_agent: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The host the request named.
    pub authority: Option<String>,
    /// The endpoint the request (or connection) went to.
    pub upstream_host: Option<String>,
    /// `inbound`, `outbound` or `gateway`.
    pub direction: &'static str,
    /// The route rule that matched.
    pub rule: Option<String>,
    /// The backend: `namespace/name[.subset]`.
    pub backend: Option<String>,
    /// Inbound: `allow` or `deny`, with the deciding policies.
    pub decision: Option<String>,
    /// The verified SPIFFE id of the caller (inbound).
    pub peer: Option<String>,
    /// The client's address.
    pub downstream_remote_address: Option<String>,
}

/// The routing decision of a request.
#[derive(Clone, Debug, Default)]
pub struct Routed {
    /// The rule that matched.
    pub rule: Option<String>,
    /// `namespace/name[.subset]`.
    pub backend: Option<String>,
}

/// What the layers learn about a logged request (its routing decision, its authorization)
/// for its line, whether the request is answered or fails. It travels in the request's
/// extensions (as a [`NoteSlot`]) only while the log is on.
///
/// The request's trace span ([`crate::trace`]) reads the same note: a request that is
/// logged and traced carries one note for both.
#[derive(Debug, Default)]
pub struct Note {
    routed: OnceLock<Routed>,
    decision: OnceLock<String>,
    tries: AtomicU64,
    upstream_identity: OnceLock<String>,
}

impl Note {
    /// The routing decision, once made.
    pub fn routing(&self) -> Option<&Routed> {
        self.routed.get()
    }

    /// The inbound authorization decision, once made.
    pub fn decision(&self) -> Option<&str> {
        self.decision.get().map(String::as_str)
    }

    /// Counts a try sent to an endpoint (mirrored copies are not tries).
    pub fn tried(&self) {
        self.tries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the SPIFFE id the called endpoints must present (mTLS; the first try's).
    pub fn upstream_identity(&self, identity: &str) {
        if self.upstream_identity.get().is_none() {
            let _ = self.upstream_identity.set(identity.to_string());
        }
    }

    /// The SPIFFE id the called endpoints had to present, when called over mTLS.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream_identity.get().map(String::as_str)
    }

    /// The tries sent so far: 1, or more when retried.
    pub fn tries(&self) -> u64 {
        self.tries.load(Ordering::Relaxed)
    }

    /// Records the routing decision (the first one: a request is routed once).
    pub fn routed(&self, routed: Routed) {
        let _ = self.routed.set(routed);
    }

    /// Records the inbound authorization decision: `allow: …`, `deny: …` (with the
    /// deciding policies), or `audit: …` for a deny that audit mode let through.
    pub fn decided(&self, decision: &mesh_config::AuthzDecision) {
        let verdict = match (decision.decision, decision.enforced) {
            (mesh_config::Verdict::Allow, _) => "allow",
            (mesh_config::Verdict::Deny, true) => "deny",
            (mesh_config::Verdict::Deny, false) => "audit",
        };
        let _ = self
            .decision
            .set(format!("{verdict}: {}", decision.reason()));
    }
}

/// A request's [`Note`], in its extensions.
#[derive(Clone, Debug)]
pub struct NoteSlot(pub Arc<Note>);

/// The note of a logged request, from its extensions (`None`: the log is off).
pub fn note(extensions: &http::Extensions) -> Option<&Note> {
    extensions.get::<NoteSlot>().map(|slot| &*slot.0)
}

/// The endpoint a response came from, put on it by the endpoint layer.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamHost(pub SocketAddr);

/// Runs `handle` on `request` and answers its response, or `respond`'s for its error;
/// records the exchange (arriving on `direction` from `remote`, sent by `peer`) for
/// `sinks`.
#[allow(clippy::too_many_arguments)]
pub async fn exchange<H, F, R>(
    writer: &Arc<Writer>,
    sinks: Sinks,
    direction: &'static str,
    request: Request<Body>,
    remote: Option<SocketAddr>,
    peer: Option<&mesh_identity::SpiffeId>,
    handle: H,
    respond: R,
) -> Response<Body>
where
    H: FnOnce(Request<Body>) -> F,
    F: Future<Output = Answer>,
    R: FnOnce(&ProxyError) -> Response<Body>,
{
    if !sinks.any() {
        return handle(request)
            .await
            .unwrap_or_else(|error| respond(&error));
    }
    let (started, request) =
        Started::request(direction, request, remote, peer.map(|p| p.to_string()));
    let response = handle(request)
        .await
        .unwrap_or_else(|error| respond(&error));
    started.respond(response, Arc::clone(writer), sinks)
}

/// A request being logged: what was known when it arrived.
pub struct Started {
    at: SystemTime,
    clock: Instant,
    entry: Entry,
    received: Arc<AtomicU64>,
    note: Arc<Note>,
}

fn header<B>(request: &Request<B>, name: &str) -> Option<String> {
    let values: Vec<&str> = request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

impl Started {
    /// Starts logging `request` (its body counted from now on) arriving on `direction`
    /// from `remote`, sent by `peer`.
    pub fn request(
        direction: &'static str,
        request: Request<Body>,
        remote: Option<SocketAddr>,
        peer: Option<String>,
    ) -> (Started, Request<Body>) {
        let received = Arc::new(AtomicU64::new(0));
        let mut request = request;
        // A traced request already has its note: both read the same one.
        let note = match request.extensions().get::<NoteSlot>() {
            Some(slot) => Arc::clone(&slot.0),
            None => {
                let note = Arc::new(Note::default());
                request.extensions_mut().insert(NoteSlot(Arc::clone(&note)));
                note
            }
        };
        let entry = Entry {
            method: Some(request.method().as_str().to_string()),
            path: request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string()),
            protocol: protocol(request.version()),
            x_forwarded_for: header(&request, "x-forwarded-for"),
            user_agent: header(&request, "user-agent"),
            request_id: header(&request, "x-request-id"),
            authority: crate::http::authority(&request).map(str::to_string),
            direction,
            peer,
            downstream_remote_address: remote.map(|r| r.to_string()),
            ..Entry::default()
        };
        let counted = request.map(|body| {
            boxed(Counting {
                inner: body,
                count: Arc::clone(&received),
                _done: None,
            })
        });
        (
            Started {
                at: SystemTime::now(),
                clock: Instant::now(),
                entry,
                received,
                note,
            },
            counted,
        )
    }

    /// Records the exchange for `sinks` once `response`'s body ends.
    pub fn respond(
        self,
        response: Response<Body>,
        writer: Arc<Writer>,
        sinks: Sinks,
    ) -> Response<Body> {
        let upstream_service_time = millis(self.clock.elapsed());
        let Started {
            at,
            clock,
            mut entry,
            received,
            note,
        } = self;
        entry.start_time = rfc3339(at);
        entry.response_code = response.status().as_u16();
        entry.response_flags = response
            .headers()
            .get(MESH_ERROR)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let extensions = response.extensions();
        if let Some(routed) = note.routed.get() {
            entry.rule.clone_from(&routed.rule);
            entry.backend.clone_from(&routed.backend);
        }
        if let Some(UpstreamHost(addr)) = extensions.get::<UpstreamHost>() {
            entry.upstream_host = Some(addr.to_string());
            entry.upstream_service_time = Some(upstream_service_time);
        }
        entry.decision = note.decision.get().cloned();
        let sent = Arc::new(AtomicU64::new(0));
        let done = Done {
            entry: Some(entry),
            clock,
            received,
            sent: Arc::clone(&sent),
            writer,
            sinks,
        };
        response.map(|body| {
            boxed(Counting {
                inner: body,
                count: sent,
                _done: Some(done),
            })
        })
    }
}

/// Records a finished opaque TCP connection for `sinks`.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    writer: &Writer,
    sinks: Sinks,
    direction: &'static str,
    started: SystemTime,
    duration: Duration,
    service: &str,
    peer: Option<String>,
    upstream: Option<SocketAddr>,
    received: u64,
    sent: u64,
) {
    writer.finish(
        sinks,
        Entry {
            start_time: rfc3339(started),
            protocol: "TCP",
            bytes_received: received,
            bytes_sent: sent,
            duration: millis(duration),
            upstream_host: upstream.map(|a| a.to_string()),
            direction,
            backend: (!service.is_empty()).then(|| service.to_string()),
            peer,
            ..Entry::default()
        },
    );
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Records the entry when the response body is done with.
struct Done {
    entry: Option<Entry>,
    clock: Instant,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    writer: Arc<Writer>,
    sinks: Sinks,
}

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration = millis(self.clock.elapsed());
            entry.bytes_received = self.received.load(Ordering::Relaxed);
            entry.bytes_sent = self.sent.load(Ordering::Relaxed);
            self.writer.finish(self.sinks, entry);
        }
    }
}

/// A body that counts its bytes (and, for a response, logs when dropped).
struct Counting {
    inner: Body,
    count: Arc<AtomicU64>,
    _done: Option<Done>,
}

impl HttpBody for Counting {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `2026-11-28T03:50:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_837_800_123);
        assert_eq!(rfc3339(at), "2026-11-28T03:50:00.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
