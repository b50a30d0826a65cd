//! Where a captured connection was going. Capture rules (`mesh-agent capture`) send the
//! app's outbound TCP and other hosts' inbound TCP to the agent's listeners with iptables
//! `REDIRECT`; the kernel keeps the destination the client asked for, and
//! `SO_ORIGINAL_DST` (IPv4) / `IP6T_SO_ORIGINAL_DST` (IPv6) reads it back, as Istio's and
//! Linkerd's proxies do.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The destination `stream`'s client connected to when a NAT rule redirected it to this
/// listener; `None` when the connection was made to the listener itself (an app using
/// `HTTP_PROXY`, or a peer agent) or nothing was redirected.
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let socket = socket2::SockRef::from(stream);
    let original = if local.is_ipv4() {
        socket.original_dst_v4()
    } else {
        socket.original_dst_v6()
    };
    let original = original.ok()?.as_socket()?;
    let original = SocketAddr::new(original.ip().to_canonical(), original.port());
    let local = SocketAddr::new(local.ip().to_canonical(), local.port());
    (original != local).then_some(original)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_direct_connection_was_not_redirected() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let client = TcpStream::connect(addr).await;
        let accepted = listener.accept().await;
        assert!(client.is_ok());
        let Ok((stream, _)) = accepted else {
            return;
        };
        assert_eq!(original_dst(&stream), None);
    }
}
