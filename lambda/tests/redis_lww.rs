//! Last-writer-wins semantics against a real redis-server: the named
//! scenarios of the design, bookkeeping lifetimes, script cache loss, and
//! the memory the bookkeeping costs.

mod redis_support;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis_support::{at, batch, expiry_of, now_ms, read_key};
use regis_lambda::apply::model::ModelValue;
use regis_lambda::apply::tags::bookkeeping_key;
use regis_lambda::apply::{ApplyError, BatchApplied, Engine, RedisOptions};
use regis_testkit::RedisServer;
use regis_wire::{Command, Mode, Version, VersionedCommand};

/// Tolerance for TTLs computed from two clock readings.
const TOLERANCE_MS: u64 = 2_000;

fn b(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

struct Region {
    _server: RedisServer,
    engine: Engine,
    conn: MultiplexedConnection,
}

async fn region(options: RedisOptions) -> Region {
    let server = RedisServer::start();
    let engine = Engine::connect(&server.url(), Mode::Lww, options).await.unwrap();
    let conn = server.client().get_multiplexed_async_connection().await.unwrap();
    Region {
        _server: server,
        engine,
        conn,
    }
}

impl Region {
    /// Applies each command as its own batch, in the order given.
    async fn deliver(&self, commands: &[VersionedCommand]) -> Vec<BatchApplied> {
        let mut out = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            let one = batch(Mode::Lww, &format!("b{i}"), vec![c.clone()]);
            out.push(self.engine.apply(&[&one], now_ms()).await.remove(0).unwrap());
        }
        out
    }

    async fn get(&mut self, key: &[u8]) -> Option<ModelValue> {
        read_key(&mut self.conn, key).await.map(|(v, _)| v)
    }
}

fn set(key: &[u8], value: &[u8]) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        expire_at_ms: None,
    }
}

fn hset(key: &[u8], field: &[u8], value: &[u8]) -> Command {
    Command::HSet {
        key: b(key),
        fields: vec![(b(field), b(value))],
    }
}

fn hash(pairs: &[(&[u8], &[u8])]) -> ModelValue {
    ModelValue::Hash(pairs.iter().map(|(f, v)| (b(f), b(v))).collect::<BTreeMap<_, _>>())
}

#[tokio::test]
async fn late_older_set_after_newer_del_stays_deleted() {
    let mut r = region(RedisOptions::default()).await;
    r.deliver(&[at(100, 1, set(b"k", b"v0"))]).await;
    let applied = r
        .deliver(&[at(300, 1, Command::Del { key: b(b"k") }), at(200, 1, set(b"k", b"v1"))])
        .await;
    assert_eq!(applied[1].skipped_older, 1);
    assert_eq!(r.get(b"k").await, None);
}

#[tokio::test]
async fn concurrent_same_millisecond_writes_pick_the_higher_rank_everywhere() {
    let mut eu = region(RedisOptions::default()).await;
    let mut ap = region(RedisOptions::default()).await;
    let from_rank1 = VersionedCommand::new(Version::new(500, 0, 1), set(b"k", b"from-1"));
    let from_rank2 = VersionedCommand::new(Version::new(500, 0, 2), set(b"k", b"from-2"));
    let field_rank1 = VersionedCommand::new(Version::new(500, 3, 1), hset(b"h", b"f", b"from-1"));
    let field_rank2 = VersionedCommand::new(Version::new(500, 3, 2), hset(b"h", b"f", b"from-2"));
    eu.deliver(&[
        from_rank1.clone(),
        from_rank2.clone(),
        field_rank2.clone(),
        field_rank1.clone(),
    ])
    .await;
    ap.deliver(&[from_rank2, from_rank1, field_rank1, field_rank2]).await;
    for r in [&mut eu, &mut ap] {
        assert_eq!(r.get(b"k").await, Some(ModelValue::String(b(b"from-2"))));
        assert_eq!(r.get(b"h").await, Some(hash(&[(b"f", b"from-2")])));
    }
}

#[tokio::test]
async fn a_late_older_field_write_does_not_undo_a_newer_one() {
    let mut r = region(RedisOptions::default()).await;
    r.deliver(&[
        at(200, 1, hset(b"h", b"b", b"new-b")),
        at(100, 1, hset(b"h", b"a", b"a")),
    ])
    .await;
    let applied = r.deliver(&[at(150, 2, hset(b"h", b"b", b"old-b"))]).await;
    assert_eq!(applied[0].skipped_older, 1);
    assert_eq!(r.get(b"h").await, Some(hash(&[(b"a", b"a"), (b"b", b"new-b")])));
}

