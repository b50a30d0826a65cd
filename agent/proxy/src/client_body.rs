//! A request body read from the client that remembers whether reading it failed (a
//! malformed chunked encoding, a body cut short), so a forward that fails because of it
//! is answered `400 bad-request-body` — the client's fault — not `502`, the upstream's.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::http::{Body, BoxError};

/// The client's request body, streamed.
pub struct ClientBody {
    inner: Body,
    failed: Arc<AtomicBool>,
}

/// Whether reading a [`ClientBody`] failed.
#[derive(Clone, Debug, Default)]
pub struct BodyFailed(Arc<AtomicBool>);

impl BodyFailed {
    /// Whether the client's body could not be read.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl ClientBody {
    /// Wraps `inner`; the flag turns true if reading it fails.
    pub fn new(inner: Body) -> (ClientBody, BodyFailed) {
        let failed = BodyFailed::default();
        let body = ClientBody {
            inner,
            failed: Arc::clone(&failed.0),
        };
        (body, failed)
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            this.failed.store(true, Ordering::Relaxed);
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
