//! Shared helpers of the end-to-end suite: the environment `make up` wrote
//! to `.regis/env.json`, clients for it, a model of the expected Redis state
//! and convergence checks against every region's Redis.
//!
//! Tests in one binary run in parallel against the same environment, so each
//! test writes only under its own random key prefix and reads only that.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use rand::Rng as _;
pub use regis_aws::clock::now_ms;
pub use regis_demo::env::Env;
pub use regis_demo::model::{State, diff, snapshot, state_after};
use regis_publisher::{Command, Publisher};

/// The tenant of unrestricted test traffic (not in the topology's tenants).
pub const OPEN_TENANT: &str = "e2e-open";
/// The tenant the topology restricts to two regions.
pub const RESTRICTED_TENANT: &str = "hotel-sg";

/// The repository root (this package's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment `make up` described; panics with what to do when it is
/// not up.
pub fn load_env() -> Env {
    Env::load().unwrap_or_else(|e| panic!("{e}"))
}

/// A publisher for the environment, unrestricted tenant by default.
pub async fn publisher(env: &Env) -> Publisher {
    env.publisher(OPEN_TENANT).await.expect("publisher configuration")
}

/// A connection to `region`'s Redis.
pub async fn redis(env: &Env, region: &str) -> redis::aio::MultiplexedConnection {
    env.redis(region)
        .await
        .unwrap_or_else(|e| panic!("connect to {region}'s Redis: {e}"))
}

/// A key prefix no other test (or run) uses: `e2e:<test>:<random>:`.
pub fn prefix(test: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("e2e:{test}:{:010x}:", n & 0xff_ffff_ffff)
}