#[tokio::test]
async fn a_newer_replacement_beats_older_field_writes_and_a_late_older_one_keeps_newer_fields() {
    let mut r = region(RedisOptions::default()).await;
    let replace = |ms, fields: &[(&[u8], &[u8])]| {
        at(
            ms,
            1,
            Command::HReplace {
                key: b(b"h"),
                fields: fields.iter().map(|(f, v)| (b(f), b(v))).collect(),
                expire_at_ms: None,
            },
        )
    };
    // Older field writes first, then the newer replacement: the replacement wins.
    r.deliver(&[at(100, 1, hset(b"h", b"x", b"1")), at(110, 1, hset(b"h", b"y", b"1"))])
        .await;
    r.deliver(&[replace(200, &[(b"r", b"r")])]).await;
    assert_eq!(r.get(b"h").await, Some(hash(&[(b"r", b"r")])));
    // Late field writes older than the replacement do nothing.
    let applied = r.deliver(&[at(150, 1, hset(b"h", b"x", b"late"))]).await;
    assert_eq!(applied[0].skipped_older, 1);
    assert_eq!(r.get(b"h").await, Some(hash(&[(b"r", b"r")])));

    // Newer field writes first, then an older replacement: newer fields survive,
    // an element deleted later stays deleted, older fields are replaced.
    r.deliver(&[
        at(300, 1, hset(b"h", b"old", b"o")),
        at(500, 1, hset(b"h", b"new", b"n")),
    ])
    .await;
    r.deliver(&[at(
        510,
        1,
        Command::HDel {
            key: b(b"h"),
            fields: vec![b(b"deleted")],
        },
    )])
    .await;
    r.deliver(&[replace(
        400,
        &[(b"q", b"q"), (b"new", b"stale"), (b"deleted", b"stale")],
    )])
    .await;
    assert_eq!(r.get(b"h").await, Some(hash(&[(b"new", b"n"), (b"q", b"q")])));
}

#[tokio::test]
async fn duplicates_are_no_ops() {
    let mut r = region(RedisOptions::default()).await;
    let commands = vec![
        at(100, 1, set(b"k", b"v")),
        at(101, 1, hset(b"h", b"f", b"v")),
        at(
            102,
            1,
            Command::SAdd {
                key: b(b"s"),
                members: vec![b(b"m")],
            },
        ),
        at(
            103,
            1,
            Command::ZAdd {
                key: b(b"z"),
                members: vec![(1.0, b(b"m"))],
            },
        ),
        at(
            104,
            1,
            Command::PExpireAt {
                key: b(b"k"),
                at_ms: now_ms() + 600_000,
            },
        ),
    ];
    let one = batch(Mode::Lww, "dup", commands);
    let first = r.engine.apply(&[&one], now_ms()).await.remove(0).unwrap();
    assert_eq!(first.skipped_older, 0);
    let before = redis_support::dump(&mut r.conn).await;
    // Twice more: in its own call and alongside itself in one call.
    let again = r.engine.apply(&[&one], now_ms()).await.remove(0).unwrap();
    assert_eq!(
        again,
        BatchApplied {
            commands: 5,
            skipped_older: 5,
            type_conflicts: 0
        }
    );
    for result in r.engine.apply(&[&one, &one], now_ms()).await {
        assert_eq!(result.unwrap().skipped_older, 5);
    }
    assert_eq!(
        redis_support::diff(&redis_support::dump(&mut r.conn).await, &before),
        None
    );
}

#[tokio::test]
async fn a_late_older_pexpireat_does_not_override_a_newer_persist() {
    let mut r = region(RedisOptions::default()).await;
    let soon = now_ms() + 60_000;
    r.deliver(&[at(
        100,
        1,
        Command::Set {
            key: b(b"k"),
            value: b(b"v"),
            expire_at_ms: Some(soon),
        },
    )])
    .await;
    r.deliver(&[at(300, 1, Command::Persist { key: b(b"k") })]).await;
    let applied = r
        .deliver(&[at(
            200,
            1,
            Command::PExpireAt {
                key: b(b"k"),
                at_ms: soon,
            },
        )])
        .await;
    assert_eq!(applied[0].skipped_older, 1);
    assert_eq!(expiry_of(&mut r.conn, b"k").await, None);
    // And an older SET with an expiry arriving late does not bring one back.
    let applied = r
        .deliver(&[at(
            250,
            1,
            Command::Set {
                key: b(b"k"),
                value: b(b"v"),
                expire_at_ms: Some(soon),
            },
        )])
        .await;
    assert_eq!(
        applied[0].skipped_older, 0,
        "the SET itself is newer than the key's last whole-key write"
    );
    assert_eq!(
        expiry_of(&mut r.conn, b"k").await,
        None,
        "but its expiry is older than the PERSIST"
    );
}

