//! Load balancing over a backend's endpoints, and passive health: an endpoint that refuses
//! connections is ejected for a back-off (1 s, doubling to 30 s) and tried again after.
//! When every endpoint is ejected, all are used (a panic threshold, as Envoy does), so a
//! backend that is wholly down is still tried rather than refused blindly.
//!
//! A service with an `outlier` block replaces that back-off with outlier detection: its
//! `consecutive_5xx` 5xx answers (or failed connections, or resets) in a row, each within
//! `interval` of the previous, eject the endpoint for `base_ejection × k` (its `k`th
//! ejection), as long as no more than `max_ejected` of the service's endpoints are
//! ejected at once (the check is [`crate::state::ServicePools::eject`]); any other
//! answer resets the count.
//!
//! Algorithms: round robin; uniform random; `least_request` — the less loaded of two
//! random picks (p2c) by in-flight requests; `ewma` — p2c by peak-EWMA latency weighted by
//! in-flight requests. State lives per endpoint address and survives config and endpoint
//! reloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh_config::schema::{Balance, Outlier};

/// Live state of one endpoint.
#[derive(Debug)]
pub struct EndpointState {
    /// Its address.
    pub addr: SocketAddr,
    in_flight: AtomicUsize,
    /// Peak-EWMA latency in microseconds.
    ewma_us: AtomicU64,
    /// Consecutive connect failures.
    failures: AtomicU32,
    /// Ejected until this many milliseconds after `epoch`; 0 when not ejected.
    ejected_until_ms: AtomicU64,
    epoch: Instant,
    /// Outlier detection: failed answers in a row.
    consecutive: AtomicU32,
    /// When the last of them came, one more than milliseconds after `epoch` (0: none).
    last_failure: AtomicU64,
    /// Times outlier detection ejected it.
    outlier_ejections: AtomicU32,
}

const EWMA_DECAY: f64 = 0.3;
const DEFAULT_EWMA_US: u64 = 1_000;

