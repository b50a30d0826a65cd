//! The listeners' limits against hostile and broken clients, driven with raw sockets
//! against the real binary: slowloris and silent connections are cut off at the header
//! read timeout (and counted apart from idle keep-alive connections), a full listener
//! pauses accepting while accepted connections keep being served, malformed requests get
//! `400` and never reach the app whole (and a request smuggled behind conflicting
//! framing never becomes one), oversized heads `431`, and HTTP/2 rapid reset and
//! CONTINUATION floods end the abusive connection with `GOAWAY ENHANCE_YOUR_CALM`. After
//! each, legitimate requests are still served and `mesh_limits_total` says what fired.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failure report"
)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{Agent, Http, Upstream, config, endpoints, eventually, service, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Setup {
    agent: Agent,
    app: Upstream,
    http: Http,
    _dir: tempfile::TempDir,
}

async fn setup(flags: &[&str]) -> Setup {
    let app = Upstream::start("reviews").await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config.json",
        &config(vec![service("reviews", &[], vec![])]),
    );
    write(
        dir.path(),
        "endpoints.json",
        &endpoints(&[("reviews", None, app.addr)]),
    );
    let agent = Agent::start_with(dir.path(), "127.0.0.1:9".parse().unwrap(), flags);
    Setup {
        agent,
        app,
        http: Http::default(),
        _dir: dir,
    }
}

impl Setup {
    /// The value of `mesh_limits_total` for `listener` and `limit`.
    async fn fired(&self, listener: &str, limit: &str) -> u64 {
        let metrics = self
            .http
            .get(self.agent.admin, "admin", "/metrics")
            .await
            .body;
        let wanted = format!("mesh_limits_total{{listener=\"{listener}\",limit=\"{limit}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// A legitimate request through the outbound listener succeeds.
    async fn still_serves(&self) {
        let got = self.http.get(self.agent.outbound, "reviews", "/ok").await;
        assert_eq!(got.status, 200, "{}", got.body);
    }
}

/// Sends `bytes` on a fresh connection to `addr` and returns what comes back until the
/// agent closes the connection (at most 5 s).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response with a `content-length` body from `stream`: its status line.
async fn response(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap_or_default().to_string()
}

/// Waits (at most `limit`) until the agent closes `stream`; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slowloris_and_silent_connections_are_cut_off_while_others_are_served() {
    let setup = setup(&["--header-read-timeout", "500ms"]).await;
    let addr = setup.agent.outbound;
    let mut tasks = Vec::new();
    for i in 0..30 {
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (read, mut write) = stream.into_split();
            if i % 2 == 0 {
                // A slowloris: a head started, then one byte every 50 ms.
                tokio::spawn(async move {
                    let _ = write
                        .write_all(b"GET /slow HTTP/1.1\r\nHost: reviews\r\nX-Slow: ")
                        .await;
                    for _ in 0..100 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if write.write_all(b"a").await.is_err() {
                            break;
                        }
                    }
                });
            } else {
                // Silent: connects and sends nothing.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(write);
                });
            }
            let mut stream = read;
            let started = Instant::now();
            let mut buf = [0u8; 1024];
            loop {
                match tokio::time::timeout(Duration::from_secs(4), stream.read(&mut buf)).await {
                    Err(_) => return None,
                    Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                    Ok(Ok(_)) => {}
                }
            }
        }));
    }
    // Meanwhile legitimate requests are served.
    for _ in 0..10 {
        setup.still_serves().await;
    }
    for task in tasks {
        let closed = task.await.unwrap();
        assert!(
            closed.is_some_and(|after| after < Duration::from_secs(3)),
            "a connection was held past the header read timeout: {closed:?}"
        );
    }
    assert_eq!(
        setup.app.hits(),
        10,
        "only the legitimate requests reached the app"
    );
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "header_read_timeout").await == 30
        })
        .await,
        "header_read_timeout fired {} times",
        setup.fired("outbound", "header_read_timeout").await
    );
    setup.still_serves().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_counted_as_idle() {
    let setup = setup(&["--header-read-timeout", "300ms"]).await;
    let mut stream = TcpStream::connect(setup.agent.outbound).await.unwrap();
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut stream).await, "HTTP/1.1 200 OK");
    let closed = closed_within(&mut stream, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the idle connection stayed open");
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "idle_timeout").await == 1
        })
        .await
    );
    assert_eq!(setup.fired("outbound", "header_read_timeout").await, 0);
}

