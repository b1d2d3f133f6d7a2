//! `attest-loadgen`: HTTP load on a running attestd, loopback only.
//!
//! ```text
//! attest-loadgen --server http://127.0.0.1:PORT --ca-dir DIR --app-id APP \
//!     [--devices 200] [--connections 64] [--duration 10s] [--rate N] challenge|assertion|refusal ...
//! ```
//!
//! Setup (untimed): open the connections, create and attest `--devices` simulated devices
//! (challenge + attestation, certificates from the simulator CA in `--ca-dir`), and for the
//! assertion scenario obtain one assertion challenge per planned request and pre-sign every
//! assertion, so that the timed phase spends no loadgen CPU on crypto.
//!
//! Timed phase: `--warmup`, then `--duration` of requests on keep-alive HTTP/1.1 connections.
//! Closed loop by default (each connection sends its next request as soon as the answer is in:
//! maximum throughput); with `--rate` open loop at that fixed total rate, each request timed from
//! its intended start when the previous answer made it late (no coordinated omission). A device's
//! assertions all go, in counter order, over one connection.
//!
//! Output: `<scenario> <req/s> req/s p50=<ms> p99=<ms> errors=<n> ...` per scenario, and a JSON
//! line after it with `--json`. Exit code 1 if any request failed, 2 on setup errors.

mod drive;
mod http;
mod setup;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::time::Instant;

use drive::{Bodies, ConnStats, Expect, Schedule};
use http::{Conn, Target};
use setup::{Attested, Cas};

/// Longest accepted `--duration` / `--warmup`.
const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most assertions one run may pre-sign (memory: ~400 bytes each).
const MAX_PLAN: usize = 2_000_000;
/// Assertion rate assumed by the default plan of a closed-loop run.
const DEFAULT_PLANNED_RATE: f64 = 15_000.0;
/// The timed phase is abandoned this long after its planned end.
const GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Parser)]
#[command(version, about = "HTTP load on a running attestd (loopback only)")]
struct Args {
    /// Base URL of the server: http://127.0.0.1:PORT (loopback IP literals only).
    #[arg(long)]
    server: String,
    /// Directory of the simulator CA the server trusts (attestation-ca.pem, receipt-ca.pem;
    /// quick-start mode's `attestd-dev`).
    #[arg(long)]
    ca_dir: PathBuf,
    /// App ID of the simulated app; the server must accept it with development keys.
    #[arg(long, default_value = "QUICKSTART.dev.attestd.demo")]
    app_id: String,
    /// Simulated devices (attested during setup; used by the assertion scenario).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured time per scenario: `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured load before the measured time.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop at this many requests per second in total; default: closed loop (maximum).
    #[arg(long)]
    rate: Option<f64>,
    /// Assertions to pre-sign; default: (warm-up + duration) x rate + 5%, or x 15,000/s when
    /// closed-loop. A closed-loop run that uses them all up stops early and says so.
    #[arg(long)]
    plan: Option<usize>,
    /// Also print each result as one JSON line.
    #[arg(long)]
    json: bool,
    /// Scenarios, run in this order.
    #[arg(required = true)]
    scenarios: Vec<Scenario>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `POST /v1/challenges`.
    Challenge,
    /// `POST /v1/assertions` with pre-signed assertions from the attested devices.
    Assertion,
    /// `POST /v1/assertions` naming the first attested device's key with a corrupted
    /// signature: what a stranger who knows a keyId sends (422 `signature_invalid` expected).
    /// `--plan` requests in all, spread over the connections.
    Refusal,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Challenge => "challenge",
            Self::Assertion => "assertion",
            Self::Refusal => "refusal",
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: expected e.g. 10s, 500ms, 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text}: unit must be ms, s or m")),
    };
    let duration = Duration::try_from_secs_f64(seconds).map_err(|error| error.to_string())?;
    if duration > MAX_DURATION {
        return Err(format!("{text}: at most {MAX_DURATION:?}"));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("attest-loadgen: runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("attest-loadgen: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs every scenario; `Ok(false)` if some request failed.
async fn run(args: Args) -> Result<bool, String> {
    let target = Target::parse(&args.server)?;
    if args.connections == 0 || args.connections > 4096 {
        return Err("--connections must be 1..=4096".to_owned());
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate <= 1_000_000.0))
    {
        return Err("--rate must be in (0, 1000000]".to_owned());
    }
    if args.duration.is_zero() {
        return Err("--duration must be positive".to_owned());
    }
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(Conn::open(&target).await.map_err(|e| e.to_string())?);
    }
    let mut devices: Option<Arc<Vec<Attested>>> = None;
    let mut all_ok = true;
    for &scenario in &args.scenarios {
        let bodies = match scenario {
            Scenario::Challenge => {
                vec![Bodies::Repeat(setup::challenge_body(&args.app_id)); conns.len()]
            }
            Scenario::Refusal => {
                let attested = attested_devices(&args, &mut conns, &mut devices).await?;
                let victim = attested
                    .first()
                    .ok_or("refusal: --devices must be at least 1")?;
                let body = setup::forged_assertion_body(victim, &args.app_id);
                let per_conn = planned_assertions(&args).div_ceil(conns.len());
                vec![Bodies::List(Arc::new(vec![body; per_conn])); conns.len()]
            }
            Scenario::Assertion => {
                if args.devices < conns.len() {
                    return Err(format!(
                        "assertion: --devices ({}) must be at least --connections ({}): a \
                         device's assertions go over one connection",
                        args.devices,
                        conns.len()
                    ));
                }
                let attested = attested_devices(&args, &mut conns, &mut devices).await?;
                let plan = planned_assertions(&args);
                let per_conn = plan.div_ceil(conns.len());
                let started = Instant::now();
                let (back, plans) = setup::plan_assertions(
                    std::mem::take(&mut conns),
                    attested,
                    &args.app_id,
                    per_conn,
                )
                .await?;
                conns = back;
                eprintln!(
                    "setup: {} assertion challenges issued and assertions signed in {:.1} s",
                    per_conn * conns.len(),
                    started.elapsed().as_secs_f64()
                );
                plans
                    .into_iter()
                    .map(|list| Bodies::List(Arc::new(list)))
                    .collect()
            }
        };
        let (back, result) = timed(&args, scenario, std::mem::take(&mut conns), bodies).await?;
        conns = back;
        all_ok &= result.errors() == 0 && result.warmup_failures == 0;
        println!("{}", result.line());
        if args.json {
            println!("{}", result.json(&args));
        }
    }
    Ok(all_ok)
}

