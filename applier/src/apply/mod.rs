//! The apply engine: applies decoded batches to Redis with pipelining.
//!
//! [`Engine`] is built once per Lambda container or worker and cloned freely.
//! [`Engine::apply`] takes the batches of several SQS records at once and
//! sends all their commands in as few round trips as the topology allows:
//! one pipeline on a single node, one pipeline per hash slot (all sent
//! concurrently) on a cluster. It returns one result per batch, so the
//! caller can report per-record outcomes.
//!
//! Two modes, chosen per engine and stamped on every batch:
//!
//! * [`Mode::Plain`]: the commands as they are ([`plain`]); the fastest, for
//!   single-writer data that tolerates reordering.
//! * [`Mode::Lww`]: versioned last-writer-wins in a Lua script ([`lww`]),
//!   correct under duplicates, reordering and several writers.
//!
//! Errors say whether a retry can help ([`ApplyError::is_retryable`]).

pub mod bookkeeping;
mod connection;
mod error;
mod lww;
pub mod model;
mod plain;
mod run_lww;
mod run_plain;
pub mod slot;
pub mod tags;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use redis::Script;
use regis_wire::{Batch, Mode, VersionedCommand};

use connection::Conn;
pub use connection::parse_url;
pub use error::ApplyError;
pub use lww::{ASIDE_WINDOW, CHAIN_MAX};

/// Default time to wait for a reply: generous, because one pipeline may carry
/// the commands of ten large batches.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time to wait for a TCP (and TLS) connection to Redis.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of commands per script call in last-writer-wins mode: big
/// enough that the call overhead vanishes, small enough that one call does
/// not block Redis for long.
pub const DEFAULT_MAX_COMMANDS_PER_SCRIPT: usize = 64;
/// Default lifetime of bookkeeping beyond the data it describes: seven days,
/// the default retention of the dead-letter queue (and at least that of the
/// apply queue, four days), so a tombstone outlives any message still in
/// flight or parked, redrives included. The rule, enforced by the Terraform
/// region module and the local topology: the horizon covers the retention of
/// both queues (Amazon SQS Developer Guide, "Quotas related to messages":
/// retention 60 s to 14 days; a message keeps its original enqueue time when
/// it moves to a DLQ).
pub const DEFAULT_TOMBSTONE_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most commands sent in one pipeline. Several thousand commands already
/// amortise the round trip; larger pipelines only cost memory (the request
/// and the replies are held whole, a few KiB per command).
pub const MAX_PIPELINE_COMMANDS: usize = 4_096;
/// How many per-slot pipelines a cluster engine keeps in flight at once.
const CLUSTER_CONCURRENCY: usize = 64;

/// How to talk to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// The URL is a seed node of a Redis Cluster (ElastiCache cluster mode).
    pub cluster: bool,
    /// How long to wait for a reply before the request counts as failed
    /// (retryably).
    pub response_timeout: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// Most commands per script call in last-writer-wins mode (at least 1).
    pub max_commands_per_script: usize,
    /// How long bookkeeping outlives deleted or expired data.
    pub tombstone_horizon: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            cluster: false,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_commands_per_script: DEFAULT_MAX_COMMANDS_PER_SCRIPT,
            tombstone_horizon: DEFAULT_TOMBSTONE_HORIZON,
        }
    }
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchApplied {
    /// Commands in the batch.
    pub commands: usize,
    /// Last-writer-wins: commands that lost to a newer version everywhere
    /// they could apply (duplicates included). Always 0 in plain mode.
    pub skipped_older: usize,
    /// Last-writer-wins: element writes skipped because the key holds another
    /// data type. Always 0 in plain mode (Redis refuses those instead).
    pub type_conflicts: usize,
}

struct Inner {
    conn: Conn,
    mode: Mode,
    options: RedisOptions,
    script: Script,
}

/// Applies batches to one region's Redis. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.inner.mode)
            .field("options", &self.inner.options)
            .finish()
    }
}

/// One command of one batch, on its way to Redis.
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) batch: usize,
    pub(crate) command: &'a VersionedCommand,
}

/// How long [`Engine::apply`] waits before trying a batch again whose
/// connection was lost, so the connection manager can reconnect.
pub const RECONNECT_GRACE: Duration = Duration::from_millis(300);

/// What became of one command.
pub(crate) type ItemResult = Result<lww::Code, ApplyError>;

