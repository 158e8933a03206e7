//! Shared helpers of the end-to-end suite: the environment `make up` wrote
//! to `.regis/env.json`, clients for it, a model of the expected Redis state
//! and convergence checks against every region's Redis.
//!
//! Tests in one binary run in parallel against the same environment, so each
//! test writes only under its own random key prefix and reads only that.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command as Process;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use regis_publisher::{AwsSns, Command, Publisher, PublisherConfig, TenantPolicy};
use serde::Deserialize;

/// The tenant of unrestricted test traffic (not in the topology's tenants).
pub const OPEN_TENANT: &str = "e2e-open";
/// The tenant the topology restricts to two regions.
pub const RESTRICTED_TENANT: &str = "hotel-sg";

/// `.regis/env.json`, as written by `local/up.sh`.
#[derive(Debug, Clone, Deserialize)]
pub struct Env {
    pub endpoint_url: String,
    pub topic_arn: String,
    pub topic_region: String,
    pub regions: Vec<Region>,
    pub tenants: HashMap<String, Vec<String>>,
    pub visibility_timeout_seconds: u64,
    pub max_receive_count: u32,
}

/// One region of the environment.
#[derive(Debug, Clone, Deserialize)]
pub struct Region {
    pub name: String,
    pub rank: u16,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
    pub redis_url: String,
}

/// The repository root (this package's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Env {
    /// Reads `$REGIS_ENV_FILE` (default `.regis/env.json` at the root);
    /// panics with what to do when the environment is not up.
    pub fn load() -> Env {
        let path = std::env::var_os("REGIS_ENV_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".regis").join("env.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}): the end-to-end tests need the local environment; \
                 run `make test`, or `make up` before `cargo test`",
                path.display()
            )
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn region(&self, name: &str) -> &Region {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("region {name} is not in the environment"))
    }

    pub fn region_names(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.name.clone()).collect()
    }

    /// Regions the topology allows `tenant` in (all of them when unrestricted).
    pub fn regions_of(&self, tenant: &str) -> Vec<String> {
        self.tenants.get(tenant).cloned().unwrap_or_else(|| self.region_names())
    }

    /// How long a message a worker failed on stays invisible.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_seconds)
    }

    /// SDK configuration for `region`: LocalStack endpoint, test credentials.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        let credentials = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "regis-e2e");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint_url)
            .credentials_provider(credentials)
            .load()
            .await
    }

    pub async fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config(region).await)
    }

    /// A publisher in the topic's region that knows the topology's tenants;
    /// its default tenant is [`OPEN_TENANT`] (unrestricted).
    pub async fn publisher(&self) -> Publisher {
        let origin = self.region(&self.topic_region);
        let mut config = PublisherConfig::new(&self.topic_arn, &origin.name, origin.rank);
        config.default_tenant = Some(OPEN_TENANT.to_owned());
        for (tenant, regions) in &self.tenants {
            config
                .tenants
                .insert(tenant.clone(), TenantPolicy::regions(regions.clone()));
        }
        let sns = AwsSns::from_sdk_config(&self.sdk_config(&origin.name).await);
        Publisher::new(config, sns).expect("publisher configuration")
    }

    pub async fn redis(&self, region: &str) -> redis::aio::MultiplexedConnection {
        let url = &self.region(region).redis_url;
        redis::Client::open(url.as_str())
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }
}

/// A key prefix no other test (or run) uses: `e2e:<test>:<random>:`.
pub fn prefix(test: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("e2e:{test}:{:010x}:", n & 0xff_ffff_ffff)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A key's value, as compared between the model and Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    ZSet(BTreeMap<Vec<u8>, f64>),
}

/// A key's value and whether it has a TTL (the exact TTL drifts).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    pub has_ttl: bool,
}

/// Keys to entries; the state of one region under one prefix.
pub type State = BTreeMap<Vec<u8>, Entry>;

/// What Redis holds after applying commands in order. A single publisher
/// stamps increasing versions, so in last-writer-wins mode every region must
/// end in exactly this state, whatever the delivery order and duplicates.
/// Expiries in the model are assumed to lie in the future.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub state: State,
}

