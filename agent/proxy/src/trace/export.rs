//! OTLP/HTTP export of finished spans: `POST {endpoint}/v1/traces` with an
//! `ExportTraceServiceRequest` in protobuf (`content-type: application/x-protobuf`).
//!
//! Spans go through a bounded queue to one background task, which sends them in batches
//! (up to 512 spans, or what arrived within a second of a batch's first span), one
//! export at a time, each bounded by a timeout. A request never waits for the exporter:
//! when the queue is full — the collector is down or slow — the span is dropped and
//! counted (`mesh_trace_spans_dropped_total`), as the access log drops lines.
//!
//! When the agent shuts down, [`Exporter::close`] has the task send what it holds and
//! what is queued at once, instead of losing the last second's spans with the process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::{mpsc, watch};

/// Why an OTLP endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a URL.
    #[error("`{0}` is not a URL (expected e.g. http://127.0.0.1:4318)")]
    NotAUrl(String),
    /// Not `http://` (the agent exports in plaintext, to a collector beside it).
    #[error("`{0}`: only http:// OTLP endpoints are supported")]
    Scheme(String),
}

/// An OTLP/HTTP endpoint: the base URL the `/v1/traces` path is appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    traces: Uri,
}

impl Endpoint {
    /// `http://HOST:PORT[/PREFIX]` (as `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let base: Uri = text
            .parse()
            .map_err(|_| EndpointError::NotAUrl(text.to_string()))?;
        if base.scheme().is_none() || base.authority().is_none() {
            return Err(EndpointError::NotAUrl(text.to_string()));
        }
        if base.scheme_str() != Some("http") {
            return Err(EndpointError::Scheme(text.to_string()));
        }
        let traces = format!("{}/v1/traces", text.trim_end_matches('/'))
            .parse()
            .map_err(|_| EndpointError::NotAUrl(text.to_string()))?;
        Ok(Endpoint { traces })
    }

    /// The URL spans are posted to.
    pub fn traces(&self) -> &Uri {
        &self.traces
    }
}

/// How spans are batched and sent.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where.
    pub endpoint: Endpoint,
    /// Spans waiting for the exporter at most; beyond, new ones are dropped.
    pub queue: usize,
    /// Spans per export at most.
    pub batch: usize,
    /// How long a batch waits for more spans after its first.
    pub flush: Duration,
    /// How long one export may take.
    pub timeout: Duration,
    /// The resource's `service.instance.id`.
    pub instance: String,
}

impl Settings {
    /// The defaults for `endpoint`: a queue of 2,048 spans, batches of 512 or a second,
    /// exports of at most 5 s.
    pub fn new(endpoint: Endpoint, instance: String) -> Settings {
        Settings {
            endpoint,
            queue: 2048,
            batch: 512,
            flush: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            instance,
        }
    }
}

/// What the exporter counts.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Spans dropped because the queue was full.
    pub dropped: Counter,
    /// Spans the collector accepted.
    pub exported: Counter,
    /// Exports that failed (refused, unreachable, timed out).
    pub failed: Counter,
}

/// A finished span and the service whose resource it belongs to.
type Queued = (Arc<str>, Span);

/// The queue to the export task.
pub struct Exporter {
    queue: mpsc::Sender<Queued>,
    dropped: Counter,
    /// Set by [`Exporter::close`]: send everything now, then stop.
    closing: watch::Sender<bool>,
    /// Set by the task once it has sent everything after closing.
    finished: watch::Receiver<bool>,
}

impl Exporter {
    /// Starts the export task (on the current Tokio runtime).
    pub fn start(settings: Settings, counters: Counters) -> Exporter {
        let (queue, spans) = mpsc::channel(settings.queue.max(1));
        let dropped = counters.dropped.clone();
        let (closing, closed) = watch::channel(false);
        let (done, finished) = watch::channel(false);
        tokio::spawn(async move {
            export(spans, closed, settings, counters).await;
            done.send_replace(true);
        });
        Exporter {
            queue,
            dropped,
            closing,
            finished,
        }
    }

    /// Sends the spans held and queued now, waiting at most `limit` for the collector;
    /// spans recorded afterwards are not sent.
    pub async fn close(&self, limit: Duration) {
        self.closing.send_replace(true);
        let mut finished = self.finished.clone();
        let _ = tokio::time::timeout(limit, finished.wait_for(|done| *done)).await;
    }

    /// Queues `span` of `service`; drops (and counts) it when the queue is full.
    pub fn record(&self, service: Arc<str>, span: Span) {
        if self.queue.try_send((service, span)).is_err() {
            self.dropped.inc();
        }
    }
}

