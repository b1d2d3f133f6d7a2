//! `/readyz`: whether this instance can commit.
//!
//! `SELECT 1` answered while every write failed (a read-only file, a full disk, a read-only
//! PostgreSQL): during one such outage readiness said 200 19 times out of 19 while 3,429
//! writes answered 503. Readiness now commits a write ([`Store::probe_write`]: one row,
//! through the same write path as every other write). A load balancer may poll many times a
//! second: one probe runs at a time, and its result is reused for [`CACHE_FOR`], so polling
//! adds at most about one small write a second per instance.

use std::time::{Duration, Instant};

use attest_store::{AnyStore, Store};
use tokio::sync::Mutex;

/// How long one probe's result answers readiness.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// A probe slower than this counts as a failure: a load balancer gives up on a readiness check
/// after a few seconds anyway, and a database that slow is no place to send traffic.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the instance is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The database refused or failed the probe's write.
    WriteFailed,
    /// The probe's write took longer than [`PROBE_TIMEOUT`].
    WriteTimedOut,
}

impl NotReady {
    /// The `reason` in the 503 body.
    pub fn reason(self) -> &'static str {
        match self {
            Self::WriteFailed => "database_write_failed",
            Self::WriteTimedOut => "database_write_timeout",
        }
    }
}

/// The last probe, shared by every readiness request.
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

impl Readiness {
    /// Ready, or why not: the cached result if younger than [`CACHE_FOR`], else a new probe
    /// (concurrent callers wait for it rather than starting their own).
    pub async fn check(&self, store: &AnyStore) -> Result<(), NotReady> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = *last
            && at.elapsed() < CACHE_FOR
        {
            return result;
        }
        let result =
            match tokio::time::timeout(PROBE_TIMEOUT, store.probe_write(super::flows::now())).await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    if !matches!(*last, Some((_, Err(_)))) {
                        tracing::warn!(%error, "not ready: the database does not commit writes");
                    }
                    Err(NotReady::WriteFailed)
                }
                Err(_) => {
                    if !matches!(*last, Some((_, Err(_)))) {
                        tracing::warn!(
                            timeout = ?PROBE_TIMEOUT,
                            "not ready: the database did not commit the readiness write in time"
                        );
                    }
                    Err(NotReady::WriteTimedOut)
                }
            };
        if result.is_ok() && matches!(*last, Some((_, Err(_)))) {
            tracing::info!("ready again: the database commits writes");
        }
        *last = Some((Instant::now(), result));
        result
    }
}