impl Engine {
    /// Connects to Redis (a single node, or a cluster through a seed node)
    /// and, in last-writer-wins mode, loads the script. Fails with a
    /// retryable error when Redis cannot be reached, and with
    /// [`ApplyError::Config`] when the URL cannot work.
    pub async fn connect(redis_url: &str, mode: Mode, options: RedisOptions) -> Result<Engine, ApplyError> {
        let mut conn = Conn::open(redis_url, &options).await?;
        let script = lww::script();
        if mode == Mode::Lww {
            tags::warm_up();
            conn.load(&script)
                .await
                .map_err(|e| ApplyError::from_redis(e, "script"))?;
        }
        let options = RedisOptions {
            max_commands_per_script: options.max_commands_per_script.max(1),
            ..options
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                conn,
                mode,
                options,
                script,
            }),
        })
    }

    /// The mode this engine applies; batches of the other mode are refused.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// Applies the commands of several batches with pipelining (one round
    /// trip per many commands, not one per command) and returns one result
    /// per batch, in order. `now_ms` is the applier's wall clock (epoch ms),
    /// used for bookkeeping lifetimes.
    ///
    /// Commands of one key are applied in batch order, then command order.
    /// A batch whose mode differs from the engine's is refused with
    /// [`ApplyError::ModeMismatch`] and nothing of it is applied. When a
    /// batch has both retryable and permanent failures, the retryable one is
    /// reported: the retry either succeeds or reports the permanent one.
    ///
    /// A batch that failed because the connection was lost is tried once more
    /// after [`RECONNECT_GRACE`]: the connection manager reconnects in the
    /// background, and the first request after an outage otherwise still
    /// sees the failure of its last reconnect attempt, costing the record a
    /// whole visibility timeout (and one of its `maxReceiveCount` receives).
    /// Applying again is harmless: every command is idempotent.
    pub async fn apply(&self, batches: &[&Batch], now_ms: u64) -> Vec<Result<BatchApplied, ApplyError>> {
        let mut results = self.apply_once(batches, now_ms).await;
        let lost: Vec<usize> = (0..results.len())
            .filter(|&i| matches!(results[i], Err(ApplyError::Unavailable(_))))
            .collect();
        if lost.is_empty() {
            return results;
        }
        tokio::time::sleep(RECONNECT_GRACE).await;
        let again: Vec<&Batch> = lost.iter().map(|&i| batches[i]).collect();
        for (i, result) in lost.into_iter().zip(self.apply_once(&again, now_ms).await) {
            results[i] = result;
        }
        results
    }

    async fn apply_once(&self, batches: &[&Batch], now_ms: u64) -> Vec<Result<BatchApplied, ApplyError>> {
        let engine_mode = self.inner.mode;
        let mut accs: Vec<Result<BatchApplied, ApplyError>> = batches
            .iter()
            .map(|b| {
                if b.header.mode == engine_mode {
                    Ok(BatchApplied {
                        commands: b.commands.len(),
                        ..BatchApplied::default()
                    })
                } else {
                    Err(ApplyError::ModeMismatch {
                        batch: b.header.mode,
                        engine: engine_mode,
                    })
                }
            })
            .collect();
        let items: Vec<Item<'_>> = batches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.header.mode == engine_mode)
            .flat_map(|(batch, b)| b.commands.iter().map(move |command| Item { batch, command }))
            .collect();
        if items.is_empty() {
            return accs;
        }

        let groups: Vec<Vec<Item<'_>>> = if self.inner.options.cluster {
            let mut by_slot: BTreeMap<u16, Vec<Item<'_>>> = BTreeMap::new();
            for item in items {
                by_slot
                    .entry(slot::key_slot(item.command.command.key()))
                    .or_default()
                    .push(item);
            }
            by_slot.into_values().collect()
        } else {
            vec![items]
        };

        let mut record = |group: &[Item<'_>], results: Vec<ItemResult>| {
            for (item, result) in group.iter().zip(results) {
                merge(&mut accs[item.batch], result);
            }
        };
        if groups.len() == 1 {
            let results = self.run_group(&groups[0], now_ms).await;
            record(&groups[0], results);
        } else {
            // Per-slot pipelines in flight together, at most CLUSTER_CONCURRENCY.
            // (A loop rather than a stream combinator with a closure keeps the
            // future `Send` for callers behind `async_trait`.)
            let mut pending = groups.iter();
            let mut running = FuturesUnordered::new();
            for group in pending.by_ref().take(CLUSTER_CONCURRENCY) {
                running.push(self.run_group_owned(group, now_ms));
            }
            while let Some((group, results)) = running.next().await {
                record(group, results);
                if let Some(next) = pending.next() {
                    running.push(self.run_group_owned(next, now_ms));
                }
            }
        }
        accs
    }

    async fn run_group_owned<'g, 'a>(&self, group: &'g [Item<'a>], now_ms: u64) -> (&'g [Item<'a>], Vec<ItemResult>) {
        (group, self.run_group(group, now_ms).await)
    }

    /// Applies the commands of one group (everything on a single node, one
    /// slot on a cluster); one result per command.
    ///
    /// A pipeline is built whole before it is sent and its replies are read
    /// whole, so a large group is sent as consecutive pipelines of at most
    /// [`MAX_PIPELINE_COMMANDS`] commands (a whole number of script calls,
    /// so the calls are the same as in one pipeline), one after the other:
    /// the per-key order is kept and memory stays bounded.
    async fn run_group(&self, group: &[Item<'_>], now_ms: u64) -> Vec<ItemResult> {
        let per_call = self.inner.options.max_commands_per_script.max(1);
        let piece = match self.inner.mode {
            Mode::Plain => MAX_PIPELINE_COMMANDS,
            Mode::Lww => (MAX_PIPELINE_COMMANDS / per_call).max(1) * per_call,
        };
        let mut results = Vec::with_capacity(group.len());
        for part in group.chunks(piece) {
            results.extend(match self.inner.mode {
                Mode::Plain => self.run_plain(part, now_ms).await,
                Mode::Lww => self.run_lww(part, now_ms).await,
            });
        }
        results
    }
}