/// HTTP/2 has no header-read timeout between streams: a connection that opened, said its
/// preface and then nothing is closed by the idle timeout (and counted), while one that
/// keeps moving bytes is not.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_counted_as_idle() {
    let setup = setup(&["--idle-timeout", "600ms"]).await;
    let mut idle = TcpStream::connect(setup.agent.outbound).await.unwrap();
    idle.write_all(&h2_frames::start()).await.unwrap();
    let started = Instant::now();
    let closed = closed_within(&mut idle, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the idle HTTP/2 connection stayed open");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "idle_timeout").await == 1
        })
        .await
    );
    // A keep-alive HTTP/1 connection used every 200 ms outlives the idle timeout.
    let mut busy = TcpStream::connect(setup.agent.outbound).await.unwrap();
    for _ in 0..6 {
        busy.write_all(b"GET /ok HTTP/1.1\r\nHost: reviews\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(response(&mut busy).await, "HTTP/1.1 200 OK");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    setup.still_serves().await;
}

#[tokio::test]
async fn a_full_listener_pauses_accepting_and_keeps_serving_accepted_connections() {
    let setup = setup(&["--max-connections", "6", "--header-read-timeout", "1s"]).await;
    let addr = setup.agent.outbound;
    // One legitimate keep-alive connection, then silent ones fill the listener.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /kept HTTP/1.1\r\nHost: reviews\r\n\r\n";
    kept.write_all(request).await.unwrap();
    assert_eq!(response(&mut kept).await, "HTTP/1.1 200 OK");
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // A new connection waits in the backlog (the kernel completed its handshake)…
    let started = Instant::now();
    let waiting = tokio::spawn(raw(
        addr,
        b"GET /waiting HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
    ));
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "max_connections").await >= 1
        })
        .await
    );
    // …while the accepted keep-alive connection is still served at once.
    kept.write_all(request).await.unwrap();
    assert_eq!(response(&mut kept).await, "HTTP/1.1 200 OK");
    assert!(!waiting.is_finished());
    // The silent connections are cut at the header read timeout; then the waiting one is
    // accepted and answered.
    let answer = waiting.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    drop(silent);
    setup.still_serves().await;
}

