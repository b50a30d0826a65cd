//! What the request stacks' layers have in common: every layer is a tower [`Service`]
//! answering a response or a [`ProxyError`], always ready (back-pressure is the
//! listeners' connection limit), cheap to clone, and returning a boxed future.

use std::future::Future;
use std::pin::Pin;

use http::Response;
use tower::Service;

use crate::error::ProxyError;
use crate::http::Body;

/// A layer's future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a layer answers: the response to send back, or why the agent answers itself.
pub type Answer = Result<Response<Body>, ProxyError>;

/// A service of a request stack, for requests of type `R`.
pub trait Stack<R>:
    Service<R, Response = Response<Body>, Error = ProxyError, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<R, T> Stack<R> for T where
    T: Service<R, Response = Response<Body>, Error = ProxyError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The service to call now, leaving a clone in its place, for a layer whose future calls
/// its inner service later (tower's rule: call the instance that was polled ready; every
/// stack service is always ready). Layers that call at once use `self.inner` directly.
pub fn take<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// Implements `poll_ready` for a layer over `inner`: ready when its inner service is.
#[macro_export]
macro_rules! ready_when_inner {
    () => {
        fn poll_ready(
            &mut self,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), $crate::error::ProxyError>> {
            self.inner.poll_ready(cx)
        }
    };
}

/// Implements `poll_ready` for the bottom of a stack: always ready.
#[macro_export]
macro_rules! always_ready {
    () => {
        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), $crate::error::ProxyError>> {
            std::task::Poll::Ready(Ok(()))
        }
    };
}
