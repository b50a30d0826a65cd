//! Distributed tracing (`telemetry { tracing N% }`): W3C trace context is propagated on
//! every hop, and sampled requests' spans are exported with OTLP.
//!
//! Each HTTP request the agent handles — inbound, outbound, gateway — is one hop
//! ([`Tracer::begin`]): the incoming `traceparent` is continued (trace id and sampled
//! flag kept, `tracestate` passed on) or, when missing or malformed, replaced by a new
//! trace sampled with the mesh's probability, read once per request from the request's
//! config snapshot (no `telemetry`: 0%, new traces are never sampled). The request sent
//! on carries a `traceparent` naming the agent's span of this hop as parent, so the next
//! agent's span (or the app's) is its child. B3 headers pass untouched.
//!
//! When the trace is sampled and an OTLP endpoint is configured (`--otlp-endpoint`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), the hop's span is recorded ([`span`]) and exported in
//! batches by a background task ([`export`]); otherwise nothing more is done.
//!
//! - [`context`]: `traceparent` parsing and formatting, the per-hop decision;
//! - [`span`]: a hop's span, finished when the response body ends;
//! - [`export`]: the bounded queue and the OTLP/HTTP exporter.

pub mod context;
pub mod export;
pub mod span;

use std::sync::{Arc, OnceLock};

use http::Request;

use crate::access_log::{Note, NoteSlot};
use crate::http::Body;
use crate::state::Snapshot;

use self::export::{Counters, Exporter, Settings};
use self::span::{Kind, Recording};

/// The share of new traces `snapshot` samples (thousandths of a percent).
pub fn sampling(snapshot: Option<&Snapshot>) -> u32 {
    snapshot
        .and_then(|s| s.config.config.source().mesh.telemetry)
        .map_or(0, |t| t.tracing_milli)
}

/// The agent's tracer: propagation always, span recording once an exporter is started.
#[derive(Default)]
pub struct Tracer {
    exporter: OnceLock<Arc<Exporter>>,
}

/// A hop of a request: where it comes from and what its span is named after.
pub struct HopOf<'a> {
    /// The span's kind.
    pub kind: Kind,
    /// `inbound`, `outbound` or `gateway`.
    pub direction: &'static str,
    /// The caller's verified identity (inbound).
    pub peer: Option<&'a mesh_identity::SpiffeId>,
}

impl Tracer {
    /// Starts exporting spans with `settings` (on the current Tokio runtime); a second
    /// call does nothing.
    pub fn start_export(&self, settings: Settings, counters: Counters) {
        self.exporter
            .get_or_init(|| Arc::new(Exporter::start(settings, counters)));
    }

    /// Sends the spans recorded so far (the agent is stopping), waiting at most `limit`.
    pub async fn close(&self, limit: std::time::Duration) {
        if let Some(exporter) = self.exporter.get() {
            exporter.close(limit).await;
        }
    }

    /// Whether spans are recorded (an exporter was started).
    pub fn exporting(&self) -> bool {
        self.exporter.get().is_some()
    }

    /// Decides `request`'s trace for this hop and rewrites its trace headers for the
    /// next one; the span to finish with the response when it is recorded.
    pub fn begin(
        &self,
        snapshot: Option<&Snapshot>,
        hop: &HopOf<'_>,
        request: &mut Request<Body>,
    ) -> Option<Recording> {
        let decided = context::hop(request.headers_mut(), sampling(snapshot));
        if !decided.sampled {
            return None;
        }
        let exporter = self.exporter.get()?;
        let snapshot = snapshot?;
        let service = &snapshot.config.config.source().workload.service;
        let note = match request.extensions().get::<NoteSlot>() {
            Some(slot) => Arc::clone(&slot.0),
            None => {
                let note = Arc::new(Note::default());
                request.extensions_mut().insert(NoteSlot(Arc::clone(&note)));
                note
            }
        };
        let target = match hop.kind {
            Kind::Server if hop.direction == "inbound" => service.clone(),
            _ => crate::http::authority(request)
                .unwrap_or_default()
                .to_string(),
        };
        Some(Recording {
            exporter: Arc::clone(exporter),
            service: Arc::from(service.as_str()),
            kind: hop.kind,
            direction: hop.direction,
            hop: decided,
            method: request.method().as_str().to_string(),
            path: request.uri().path().to_string(),
            target,
            peer: hop.peer.map(ToString::to_string),
            note,
            start: span::now_nanos(),
        })
    }
}

/// Finishes `recording`'s span (if any) when `response`'s body ends.
pub fn finish(
    recording: Option<Recording>,
    response: http::Response<Body>,
) -> http::Response<Body> {
    match recording {
        Some(recording) => recording.respond(response),
        None => response,
    }
}
