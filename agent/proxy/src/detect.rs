//! Protocol detection on a connection's first bytes, as Linkerd does: HTTP/1.x request
//! lines and the HTTP/2 prior-knowledge preface go to the HTTP path (routes, splits,
//! retries, per-request authorization); anything else — including a client that says
//! nothing within the timeout, as server-speaks-first protocols (MySQL, SMTP) do — is
//! opaque TCP. Bytes are peeked, never consumed, so the chosen path reads them again.

use std::time::Duration;

use tokio::net::TcpStream;

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// HTTP/1.x or HTTP/2 with prior knowledge.
    Http,
    /// Anything else.
    Opaque,
}

/// Tokens an HTTP/1 request or an HTTP/2 connection starts with.
const HTTP_PREFIXES: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"PATCH ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI * HTTP/2.0\r\n",
];

/// The longest prefix: more bytes than this never change the answer.
const ENOUGH: usize = 16;

/// Classifies a connection's first bytes: `None` while they are a strict prefix of an
/// HTTP token and more may decide.
pub fn classify(first: &[u8]) -> Option<Detected> {
    let mut undecided = false;
    for prefix in HTTP_PREFIXES {
        if first.starts_with(prefix) {
            return Some(Detected::Http);
        }
        if prefix.starts_with(first) {
            undecided = true;
        }
    }
    (!undecided).then_some(Detected::Opaque)
}

/// Waits up to `timeout` for enough of the client's first bytes to decide.
pub async fn detect(stream: &TcpStream, timeout: Duration) -> Detected {
    let peek = async {
        let mut buffer = [0u8; ENOUGH];
        loop {
            let seen = match stream.peek(&mut buffer).await {
                Ok(0) | Err(_) => return Detected::Opaque,
                Ok(n) => n,
            };
            if let Some(detected) = classify(buffer.get(..seen).unwrap_or_default()) {
                return detected;
            }
            // The bytes so far start an HTTP token: wait briefly for the rest (peeking
            // does not consume, so readiness alone would spin).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(timeout, peek)
        .await
        .unwrap_or(Detected::Opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_and_the_h2_preface_are_http() {
        for first in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.0\r\n",
            b"OPTIONS * HTTP/1.1",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(classify(first), Some(Detected::Http), "{first:?}");
        }
    }

    #[test]
    fn other_bytes_are_opaque_and_prefixes_wait() {
        for first in [&b"\x16\x03\x01"[..], b"SSH-2.0-x", b"GETX", b"\0\0\0\x08"] {
            assert_eq!(classify(first), Some(Detected::Opaque), "{first:?}");
        }
        for first in [&b"G"[..], b"GE", b"PRI * HT", b"DELE"] {
            assert_eq!(classify(first), None, "{first:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_client_is_opaque_after_the_timeout() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let _client = TcpStream::connect(addr).await;
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let detected = detect(&stream, Duration::from_millis(50)).await;
        assert_eq!(detected, Detected::Opaque);
    }

    #[tokio::test]
    async fn a_request_line_sent_in_pieces_is_http() {
        use tokio::io::AsyncWriteExt;
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let Ok(mut client) = TcpStream::connect(addr).await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let writer = tokio::spawn(async move {
            let _ = client.write_all(b"DE").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = client.write_all(b"LETE /x HTTP/1.1\r\n").await;
            client
        });
        assert_eq!(
            detect(&stream, Duration::from_secs(5)).await,
            Detected::Http
        );
        let _ = writer.await;
    }
}
