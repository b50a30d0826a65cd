//! Limits that keep a listener serving legitimate traffic while hostile or broken clients
//! misbehave, and the count of each time one fires (`mesh_limits_total{listener, limit}`).
//!
//! - **Connections**: at most `--max-connections` per listener; beyond, the listener stops
//!   accepting and new connections wait in the kernel's backlog (back-pressure, not a
//!   crash or an error storm).
//! - **First bytes**: a connection that sends nothing within `--header-read-timeout` of
//!   being handed to HTTP (after the TLS handshake, if any) is closed, whatever protocol it
//!   was going to speak (`header_read_timeout`).
//! - **HTTP/1**: the request head must arrive within `--header-read-timeout` of the
//!   connection being ready for it (a slowloris is cut off; an idle keep-alive connection
//!   is closed after the same time, counted as `idle_timeout`), with at most
//!   [`MAX_HEADERS`] fields and [`MAX_HEADER_BYTES`] (`431` beyond). A malformed head
//!   (bad request line, invalid header bytes, conflicting framing) is answered `400` by
//!   hyper and never reaches a handler.
//! - **HTTP/2**: at most `--max-concurrent-streams` streams per connection, a header list
//!   of at most [`MAX_HEADER_BYTES`], and h2's guards against rapid reset
//!   (CVE-2023-44487: [`H2_MAX_PENDING_RESETS`] streams reset before being handled),
//!   CONTINUATION floods (CVE-2024-27316 class: frames beyond what the header list size
//!   needs) and peers that make the agent reset streams ([`H2_MAX_LOCAL_ERROR_RESETS`]):
//!   each ends the connection with `GOAWAY ENHANCE_YOUR_CALM`, counted as `h2_abuse`.
//! - **Idle connections** (HTTP/2 above all, which has no header-read timeout between
//!   streams): a connection on which no byte moved either way for `--idle-timeout` is
//!   closed (`idle_timeout`); the default, an hour, is Envoy's connection idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::metrics::LimitLabels;

/// Header fields per HTTP/1 request at most (Envoy's default).
pub const MAX_HEADERS: usize = 100;

/// Bytes of an HTTP/1 request head, or of an HTTP/2 header list, at most (Envoy allows
/// 60 KiB). For HTTP/1 it is the size of hyper's read buffer, which a head must fit.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// HTTP/2 streams a client may reset before the agent handled them (h2's default,
/// stated here so it cannot change under us).
pub const H2_MAX_PENDING_RESETS: usize = 20;

/// HTTP/2 streams the agent may have to reset because of the peer's errors.
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long an HTTP/1 request head may take to arrive.
    pub header_read_timeout: Duration,
    /// How long a connection may move no byte either way.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// HTTP/2 streams per connection at most.
    pub max_concurrent_streams: u32,
}

impl Limits {
    /// A hyper server builder (HTTP/1.1 and HTTP/2 prior knowledge) with these limits.
    pub fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_HEADER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
        builder
    }
}

/// Counts the limits that fire on one listener.
#[derive(Clone)]
pub struct Fired {
    listener: &'static str,
    counts: Family<LimitLabels, Counter>,
}

impl Fired {
    /// The counter of `listener`'s limits.
    pub fn new(listener: &'static str, counts: Family<LimitLabels, Counter>) -> Fired {
        Fired { listener, counts }
    }

    /// Counts one firing of `limit`.
    pub fn count(&self, limit: &'static str) {
        tracing::debug!(listener = self.listener, limit, "limit fired");
        self.counts
            .get_or_create(&LimitLabels {
                listener: self.listener,
                limit,
            })
            .inc();
    }