impl EndpointState {
    fn new(addr: SocketAddr, epoch: Instant) -> EndpointState {
        EndpointState {
            addr,
            in_flight: AtomicUsize::new(0),
            ewma_us: AtomicU64::new(DEFAULT_EWMA_US),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            epoch,
            consecutive: AtomicU32::new(0),
            last_failure: AtomicU64::new(0),
            outlier_ejections: AtomicU32::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether it is ejected now.
    pub fn ejected(&self) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > self.now_ms()
    }

    /// Marks a request as started; the guard ends it.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: Arc::clone(self),
            started: Instant::now(),
        }
    }

    /// Records a failed connection; returns true when this ejects the endpoint.
    pub fn connect_failed(&self) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let backoff = Duration::from_secs(1)
            .saturating_mul(1 << (failures - 1).min(5))
            .min(Duration::from_secs(30));
        let until = self.now_ms() + u64::try_from(backoff.as_millis()).unwrap_or(30_000);
        let previous = self.ejected_until_ms.swap(until, Ordering::Relaxed);
        previous <= self.now_ms()
    }

    /// Records a connection that worked.
    pub fn connected(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Outlier detection: records a failed answer (a 5xx, a failed connection, a reset);
    /// true when it makes `outlier.consecutive_5xx` in a row and the endpoint is not
    /// ejected already: it should be ejected now.
    pub fn outlier_failed(&self, outlier: &Outlier) -> bool {
        self.outlier_failed_at(self.now_ms(), outlier)
    }

    fn outlier_failed_at(&self, now_ms: u64, outlier: &Outlier) -> bool {
        let interval_ms = outlier.interval_us.div_ceil(1_000);
        let last = self.last_failure.swap(now_ms + 1, Ordering::Relaxed);
        let in_row = if last != 0 && now_ms + 1 - last.min(now_ms + 1) <= interval_ms {
            self.consecutive.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive.store(1, Ordering::Relaxed);
            1
        };
        in_row >= outlier.consecutive_5xx && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Outlier detection: an answer that was not a failure ends the run.
    pub fn outlier_succeeded(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Outlier detection: ejects it for `base_ejection × k`, `k` counting its ejections.
    pub fn outlier_eject(&self, outlier: &Outlier) {
        self.outlier_eject_at(self.now_ms(), outlier);
    }

    fn outlier_eject_at(&self, now_ms: u64, outlier: &Outlier) {
        let k = self.outlier_ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = outlier
            .base_ejection_us
            .div_ceil(1_000)
            .saturating_mul(u64::from(k));
        self.ejected_until_ms
            .store(now_ms.saturating_add(length), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn load(&self, balance: Balance) -> u64 {
        let in_flight = self.in_flight.load(Ordering::Relaxed) as u64;
        match balance {
            Balance::Ewma => self.ewma_us.load(Ordering::Relaxed) * (in_flight + 1),
            _ => in_flight,
        }
    }
}

/// An in-flight request on an endpoint; dropping it records its latency.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Arc<EndpointState>,
    started: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        let rtt = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let old = self.endpoint.ewma_us.load(Ordering::Relaxed);
        // Peak EWMA: jump up to a slow response at once, decay slowly towards fast ones.
        let new = if rtt > old {
            rtt
        } else {
            (old as f64 * (1.0 - EWMA_DECAY) + rtt as f64 * EWMA_DECAY) as u64
        };
        self.endpoint.ewma_us.store(new.max(1), Ordering::Relaxed);
    }
}

/// The endpoints of one backend (a service or subset) and how to choose among them.
#[derive(Debug)]
pub struct Pool {
    /// Its endpoints.
    pub endpoints: Vec<Arc<EndpointState>>,
    balance: Balance,
    next: AtomicUsize,
}

impl Pool {
    /// A pool over `endpoints`.
    pub fn new(endpoints: Vec<Arc<EndpointState>>, balance: Balance) -> Pool {
        Pool {
            endpoints,
            balance,
            next: AtomicUsize::new(fastrand::usize(..usize::MAX / 2)),
        }
    }

    /// Picks an endpoint, skipping ejected ones unless all are; `avoid` (the endpoint of
    /// a failed try) is skipped when there is another choice.
    pub fn pick(&self, avoid: Option<SocketAddr>) -> Option<&Arc<EndpointState>> {
        let n = self.endpoints.len();
        if n <= 1 {
            return self.endpoints.first();
        }
        let usable = |e: &Arc<EndpointState>| !e.ejected() && Some(e.addr) != avoid;
        let healthy = self.endpoints.iter().filter(|e| usable(e)).count();
        let candidates = |i: usize| -> Option<&Arc<EndpointState>> {
            if healthy == 0 {
                self.endpoints.get(i % n)
            } else {
                self.endpoints.iter().filter(|e| usable(e)).nth(i % healthy)
            }
        };
        let count = if healthy == 0 { n } else { healthy };
        match self.balance {
            Balance::RoundRobin => candidates(self.next.fetch_add(1, Ordering::Relaxed)),
            Balance::Random => candidates(fastrand::usize(..count)),
            Balance::LeastRequest | Balance::Ewma => {
                let a = fastrand::usize(..count);
                let b = (a + 1 + fastrand::usize(..count.max(2) - 1)) % count;
                let (x, y) = (candidates(a)?, candidates(b)?);
                Some(if y.load(self.balance) < x.load(self.balance) {
                    y
                } else {
                    x
                })
            }
        }
    }
}

/// Endpoint state by address, kept across reloads.
#[derive(Debug)]
pub struct Registry {
    states: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
    epoch: Instant,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            states: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }
}

impl Registry {
    /// The state of `addr`, created on first use.
    pub fn get(&self, addr: SocketAddr) -> Arc<EndpointState> {
        let mut states = match self.states.lock() {
            Ok(states) => states,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(
            states
                .entry(addr)
                .or_insert_with(|| Arc::new(EndpointState::new(addr, self.epoch))),
        )
    }

    /// Forgets endpoints that are no longer listed.
    pub fn retain(&self, keep: &dyn Fn(&SocketAddr) -> bool) {
        if let Ok(mut states) = self.states.lock() {
            states.retain(|addr, _| keep(addr));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u16, balance: Balance) -> Pool {
        let registry = Registry::default();
        let endpoints = (1..=n)
            .map(|p| registry.get(SocketAddr::from(([127, 0, 0, 1], p))))
            .collect();
        Pool::new(endpoints, balance)
    }

    #[test]
    fn round_robin_visits_each_in_turn() {
        let pool = pool(3, Balance::RoundRobin);
        let mut seen: Vec<u16> = (0..6)
            .filter_map(|_| pool.pick(None).map(|e| e.addr.port()))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn ejected_endpoints_are_skipped_until_all_are() {
        let pool = pool(2, Balance::Random);
        assert!(pool.endpoints[0].connect_failed());
        for _ in 0..50 {
            assert_eq!(pool.pick(None).map(|e| e.addr.port()), Some(2));
        }
        pool.endpoints[1].connect_failed();
        assert!(pool.pick(None).is_some(), "all ejected: still choose one");
        pool.endpoints[0].connected();
        assert!(!pool.endpoints[0].ejected());
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let pool = pool(2, Balance::LeastRequest);
        let _busy: Vec<InFlight> = (0..5).map(|_| pool.endpoints[0].start()).collect();
        for _ in 0..50 {
            assert_eq!(pool.pick(None).map(|e| e.addr.port()), Some(2));
        }
    }

    fn outlier() -> Outlier {
        Outlier {
            consecutive_5xx: 3,
            interval_us: 1_000_000,
            base_ejection_us: 10_000_000,
            max_ejected_milli: 50_000,
        }
    }

    #[test]
    fn failures_in_a_row_within_the_interval_call_for_an_ejection_that_grows() {
        let endpoint = EndpointState::new(SocketAddr::from(([127, 0, 0, 1], 1)), Instant::now());
        let outlier = outlier();
        assert!(!endpoint.outlier_failed_at(1_000, &outlier));
        assert!(!endpoint.outlier_failed_at(1_500, &outlier));
        // Too long after the previous one: the run starts again.
        assert!(!endpoint.outlier_failed_at(3_000, &outlier));
        assert!(!endpoint.outlier_failed_at(3_100, &outlier));
        assert!(endpoint.outlier_failed_at(3_200, &outlier));
        endpoint.outlier_eject_at(3_200, &outlier);
        assert_eq!(endpoint.ejected_until_ms.load(Ordering::Relaxed), 13_200);
        // Failures while ejected do not eject it again.
        for t in [4_000, 4_100, 4_200] {
            assert!(!endpoint.outlier_failed_at(t, &outlier));
        }
        // After the ejection, three more: twice as long.
        assert!(!endpoint.outlier_failed_at(14_000, &outlier));
        assert!(!endpoint.outlier_failed_at(14_100, &outlier));
        assert!(endpoint.outlier_failed_at(14_200, &outlier));
        endpoint.outlier_eject_at(14_200, &outlier);
        assert_eq!(endpoint.ejected_until_ms.load(Ordering::Relaxed), 34_200);
    }

    #[test]
    fn a_success_ends_the_run() {
        let endpoint = EndpointState::new(SocketAddr::from(([127, 0, 0, 1], 1)), Instant::now());
        let outlier = outlier();
        assert!(!endpoint.outlier_failed_at(1_000, &outlier));
        assert!(!endpoint.outlier_failed_at(1_001, &outlier));
        endpoint.outlier_succeeded();
        assert!(!endpoint.outlier_failed_at(1_002, &outlier));
        assert!(!endpoint.outlier_failed_at(1_003, &outlier));
        assert!(endpoint.outlier_failed_at(1_004, &outlier));
    }

    #[test]
    fn a_failed_endpoint_is_avoided_on_retry() {
        let pool = pool(2, Balance::RoundRobin);
        let first = SocketAddr::from(([127, 0, 0, 1], 1));
        for _ in 0..10 {
            assert_eq!(pool.pick(Some(first)).map(|e| e.addr.port()), Some(2));
        }
    }
}