/// Waits until each of `regions` holds exactly `expected` under `prefix`;
/// panics with the differences after `timeout`. Returns how long it took.
pub async fn wait_converged(
    env: &Env,
    regions: &[String],
    prefix: &str,
    expected: &State,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    let mut conns = Vec::new();
    for region in regions {
        conns.push((region.clone(), redis(env, region).await));
    }
    loop {
        let mut problems = Vec::new();
        for (region, conn) in &mut conns {
            match snapshot(conn, prefix).await {
                Ok(actual) => {
                    if let Some(d) = diff(expected, &actual) {
                        problems.push(format!("{region}: {d}"));
                    }
                }
                // A Redis being restarted by the test: not converged yet.
                Err(e) => problems.push(format!("{region}: {e}")),
            }
        }
        if problems.is_empty() {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            panic!(
                "not converged after {timeout:?} under {prefix}:\n  {}",
                problems.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Publishes every command for `tenant`, then waits until SNS has them all.
pub async fn publish_all(publisher: &Publisher, tenant: &str, commands: &[Command]) {
    let mut receipts = Vec::with_capacity(commands.len());
    for command in commands {
        receipts.push(publisher.publish_for(tenant, command.clone()).await.expect("publish"));
    }
    publisher.flush().await.expect("flush");
    for receipt in receipts {
        receipt.await.expect("delivered to SNS");
    }
}

/// Runs one of the `local/` scripts (`worker.sh`, `redis.sh`) the way
/// `make up` does; panics with its output when it fails.
pub fn local_script(env: &Env, script: &str, args: &[&str]) {
    let path = root().join("local").join(script);
    // Region i listens on base + i: tell the script the base in use.
    let base_port = env.regions[0]
        .redis_url
        .rsplit(':')
        .next()
        .expect("redis url with a port");
    let output = Process::new(&path)
        .args(args)
        .env("REGIS_REDIS_BASE_PORT", base_port)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a region's process again with its `local/` script when dropped
/// (as `make up` starts it), so a failing test does not leave the
/// environment broken for the next one.
pub struct Restart<'a> {
    pub env: &'a Env,
    /// `worker.sh` or `redis.sh`.
    pub script: &'static str,
    pub region: String,
}

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Best effort; the test's own failure is what matters.
            let path = root().join("local").join(self.script);
            let _ = Process::new(path).args(["start", &self.region]).status();
        } else {
            local_script(self.env, self.script, &["start", &self.region]);
        }
    }
}

/// Runs the `regis` binary `make up` built (`$REGIS_BIN`, default
/// `target/debug/regis`) against the environment file.
pub fn regis(args: &[&str]) -> std::process::Output {
    let bin = std::env::var_os("REGIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target").join("debug").join("regis"));
    Process::new(&bin)
        .args(args)
        .env("REGIS_ENV_FILE", Env::path())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

/// The pid `make up` recorded for `name` (`redis-<region>`, `worker-<region>`).
pub fn recorded_pid(name: &str) -> u32 {
    let path = root().join(".regis").join("pids").join(format!("{name}.pid"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (is the environment up, with workers?)", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sends `signal` (e.g. "KILL") to `pid`.
pub fn kill(pid: u32, signal: &str) {
    let status = Process::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
            !matches!(state, None | Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is gone.
pub async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still alive after SIGKILL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A mixed workload of `n` commands over `keys` keys under `prefix`: strings
/// (with and without TTL, deletes), hashes (field writes and deletes, whole
/// replacements), sets and sorted sets. Each key keeps one type. Expiries are
/// an hour away, so they do not fire during a test. Deterministic for a seed.
pub fn workload(prefix: &str, n: usize, keys: usize, seed: u64) -> Vec<Command> {
    use rand::SeedableRng as _;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let expire = now_ms() + 3_600_000;
    let fields = ["name", "city", "stars", "rate", "status"];
    let members = ["wifi", "pool", "spa", "gym", "bar", "parking"];
    let mut commands = Vec::with_capacity(n);
    for i in 0..n {
        let k = rng.random_range(0..keys);
        let pick = rng.random_range(0..10u32);
        let value = |rng: &mut rand::rngs::StdRng| format!("v{i}-{}", rng.random_range(0..1000u32)).into_bytes();
        let command = match k % 4 {
            0 => {
                let key = format!("{prefix}str:{k}").into_bytes();
                match pick {
                    0 => Command::Del { key },
                    1..=3 => Command::Set {
                        key,
                        value: value(&mut rng),
                        expire_at_ms: Some(expire),
                    },
                    _ => Command::Set {
                        key,
                        value: value(&mut rng),
                        expire_at_ms: None,
                    },
                }
            }
            1 => {
                let key = format!("{prefix}hash:{k}").into_bytes();
                let field =
                    |rng: &mut rand::rngs::StdRng| fields[rng.random_range(0..fields.len())].as_bytes().to_vec();
                match pick {
                    0 => Command::HDel {
                        key,
                        fields: vec![field(&mut rng)],
                    },
                    1 => Command::HReplace {
                        key,
                        fields: vec![(b"name".to_vec(), value(&mut rng)), (b"city".to_vec(), value(&mut rng))],
                        expire_at_ms: None,
                    },
                    2 => Command::Del { key },
                    _ => {
                        // Two different fields: a repeated field within one
                        // HSET is not something a service would send.
                        let first = rng.random_range(0..fields.len());
                        let second = (first + rng.random_range(1..fields.len())) % fields.len();
                        Command::HSet {
                            key,
                            fields: vec![
                                (fields[first].as_bytes().to_vec(), value(&mut rng)),
                                (fields[second].as_bytes().to_vec(), value(&mut rng)),
                            ],
                        }
                    }
                }
            }
            2 => {
                let key = format!("{prefix}set:{k}").into_bytes();
                let member =
                    |rng: &mut rand::rngs::StdRng| members[rng.random_range(0..members.len())].as_bytes().to_vec();
                match pick {
                    0..=2 => Command::SRem {
                        key,
                        members: vec![member(&mut rng)],
                    },
                    3 => Command::SReplace {
                        key,
                        members: vec![member(&mut rng), member(&mut rng)],
                        expire_at_ms: None,
                    },
                    _ => Command::SAdd {
                        key,
                        members: vec![member(&mut rng), member(&mut rng)],
                    },
                }
            }
            _ => {
                let key = format!("{prefix}zset:{k}").into_bytes();
                let member = |rng: &mut rand::rngs::StdRng| format!("room{}", rng.random_range(0..8u32)).into_bytes();
                match pick {
                    0..=2 => Command::ZRem {
                        key,
                        members: vec![member(&mut rng)],
                    },
                    3 => Command::ZReplace {
                        key,
                        members: vec![(1.5, member(&mut rng))],
                        expire_at_ms: None,
                    },
                    _ => Command::ZAdd {
                        key,
                        members: vec![(f64::from(rng.random_range(0..500u32)) / 4.0, member(&mut rng))],
                    },
                }
            }
        };
        commands.push(command);
    }
    commands
}

/// The model state after `commands`.
pub fn expected(commands: &[Command]) -> State {
    state_after(commands)
}
