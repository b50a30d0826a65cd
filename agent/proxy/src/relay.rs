//! Copies an opaque TCP connection both ways: bounded buffers (one 64 KiB buffer per
//! direction), half-close preserved (an end that finishes sending has its peer's write
//! side shut down, while the other direction goes on), an optional idle timeout (no bytes
//! either way for that long closes both), and the bytes moved each way for metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let both = async {
        tokio::try_join!(
            pump(&mut client_read, &mut server_write, &sent, &last, epoch),
            pump(&mut server_read, &mut client_write, &received, &last, epoch),
        )
    };
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

/// Copies `from` to `to` until end of stream, then shuts `to`'s write side (half-close).
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    count: &AtomicU64,
    last: &AtomicU64,
    epoch: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(buffer.get(..n).unwrap_or_default()).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        last.store(
            u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
