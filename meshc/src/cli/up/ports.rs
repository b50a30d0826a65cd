//! The loopback ports of a local mesh. A fixed range from `--base-port`, or, with
//! `--base-port 0`, free ports picked *below* the kernel's ephemeral range: the agents
//! bind them only after the plan is made, and a port from the ephemeral range could be
//! taken in between as the local port of any outgoing connection on the machine (or by
//! any other `bind(0)`), which a busy machine does within seconds. Ports below the range
//! are only ever taken by a process that asks for them by number.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;

/// Why ports could not be assigned.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// A fixed port is taken.
    #[error("port {port} is already in use (pick another --base-port)")]
    InUse {
        /// The port.
        port: u16,
    },
    /// The fixed range does not fit below 65536.
    #[error("--base-port {base} leaves no room for {needed} ports")]
    OutOfRange {
        /// The base port.
        base: u16,
        /// How many ports are needed.
        needed: usize,
    },
    /// No free port was found.
    #[error("cannot find {needed} free loopback ports: {why}")]
    NoFreePort {
        /// How many ports were needed.
        needed: usize,
        /// What went wrong.
        why: String,
    },
}

/// The lowest port `--base-port 0` picks from.
const LOWEST: u16 = 10_000;

/// Where the kernel's ephemeral ports are.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `count` loopback addresses: free ones below the ephemeral range (`base` 0), or the
/// fixed range from `base` (each checked to be free).
pub fn assign(base: u16, count: usize) -> Result<Vec<SocketAddr>, PortError> {
    if base == 0 {
        let ephemeral = std::fs::read_to_string(EPHEMERAL_RANGE).ok();
        return free(pool(ephemeral.as_deref()), count);
    }
    let last = usize::from(base) + count;
    if last > usize::from(u16::MAX) + 1 {
        return Err(PortError::OutOfRange {
            base,
            needed: count,
        });
    }
    (0..count)
        .map(|i| {
            let port = base + u16::try_from(i).unwrap_or(0);
            TcpListener::bind(localhost(port))
                .map(|_| localhost(port))
                .map_err(|_| PortError::InUse { port })
        })
        .collect()
}

/// The ports to pick from, given the ephemeral range's file (`"32768\t60999"`): from
/// [`LOWEST`] up to the range, or above it when there is no room below (empty when
/// neither side has any).
fn pool(ephemeral: Option<&str>) -> Range<u16> {
    let bounds: Vec<u16> = ephemeral
        .unwrap_or("32768 60999")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let (low, high) = match bounds[..] {
        [low, high] if low <= high => (low, high),
        _ => (32_768, 60_999),
    };
    if low > LOWEST {
        LOWEST..low
    } else {
        high.saturating_add(1)..u16::MAX
    }
}

/// `count` free ports of `pool`, starting at a random place in it: each is bound (and
/// held until all are found, so none is chosen twice), then released for the agents.
fn free(pool: Range<u16>, count: usize) -> Result<Vec<SocketAddr>, PortError> {
    let size = usize::from(pool.end.saturating_sub(pool.start));
    if size < count {
        return Err(PortError::NoFreePort {
            needed: count,
            why: format!("ports {}..{} are too few", pool.start, pool.end),
        });
    }
    // Two meshes started at once should not walk the pool in step.
    let start = RandomState::new().hash_one(std::process::id()) as usize % size;
    let mut held = Vec::with_capacity(count);
    for offset in 0..size {
        let port = pool.start + u16::try_from((start + offset) % size).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(localhost(port)) {
            held.push(listener);
            if held.len() == count {
                return Ok(held.iter().filter_map(|l| l.local_addr().ok()).collect());
            }
        }
    }
    Err(PortError::NoFreePort {
        needed: count,
        why: format!(
            "only {} of ports {}..{} are free",
            held.len(),
            pool.start,
            pool.end
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_lies_below_the_ephemeral_range() {
        assert_eq!(pool(Some("32768\t60999\n")), LOWEST..32_768);
        assert_eq!(pool(None), LOWEST..32_768);
        assert_eq!(pool(Some("garbage")), LOWEST..32_768);
        // No room below: above it.
        assert_eq!(pool(Some("1024 50000")), 50_001..u16::MAX);
    }

    #[test]
    fn free_ports_are_distinct_bindable_and_in_the_pool() {
        let ports = assign(0, 40).expect("40 free ports");
        let mut seen: Vec<u16> = ports.iter().map(SocketAddr::port).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 40);
        let ephemeral = std::fs::read_to_string(EPHEMERAL_RANGE).ok();
        let pool = pool(ephemeral.as_deref());
        assert!(
            seen.iter().all(|p| pool.contains(p)),
            "{seen:?} outside {pool:?}"
        );
        for port in ports {
            TcpListener::bind(port).expect("released for the agents");
        }
    }

    #[test]
    fn a_pool_too_small_is_an_error() {
        let error = free(20_000..20_002, 3).expect_err("too few");
        assert!(error.to_string().contains("too few"), "{error}");
    }
}