/// The export task: batches spans from `spans` and posts them until the queue closes or
/// `closing` is set (then what is queued is sent at once).
async fn export(
    mut spans: mpsc::Receiver<Queued>,
    mut closing: watch::Receiver<bool>,
    settings: Settings,
    counters: Counters,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut sender = Sender {
        client,
        settings: &settings,
        counters: &counters,
        failing: false,
    };
    let mut batch: Vec<Queued> = Vec::with_capacity(settings.batch);
    loop {
        let first = tokio::select! {
            first = spans.recv() => first,
            _ = closing.wait_for(|closing| *closing) => None,
        };
        let Some(first) = first else {
            break;
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + settings.flush;
        while batch.len() < settings.batch {
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, spans.recv()) => next,
                _ = closing.wait_for(|closing| *closing) => break,
            };
            match next {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        sender.send(std::mem::take(&mut batch)).await;
    }
    // Closing (or every sender gone): what is queued goes now.
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
        if batch.len() == settings.batch {
            sender.send(std::mem::take(&mut batch)).await;
        }
    }
    if !batch.is_empty() {
        sender.send(batch).await;
    }
}

/// Posts batches, counting and logging the outcomes.
struct Sender<'s> {
    client: Client<HttpConnector, Full<Bytes>>,
    settings: &'s Settings,
    counters: &'s Counters,
    /// Whether the last export failed (a failure is logged once until one works).
    failing: bool,
}

impl Sender<'_> {
    async fn send(&mut self, batch: Vec<Queued>) {
        let (settings, counters) = (self.settings, self.counters);
        let count = batch.len() as u64;
        let body = encode(batch, &settings.instance);
        let sent = tokio::time::timeout(settings.timeout, post(&self.client, settings, body)).await;
        let outcome =
            sent.unwrap_or_else(|_| Err(format!("no answer within {:?}", settings.timeout)));
        match outcome {
            Ok(()) => {
                counters.exported.inc_by(count);
                if self.failing {
                    tracing::info!(endpoint = %settings.endpoint.traces(), "span export works again");
                }
                self.failing = false;
            }
            Err(error) => {
                counters.failed.inc();
                if !self.failing {
                    tracing::warn!(endpoint = %settings.endpoint.traces(), %error, spans = count, "span export failed; spans lost (logged once until it works again)");
                }
                self.failing = true;
            }
        }
    }
}

/// Posts one export request; `Err` says why it failed.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    settings: &Settings,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = settings.endpoint.traces().clone();
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    // Read the answer to the end so the connection can be reused.
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {status}"))
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    }
}

/// The protobuf `ExportTraceServiceRequest` of `spans`, one resource per service.
pub fn encode(spans: Vec<Queued>, instance: &str) -> Vec<u8> {
    let mut by_service: BTreeMap<Arc<str>, Vec<Span>> = BTreeMap::new();
    for (service, span) in spans {
        by_service.entry(service).or_default().push(span);
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", &service),
                    text("service.instance.id", instance),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "mesh-agent".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_base_urls() {
        let endpoint = Endpoint::parse("http://127.0.0.1:4318/").unwrap();
        assert_eq!(endpoint.traces(), "http://127.0.0.1:4318/v1/traces");
        let prefixed = Endpoint::parse("http://collector:4318/otlp").unwrap();
        assert_eq!(prefixed.traces(), "http://collector:4318/otlp/v1/traces");
        assert!(matches!(
            Endpoint::parse("https://collector:4318"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("collector"),
            Err(EndpointError::NotAUrl(_))
        ));
    }

    #[test]
    fn spans_are_grouped_by_service_with_the_instance() {
        let span = |name: &str| Span {
            name: name.to_string(),
            ..Span::default()
        };
        let bytes = encode(
            vec![
                (Arc::from("ns/b"), span("1")),
                (Arc::from("ns/a"), span("2")),
                (Arc::from("ns/b"), span("3")),
            ],
            "host-1",
        );
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let summary: Vec<(String, Vec<String>)> = decoded
            .resource_spans
            .iter()
            .map(|rs| {
                let attrs = &rs.resource.as_ref().unwrap().attributes;
                let value = |k: &str| match attrs
                    .iter()
                    .find(|a| a.key == k)
                    .and_then(|a| a.value.as_ref()?.value.as_ref())
                {
                    Some(any_value::Value::StringValue(v)) => v.clone(),
                    _ => String::new(),
                };
                assert_eq!(value("service.instance.id"), "host-1");
                let names = rs.scope_spans[0]
                    .spans
                    .iter()
                    .map(|s| s.name.clone())
                    .collect();
                (value("service.name"), names)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("ns/a".to_string(), vec!["2".to_string()]),
                ("ns/b".to_string(), vec!["1".to_string(), "3".to_string()]),
            ]
        );
    }
}
