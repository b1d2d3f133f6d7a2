//! Token buckets by key, in a table of bounded size.
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`; a request takes one. A
//! bucket that has refilled to `burst` is indistinguishable from no bucket at all, so forgetting
//! it loses nothing: that is how idle buckets are evicted. The table holds at most `capacity`
//! buckets; when a shard is full of buckets still refilling, keys it does not track share that
//! shard's one **overflow** bucket. A flood from more addresses (or key ids) than the table holds
//! therefore cannot exhaust memory, and cannot buy a fresh burst per new key either: all the new
//! ones together get one bucket's rate per shard, while the keys already tracked keep theirs.
//!
//! Time comes in as an argument ([`Instant`]), so the behaviour is tested without sleeping.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Shards of a table: lock contention stays low on a many-core server, and a sweep scans one
/// shard at a time.
const SHARDS: usize = 16;

/// A full shard is swept at most this often: a sweep reads every bucket of the shard, so a
/// flood of new keys must not trigger one per request.
const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A rate: `per_second` tokens a second, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Refill per second (positive).
    pub per_second: f64,
    /// Bucket size (at least 1).
    pub burst: f64,
}

impl Rate {
    /// `per_second` and `burst` divided by `share` (the instances splitting the limit), the
    /// burst never below one token.
    pub fn share(self, share: u32) -> Self {
        let share = f64::from(share.max(1));
        Self {
            per_second: self.per_second / share,
            burst: (self.burst / share).max(1.0),
        }
    }

    /// How long until a bucket with `tokens` has one.
    fn wait_for_one(self, tokens: f64) -> Duration {
        Duration::try_from_secs_f64(((1.0 - tokens) / self.per_second).max(0.0))
            .unwrap_or(Duration::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Refills for the time since the last use (a clock that went backwards adds nothing).
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = self.at.max(now);
    }

    /// Whether the bucket is full again at `now` (and may be forgotten).
    fn idle(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.burst
    }

    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(rate.wait_for_one(self.tokens))
        }
    }
}

#[derive(Debug)]
struct Shard<K> {
    buckets: HashMap<K, Bucket>,
    overflow: Option<Bucket>,
    last_sweep: Option<Instant>,
}

/// Token buckets by key, at most `capacity` of them (see the module documentation).
#[derive(Debug)]
pub struct BucketTable<K> {
    shards: Vec<Mutex<Shard<K>>>,
    shard_capacity: usize,
    /// Picks a key's shard; seeded per process like the shards' own maps, so an attacker
    /// choosing keys cannot aim them all at one shard.
    hasher: RandomState,
}

impl<K: Hash + Eq + Copy> BucketTable<K> {
    /// A table of at most `capacity` buckets (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let shards = SHARDS.min(capacity.max(1));
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        overflow: None,
                        last_sweep: None,
                    })
                })
                .collect(),
            shard_capacity: (capacity / shards).max(1),
            hasher: RandomState::new(),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until it has one.
    pub fn take(&self, key: K, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.with_bucket(key, rate, now, |bucket| bucket.take(rate, now))
    }

    /// Whether `key`'s bucket has a token, without taking it.
    pub fn peek(&self, key: K, rate: Rate, now: Instant) -> Result<(), Duration> {
        let mut shard = self.shard(&key);
        let Some(bucket) = shard.buckets.get_mut(&key) else {
            return Ok(());
        };
        bucket.refill(rate, now);
        if bucket.tokens >= 1.0 {
            Ok(())
        } else {
            Err(rate.wait_for_one(bucket.tokens))
        }
    }

    /// Takes a token from `key`'s bucket even if it has none (down to one burst of debt): for
    /// work already done, checked with [`peek`](Self::peek) before it started.
    pub fn charge(&self, key: K, rate: Rate, now: Instant) {
        self.with_bucket(key, rate, now, |bucket| {
            bucket.refill(rate, now);
            bucket.tokens = (bucket.tokens - 1.0).max(-rate.burst);
        });
    }

    /// Buckets held, overflow buckets excluded.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).buckets.len())
            .sum()
    }

    /// Whether the table holds no bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every bucket that is full again at `now`.
    pub fn sweep(&self, rate: Rate, now: Instant) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.buckets.retain(|_, bucket| !bucket.idle(rate, now));
            shard.last_sweep = Some(now);
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K>> {
        let index =
            usize::try_from(self.hasher.hash_one(key) % self.shards.len() as u64).unwrap_or(0);
        lock(&self.shards[index])
    }

    /// Runs `f` on `key`'s bucket: its own, a new one if the shard has room (after sweeping a
    /// full shard, at most every [`SWEEP_INTERVAL`]), else the shard's overflow bucket.
    fn with_bucket<T>(
        &self,
        key: K,
        rate: Rate,
        now: Instant,
        f: impl FnOnce(&mut Bucket) -> T,
    ) -> T {
        let capacity = self.shard_capacity;
        let mut guard = self.shard(&key);
        let shard = &mut *guard;
        if let Some(bucket) = shard.buckets.get_mut(&key) {
            return f(bucket);
        }
        if shard.buckets.len() >= capacity
            && shard
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_INTERVAL)
        {
            shard.buckets.retain(|_, bucket| !bucket.idle(rate, now));
            shard.last_sweep = Some(now);
            if shard.overflow.is_some_and(|bucket| bucket.idle(rate, now)) {
                shard.overflow = None;
            }
        }
        if shard.buckets.len() < capacity {
            f(shard.buckets.entry(key).or_insert(Bucket::full(rate, now)))
        } else {
            f(shard.overflow.get_or_insert(Bucket::full(rate, now)))
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few arithmetic steps on one bucket: a panic cannot leave a
    // shard inconsistent, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10.0,
        burst: 20.0,
    };

    #[test]
    fn a_bucket_lets_its_burst_through_then_its_rate() {
        let table = BucketTable::new(100);
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(table.take(1u32, RATE, t0), Ok(()));
        }
        let wait = table.take(1, RATE, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100), "one token at 10/s");
        assert_eq!(table.take(2, RATE, t0), Ok(()), "another key has its own");
        let later = t0 + Duration::from_millis(250);
        assert_eq!(table.take(1, RATE, later), Ok(()));
        assert_eq!(table.take(1, RATE, later), Ok(()));
        assert!(table.take(1, RATE, later).is_err(), "2.5 tokens refilled");
        // A clock that goes backwards refills nothing.
        assert!(table.take(1, RATE, t0).is_err());
    }

    #[test]
    fn peek_takes_nothing_and_charge_runs_into_debt() {
        let table = BucketTable::new(100);
        let t0 = Instant::now();
        assert_eq!(table.peek(7u8, RATE, t0), Ok(()), "an unknown key is full");
        assert_eq!(table.len(), 0, "peeking creates nothing");
        for _ in 0..60 {
            table.charge(7, RATE, t0);
        }
        let wait = table.peek(7, RATE, t0).unwrap_err();
        // 60 charges of a 20-token bucket: 20 of debt at most, 2.1 s to one token.
        assert_eq!(wait, Duration::from_millis(2100));
        assert_eq!(
            table.peek(7, RATE, t0 + Duration::from_millis(2100)),
            Ok(())
        );
    }

    #[test]
    fn a_flood_of_new_keys_keeps_the_table_bounded_and_shares_one_overflow_bucket_per_shard() {
        let capacity = 1024;
        let table = BucketTable::new(capacity);
        let t0 = Instant::now();
        let mut admitted = 0usize;
        for address in 0..1_000_000u32 {
            if table.take(address, RATE, t0).is_ok() {
                admitted += 1;
            }
        }
        assert!(table.len() <= capacity, "{} buckets", table.len());
        // Every tracked key got its token; beyond the table, each shard's overflow bucket let
        // its burst through, and nothing more.
        assert_eq!(admitted, table.len() + SHARDS * 20);
        let tracked = table.len();
        assert!(tracked >= capacity - SHARDS, "{tracked}");

        // Once the buckets have refilled they are idle: the next new keys get buckets again.
        let refilled = t0 + Duration::from_secs(2);
        assert_eq!(
            table.take(2_000_000, RATE, refilled),
            Ok(()),
            "a full shard sweeps itself: a bucket of its own, not the overflow"
        );
        assert!(table.len() < tracked, "the shard forgot its idle buckets");
        let refilled = refilled + Duration::from_secs(2);
        table.sweep(RATE, refilled);
        assert!(table.is_empty(), "every bucket was full again");
        for address in 0..100u32 {
            assert_eq!(table.take(address, RATE, refilled), Ok(()));
        }
        assert_eq!(table.len(), 100);
    }

    #[test]
    fn a_shared_rate_splits_the_rate_and_the_burst() {
        let half = RATE.share(2);
        assert_eq!((half.per_second, half.burst), (5.0, 10.0));
        let tiny = Rate {
            per_second: 1.0,
            burst: 2.0,
        }
        .share(8);
        assert_eq!(tiny.burst, 1.0, "never less than one request");
        assert_eq!(RATE.share(0), RATE);
    }
}
