//! The token buckets behind inbound rate limits, kept apart from the layer that enforces
//! them so their arithmetic can be tested without requests.
//!
//! A bucket is one atomic integer, the generic cell rate algorithm's *theoretical arrival
//! time* (TAT): admitting a request moves it one emission interval (`period / requests`)
//! later, and a request is refused when that would put it more than `burst` intervals
//! ahead of now. That is exactly a token bucket of `burst` tokens refilled one per
//! interval, taken with a compare-and-swap: no lock, no timer, no allocation per request.
//!
//! Per-caller buckets live in a bounded map: [`SHARDS`] shards (so callers rarely contend
//! for a lock), each a read-mostly map whose entries carry a last-use stamp; a new caller
//! that finds its shard full evicts the shard's least recently used caller. The bound is
//! the whole map's (at most `capacity` callers), the eviction order per shard.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// Shards of a per-caller map.
pub const SHARDS: usize = 16;

/// One token bucket, as its theoretical arrival time in nanoseconds since the limiter's
/// epoch.
#[derive(Debug, Default)]
pub struct Bucket {
    tat: AtomicU64,
}

/// A bucket's parameters, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Time for one token to come back.
    pub interval_ns: u64,
    /// `burst` intervals: how far ahead of now the arrival time may run.
    pub depth_ns: u64,
}

impl Rate {
    /// `requests` tokens per `period_us`, at most `burst` at once.
    pub fn new(requests: u32, period_us: u64, burst: u32) -> Rate {
        let period_ns = u128::from(period_us) * 1_000;
        let interval = (period_ns / u128::from(requests.max(1))).max(1);
        let interval_ns = u64::try_from(interval).unwrap_or(u64::MAX);
        Rate {
            interval_ns,
            depth_ns: interval_ns.saturating_mul(u64::from(burst.max(1))),
        }
    }
}

impl Bucket {
    /// Takes a token at `now_ns`; when there is none, how long until there is one.
    pub fn take(&self, now_ns: u64, rate: Rate) -> Result<(), u64> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_ns).saturating_add(rate.interval_ns);
            let ahead = next - now_ns;
            if ahead > rate.depth_ns {
                return Err(ahead - rate.depth_ns);
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back a token taken by [`Bucket::take`] (another limit refused the request).
    pub fn refund(&self, rate: Rate) {
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.saturating_sub(rate.interval_ns))
            });
    }
}

/// A caller's bucket and when it was last used.
#[derive(Debug, Default)]
struct Slot {
    bucket: Bucket,
    used: AtomicU64,
}

type Shard = RwLock<HashMap<Box<str>, Slot>>;

/// Buckets by caller, at most `capacity` of them.
#[derive(Debug)]
pub struct Callers {
    shards: Vec<Shard>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
    clock: AtomicU64,
}

impl Callers {
    /// An empty map holding at most `capacity` callers (at least one per shard).
    pub fn new(capacity: usize) -> Callers {
        Callers {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            clock: AtomicU64::new(0),
        }
    }

    fn shard(&self, caller: &str) -> &Shard {
        let index = usize::try_from(self.hasher.hash_one(caller) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Runs `f` on `caller`'s bucket, making it (and evicting the shard's least recently
    /// used caller when the shard is full) if it is new.
    pub fn with<R>(&self, caller: &str, f: impl FnOnce(&Bucket) -> R) -> R {
        let stamp = self.clock.fetch_add(1, Ordering::Relaxed);
        let shard = self.shard(caller);
        {
            let read = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = read.get(caller) {
                slot.used.store(stamp, Ordering::Relaxed);
                return f(&slot.bucket);
            }
        }
        let mut write = shard.write().unwrap_or_else(PoisonError::into_inner);
        if !write.contains_key(caller) && write.len() >= self.per_shard {
            let oldest = write
                .iter()
                .min_by_key(|(_, slot)| slot.used.load(Ordering::Relaxed))
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                write.remove(&oldest);
            }
        }
        let slot = write.entry(caller.into()).or_default();
        slot.used.store(stamp, Ordering::Relaxed);
        f(&slot.bucket)
    }

    /// Runs `f` on `caller`'s bucket if it has one (a refund to an evicted caller is
    /// moot).
    pub fn existing(&self, caller: &str, f: impl FnOnce(&Bucket)) {
        let read = self
            .shard(caller)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = read.get(caller) {
            f(&slot.bucket);
        }
    }

    /// How many callers have a bucket.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no caller has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_is_admitted_at_once_then_one_token_per_interval() {
        let rate = Rate::new(10, 1_000_000, 3);
        assert_eq!(rate.interval_ns, SECOND / 10);
        let bucket = Bucket::default();
        let now = 5 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.take(now, rate), Ok(()));
        }
        assert_eq!(bucket.take(now, rate), Err(SECOND / 10));
        assert_eq!(bucket.take(now + SECOND / 10, rate), Ok(()));
        assert!(bucket.take(now + SECOND / 10, rate).is_err());
        // A long quiet spell refills up to the burst, not beyond.
        let later = now + 60 * SECOND;
        for _ in 0..3 {
            assert_eq!(bucket.take(later, rate), Ok(()));
        }
        assert!(bucket.take(later, rate).is_err());
    }

    #[test]
    fn a_refund_gives_the_token_back() {
        let rate = Rate::new(1, 1_000_000, 1);
        let bucket = Bucket::default();
        assert_eq!(bucket.take(SECOND, rate), Ok(()));
        assert!(bucket.take(SECOND, rate).is_err());
        bucket.refund(rate);
        assert_eq!(bucket.take(SECOND, rate), Ok(()));
    }

    #[test]
    fn a_full_map_evicts_its_least_recently_used_caller() {
        let callers = Callers::new(SHARDS * 2);
        let rate = Rate::new(1, 1_000_000, 1);
        // Exhaust caller "keep", then touch many others; "keep" stays while used.
        assert_eq!(callers.with("keep", |b| b.take(SECOND, rate)), Ok(()));
        for i in 0..1_000 {
            callers.with(&format!("c{i}"), |_| ());
            assert!(callers.with("keep", |b| b.take(SECOND, rate)).is_err());
        }
        assert!(callers.len() <= SHARDS * 2, "{}", callers.len());
        // An evicted caller starts afresh.
        let evicted = (0..1_000).map(|i| format!("c{i}")).find(|c| {
            let mut found = false;
            callers.existing(c, |_| found = true);
            !found
        });
        assert!(evicted.is_some(), "the bound evicted someone");
    }
}
