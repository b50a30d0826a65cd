//! Request bodies that can be sent more than once: a body that is empty or declares a
//! length within [`MAX_BUFFERED_BODY`] is read whole before it goes on, so retries and
//! mirrors can resend it; a larger or unsized body is streamed once (and not retried),
//! as Envoy and Linkerd do. A body the client sends malformed is its error, a 400.

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use tower::Service;

use crate::error::ProxyError;
use crate::outbound::call::{Call, CallBody};
use crate::ready_when_inner;
use crate::stack::{Answer, BoxFuture, Stack, take};

/// Requests with bodies up to this size are buffered, so they can be retried and mirrored.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// Buffers small bodies before `inner`.
#[derive(Clone)]
pub struct Buffer<S> {
    inner: S,
}

impl<S> Buffer<S> {
    /// The layer over `inner`.
    pub fn new(inner: S) -> Buffer<S> {
        Buffer { inner }
    }
}

impl<S: Stack<Call>> Service<Call> for Buffer<S> {
    type Response = http::Response<crate::http::Body>;
    type Error = ProxyError;
    type Future = BoxFuture<Answer>;

    ready_when_inner!();

    fn call(&mut self, mut call: Call) -> Self::Future {
        let small = match &call.body {
            CallBody::Streaming { body, .. } if call.upgrade.is_none() => {
                body.is_end_stream()
                    || body
                        .size_hint()
                        .upper()
                        .is_some_and(|n| n <= MAX_BUFFERED_BODY as u64)
            }
            _ => false,
        };
        if !small {
            return Box::pin(self.inner.call(call));
        }
        // The inner call waits for the body: the future owns its service.
        let mut inner = take(&mut self.inner);
        Box::pin(async move {
            let CallBody::Streaming { body, .. } = call.body else {
                return Err(ProxyError::Internal("body already buffered"));
            };
            call.body = CallBody::Buffered(read(body).await?);
            inner.call(call).await
        })
    }
}

/// Reads a body of at most [`MAX_BUFFERED_BODY`] bytes (one that sends more than it
/// declared is the client's error). A body in one frame is kept as it came, uncopied.
async fn read(mut body: crate::http::Body) -> Result<Bytes, ProxyError> {
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::BadRequestBody(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = first.as_ref().map_or(0, Bytes::len) + rest.len() + data.len();
        if read > MAX_BUFFERED_BODY {
            return Err(ProxyError::BadRequestBody(format!(
                "the body is longer than declared (over {MAX_BUFFERED_BODY} bytes)"
            )));
        }
        match &first {
            None => first = Some(data),
            Some(bytes) => {
                if rest.is_empty() {
                    rest.extend_from_slice(bytes);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_body::BodyFailed;
    use crate::http::{Body, boxed, full};
    use crate::outbound::testing;
    use serde_json::json;
    use tower::ServiceExt;

    /// Answers 200 when the body arrived buffered, 202 when streamed.
    fn how_it_arrived() -> impl Stack<Call> {
        tower::service_fn(|call: Call| {
            let status = match call.body {
                CallBody::Buffered(bytes) if bytes.as_ref() == b"hello" || bytes.is_empty() => 200,
                CallBody::Buffered(_) => 500,
                CallBody::Streaming { .. } => 202,
            };
            let mut response = http::Response::new(full(""));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Box::pin(async move { Ok(response) }) as BoxFuture<Answer>
        })
    }

    async fn send(body: Body) -> Answer {
        let snapshot = testing::snapshot(testing::config(json!([])));
        let mut call = testing::call(&snapshot, http::Request::new(""));
        call.body = CallBody::Streaming {
            body,
            failed: BodyFailed::default(),
        };
        Buffer::new(how_it_arrived()).oneshot(call).await
    }

    #[tokio::test]
    async fn a_small_sized_body_is_buffered_and_a_large_one_streamed() {
        assert_eq!(send(full("hello")).await.unwrap().status(), 200);
        assert_eq!(send(full("")).await.unwrap().status(), 200);
        let large = full(vec![b'x'; MAX_BUFFERED_BODY + 1]);
        assert_eq!(send(large).await.unwrap().status(), 202);
        let (sender, unsized_body) = futures_channel_body();
        drop(sender);
        assert_eq!(send(unsized_body).await.unwrap().status(), 202);
    }

    #[tokio::test]
    async fn a_body_that_fails_to_read_is_the_clients_error() {
        let failing = http_body_util::StreamBody::new(futures_util::stream::iter([Err::<
            http_body::Frame<Bytes>,
            std::io::Error,
        >(
            std::io::Error::other("bad chunk"),
        )]));
        let sized = http_body_util::combinators::UnsyncBoxBody::new(SizedFailing(failing));
        let error = send(boxed(sized)).await.unwrap_err();
        assert!(matches!(error, ProxyError::BadRequestBody(ref e) if e.contains("bad chunk")));
    }

    /// A body with no size hint.
    fn futures_channel_body() -> (tokio::sync::mpsc::Sender<()>, Body) {
        let (sender, receiver) = tokio::sync::mpsc::channel::<()>(1);
        let stream = futures_util::stream::unfold(receiver, |mut r| async move {
            r.recv().await.map(|()| {
                (
                    Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(b"x"))),
                    r,
                )
            })
        });
        (sender, boxed(http_body_util::StreamBody::new(stream)))
    }

    /// A failing body that claims a small length (so the buffer reads it).
    struct SizedFailing<B>(B);

    impl<B: http_body::Body + Unpin> http_body::Body for SizedFailing<B> {
        type Data = B::Data;
        type Error = B::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
            std::pin::Pin::new(&mut self.0).poll_frame(cx)
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(5)
        }
    }
}
