//! Apply throughput: the engine against `redis-benchmark`, same server, same run.
//!
//! The SET-only measurement runs on both engines ElastiCache offers: a
//! `redis-server` and a `valkey-server` (Valkey answers `redis-benchmark`
//! as Redis does), each against `redis-benchmark` pointed at that server.
//!
//! The physical limit of writing into one Redis from one connection is a
//! pipelined client doing nothing else: `redis-benchmark -P 100 -c 1 -t set`.
//! The engine gets what the Lambda function would give it: batches that
//! were encoded and decoded (so keys and values are owned buffers, as after
//! decoding an SQS record), several batches per `apply` call. Only the
//! `apply` calls are timed; decoding is measured apart for the cost model.

use std::error::Error;
use std::process::Command as Process;
use std::time::Instant;

use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::{RedisServer, ServerEngine, VALKEY_SERVER_VAR};
use regis_wire::{
    Batch, BatchHeader, Command, DecodeLimits, EncodeOptions, HybridClock, Keyring, Mode, VersionedCommand, decode,
    encode,
};
use serde::Serialize;

use crate::measure::{percentile, rate, redis_benchmark_rps};
use crate::workload::{Keys, Mix, Workload};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct ApplyPlan {
    /// Commands of each SET-only run (and `redis-benchmark -n`).
    pub set_commands: usize,
    /// Commands of each realistic-mix run.
    pub mix_commands: usize,
    /// Keys per data type (`redis-benchmark -r`).
    pub keyspace: u64,
    /// Commands per batch (one SQS record).
    pub batch_commands: usize,
    /// Batches per `apply` call (records per Lambda invocation).
    pub batches_per_call: usize,
    /// Runs of each SET-only measurement; the best counts.
    pub repeats: usize,
    /// Wall clock for versions and expiries.
    pub now_ms: u64,
}

/// Commands per second, and the ratios to the physical limit.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyFigures {
    /// `redis-benchmark -P 100 -c 1 -t set -d 200`, best run.
    pub redis_benchmark_set_per_sec: f64,
    /// Engine, plain mode, SET-only mix, best run.
    pub plain_set_per_sec: f64,
    /// Engine, last-writer-wins, SET-only mix, best run.
    pub lww_set_per_sec: f64,
    /// Engine, plain mode, realistic mix.
    pub plain_mix_per_sec: f64,
    /// Engine, last-writer-wins, realistic mix.
    pub lww_mix_per_sec: f64,
    /// Decoding records (batches of `batch_commands`), commands per second.
    pub decode_mix_per_sec: f64,
    /// Plain SET-only rate over redis-benchmark's, median over the runs
    /// (each run's two figures measured back to back).
    pub plain_ratio: f64,
    /// Last-writer-wins SET-only rate over redis-benchmark's, likewise.
    pub lww_ratio: f64,
    /// Every run of the SET-only measurements: `[redis-benchmark, plain, lww]`.
    pub runs: Vec<[f64; 3]>,
    /// `redis-benchmark` against the `valkey-server`, best run.
    pub valkey_benchmark_set_per_sec: f64,
    /// Engine, plain mode, SET-only mix, on Valkey, best run.
    pub plain_set_valkey_per_sec: f64,
    /// Engine, last-writer-wins, SET-only mix, on Valkey, best run.
    pub lww_set_valkey_per_sec: f64,
    /// Plain SET-only rate over `redis-benchmark`'s, both on Valkey, median.
    pub plain_ratio_valkey: f64,
    /// Last-writer-wins SET-only rate over `redis-benchmark`'s, both on Valkey, median.
    pub lww_ratio_valkey: f64,
    /// Every run of the SET-only measurements on Valkey: `[redis-benchmark, plain, lww]`.
    pub runs_valkey: Vec<[f64; 3]>,
}

/// Fails with a clear message when `redis-benchmark` is not installed.
pub fn check_redis_benchmark() -> Result<(), Box<dyn Error>> {
    match Process::new("redis-benchmark").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "redis-benchmark --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
        Err(e) => Err(format!(
            "redis-benchmark is not installed ({e}): it comes with Debian's redis-tools (apt-get install redis-tools)"
        )
        .into()),
    }
}

/// Fails with a clear message when the `valkey-server` binary is not there
/// (before anything is measured, rather than a panic halfway).
pub fn check_valkey() -> Result<(), Box<dyn Error>> {
    match std::env::var_os(VALKEY_SERVER_VAR) {
        Some(path) if std::path::Path::new(&path).is_file() => Ok(()),
        Some(path) => Err(format!(
            "{VALKEY_SERVER_VAR}={} names no file: local/valkey.sh installs valkey-server and prints its path",
            path.to_string_lossy()
        )
        .into()),
        None => Err(format!(
            "{VALKEY_SERVER_VAR} is not set: export {VALKEY_SERVER_VAR}=\"$(local/valkey.sh)\" (`make bench` does)"
        )
        .into()),
    }
}

