//! Shared by the Redis integration tests: building batches, reading back
//! everything a Redis holds (without bookkeeping), comparing with a model.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use redis::aio::ConnectionLike;
use regis_applier::apply::bookkeeping::{ASIDE_PREFIX, BOOKKEEPING_PREFIX};
use regis_applier::apply::model::ModelValue;
pub use regis_aws::clock::now_ms;
use regis_wire::{Batch, BatchHeader, Command, Mode, Version, VersionedCommand};

/// Allowed difference between an expected absolute expiry and the one read
/// back through `PTTL` (the two clocks are read at slightly different times).
pub const EXPIRY_TOLERANCE_MS: u64 = 2_000;

/// A batch of `mode` with the given commands.
pub fn batch(mode: Mode, id: &str, commands: Vec<VersionedCommand>) -> Batch {
    Batch {
        header: BatchHeader {
            id: id.into(),
            origin: "test-1".into(),
            published_at_ms: 1_700_000_000_000,
            tenant: "t".into(),
            mode,
        },
        commands,
    }
}

/// A command at version (ms, 0, rank).
pub fn at(ms: u64, rank: u16, command: Command) -> VersionedCommand {
    VersionedCommand::new(Version::new(ms, 0, rank), command)
}

/// Everything a Redis node holds except the applier's `regis:v:`
/// bookkeeping and `regis:x:` aside keys: value and absolute expiry (epoch
/// ms, exact, from `PEXPIRETIME`).
pub type Dump = BTreeMap<Vec<u8>, (ModelValue, Option<u64>)>;

/// Reads every data key of one node.
pub async fn dump(conn: &mut (impl ConnectionLike + Send)) -> Dump {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch.into_iter().filter(|k| !is_reserved(k)));
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = Dump::new();
    for key in keys {
        if let Some(entry) = read_key(conn, &key).await {
            out.insert(key, entry);
        }
    }
    out
}

/// True for the applier's own keys (bookkeeping, aside).
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(BOOKKEEPING_PREFIX) || key.starts_with(ASIDE_PREFIX)
}

/// Reads one key: value and absolute expiry, or `None` if it does not exist.
pub async fn read_key(conn: &mut (impl ConnectionLike + Send), key: &[u8]) -> Option<(ModelValue, Option<u64>)> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let value = match kind.as_str() {
        "none" => return None,
        "string" => ModelValue::String(redis::cmd("GET").arg(key).query_async(conn).await.unwrap()),
        "hash" => ModelValue::Hash(redis::cmd("HGETALL").arg(key).query_async(conn).await.unwrap()),
        "set" => {
            let members: BTreeSet<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query_async(conn).await.unwrap();
            ModelValue::Set(members)
        }
        "zset" => {
            let pairs: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(conn)
                .await
                .unwrap();
            ModelValue::SortedSet(pairs.into_iter().map(|(m, s)| (m, parse_score(&s))).collect())
        }
        other => panic!("unexpected type {other}"),
    };
    Some((value, expiry_of(conn, key).await))
}

fn parse_score(text: &str) -> f64 {
    match text {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => text.parse().unwrap(),
    }
}

/// The absolute expiry of `key` (epoch ms), if it has one.
pub async fn expiry_of(conn: &mut (impl ConnectionLike + Send), key: &[u8]) -> Option<u64> {
    let at: i64 = redis::cmd("PEXPIRETIME").arg(key).query_async(conn).await.unwrap();
    u64::try_from(at).ok()
}

/// Compares two dumps: values exactly, expiries within
/// [`EXPIRY_TOLERANCE_MS`]. Returns a description of the first difference.
pub fn diff(left: &Dump, right: &Dump) -> Option<String> {
    diff_within(left, right, EXPIRY_TOLERANCE_MS)
}

/// Compares two dumps: values exactly, expiries within `tolerance_ms`.
pub fn diff_within(left: &Dump, right: &Dump, tolerance_ms: u64) -> Option<String> {
    let keys: BTreeSet<&Vec<u8>> = left.keys().chain(right.keys()).collect();
    for key in keys {
        match (left.get(key), right.get(key)) {
            (Some((lv, le)), Some((rv, re))) => {
                if lv != rv {
                    return Some(format!("{}: {lv:?} != {rv:?}", show(key)));
                }
                let close = match (le, re) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.abs_diff(*b) <= tolerance_ms,
                    _ => false,
                };
                if !close {
                    return Some(format!("{}: expiry {le:?} != {re:?}", show(key)));
                }
            }
            (l, r) => return Some(format!("{}: {l:?} != {r:?}", show(key))),
        }
    }
    None
}

/// A key for messages (lossy UTF-8).
pub fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The slot of a key as the server computes it.
pub async fn keyslot(conn: &mut (impl ConnectionLike + Send), key: &[u8]) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}
