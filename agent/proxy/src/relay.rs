//! Copies an opaque TCP connection both ways: bounded buffers (one 64 KiB buffer per
//! direction), half-close preserved (an end that finishes sending has its peer's write
//! side shut down, while the other direction goes on), an optional idle timeout (no bytes
//! either way for that long closes both), and the bytes moved each way for metrics.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Size of each direction's buffer.
const BUFFER: usize = 64 * 1024;

/// How a relay ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Bytes from the client to the server.
    pub sent: u64,
    /// Bytes from the server to the client.
    pub received: u64,
    /// Closed by the idle timeout.
    pub idle_timeout: bool,
    /// Ended by an I/O error (a reset, a failed write), not by both ends finishing.
    pub failed: Option<std::io::ErrorKind>,
}

/// Relays between `client` and `server` until both directions are finished, one fails, or
/// nothing moved for `idle`; the bytes moved are counted however it ends.
pub async fn relay<C, S>(client: C, server: S, idle: Option<Duration>) -> Transferred
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(0);
    // One task drives both directions (tokio's copy_bidirectional: half-close on end of
    // stream, no lock between the halves); the wrappers count bytes and note activity.
    let mut client = Metered {
        inner: client,
        count: &sent,
        last: &last,
        epoch,
    };
    let mut server = Metered {
        inner: server,
        count: &received,
        last: &last,
        epoch,
    };
    let both = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUFFER, BUFFER);
    let (idle_timeout, failed) = match idle {
        None => (false, both.await.err().map(|e| e.kind())),
        Some(idle) => {
            tokio::pin!(both);
            loop {
                let since = Duration::from_millis(last.load(Ordering::Relaxed));
                let deadline = epoch + since + idle;
                tokio::select! {
                    result = &mut both => break (false, result.err().map(|e| e.kind())),
                    () = tokio::time::sleep_until(deadline.into()) => {
                        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                        if now.saturating_sub(last.load(Ordering::Relaxed)) >= idle.as_millis() as u64 {
                            break (true, None);
                        }
                    }
                }
            }
        }
    };
    Transferred {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        idle_timeout,
        failed,
    }
}

/// A stream that counts the bytes read from it and notes when it last moved any.
struct Metered<'a, T> {
    inner: T,
    count: &'a AtomicU64,
    last: &'a AtomicU64,
    epoch: Instant,
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            self.count.fetch_add(read as u64, Ordering::Relaxed);
            self.last.store(
                u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn half_close_keeps_the_other_direction_and_counts_bytes() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (server, mut server_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(relay(client, server, None));
        client_peer.write_all(b"request").await.ok();
        client_peer.shutdown().await.ok();
        let mut got = Vec::new();
        server_peer.read_to_end(&mut got).await.ok();
        assert_eq!(got, b"request");
        // The client finished sending; the server still answers.
        server_peer.write_all(b"late answer").await.ok();
        server_peer.shutdown().await.ok();
        let mut answer = Vec::new();
        client_peer.read_to_end(&mut answer).await.ok();
        assert_eq!(answer, b"late answer");
        let transferred = relay.await.ok();
        assert_eq!(
            transferred,
            Some(Transferred {
                sent: 7,
                received: 11,
                idle_timeout: false,
                failed: None,
            })
        );
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let (client, _client_peer) = tokio::io::duplex(64);
        let (server, _server_peer) = tokio::io::duplex(64);
        let transferred = tokio::time::timeout(
            Duration::from_secs(5),
            relay(client, server, Some(Duration::from_millis(50))),
        )
        .await;
        assert!(matches!(
            transferred,
            Ok(Transferred {
                idle_timeout: true,
                failed: None,
                ..
            })
        ));
    }
}