#[tokio::test]
async fn malformed_requests_get_400_and_never_reach_the_app() {
    let setup = setup(&[]).await;
    let addr = setup.agent.outbound;
    let heads: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: reviews\r\nX-Bad: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: reviews\r\nBad Header: x\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: reviews\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: reviews\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ];
    for head in heads {
        let answer = raw(addr, head).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} -> {answer:?}",
            String::from_utf8_lossy(head)
        );
    }
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "malformed_request").await == 4
        })
        .await
    );
    // A valid head with a malformed chunked body: 400 naming the body, not 502.
    let answer = raw(
        addr,
        b"POST /upload HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("mesh-error: bad-request-body"), "{answer}");
    assert_eq!(setup.fired("outbound", "malformed_request").await, 5);
    assert_eq!(setup.app.hits(), 0);
    // Content-Length and Transfer-Encoding together (a smuggling attempt): hyper frames
    // the body by Transfer-Encoding and closes the connection after the answer (RFC 9112
    // §6.3), so bytes hidden behind the body never become a request.
    let answer = raw(
        addr,
        b"POST /smuggle HTTP/1.1\r\nHost: reviews\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: reviews\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(!answer.contains("/smuggled"), "{answer}");
    assert_eq!(setup.app.hits(), 1, "the hidden request reached the app");
    setup.still_serves().await;
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let setup = setup(&[]).await;
    let addr = setup.agent.outbound;
    let mut big = b"GET / HTTP/1.1\r\nHost: reviews\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let answer = raw(addr, &big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let mut many = b"GET / HTTP/1.1\r\nHost: reviews\r\n".to_vec();
    for i in 0..101 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answer = raw(addr, &many).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // The limit is counted when the connection ends, which may be just after the client
    // read the 431: wait for it (bounded).
    let counted = eventually(Duration::from_secs(5), async || {
        setup.fired("outbound", "header_size").await == 2
    })
    .await;
    assert!(counted, "{}", setup.fired("outbound", "header_size").await);
    setup.still_serves().await;
    assert_eq!(setup.app.hits(), 1);
}

/// HTTP/2 frames written by hand: what an abusive client sends.
mod h2_frames {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const CONTINUATION: u8 = 0x9;
    pub const GOAWAY: u8 = 0x7;
    pub const RST_STREAM_KIND: u8 = RST_STREAM;
    pub const REFUSED_STREAM: u32 = 0x7;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// `GET /` to `reviews` in HPACK: static indexes for `:method GET`, `:scheme http`,
    /// `:path /`, and `:authority` as a literal without indexing.
    fn get() -> Vec<u8> {
        let mut block = vec![0x82, 0x86, 0x84, 0x01, 7];
        block.extend_from_slice(b"reviews");
        block
    }

    pub fn start() -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out
    }

    /// A request opened and reset at once, `count` times.
    pub fn rapid_resets(count: u32) -> Vec<u8> {
        let mut out = start();
        for i in 0..count {
            let stream = 2 * i + 1;
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &get()));
            out.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
        }
        out
    }

    /// A header block that never ends: HEADERS without END_HEADERS, then empty
    /// CONTINUATION frames.
    pub fn continuation_flood(count: usize) -> Vec<u8> {
        let mut out = start();
        out.extend(frame(HEADERS, END_STREAM, 1, &get()));
        for _ in 0..count {
            out.extend(frame(CONTINUATION, 0, 1, &[]));
        }
        out
    }

    /// `count` requests left open (HEADERS without END_STREAM: bodies still to come).
    pub fn open_streams(count: u32) -> Vec<u8> {
        let mut out = start();
        for i in 0..count {
            out.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &get()));
        }
        out
    }

    /// The frames in `bytes` (as the server sent them): kind, stream, payload.
    pub fn frames(bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 9 {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let Some(payload) = rest.get(9..9 + len) else {
                break;
            };
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            out.push((rest[3], stream, payload.to_vec()));
            rest = &rest[9 + len..];
        }
        out
    }

    /// The error code of the first GOAWAY in `bytes`.
    pub fn goaway(bytes: &[u8]) -> Option<u32> {
        frames(bytes)
            .into_iter()
            .find(|(kind, _, payload)| *kind == GOAWAY && payload.len() >= 8)
            .map(|(_, _, payload)| {
                u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]])
            })
    }
}

/// Sends `bytes` over h2c to `addr`; the GOAWAY error code the agent answered with.
async fn h2_goaway(addr: SocketAddr, bytes: &[u8]) -> Option<u32> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    h2_frames::goaway(&out)
}

#[tokio::test]
async fn http2_rapid_reset_and_continuation_floods_end_the_connection() {
    let setup = setup(&[]).await;
    let addr = setup.agent.outbound;
    assert_eq!(
        h2_goaway(addr, &h2_frames::rapid_resets(500)).await,
        Some(h2_frames::ENHANCE_YOUR_CALM),
        "rapid reset"
    );
    assert_eq!(
        h2_goaway(addr, &h2_frames::continuation_flood(100)).await,
        Some(h2_frames::ENHANCE_YOUR_CALM),
        "CONTINUATION flood"
    );
    assert!(
        eventually(Duration::from_secs(2), async || {
            setup.fired("outbound", "h2_abuse").await == 2
        })
        .await,
        "h2_abuse fired {} times",
        setup.fired("outbound", "h2_abuse").await
    );
    setup.still_serves().await;
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_are_refused_and_the_connection_lives() {
    let setup = setup(&["--max-concurrent-streams", "10"]).await;
    let mut stream = TcpStream::connect(setup.agent.outbound).await.unwrap();
    stream
        .write_all(&h2_frames::open_streams(11))
        .await
        .unwrap();
    // Bounded read: the refusal of the eleventh stream (id 21) arrives at once.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break None,
        }
        let refused = h2_frames::frames(&seen)
            .into_iter()
            .find(|(kind, id, payload)| {
                *kind == h2_frames::RST_STREAM_KIND
                    && *id == 21
                    && payload.get(..4) == Some(&h2_frames::REFUSED_STREAM.to_be_bytes()[..])
            });
        if refused.is_some() {
            break refused;
        }
    };
    assert!(refused.is_some(), "stream 21 was not refused");
    assert_eq!(
        h2_frames::goaway(&seen),
        None,
        "the connection itself was kept"
    );
    setup.still_serves().await;
}
