//! The timed phase: every connection sends its requests in order, closed-loop (next request as
//! soon as the answer is in) or open-loop (at fixed intended start times).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::time::Instant;

use crate::http::{Conn, HttpError};

/// Hard bound on the requests of one connection in one run, whatever the duration.
pub const MAX_REQUESTS_PER_CONN: usize = 5_000_000;
/// Reconnection attempts of one connection in one run before it gives up.
const MAX_RECONNECTS: u32 = 100;

/// What one connection sends.
#[derive(Debug, Clone)]
pub enum Bodies {
    /// The same body again and again (challenges).
    Repeat(Bytes),
    /// Exactly these bodies, in this order (pre-signed assertions).
    List(Arc<Vec<Bytes>>),
}

impl Bodies {
    fn len(&self) -> usize {
        match self {
            Self::Repeat(_) => MAX_REQUESTS_PER_CONN,
            Self::List(list) => list.len().min(MAX_REQUESTS_PER_CONN),
        }
    }

    fn get(&self, index: usize) -> Bytes {
        match self {
            Self::Repeat(body) => body.clone(),
            Self::List(list) => list[index].clone(),
        }
    }
}

/// What counts as a success.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// 201 with a `challenge` field.
    Challenge,
    /// 200 with `"valid":true`.
    Assertion,
    /// 422 `signature_invalid`.
    Refusal,
}

impl Expect {
    fn accepts(self, status: StatusCode, body: &[u8]) -> bool {
        match self {
            Self::Challenge => status == StatusCode::CREATED && contains(body, b"\"challenge\":\""),
            Self::Assertion => status == StatusCode::OK && contains(body, b"\"valid\":true"),
            Self::Refusal => {
                status == StatusCode::UNPROCESSABLE_ENTITY
                    && contains(body, b"\"code\":\"signature_invalid\"")
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The schedule shared by every connection.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Start of the timed phase (warm-up included).
    pub start: Instant,
    /// Requests started before this are not measured.
    pub measure_from: Instant,
    /// No request starts at or after this.
    pub end: Instant,
    /// Open loop: the whole run's fixed request rate (requests per second); `None` = closed loop.
    pub rate: Option<f64>,
    /// Number of connections (the open-loop rate is split evenly).
    pub connections: usize,
}

/// One connection's results.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Latency of each measured success, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Measured successes (started in the measured window).
    pub ok: u64,
    /// Successes that finished in the measured window, whenever they started (open-loop
    /// throughput).
    pub ok_in_window: u64,
    /// Measured HTTP answers that are not successes, by status.
    pub failed_by_status: BTreeMap<u16, u64>,
    /// Measured requests without an answer (I/O error or timeout).
    pub no_answer: u64,
    /// Open loop: measured requests that started late because the previous answer on the
    /// connection came after their intended start (the lateness is counted in their latency).
    pub late: u64,
    /// Open loop: measured starts still unsent at the end (the target rate was not reached).
    pub missed: u64,
    /// Failed warm-up requests (not in the other counts).
    pub warmup_failures: u64,
    /// Bodies of the first few failures, for diagnosis.
    pub samples: Vec<String>,
    /// When the last measured request finished.
    pub last_done: Option<Instant>,
    /// The plan ran out before `end`.
    pub exhausted: bool,
}

/// Drives connection `index` through `bodies` on `schedule`; gives the connection back.
pub async fn drive(
    mut conn: Conn,
    index: usize,
    path: &'static str,
    bodies: Bodies,
    expect: Expect,
    schedule: Schedule,
) -> (Conn, ConnStats) {
    let mut stats = ConnStats::default();
    // Open loop: this connection's share of the rate, staggered against the others.
    let per_conn = schedule.rate.map(|rate| {
        let interval = Duration::from_secs_f64(schedule.connections as f64 / rate);
        let offset = Duration::from_secs_f64(index as f64 / rate);
        (interval, offset)
    });
    // Every connection starts together.
    tokio::time::sleep_until(schedule.start).await;
    let mut previous_done = schedule.start;
    let mut reconnects = 0;
    let count = bodies.len();
    let mut sent = 0;
    while sent < count {
        let now = Instant::now();
        let (intended, start, late) = match per_conn {
            Some((interval, offset)) => {
                let intended = schedule.start + offset + interval * (sent as u32);
                if intended >= schedule.end {
                    break;
                }
                if now >= schedule.end {
                    // The server fell so far behind that starts are still due after the end:
                    // they are not sent, only counted.
                    stats.missed = missed_starts(&schedule, offset, interval, sent);
                    break;
                }
                if now < intended {
                    tokio::time::sleep_until(intended).await;
                }
                // Coordinated omission: a request delayed by the previous slow answer is timed
                // from when it should have started; one delayed only by our own timer (the
                // connection was idle) is timed from when it was sent.
                let late = previous_done > intended;
                let start = if late { intended } else { Instant::now() };
                (intended, start, late)
            }
            None => {
                if now >= schedule.end {
                    break;
                }
                (now, now, false)
            }
        };
        let measured = intended >= schedule.measure_from;
        let result = conn.post(path, bodies.get(sent)).await;
        sent += 1;
        let done = Instant::now();
        previous_done = done;
        if done >= schedule.measure_from
            && done <= schedule.end
            && matches!(&result, Ok((status, body)) if expect.accepts(*status, body))
        {
            stats.ok_in_window += 1;
        }
        if !measured {
            match &result {
                Ok((status, body)) if expect.accepts(*status, body) => {}
                Ok(_) => stats.warmup_failures += 1,
                Err(_) => {
                    stats.warmup_failures += 1;
                    if reconnect(&mut conn, &mut reconnects).await.is_err() {
                        break;
                    }
                }
            }
            continue;
        }
        stats.last_done = Some(done);
        if late {
            stats.late += 1;
        }
        match result {
            Ok((status, body)) if expect.accepts(status, &body) => {
                stats.ok += 1;
                let micros = done.duration_since(start).as_micros();
                stats
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok((status, body)) => {
                *stats.failed_by_status.entry(status.as_u16()).or_default() += 1;
                if stats.samples.len() < 3 {
                    stats.samples.push(format!(
                        "{status} {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Err(error) => {
                stats.no_answer += 1;
                if stats.samples.len() < 3 {
                    stats.samples.push(error.to_string());
                }
                if reconnect(&mut conn, &mut reconnects).await.is_err() {
                    break;
                }
            }
        }
    }
    stats.exhausted = sent >= count && Instant::now() < schedule.end;
    (conn, stats)
}

/// Intended starts from request `from` on that fall in the measured window.
fn missed_starts(schedule: &Schedule, offset: Duration, interval: Duration, from: usize) -> u64 {
    let mut missed = 0;
    for index in from..MAX_REQUESTS_PER_CONN {
        let intended = schedule.start + offset + interval * (index as u32);
        if intended >= schedule.end {
            break;
        }
        if intended >= schedule.measure_from {
            missed += 1;
        }
    }
    missed
}

async fn reconnect(conn: &mut Conn, reconnects: &mut u32) -> Result<(), HttpError> {
    if *reconnects >= MAX_RECONNECTS {
        return Err(HttpError::Io("too many reconnections".to_owned()));
    }
    *reconnects += 1;
    conn.reopen().await
}