    /// Counts the limit, if any, that ended a connection with `error`.
    pub fn connection_error(&self, error: &(dyn std::error::Error + 'static), activity: &Activity) {
        if let Some(limit) = classify(error, activity) {
            self.count(limit);
        }
    }
}

/// Which limit, if any, an error that ended a connection means.
fn classify(
    error: &(dyn std::error::Error + 'static),
    activity: &Activity,
) -> Option<&'static str> {
    // HTTP/2 rebuilds the I/O error that ended a connection (its type is lost): the
    // stream notes the idle timeout itself.
    if activity.idle_timed_out.load(Ordering::Relaxed) {
        return Some("idle_timeout");
    }
    let mut next = Some(error);
    while let Some(error) = next {
        let inner = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if inner.is_some_and(|inner| inner.is::<SilentClient>()) {
            return Some("header_read_timeout");
        }

        if let Some(error) = error.downcast_ref::<hyper::Error>() {
            if error.is_timeout() {
                return Some(if activity.idle() {
                    "idle_timeout"
                } else {
                    "header_read_timeout"
                });
            }
            if error.is_parse_too_large() {
                return Some("header_size");
            }
            if error.is_parse() {
                return Some("malformed_request");
            }
        }
        if let Some(error) = error.downcast_ref::<h2::Error>()
            && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
        {
            return Some("h2_abuse");
        }
        next = error.source();
    }
    None
}

/// What a connection did last: whether bytes arrived since the agent last wrote, so a
/// header-read timeout on a connection that answered a request and then heard nothing is
/// told apart (an idle keep-alive connection) from one that is trickling a head.
#[derive(Debug, Default)]
pub struct Activity {
    wrote: AtomicBool,
    read_since_write: AtomicBool,
    /// The stream ended the connection for the idle timeout.
    idle_timed_out: AtomicBool,
}

impl Activity {
    fn idle(&self) -> bool {
        self.wrote.load(Ordering::Relaxed) && !self.read_since_write.load(Ordering::Relaxed)
    }
}

/// The error that ends a connection which sent nothing in time.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing within the header read timeout")]
struct SilentClient;

/// The error that ends a connection on which nothing moved for the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("no byte moved on the connection within the idle timeout")]
struct IdleConnection;

/// A connection's stream, noting its [`Activity`], ending it with [`SilentClient`] if its
/// first byte does not arrive in time and with [`IdleConnection`] when no byte moves for
/// the idle timeout.
pub struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
    first_byte: Option<Pin<Box<Sleep>>>,
    idle: Duration,
    /// When a byte last moved.
    moved: Instant,
    /// Fires at the earliest moment the connection could be idle for `idle`; checked
    /// against `moved` (and pushed back) only then, so moving bytes costs no timer work.
    idle_check: Pin<Box<Sleep>>,
}

impl<IO> Tracked<IO> {
    /// Tracks `io` into `activity`; its first byte must arrive within `first_byte`, and
    /// it ends after `idle` with no byte moved.
    pub fn new(
        io: IO,
        activity: Arc<Activity>,
        first_byte: Duration,
        idle: Duration,
    ) -> Tracked<IO> {
        Tracked {
            io,
            activity,
            first_byte: Some(Box::pin(tokio::time::sleep(first_byte))),
            idle,
            moved: Instant::now(),
            idle_check: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// Whether the connection has been idle for the idle timeout (re-arming the check
    /// when bytes moved since it was set).
    fn idle_for_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        while self.idle_check.as_mut().poll(cx).is_ready() {
            let due = self.moved + self.idle;
            if due <= Instant::now() {
                return true;
            }
            self.idle_check.as_mut().reset(due.into());
        }
        false
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.first_byte = None;
            this.moved = Instant::now();
            this.activity
                .read_since_write
                .store(true, Ordering::Relaxed);
        } else if polled.is_pending() {
            if let Some(deadline) = &mut this.first_byte
                && deadline.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    SilentClient,
                )));
            }
            if this.idle_for_too_long(cx) {
                this.activity.idle_timed_out.store(true, Ordering::Relaxed);
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    IdleConnection,
                )));
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO> Tracked<IO> {
    fn wrote(&mut self, polled: &Poll<std::io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.moved = Instant::now();
            self.activity.wrote.store(true, Ordering::Relaxed);
            self.activity
                .read_since_write
                .store(false, Ordering::Relaxed);
        }
    }
}
