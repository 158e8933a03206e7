//! `regis resync`: re-publish the full state of a source Redis as versioned
//! commands, to bootstrap a new region or heal drift.
//!
//! Every data key of the source becomes a whole-value replacement (`SET`,
//! `HREPLACE`, `SREPLACE`, `ZREPLACE`, with the key's expiry), plus element
//! writes for elements that changed after it. Because apply is versioned
//! (last writer wins) and idempotent, what the resync sends never
//! overwrites anything newer in the target: a resync racing with live
//! writes loses to them wherever they are newer, and sending it twice
//! changes nothing.
//!
//! # Which versions
//!
//! The versions come from the source's own version bookkeeping (the hash
//! `regis:v:{T}:K` the applier keeps next to each key), so the resync
//! states what the source knows *as of when it was written*:
//!
//! * the replacement carries the key-level version `k` and the elements
//!   whose own version is not newer than `k`;
//! * elements with a newer version `f` are sent as element writes at `f`:
//!   `HSET`/`SADD`/`ZADD` when present in the source, `HDEL`/`SREM`/`ZREM`
//!   when the source holds only their tombstone;
//! * an expiry set after `k` (version `e`) is sent as `PEXPIREAT`/`PERSIST`
//!   at `e`;
//! * a key the source has deleted (bookkeeping without data) is sent as
//!   `DEL` at `k`, so a target that missed the delete catches up.
//!
//! Where the source has no bookkeeping for a key (it was written outside
//! regis, or by a plain-mode applier), there is no version to reuse, and
//! the key is stamped with a fresh hybrid-clock reading taken during the
//! resync (`--rank`, default 0, the lowest tie-break). **Consequence:**
//! such keys win over everything the target holds that was written before
//! the resync read them, even where the target's value was in fact newer;
//! the source is taken as the truth as of the resync. Writes published
//! after that moment still win. With `--all`, every region takes that
//! value. So resync an unversioned source while its writers are stopped,
//! or into a single region (`--to-region`) that should become its copy.
//!
//! # Where to
//!
//! `--to-region R` sends the batches straight to R's apply queue
//! (`SendMessageBatch`), so other regions are not disturbed: the way to
//! bootstrap or heal one region. `--all` publishes them to the topic, so
//! every region whose subscription accepts the tenant gets them.
//!
//! Batches are sent in order, at most `--rate` commands per second, with a
//! progress bar on stderr.
//!
//! # Modules
//!
//! This module reads the source page by page and drives the rest:
//! [`plan`] turns one key into versioned commands, [`batcher`] cuts them
//! into messages under the size limit, and [`sink`] sends those to the
//! queue or the topic, paced and retried. The bookkeeping layout itself is
//! `regis_applier::apply::bookkeeping`'s, next to the script that writes it.

mod args;
pub mod batcher;
pub mod plan;
pub mod sink;

use regis_applier::snapshot::{self, ReadKey, data_key_of, is_bookkeeping};
use regis_wire::{BatchHeader, HybridClock, Mode, VersionedCommand};
use serde_json::json;

pub use self::args::ResyncArgs;
use self::batcher::Batcher;
use self::plan::{Planned, plan_key};
use self::sink::{Pace, Sink};
use crate::output::{OpsError, Outcome, print_json, progress};
use crate::publish::now_ms;
use crate::verify::{Source, connect};

/// What a resync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data keys restated with their own versions.
    pub versioned: u64,
    /// Data keys stamped with fresh versions.
    pub fresh: u64,
    /// Deletions restated.
    pub tombstones: u64,
    /// Keys of types regis does not replicate.
    pub unsupported: u64,
    /// Commands sent.
    pub commands: u64,
    /// Messages sent.
    pub messages: u64,
    /// Keys whose command is too large for any message.
    pub too_large: u64,
}

