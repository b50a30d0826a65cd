//! A hop's span, recorded for sampled requests when spans are exported: the inbound
//! (SERVER), outbound (CLIENT) or gateway (SERVER) span of one request, from its arrival
//! to the end of its response body, with the request's method, path (no query), status,
//! route rule, backend, tries, peer identity, authorization decision and `mesh-error`.
//! The rule, backend, decision and tries come from the request's note
//! ([`crate::access_log::Note`]), where the layers record them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span::SpanKind, status::StatusCode};

use crate::access_log::Note;
use crate::http::{Body, BoxError, MESH_ERROR, boxed};
use crate::trace::context::Hop;
use crate::trace::export::Exporter;

/// Which side of the exchange the agent's span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Receiving: inbound, and a gateway (the server of the client outside the mesh).
    Server,
    /// Sending: a sidecar's outbound.
    Client,
}

/// What is known of a sampled request when it arrives.
pub struct Recording {
    /// Where the finished span goes.
    pub exporter: Arc<Exporter>,
    /// The workload's service key (the resource's `service.name`).
    pub service: Arc<str>,
    /// Its kind.
    pub kind: Kind,
    /// `inbound`, `outbound` or `gateway`.
    pub direction: &'static str,
    /// Its place in the trace.
    pub hop: Hop,
    /// The request's method.
    pub method: String,
    /// The request's path, without the query.
    pub path: String,
    /// What the span is named after when no backend was picked: the called authority
    /// (outbound, gateway) or the workload's service (inbound).
    pub target: String,
    /// The caller's verified SPIFFE id (inbound).
    pub peer: Option<String>,
    /// The request's note.
    pub note: Arc<Note>,
    /// When it arrived, in nanoseconds since the Unix epoch.
    pub start: u64,
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

impl Recording {
    /// Records the span once `response`'s body ends (or is dropped).
    pub fn respond(self, response: Response<Body>) -> Response<Body> {
        let status = response.status().as_u16();
        let mesh_error = response
            .headers()
            .get(MESH_ERROR)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let pending = Pending {
            recording: self,
            status,
            mesh_error,
            body_failed: false,
        };
        response.map(|body| {
            boxed(Ending {
                inner: body,
                pending: Some(pending),
            })
        })
    }
}

/// A span waiting for its response body to end.
struct Pending {
    recording: Recording,
    status: u16,
    mesh_error: Option<String>,
    body_failed: bool,
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_string()))
}

fn int(key: &str, value: u64) -> KeyValue {
    attribute(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

impl Pending {
    /// The finished span, ending now.
    fn span(&self) -> Span {
        let r = &self.recording;
        let routed = r.note.routing();
        let backend = routed.and_then(|routed| routed.backend.as_deref());
        let mut attributes = vec![
            text("http.request.method", &r.method),
            text("url.path", &r.path),
            int("http.response.status_code", u64::from(self.status)),
            text("mesh.direction", r.direction),
        ];
        if let Some(rule) = routed.and_then(|routed| routed.rule.as_deref()) {
            attributes.push(text("mesh.rule", rule));
        }
        if let Some(backend) = backend {
            attributes.push(text("mesh.backend", backend));
        }
        let tries = r.note.tries();
        if tries > 0 {
            attributes.push(int("mesh.retry.attempts", tries));
        }
        // Inbound: the caller's verified id; outbound: the id the callee had to present.
        if let Some(peer) = r.peer.as_deref().or_else(|| r.note.upstream()) {
            attributes.push(text("mesh.peer.identity", peer));
        }
        if let Some(decision) = r.note.decision() {
            attributes.push(text("mesh.authz.decision", decision));
        }
        if let Some(cause) = &self.mesh_error {
            attributes.push(text("mesh.error", cause));
        }
        let failed = self.status >= 500 || self.mesh_error.is_some() || self.body_failed;
        let message = match (&self.mesh_error, self.body_failed) {
            (Some(cause), _) => cause.clone(),
            (None, true) => "the response body failed".to_string(),
            (None, false) => String::new(),
        };
        Span {
            trace_id: r.hop.trace_id.to_vec(),
            span_id: r.hop.span_id.to_vec(),
            parent_span_id: r.hop.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
            // Bit 8 (0x100): whether the parent's "is remote" is known; bit 9: it is.
            flags: 0x01
                | if r.hop.parent_id.is_some() {
                    0x300
                } else {
                    0x100
                },
            name: format!("{} {}", r.method, backend.unwrap_or(&r.target)),
            kind: match r.kind {
                Kind::Server => SpanKind::Server as i32,
                Kind::Client => SpanKind::Client as i32,
            },
            start_time_unix_nano: r.start,
            end_time_unix_nano: now_nanos().max(r.start),
            attributes,
            status: Some(Status {
                message,
                code: if failed {
                    StatusCode::Error as i32
                } else {
                    StatusCode::Unset as i32
                },
            }),
            ..Span::default()
        }
    }

    fn finish(self) {
        let span = self.span();
        self.recording
            .exporter
            .record(Arc::clone(&self.recording.service), span);
    }
}

/// A response body that finishes its span when it ends or is dropped.
struct Ending {
    inner: Body,
    pending: Option<Pending>,
}

impl HttpBody for Ending {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(pending) = self.pending.take() {
                    pending.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut pending) = self.pending.take() {
                    pending.body_failed = true;
                    pending.finish();
                }
            }
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
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

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish();
        }
    }
}