/// The attested devices, attested on first use (untimed).
async fn attested_devices(
    args: &Args,
    conns: &mut Vec<Conn>,
    devices: &mut Option<Arc<Vec<Attested>>>,
) -> Result<Arc<Vec<Attested>>, String> {
    if let Some(devices) = devices {
        return Ok(Arc::clone(devices));
    }
    let started = Instant::now();
    let cas = Arc::new(Cas::load(&args.ca_dir)?);
    let (back, attested) =
        setup::attest_devices(std::mem::take(conns), cas, &args.app_id, args.devices).await?;
    *conns = back;
    eprintln!(
        "setup: {} devices attested in {:.1} s",
        attested.len(),
        started.elapsed().as_secs_f64()
    );
    let attested = Arc::new(attested);
    *devices = Some(Arc::clone(&attested));
    Ok(attested)
}

fn planned_assertions(args: &Args) -> usize {
    if let Some(plan) = args.plan {
        return plan.clamp(args.connections, MAX_PLAN);
    }
    let seconds = (args.warmup + args.duration).as_secs_f64();
    let planned = match args.rate {
        Some(rate) => rate * seconds * 1.05,
        None => DEFAULT_PLANNED_RATE * seconds,
    };
    // Float to count: bounded by MAX_PLAN right after.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let planned = planned.ceil() as usize;
    planned.clamp(args.connections, MAX_PLAN)
}

/// Runs the timed phase of one scenario; gives the connections back for the next one.
async fn timed(
    args: &Args,
    scenario: Scenario,
    conns: Vec<Conn>,
    bodies: Vec<Bodies>,
) -> Result<(Vec<Conn>, Outcome), String> {
    let (path, expect) = match scenario {
        Scenario::Challenge => ("/v1/challenges", Expect::Challenge),
        Scenario::Assertion => ("/v1/assertions", Expect::Assertion),
        Scenario::Refusal => ("/v1/assertions", Expect::Refusal),
    };
    let width = conns.len();
    // Give every connection's task time to be spawned before the first intended start.
    let start = Instant::now() + Duration::from_millis(50);
    let schedule = Schedule {
        start,
        measure_from: start + args.warmup,
        end: start + args.warmup + args.duration,
        rate: args.rate,
        connections: width,
    };
    let mut tasks = Vec::with_capacity(width);
    for (index, (conn, bodies)) in conns.into_iter().zip(bodies).enumerate() {
        tasks.push(tokio::spawn(drive::drive(
            conn, index, path, bodies, expect, schedule,
        )));
    }
    let hard_stop = schedule.end + GRACE;
    let mut stats = Vec::with_capacity(width);
    let mut back = Vec::with_capacity(width);
    for task in tasks {
        match tokio::time::timeout_at(hard_stop, task).await {
            Ok(Ok((conn, conn_stats))) => {
                back.push(conn);
                stats.push(conn_stats);
            }
            Ok(Err(error)) => return Err(format!("{}: task: {error}", scenario.name())),
            Err(_) => {
                return Err(format!(
                    "{}: the timed phase did not finish within {GRACE:?} of its end",
                    scenario.name()
                ));
            }
        }
    }
    Ok((back, Outcome::merge(scenario, schedule, stats)))
}