/// `regis resync`.
pub async fn run(args: ResyncArgs) -> Result<Outcome, OpsError> {
    let env = args.env.load()?;
    let origin = args.topic.origin.clone().unwrap_or_else(|| "regis-resync".to_owned());
    let sink = sink::open(&args, env.as_ref(), &origin).await?;
    let source = Source {
        name: "source".into(),
        url: args.from.clone(),
    };
    let mut conn = connect(&source).await?;
    let summary = resync(&mut conn, &sink, &args, origin).await?;
    print_summary(&summary, &args);
    Ok(if summary.too_large > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Reads the source on `conn` page by page, plans every key, and sends the
/// batches to `sink` as from `origin`.
pub async fn resync(
    conn: &mut redis::aio::MultiplexedConnection,
    sink: &Sink,
    args: &ResyncArgs,
    origin: String,
) -> Result<Summary, OpsError> {
    let total: Option<u64> = redis::cmd("DBSIZE").query_async(conn).await.ok();
    let bar = progress(total, "resyncing keys");
    let mut batcher = Batcher::new(BatchHeader {
        id: String::new(),
        origin,
        published_at_ms: now_ms(),
        tenant: args.tenant.clone(),
        mode: Mode::Lww,
    });
    let mut clock = HybridClock::new(args.clock_rank);
    let mut rng = rand::rng();
    let mut summary = Summary::default();
    let mut pace = Pace::new(args.rate);
    let mut cursor = 0;
    loop {
        let (next, keys) = snapshot::scan_page(conn, cursor, args.pattern.as_deref(), args.count.max(1))
            .await
            .map_err(|e| OpsError::redis("SCAN on the source", &e))?;
        bar.inc(keys.len() as u64);
        let (books, data): (Vec<Vec<u8>>, Vec<Vec<u8>>) = keys.into_iter().partition(|k| is_bookkeeping(k));
        let now = now_ms();
        let mut planned: Vec<(Planned, Vec<VersionedCommand>)> = Vec::new();
        let reads = snapshot::read_keys(conn, &data, true)
            .await
            .map_err(|e| OpsError::redis("reading the source", &e))?;
        for (key, read) in data.iter().zip(&reads) {
            // Gone since the SCAN: its bookkeeping, if any, is found on its own.
            if read.state.is_some() {
                planned.push(plan_key(key, read, now, &mut clock));
            }
        }
        for (key, read) in tombstones(conn, &books).await? {
            planned.push(plan_key(&key, &read, now, &mut clock));
        }
        let mut texts = Vec::new();
        for (kind, commands) in planned {
            match kind {
                Planned::Versioned => summary.versioned += 1,
                Planned::Fresh => summary.fresh += 1,
                Planned::Tombstone if !commands.is_empty() => summary.tombstones += 1,
                Planned::Tombstone => {}
                Planned::Unsupported => summary.unsupported += 1,
            }
            for command in commands {
                texts.extend(batcher.push(command, &mut rng));
            }
        }
        cursor = next;
        if cursor == 0 {
            texts.extend(batcher.flush(&mut rng));
        }
        let (commands, messages) = sink.send_paced(&texts, &mut pace).await?;
        summary.commands += commands;
        summary.messages += messages;
        if cursor == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    summary.too_large = batcher.too_large.len() as u64;
    for key in batcher.too_large.iter().take(5) {
        eprintln!(
            "regis: {} is too large for one message and was not sent",
            crate::output::show_bytes(key)
        );
    }
    Ok(summary)
}

fn print_summary(summary: &Summary, args: &ResyncArgs) {
    if args.json {
        print_json(&json!({
            "keys_versioned": summary.versioned, "keys_fresh": summary.fresh, "tombstones": summary.tombstones,
            "unsupported": summary.unsupported, "too_large": summary.too_large,
            "commands": summary.commands, "messages": summary.messages,
            "to": args.to_region.clone().unwrap_or_else(|| "all".into()),
        }));
    } else {
        println!(
            "resynced {} keys with their own versions, {} with fresh versions, {} deletions: {} commands in {} messages to {}",
            summary.versioned,
            summary.fresh,
            summary.tombstones,
            summary.commands,
            summary.messages,
            args.to_region.as_deref().unwrap_or("all regions")
        );
        if summary.unsupported > 0 {
            println!(
                "skipped {} keys of types regis does not replicate (lists, streams, ...)",
                summary.unsupported
            );
        }
    }
}

/// Bookkeeping keys whose data key is gone: the source's deletions.
async fn tombstones(
    conn: &mut redis::aio::MultiplexedConnection,
    books: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, ReadKey)>, OpsError> {
    let pairs: Vec<(&Vec<u8>, &[u8])> = books.iter().filter_map(|m| Some((m, data_key_of(m)?))).collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (m, k) in &pairs {
        pipe.cmd("EXISTS").arg(*k).cmd("HGETALL").arg(*m);
    }
    let replies: Vec<redis::Value> = pipe
        .query_async(conn)
        .await
        .map_err(|e| OpsError::redis("reading the source", &e))?;
    let mut out = Vec::new();
    for ((_, key), chunk) in pairs.iter().zip(replies.chunks(2)) {
        if matches!(chunk[0], redis::Value::Int(0)) {
            let fields: Vec<(Vec<u8>, Vec<u8>)> =
                redis::FromRedisValue::from_redis_value(chunk[1].clone()).unwrap_or_default();
            out.push((
                key.to_vec(),
                ReadKey {
                    state: None,
                    bookkeeping: fields,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use redis::Commands as _;
    use regis_applier::apply::bookkeeping::bookkeeping_key;
    use regis_testkit::{MemoryQueue, RedisServer};
    use regis_wire::{Command, DecodeLimits, Keyring, Version};

    use super::*;
    use crate::local_env::EnvArgs;
    use crate::publish::TopicArgs;

    const APPLY: &str = "apply";

    fn args(from: &str) -> ResyncArgs {
        ResyncArgs {
            from: from.into(),
            to_region: Some("eu-west-1".into()),
            queue_url: Some(APPLY.into()),
            all: false,
            tenant: "acme".into(),
            pattern: None,
            rate: 0,
            clock_rank: 0,
            count: 2,
            json: false,
            topic: TopicArgs::default(),
            env: EnvArgs::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_kind_of_key_is_planned_batched_and_sent() {
        let server = RedisServer::start();
        let mut c = server.connection();
        let v = |ms| Version::new(ms, 0, 1);
        let _: () = c.set("plain", "a").unwrap();
        let _: () = c.set("versioned", "b").unwrap();
        let _: () = c.hset(bookkeeping_key(b"versioned"), "k", v(5).sortable()).unwrap();
        let _: () = c.hset(bookkeeping_key(b"gone"), "k", v(8).sortable()).unwrap();
        let _: () = c.rpush("list", "x").unwrap();
        let queue = Arc::new(MemoryQueue::new());
        let sink = Sink::queue(queue.clone(), APPLY.into(), "acme", "regis-resync");
        let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();

        let summary = resync(&mut conn, &sink, &args(&server.url()), "regis-resync".into())
            .await
            .unwrap();
        assert_eq!(
            summary,
            Summary {
                versioned: 1,
                fresh: 1,
                tombstones: 1,
                unsupported: 1,
                commands: 3,
                messages: 1,
                too_large: 0,
            }
        );
        let messages = queue.messages(APPLY);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].attributes["tenant"].value, "acme");
        let batch = regis_wire::decode(&messages[0].body, &DecodeLimits::default(), &Keyring::default()).unwrap();
        assert_eq!((batch.header.tenant.as_str(), batch.header.mode), ("acme", Mode::Lww));
        let mut commands: Vec<(String, Option<Version>)> = batch
            .commands
            .iter()
            .map(|c| {
                let own = (c.version.millis < 1_000).then_some(c.version);
                (
                    format!("{} {}", c.command.name(), String::from_utf8_lossy(c.command.key())),
                    own,
                )
            })
            .collect();
        commands.sort();
        assert_eq!(
            commands,
            [
                ("del gone".to_owned(), Some(v(8))),
                ("set plain".to_owned(), None),
                ("set versioned".to_owned(), Some(v(5))),
            ]
        );
        assert!(
            batch
                .commands
                .iter()
                .any(|c| c.command == Command::Del { key: b"gone".to_vec() }),
            "the deletion is restated"
        );
    }
}
