//! HTTP/1.1 upgrades (WebSocket and the like). `Upgrade` and `Connection` are hop-by-hop
//! headers, so the generic forwarding path drops them; for an upgrade request this module
//! puts them back on the forwarded handshake, and when the upstream answers
//! `101 Switching Protocols` it splices the two connections byte for byte until either
//! side closes. Upgrades are never retried or mirrored.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::http::{Body, boxed, full, strip_hop_by_hop};

/// An upgrade the client asked for: the protocol it named and its side of the connection.
pub struct Requested {
    protocol: HeaderValue,
    client: OnUpgrade,
}

/// Takes the upgrade out of `request` if it asks for one (`Connection: upgrade` plus an
/// `Upgrade` header, on HTTP/1.1).
pub fn take<B>(request: &mut Request<B>) -> Option<Requested> {
    if request.version() != http::Version::HTTP_11 || !lists_upgrade(request.headers()) {
        return None;
    }
    let protocol = request.headers().get(header::UPGRADE)?.clone();
    Some(Requested {
        protocol,
        client: hyper::upgrade::on(request),
    })
}

fn lists_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn restore(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

impl Requested {
    /// Puts the upgrade headers back on the handshake about to be forwarded (hop-by-hop
    /// headers already stripped). Upgrades are sent over HTTP/1.1.
    pub fn prepare(&self, request: &mut Request<Body>) {
        restore(request.headers_mut(), self.protocol.clone());
        *request.version_mut() = http::Version::HTTP_11;
    }

    /// Completes the upgrade with the upstream's answer: on `101` the connections are
    /// joined in a background task and the `101` is returned with its upgrade headers;
    /// any other answer is returned as a plain response.
    pub fn finish(self, mut response: Response<Incoming>) -> Response<Body> {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, boxed(body));
        }
        let upstream = hyper::upgrade::on(&mut response);
        let protocol = response.headers().get(header::UPGRADE).cloned();
        let client = self.client;
        tokio::spawn(async move {
            match tokio::try_join!(client, upstream) {
                Ok((client, upstream)) => {
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    if let Err(error) =
                        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        tracing::debug!(%error, "upgraded connection ended with an error");
                    }
                }
                Err(error) => tracing::debug!(%error, "upgrade did not complete"),
            }
        });
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = protocol {
            restore(&mut parts.headers, protocol);
        }
        Response::from_parts(parts, full(Bytes::new()))
    }
}
