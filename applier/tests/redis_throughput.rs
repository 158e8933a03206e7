//! Large deliveries land completely in both modes; prints the rate next to
//! `redis-benchmark -P 100 -c 1` SET on the same server, for reference (the
//! figures are informative: speed is judged by benchmarks, not by tests).

mod redis_support;

use std::time::Instant;

use redis_support::{batch, now_ms};
use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::RedisServer;
use regis_wire::{Batch, Command, HybridClock, Mode, VersionedCommand};

const COMMANDS: usize = 100_000;
const PER_BATCH: usize = 1_000;
/// Batches per `apply` call: an SQS receive gives at most ten records.
const PER_CALL: usize = 10;

fn batches(mode: Mode) -> Vec<Batch> {
    let mut clock = HybridClock::new(1);
    (0..COMMANDS / PER_BATCH)
        .map(|b| {
            let commands = (0..PER_BATCH)
                .map(|c| {
                    let key = format!("key:{:08}", b * PER_BATCH + c).into_bytes();
                    VersionedCommand::new(
                        clock.tick(1_700_000_000_000),
                        Command::Set {
                            key,
                            value: vec![b'x'; 3],
                            expire_at_ms: None,
                        },
                    )
                })
                .collect();
            batch(mode, &format!("b{b}"), commands)
        })
        .collect()
}

fn redis_benchmark(port: u16) -> Option<String> {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            "100",
            "-c",
            "1",
            "-n",
            &COMMANDS.to_string(),
        ])
        .args(["-t", "set", "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.rsplit('\r').next().map(|last| last.trim().to_owned())
}

#[tokio::test]
async fn large_deliveries_land_completely() {
    for mode in [Mode::Plain, Mode::Lww] {
        let server = RedisServer::start();
        let engine = Engine::connect(&server.url(), mode, RedisOptions::default())
            .await
            .unwrap();
        let all = batches(mode);
        let refs: Vec<&Batch> = all.iter().collect();
        let start = Instant::now();
        for call in refs.chunks(PER_CALL) {
            for result in engine.apply(call, now_ms()).await {
                assert_eq!(result.unwrap().commands, PER_BATCH);
            }
        }
        let elapsed = start.elapsed();
        let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();
        let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        let expected = if mode == Mode::Lww { 2 * COMMANDS } else { COMMANDS };
        assert_eq!(keys, expected, "{mode}: every key (and its bookkeeping) landed");
        let rate = COMMANDS as f64 / elapsed.as_secs_f64();
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        let server_us: f64 = stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_set:") || l.starts_with("cmdstat_evalsha:"))
            .filter_map(|l| l.split("usec=").nth(1)?.split(',').next()?.parse::<f64>().ok())
            .sum();
        redis::cmd("FLUSHALL").exec_async(&mut conn).await.unwrap();
        let reference = redis_benchmark(server.port()).unwrap_or_else(|| "redis-benchmark not available".into());
        println!(
            "{mode}: {COMMANDS} SET in {elapsed:?} = {rate:.0} commands/s, {:.2} us per command inside Redis; \
             redis-benchmark: {reference}",
            server_us / COMMANDS as f64
        );
    }
}