impl Model {
    pub fn apply(&mut self, command: &Command) {
        let state = &mut self.state;
        match command {
            Command::Set {
                key,
                value,
                expire_at_ms,
            } => {
                state.insert(
                    key.clone(),
                    Entry {
                        value: Value::Str(value.clone()),
                        has_ttl: expire_at_ms.is_some(),
                    },
                );
            }
            Command::Del { key } => {
                state.remove(key);
            }
            Command::HSet { key, fields } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::Hash(BTreeMap::new()),
                    has_ttl: false,
                });
                let Value::Hash(hash) = &mut entry.value else {
                    panic!("model: HSET on a non-hash")
                };
                hash.extend(fields.iter().cloned());
            }
            Command::HDel { key, fields } => {
                if let Some(Entry {
                    value: Value::Hash(hash),
                    ..
                }) = state.get_mut(key)
                {
                    for field in fields {
                        hash.remove(field);
                    }
                    if hash.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::SAdd { key, members } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::Set(BTreeSet::new()),
                    has_ttl: false,
                });
                let Value::Set(set) = &mut entry.value else {
                    panic!("model: SADD on a non-set")
                };
                set.extend(members.iter().cloned());
            }
            Command::SRem { key, members } => {
                if let Some(Entry {
                    value: Value::Set(set), ..
                }) = state.get_mut(key)
                {
                    for member in members {
                        set.remove(member);
                    }
                    if set.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::ZAdd { key, members } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::ZSet(BTreeMap::new()),
                    has_ttl: false,
                });
                let Value::ZSet(zset) = &mut entry.value else {
                    panic!("model: ZADD on a non-zset")
                };
                for (score, member) in members {
                    zset.insert(member.clone(), *score);
                }
            }
            Command::ZRem { key, members } => {
                if let Some(Entry {
                    value: Value::ZSet(zset),
                    ..
                }) = state.get_mut(key)
                {
                    for member in members {
                        zset.remove(member);
                    }
                    if zset.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::PExpireAt { key, .. } => {
                if let Some(entry) = state.get_mut(key) {
                    entry.has_ttl = true;
                }
            }
            Command::Persist { key } => {
                if let Some(entry) = state.get_mut(key) {
                    entry.has_ttl = false;
                }
            }
            Command::HReplace {
                key,
                fields,
                expire_at_ms,
            } => {
                Self::replace(
                    state,
                    key,
                    Value::Hash(fields.iter().cloned().collect()),
                    *expire_at_ms,
                    fields.is_empty(),
                );
            }
            Command::SReplace {
                key,
                members,
                expire_at_ms,
            } => {
                Self::replace(
                    state,
                    key,
                    Value::Set(members.iter().cloned().collect()),
                    *expire_at_ms,
                    members.is_empty(),
                );
            }
            Command::ZReplace {
                key,
                members,
                expire_at_ms,
            } => {
                let zset = members.iter().map(|(score, member)| (member.clone(), *score)).collect();
                Self::replace(state, key, Value::ZSet(zset), *expire_at_ms, members.is_empty());
            }
            other => panic!("the test model does not know {}", other.name()),
        }
    }

    fn replace(state: &mut State, key: &[u8], value: Value, expire_at_ms: Option<u64>, empty: bool) {
        if empty {
            state.remove(key);
        } else {
            state.insert(
                key.to_vec(),
                Entry {
                    value,
                    has_ttl: expire_at_ms.is_some(),
                },
            );
        }
    }
}

/// Every key under `prefix` in one Redis, with its value and TTL presence.
/// Version bookkeeping (`regis:v:...`) lies outside any test prefix.
pub async fn snapshot(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> redis::RedisResult<State> {
    let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut state = State::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(conn).await?;
        let value = match kind.as_str() {
            "string" => Value::Str(redis::cmd("GET").arg(&key).query_async(conn).await?),
            "hash" => Value::Hash(redis::cmd("HGETALL").arg(&key).query_async(conn).await?),
            "set" => Value::Set(redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?),
            "zset" => {
                let pairs: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await?;
                Value::ZSet(pairs.into_iter().collect())
            }
            // Expired or deleted between SCAN and TYPE.
            "none" => continue,
            other => panic!("unexpected type {other} for key {}", String::from_utf8_lossy(&key)),
        };
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(conn).await?;
        state.insert(
            key,
            Entry {
                value,
                has_ttl: pttl > 0,
            },
        );
    }
    Ok(state)
}

/// A short description of how `actual` differs from `expected`.
pub fn diff(expected: &State, actual: &State) -> Option<String> {
    let mut lines = Vec::new();
    let mut count = 0;
    for (key, want) in expected {
        match actual.get(key) {
            None => {
                count += 1;
                if lines.len() < 8 {
                    lines.push(format!("missing {}", String::from_utf8_lossy(key)));
                }
            }
            Some(have) if have != want => {
                count += 1;
                if lines.len() < 8 {
                    lines.push(format!(
                        "{}: want {want:?}, have {have:?}",
                        String::from_utf8_lossy(key)
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        count += 1;
        if lines.len() < 8 {
            lines.push(format!("unexpected {}", String::from_utf8_lossy(key)));
        }
    }
    (count > 0).then(|| format!("{count} keys differ: {}", lines.join("; ")))
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
        conns.push((region.clone(), env.redis(region).await));
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
    let mut model = Model::default();
    for command in commands {
        model.apply(command);
    }
    model.state
}