#[tokio::test]
async fn bookkeeping_lifetimes_follow_the_data() {
    let horizon = Duration::from_secs(3600);
    let mut r = region(RedisOptions {
        tombstone_horizon: horizon,
        ..RedisOptions::default()
    })
    .await;
    let h = horizon.as_millis() as u64;
    let real_now = now_ms();
    // The applier's clock is injected: an hour ahead of the real one, so the
    // test can tell it is the one used.
    let injected_now = real_now + 3_600_000;
    let x = real_now + 7_200_000;
    let run = |commands: Vec<VersionedCommand>| batch(Mode::Lww, "t", commands);

    // Data with an expiry: bookkeeping expires `horizon` after it.
    let with_ttl = run(vec![at(
        100,
        1,
        Command::Set {
            key: b(b"ttl"),
            value: b(b"v"),
            expire_at_ms: Some(x),
        },
    )]);
    // Data without expiry: bookkeeping persists.
    let forever = run(vec![at(100, 1, hset(b"keep", b"f", b"v"))]);
    // Deleted: bookkeeping (the tombstone) expires `horizon` after now.
    let deleted = run(vec![
        at(100, 1, set(b"del", b"v")),
        at(101, 1, Command::Del { key: b(b"del") }),
    ]);
    // Only a tombstone of one element, key never existed.
    let tomb = run(vec![at(
        100,
        1,
        Command::SRem {
            key: b(b"tomb"),
            members: vec![b(b"m")],
        },
    )]);
    // Deleted, but an expiry later than now is registered: horizon after that.
    let late_exp = run(vec![
        at(100, 1, Command::Del { key: b(b"gone") }),
        at(
            101,
            1,
            Command::PExpireAt {
                key: b(b"gone"),
                at_ms: x + 3_600_000,
            },
        ),
    ]);
    for result in r
        .engine
        .apply(&[&with_ttl, &forever, &deleted, &tomb, &late_exp], injected_now)
        .await
    {
        result.unwrap();
    }
    let c = &mut r.conn;
    let close = |actual: Option<u64>, expected: u64| {
        let actual = actual.expect("bookkeeping has an expiry");
        assert!(actual.abs_diff(expected) <= TOLERANCE_MS, "{actual} vs {expected}");
    };
    close(expiry_of(c, &bookkeeping_key(b"ttl")).await, x + h);
    assert_eq!(
        expiry_of(c, b"ttl").await.map(|e| e.abs_diff(x) <= TOLERANCE_MS),
        Some(true)
    );
    let keep_m = bookkeeping_key(b"keep");
    let exists: bool = redis::cmd("EXISTS").arg(&keep_m).query_async(c).await.unwrap();
    assert!(exists);
    assert_eq!(expiry_of(c, &keep_m).await, None);
    close(expiry_of(c, &bookkeeping_key(b"del")).await, injected_now + h);
    close(expiry_of(c, &bookkeeping_key(b"tomb")).await, injected_now + h);
    close(expiry_of(c, &bookkeeping_key(b"gone")).await, x + 3_600_000 + h);

    // The bookkeeping hash holds what the documentation says.
    let m: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
        .arg(bookkeeping_key(b"tomb"))
        .query_async(c)
        .await
        .unwrap();
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = [(b(b"fm"), Version::new(100, 0, 1).sortable().into_bytes())]
        .into_iter()
        .collect();
    assert_eq!(m, expected);
    let m: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
        .arg(bookkeeping_key(b"ttl"))
        .query_async(c)
        .await
        .unwrap();
    let v = Version::new(100, 0, 1).sortable().into_bytes();
    let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b(b"k"), v.clone()),
        (b(b"e"), v),
        (b(b"x"), x.to_string().into_bytes()),
    ]
    .into_iter()
    .collect();
    assert_eq!(m, expected);

    // Readers of the data keys see data only.
    let all: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(b"keep").query_async(c).await.unwrap();
    assert_eq!(all, [(b(b"f"), b(b"v"))].into_iter().collect());
    let value: Vec<u8> = redis::cmd("GET").arg(b"ttl").query_async(c).await.unwrap();
    assert_eq!(value, b"v");
    assert!(bookkeeping_key(b"keep").starts_with(b"regis:v:{"));
}

