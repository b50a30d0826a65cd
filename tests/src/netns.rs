//! Traffic from inside a network namespace, for the `meshc up --isolated` tests: a
//! thread enters the namespace (`setns`) and does everything there with blocking
//! sockets, so connections start where an app's would and meet the capture rules. Every
//! socket operation has a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// How long one connect, read or write may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `work` on a thread inside the network namespace at `netns` (root only).
pub fn inside<T, F>(netns: &str, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = PathBuf::from(netns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("cannot enter {}: {e}", path.display()));
        work()
    })
    .join()
    .unwrap_or_else(|_| panic!("the thread inside {netns} panicked"))
}

/// A connection with every operation bounded by [`IO_TIMEOUT`].
pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// `GET path` to `addr` with `Host: host` and `headers`, one connection per request as a
/// plain app would do it: the status and the body.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut stream = connect(addr)?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
