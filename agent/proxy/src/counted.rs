//! Upstream HTTP connections counted against a service's `max_connections`: a connector
//! that takes a connection slot from the service's gate
//! ([`crate::outbound::breaker::Gate`]) before it connects and gives it back when the
//! connection closes (the slot lives in the connection's I/O). At the limit it refuses
//! at once with [`ConnectionLimit`], which the client reports as `overloaded`, not as a
//! failed connection (no retry, no ejection). What it bounds is what hyper's pool opens:
//! over HTTP/1.1 one connection per request in flight (idle kept-alive ones count until
//! they close), over HTTP/2 the multiplexed connections.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tower::Service;

use crate::http::BoxError;
use crate::outbound::breaker::{ConnectionSlot, Gate};

/// The connector refused: the service has `max_connections` open.
#[derive(Debug, thiserror::Error)]
#[error("the service's max_connections are open")]
pub struct ConnectionLimit;

/// `inner`, counting its connections against `gate` (none: not counted). The gate is
/// held weakly: the gate keeps its clients, not the other way round.
#[derive(Clone, Debug)]
pub struct Counted<C> {
    inner: C,
    gate: Option<Weak<Gate>>,
}

impl<C> Counted<C> {
    /// Connects with `inner`, counting against `gate`.
    pub fn new(inner: C, gate: Option<Weak<Gate>>) -> Counted<C> {
        Counted { inner, gate }
    }
}

impl<C> Service<Uri> for Counted<C>
where
    C: Service<Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = CountedIo<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let slot = match self.gate.as_ref().and_then(Weak::upgrade) {
            Some(gate) => match gate.connect() {
                Some(slot) => Some(slot),
                None => return Box::pin(async { Err(Box::new(ConnectionLimit) as BoxError) }),
            },
            None => None,
        };
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await.map_err(Into::into)?;
            Ok(CountedIo { io, _slot: slot })
        })
    }
}

/// A connection holding its slot until it closes.
#[derive(Debug)]
pub struct CountedIo<T> {
    io: T,
    _slot: Option<ConnectionSlot>,
}

impl<T: Read + Unpin> Read for CountedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for CountedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for CountedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// Whether `error`, or an error it was caused by, is a [`ConnectionLimit`].
pub fn is_connection_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<ConnectionLimit>() {
            return true;
        }
        current = error.source();
    }
    false
}