/// The merged results of one scenario.
#[derive(Debug)]
struct Outcome {
    scenario: Scenario,
    seconds: f64,
    ok: u64,
    /// Successes counted for the rate.
    rated: u64,
    failed_by_status: BTreeMap<u16, u64>,
    no_answer: u64,
    late: u64,
    missed: u64,
    warmup_failures: u64,
    exhausted: bool,
    samples: Vec<String>,
    /// Sorted.
    latencies_us: Vec<u32>,
}

impl Outcome {
    fn merge(scenario: Scenario, schedule: Schedule, stats: Vec<ConnStats>) -> Self {
        let mut outcome = Self {
            scenario,
            seconds: 0.0,
            ok: 0,
            rated: 0,
            failed_by_status: BTreeMap::new(),
            no_answer: 0,
            late: 0,
            missed: 0,
            warmup_failures: 0,
            exhausted: false,
            samples: Vec::new(),
            latencies_us: Vec::new(),
        };
        let mut last_done = schedule.measure_from;
        for conn in stats {
            outcome.ok += conn.ok;
            outcome.rated += if schedule.rate.is_some() {
                conn.ok_in_window
            } else {
                conn.ok
            };
            outcome.no_answer += conn.no_answer;
            outcome.late += conn.late;
            outcome.missed += conn.missed;
            outcome.warmup_failures += conn.warmup_failures;
            outcome.exhausted |= conn.exhausted;
            for (status, count) in conn.failed_by_status {
                *outcome.failed_by_status.entry(status).or_default() += count;
            }
            if outcome.samples.len() < 5 {
                outcome.samples.extend(conn.samples);
            }
            outcome.latencies_us.extend(conn.latencies_us);
            if let Some(done) = conn.last_done {
                last_done = last_done.max(done);
            }
        }
        outcome.latencies_us.sort_unstable();
        // Open loop: successes that finished within the measured window, over its length (a
        // server that fell behind still shows what it served); closed loop: successes started
        // in the window, until the last answer (a plan used up early ends the window early).
        outcome.seconds = if schedule.rate.is_some() {
            (schedule.end - schedule.measure_from).as_secs_f64()
        } else {
            (last_done - schedule.measure_from).as_secs_f64()
        };
        outcome
    }

    fn errors(&self) -> u64 {
        self.failed_by_status.values().sum::<u64>() + self.no_answer
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rated as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (nearest rank), in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let n = self.latencies_us.len();
        // Nearest rank: bounded by n - 1 right after.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    fn line(&self) -> String {
        let mut line = format!(
            "{} {:.0} req/s p50={:.2} p99={:.2} errors={} p90={:.2} p999={:.2} max={:.2} ok={} seconds={:.2}",
            self.scenario.name(),
            self.rate(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.errors(),
            self.quantile_ms(0.9),
            self.quantile_ms(0.999),
            self.quantile_ms(1.0),
            self.ok,
            self.seconds,
        );
        if self.late > 0 {
            line.push_str(&format!(" late={}", self.late));
        }
        if self.missed > 0 {
            line.push_str(&format!(" missed={}", self.missed));
        }
        if self.warmup_failures > 0 {
            line.push_str(&format!(" warmup_failures={}", self.warmup_failures));
        }
        if self.exhausted {
            line.push_str(" plan_exhausted=true");
        }
        if !self.failed_by_status.is_empty() || self.no_answer > 0 {
            let statuses: Vec<String> = self
                .failed_by_status
                .iter()
                .map(|(status, count)| format!("{status}:{count}"))
                .collect();
            line.push_str(&format!(
                " failed=[{}] no_answer={}",
                statuses.join(","),
                self.no_answer
            ));
            for sample in &self.samples {
                eprintln!("{}: sample failure: {sample}", self.scenario.name());
            }
        }
        line
    }

    fn json(&self, args: &Args) -> String {
        let statuses: BTreeMap<String, u64> = self
            .failed_by_status
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        json!({
            "scenario": self.scenario.name(),
            "mode": if args.rate.is_some() { "open" } else { "closed" },
            "target_rate": args.rate,
            "connections": args.connections,
            "devices": args.devices,
            "seconds": self.seconds,
            "ok": self.ok,
            "req_per_s": self.rate(),
            "errors": self.errors(),
            "failed_by_status": statuses,
            "no_answer": self.no_answer,
            "late": self.late,
            "missed": self.missed,
            "warmup_failures": self.warmup_failures,
            "plan_exhausted": self.exhausted,
            "latency_ms": {
                "p50": self.quantile_ms(0.5),
                "p90": self.quantile_ms(0.9),
                "p99": self.quantile_ms(0.99),
                "p999": self.quantile_ms(0.999),
                "max": self.quantile_ms(1.0),
            },
        })
        .to_string()
    }
}