/// A SET without expiry leaves its bookkeeping without TTL whatever came
/// before it (an expiry, a deletion, another type), in the same script call
/// or an earlier one: the guard for any shortcut around the PERSIST of `M`.
#[tokio::test]
async fn a_set_without_expiry_always_leaves_persistent_bookkeeping() {
    let mut r = region(RedisOptions::default()).await;
    let later = now_ms() + 3_600_000;
    let set_x = |key: &[u8]| Command::Set {
        key: b(key),
        value: b(b"x"),
        expire_at_ms: Some(later),
    };
    // Each command in its own call.
    r.deliver(&[
        at(100, 1, set_x(b"a")),
        at(101, 1, set(b"a", b"v")),
        at(100, 1, set(b"b", b"v")),
        at(101, 1, Command::Del { key: b(b"b") }),
        at(102, 1, set(b"b", b"v")),
        at(100, 1, set(b"c", b"v")),
        at(101, 1, set(b"c", b"w")),
        at(100, 1, hset(b"d", b"f", b"v")),
        at(101, 1, set(b"d", b"v")),
        at(100, 1, Command::Del { key: b(b"e") }),
        at(101, 1, set(b"e", b"v")),
    ])
    .await;
    // All in one call.
    let one = batch(
        Mode::Lww,
        "one",
        vec![
            at(100, 1, set(b"f", b"v")),
            at(101, 1, Command::Del { key: b(b"f") }),
            at(102, 1, set(b"f", b"v")),
            at(100, 1, set_x(b"g")),
            at(101, 1, set(b"g", b"v")),
        ],
    );
    r.engine.apply(&[&one], now_ms()).await.remove(0).unwrap();
    // A string that exists before the call, then deleted and set again in it.
    let two = batch(
        Mode::Lww,
        "two",
        vec![at(103, 1, Command::Del { key: b(b"c") }), at(104, 1, set(b"c", b"v"))],
    );
    r.engine.apply(&[&two], now_ms()).await.remove(0).unwrap();
    for key in [b"a", b"b", b"c", b"d", b"e", b"f", b"g"] {
        let m = bookkeeping_key(key);
        let exists: bool = redis::cmd("EXISTS").arg(&m).query_async(&mut r.conn).await.unwrap();
        assert!(exists, "bookkeeping of {}", String::from_utf8_lossy(key));
        assert_eq!(
            expiry_of(&mut r.conn, &m).await,
            None,
            "bookkeeping of {}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(expiry_of(&mut r.conn, key).await, None);
        assert_eq!(r.get(key).await, Some(ModelValue::String(b(b"v"))));
    }
}

#[tokio::test]
async fn lost_script_cache_is_reloaded() {
    let mut r = region(RedisOptions::default()).await;
    redis::cmd("SCRIPT").arg("FLUSH").exec_async(&mut r.conn).await.unwrap();
    let applied = r.deliver(&[at(100, 1, set(b"k", b"v"))]).await;
    assert_eq!(applied[0].commands, 1);
    assert_eq!(r.get(b"k").await, Some(ModelValue::String(b(b"v"))));
}

#[tokio::test]
async fn a_batch_refused_for_its_content_fails_alone() {
    // Three commands per script call, so the calls mix batches.
    let mut r = region(RedisOptions {
        max_commands_per_script: 3,
        ..RedisOptions::default()
    })
    .await;
    let good = batch(
        Mode::Lww,
        "good",
        vec![at(100, 1, set(b"a", b"1")), at(101, 1, set(b"b", b"1"))],
    );
    // An expiry beyond Redis's range is refused by Redis (`value is not an
    // integer or out of range`).
    let bad = batch(
        Mode::Lww,
        "bad",
        vec![at(
            102,
            1,
            Command::Set {
                key: b(b"c"),
                value: b(b"1"),
                expire_at_ms: Some(u64::MAX),
            },
        )],
    );
    let after = batch(
        Mode::Lww,
        "after",
        vec![at(103, 1, set(b"d", b"1")), at(104, 1, set(b"e", b"1"))],
    );
    let results = r.engine.apply(&[&good, &bad, &after], now_ms()).await;
    assert!(results[0].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(err, ApplyError::Rejected { .. }) && !err.is_retryable(),
        "{err:?}"
    );
    assert!(results[2].is_ok(), "{results:?}");
    for key in [b"a", b"b", b"d", b"e"] {
        assert_eq!(r.get(key).await, Some(ModelValue::String(b(b"1"))));
    }
}

/// Prints what bookkeeping costs per key, field and member (`MEMORY USAGE`,
/// which includes the key's own overhead), for collections small enough for
/// Redis's compact encoding (100 elements) and larger ones (1000). The
/// figures are in `docs/lww.md`.
#[tokio::test]
async fn bookkeeping_memory_overhead() {
    let r = region(RedisOptions::default()).await;
    let plain_server = RedisServer::start();
    let plain = Engine::connect(&plain_server.url(), Mode::Plain, RedisOptions::default())
        .await
        .unwrap();
    let pconn = plain_server.client().get_multiplexed_async_connection().await.unwrap();
    let usage = |key: Vec<u8>, conn: MultiplexedConnection| async move {
        let mut conn = conn;
        let bytes: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        bytes.unwrap_or(0)
    };
    for n in [100usize, 1000] {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|i| (format!("field:{i:04}").into_bytes(), b(b"value-16-bytes!!")))
            .collect();
        let members: Vec<Vec<u8>> = (0..n).map(|i| format!("member:{i:04}").into_bytes()).collect();
        let key = |name: &str| format!("{name}:{n}").into_bytes();
        let commands = vec![
            at(
                100,
                1,
                Command::Set {
                    key: key("string"),
                    value: vec![b'x'; 64],
                    expire_at_ms: None,
                },
            ),
            at(
                101,
                1,
                Command::HSet {
                    key: key("hash"),
                    fields,
                },
            ),
            at(
                102,
                1,
                Command::SAdd {
                    key: key("set"),
                    members: members.clone(),
                },
            ),
            at(
                103,
                1,
                Command::ZAdd {
                    key: key("zset"),
                    members: members.iter().map(|m| (1.5, m.clone())).collect(),
                },
            ),
            at(
                104,
                1,
                Command::SRem {
                    key: key("tombstone"),
                    members: vec![b(b"m")],
                },
            ),
        ];
        r.engine
            .apply(&[&batch(Mode::Lww, "m", commands.clone())], now_ms())
            .await[0]
            .as_ref()
            .unwrap();
        plain.apply(&[&batch(Mode::Plain, "m", commands)], now_ms()).await[0]
            .as_ref()
            .unwrap();
        for (name, per) in [("string", 1), ("hash", n), ("set", n), ("zset", n), ("tombstone", 1)] {
            let data = usage(key(name), pconn.clone()).await;
            let m = usage(bookkeeping_key(&key(name)), r.conn.clone()).await;
            let (mut lconn, mut plconn) = (r.conn.clone(), pconn.clone());
            assert_eq!(
                read_key(&mut lconn, &key(name)).await,
                read_key(&mut plconn, &key(name)).await
            );
            assert!(m > 0, "bookkeeping of {name} exists");
            println!(
                "{:<15} data {data:>7} B, bookkeeping {m:>7} B ({per} elements: {:.1} B per element)",
                String::from_utf8_lossy(&key(name)),
                m as f64 / per as f64
            );
        }
    }
}

#[tokio::test]
async fn versions_compare_in_order_across_the_digit_letter_boundary() {
    // 1_700_000_000_009 ends in hex `9`, 1_700_000_000_010 in `a`: the script
    // compares the sortable strings, which must order `9` before `a`.
    let mut r = region(RedisOptions::default()).await;
    let applied = r
        .deliver(&[
            at(1_700_000_000_010, 1, set(b"k", b"newer")),
            at(1_700_000_000_009, 1, set(b"k", b"older")),
        ])
        .await;
    assert_eq!(applied[1].skipped_older, 1);
    assert_eq!(r.get(b"k").await, Some(ModelValue::String(b(b"newer"))));
    let counter = VersionedCommand::new(Version::new(1_700_000_000_010, 9, 1), set(b"c", b"older"));
    let later = VersionedCommand::new(Version::new(1_700_000_000_010, 10, 1), set(b"c", b"newer"));
    r.deliver(&[later, counter]).await;
    assert_eq!(r.get(b"c").await, Some(ModelValue::String(b(b"newer"))));
}