/// Folds one command's result into its batch's result. A retryable error
/// wins over a permanent one (see [`Engine::apply`]).
fn merge(acc: &mut Result<BatchApplied, ApplyError>, result: ItemResult) {
    match (&mut *acc, result) {
        (Ok(applied), Ok(code)) => match code {
            lww::Code::Applied => {}
            lww::Code::Older => applied.skipped_older += 1,
            lww::Code::TypeConflict => applied.type_conflicts += 1,
        },
        (Ok(_), Err(err)) => *acc = Err(err),
        (Err(current), Err(err)) => {
            if err.is_retryable() && !current.is_retryable() {
                *acc = Err(err);
            }
        }
        (Err(_), Ok(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_and_tls_parse() {
        let info = parse_url("rediss://app:s3cr%40t@cache.example.com:6380/0").unwrap();
        assert!(
            matches!(info.addr(), redis::ConnectionAddr::TcpTls { host, port: 6380, .. } if host == "cache.example.com")
        );
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(info.redis_settings().password(), Some("s3cr@t"));
        let plain = parse_url("redis://:pw@127.0.0.1:6379").unwrap();
        assert!(matches!(plain.addr(), redis::ConnectionAddr::Tcp(host, 6379) if host == "127.0.0.1"));
        assert_eq!(plain.redis_settings().password(), Some("pw"));
        let err = parse_url("http://127.0.0.1:6379").unwrap_err();
        assert_eq!(err.reason(), "redis-config");
    }

    #[test]
    fn retryable_errors_win_over_permanent_ones() {
        let rejected = ApplyError::Rejected {
            command: "hset",
            code: "WRONGTYPE".into(),
            detail: String::new(),
        };
        let busy = ApplyError::Busy {
            code: "LOADING".into(),
            detail: String::new(),
        };
        let mut acc = Ok(BatchApplied {
            commands: 3,
            ..Default::default()
        });
        merge(&mut acc, Ok(lww::Code::Older));
        merge(&mut acc, Err(rejected.clone()));
        assert_eq!(acc.as_ref().unwrap_err().reason(), "redis-rejected");
        merge(&mut acc, Err(busy));
        assert_eq!(acc.as_ref().unwrap_err().reason(), "redis-busy");
        merge(&mut acc, Err(rejected));
        assert_eq!(acc.as_ref().unwrap_err().reason(), "redis-busy");
    }

    #[test]
    fn counts_are_folded_per_batch() {
        let mut acc = Ok(BatchApplied {
            commands: 3,
            ..Default::default()
        });
        merge(&mut acc, Ok(lww::Code::Applied));
        merge(&mut acc, Ok(lww::Code::Older));
        merge(&mut acc, Ok(lww::Code::TypeConflict));
        assert_eq!(
            acc.unwrap(),
            BatchApplied {
                commands: 3,
                skipped_older: 1,
                type_conflicts: 1
            }
        );
    }
}