fn redis_benchmark(port: u16, plan: &ApplyPlan) -> Result<f64, Box<dyn Error>> {
    let out = Process::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-P", "100", "-c", "1", "-t", "set", "-d", "200"])
        .args([
            "-n",
            &plan.set_commands.to_string(),
            "-r",
            &plan.keyspace.to_string(),
            "--csv",
        ])
        .output()?;
    let csv = String::from_utf8_lossy(&out.stdout);
    redis_benchmark_rps(&csv, "SET").ok_or_else(|| {
        format!(
            "no SET figure in redis-benchmark's output: {csv} {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

/// Stamps, encodes and decodes `commands` into batches of `per_batch`, as
/// an applier receives them.
pub fn decoded_batches(
    commands: Vec<Command>,
    mode: Mode,
    per_batch: usize,
    now_ms: u64,
) -> Result<Vec<Batch>, Box<dyn Error>> {
    let mut clock = HybridClock::new(1);
    let mut out = Vec::new();
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let batch = Batch {
            header: BatchHeader {
                id: format!("bench-{}", out.len()),
                origin: "bench".into(),
                published_at_ms: now_ms,
                tenant: "bench".into(),
                mode,
            },
            commands: commands
                .by_ref()
                .take(per_batch)
                .map(|c| VersionedCommand::new(clock.tick(now_ms), c))
                .collect(),
        };
        let text = encode(&batch, &EncodeOptions::default())?.text;
        out.push(decode(&text, &DecodeLimits::default(), &Keyring::default())?);
    }
    Ok(out)
}

/// Applies `batches`, `per_call` at a time; commands per second.
pub async fn apply_rate(
    engine: &Engine,
    batches: &[Batch],
    per_call: usize,
    now_ms: u64,
) -> Result<f64, Box<dyn Error>> {
    let start = Instant::now();
    let mut applied = 0u64;
    for group in batches.chunks(per_call.max(1)) {
        let refs: Vec<&Batch> = group.iter().collect();
        for result in engine.apply(&refs, now_ms).await {
            applied += result?.commands as u64;
        }
    }
    Ok(rate(applied, start.elapsed().as_secs_f64()))
}

/// Milliseconds to decode and apply one record, over `bodies` (message
/// texts) processed `per_call` at a time, as one Lambda invocation would.
pub async fn record_ms(
    engine: &Engine,
    bodies: &[String],
    per_call: usize,
    now_ms: u64,
) -> Result<f64, Box<dyn Error>> {
    let limits = DecodeLimits::default();
    let keys = Keyring::default();
    let start = Instant::now();
    for group in bodies.chunks(per_call.max(1)) {
        let batches = group
            .iter()
            .map(|body| decode(body, &limits, &keys))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Batch> = batches.iter().collect();
        for result in engine.apply(&refs, now_ms).await {
            result?;
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / bodies.len().max(1) as f64)
}

async fn flush(server: &RedisServer) -> Result<(), Box<dyn Error>> {
    let mut conn = server.client().get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
    Ok(())
}

async fn engine(server: &RedisServer, mode: Mode) -> Result<Engine, Box<dyn Error>> {
    Ok(Engine::connect(&server.url(), mode, RedisOptions::default()).await?)
}

/// The SET-only measurement on `server`, `plan.repeats` times: each run
/// `[redis-benchmark, plain, lww]` in commands per second, back to back.
async fn set_runs(
    server: &RedisServer,
    plan: &ApplyPlan,
    set_plain: &[Batch],
    set_lww: &[Batch],
) -> Result<Vec<[f64; 3]>, Box<dyn Error>> {
    let plain = engine(server, Mode::Plain).await?;
    let lww = engine(server, Mode::Lww).await?;
    let mut runs = Vec::new();
    for _ in 0..plan.repeats.max(1) {
        flush(server).await?;
        let bench = redis_benchmark(server.port(), plan)?;
        flush(server).await?;
        let p = apply_rate(&plain, set_plain, plan.batches_per_call, plan.now_ms).await?;
        flush(server).await?;
        let l = apply_rate(&lww, set_lww, plan.batches_per_call, plan.now_ms).await?;
        runs.push([bench, p, l]);
    }
    Ok(runs)
}

/// The best of column `i` of `runs`.
fn best(runs: &[[f64; 3]], i: usize) -> f64 {
    runs.iter().map(|r| r[i]).fold(0.0, f64::max)
}

/// Column `i` over `redis-benchmark`'s (column 0): each ratio is taken
/// within one run (engine and redis-benchmark back to back, same load on
/// the machine), then the median of those.
fn median_ratio(runs: &[[f64; 3]], i: usize) -> f64 {
    let ratios: Vec<f64> = runs.iter().map(|r| r[i] / r[0]).collect();
    percentile(&ratios, 50.0).unwrap_or(f64::NAN)
}

/// Runs the apply benchmark on a `redis-server` of its own, and the
/// SET-only part once more on a `valkey-server` of its own.
pub async fn run(plan: &ApplyPlan) -> Result<ApplyFigures, Box<dyn Error>> {
    check_redis_benchmark()?;
    check_valkey()?;
    let server = RedisServer::start_engine(ServerEngine::Redis);
    let plain = engine(&server, Mode::Plain).await?;
    let lww = engine(&server, Mode::Lww).await?;
    let now = plan.now_ms;

    let set_commands = Workload::new(Mix::SetOnly, Keys::Space(plan.keyspace), "key:", 1, now).take(plan.set_commands);
    let set_plain = decoded_batches(set_commands.clone(), Mode::Plain, plan.batch_commands, now)?;
    let set_lww = decoded_batches(set_commands, Mode::Lww, plan.batch_commands, now)?;
    let runs = set_runs(&server, plan, &set_plain, &set_lww).await?;
    let runs_valkey = {
        let valkey = RedisServer::start_engine(ServerEngine::Valkey);
        set_runs(&valkey, plan, &set_plain, &set_lww).await?
    };
    drop((set_plain, set_lww));

    let mix = Workload::new(Mix::Realistic, Keys::Space(plan.keyspace), "mix:", 2, now).take(plan.mix_commands);
    let mix_plain = decoded_batches(mix.clone(), Mode::Plain, plan.batch_commands, now)?;
    let mix_lww = decoded_batches(mix, Mode::Lww, plan.batch_commands, now)?;
    flush(&server).await?;
    let plain_mix = apply_rate(&plain, &mix_plain, plan.batches_per_call, now).await?;
    flush(&server).await?;
    let lww_mix = apply_rate(&lww, &mix_lww, plan.batches_per_call, now).await?;
    flush(&server).await?;

    let texts: Vec<String> = mix_lww
        .iter()
        .map(|b| encode(b, &EncodeOptions::default()).map(|e| e.text))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    for text in &texts {
        decode(text, &DecodeLimits::default(), &Keyring::default())?;
    }
    let decode_mix = rate(plan.mix_commands as u64, start.elapsed().as_secs_f64());

    Ok(ApplyFigures {
        redis_benchmark_set_per_sec: best(&runs, 0),
        plain_set_per_sec: best(&runs, 1),
        lww_set_per_sec: best(&runs, 2),
        plain_mix_per_sec: plain_mix,
        lww_mix_per_sec: lww_mix,
        decode_mix_per_sec: decode_mix,
        plain_ratio: median_ratio(&runs, 1),
        lww_ratio: median_ratio(&runs, 2),
        runs,
        valkey_benchmark_set_per_sec: best(&runs_valkey, 0),
        plain_set_valkey_per_sec: best(&runs_valkey, 1),
        lww_set_valkey_per_sec: best(&runs_valkey, 2),
        plain_ratio_valkey: median_ratio(&runs_valkey, 1),
        lww_ratio_valkey: median_ratio(&runs_valkey, 2),
        runs_valkey,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_the_median_of_each_runs_own_ratio_and_rates_the_best() {
        let runs = [[100.0, 90.0, 30.0], [200.0, 100.0, 100.0], [50.0, 50.0, 20.0]];
        assert_eq!(best(&runs, 0), 200.0);
        assert_eq!(best(&runs, 2), 100.0);
        // lww ratios 0.3, 0.5, 0.4: the median is 0.4, not 100/200.
        assert!((median_ratio(&runs, 2) - 0.4).abs() < 1e-9);
        assert!((median_ratio(&runs, 1) - 0.9).abs() < 1e-9);
    }

    #[test]
    fn batches_round_trip_in_order_with_increasing_versions() {
        let commands = Workload::new(Mix::Realistic, Keys::Space(50), "t:", 9, 1_000).take(25);
        let batches = decoded_batches(commands.clone(), Mode::Lww, 10, 1_000).unwrap();
        assert_eq!(
            batches.iter().map(|b| b.commands.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let back: Vec<Command> = batches
            .iter()
            .flat_map(|b| b.commands.iter().map(|c| c.command.clone()))
            .collect();
        assert_eq!(back, commands);
        let versions: Vec<_> = batches
            .iter()
            .flat_map(|b| b.commands.iter().map(|c| c.version))
            .collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert!(batches.iter().all(|b| b.header.mode == Mode::Lww));
    }
}
