//! Every command lands in Redis with the right type, value and absolute
//! expiry, in both modes, against a real Redis and a real Valkey.

mod redis_support;

use std::collections::{BTreeMap, BTreeSet};

use redis_support::{EXPIRY_TOLERANCE_MS, at, batch, diff, dump, now_ms, read_key};
use regis_applier::apply::model::{LwwModel, ModelValue};
use regis_applier::apply::{ApplyError, BatchApplied, Engine, RedisOptions};
use regis_testkit::{RedisServer, ServerEngine};
use regis_wire::{Command, Mode, VersionedCommand};

fn b(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

/// One of every command, on binary keys, fields, members and values.
fn every_command(now: u64) -> Vec<Command> {
    vec![
        Command::Set {
            key: b(b"s\xff\x00"),
            value: b(b"\x00\xfe\xff"),
            expire_at_ms: Some(now + 60_000),
        },
        Command::Set {
            key: b(b"s2"),
            value: b(b"v"),
            expire_at_ms: None,
        },
        Command::PExpireAt {
            key: b(b"s2"),
            at_ms: now + 120_000,
        },
        Command::Set {
            key: b(b"s3"),
            value: b(b"v3"),
            expire_at_ms: Some(now + 30_000),
        },
        Command::Persist { key: b(b"s3") },
        Command::Set {
            key: b(b"gone"),
            value: b(b"x"),
            expire_at_ms: None,
        },
        Command::Del { key: b(b"gone") },
        Command::HSet {
            key: b(b"h\xff"),
            fields: vec![(b(b"f\x00"), b(b"v\xff")), (b(b"g"), b(b"w"))],
        },
        Command::HDel {
            key: b(b"h\xff"),
            fields: vec![b(b"g")],
        },
        Command::SAdd {
            key: b(b"set"),
            members: vec![b(b"a"), b(b"\xff\xfe")],
        },
        Command::SRem {
            key: b(b"set"),
            members: vec![b(b"a")],
        },
        Command::ZAdd {
            key: b(b"z"),
            members: vec![
                (1.5, b(b"m\xff")),
                (0.1, b(b"n")),
                (1e300, b(b"o")),
                (-2.25e-7, b(b"p")),
            ],
        },
        Command::ZRem {
            key: b(b"z"),
            members: vec![b(b"n")],
        },
        Command::HSet {
            key: b(b"hr"),
            fields: vec![(b(b"old"), b(b"1"))],
        },
        Command::HReplace {
            key: b(b"hr"),
            fields: vec![(b(b"x"), b(b"1")), (b(b"y\xff"), b(b"2"))],
            expire_at_ms: Some(now + 90_000),
        },
        Command::SAdd {
            key: b(b"hr2"),
            members: vec![b(b"a")],
        },
        Command::HReplace {
            key: b(b"hr2"),
            fields: vec![],
            expire_at_ms: None,
        },
        Command::SAdd {
            key: b(b"sr"),
            members: vec![b(b"old")],
        },
        Command::SReplace {
            key: b(b"sr"),
            members: vec![b(b"p"), b(b"q\x00")],
            expire_at_ms: None,
        },
        Command::ZReplace {
            key: b(b"zr"),
            members: vec![(2.0, b(b"a")), (0.30000000000000004, b(b"b"))],
            expire_at_ms: Some(now + 45_000),
        },
    ]
}

async fn every_command_lands(on: ServerEngine, mode: Mode) {
    let server = RedisServer::start_engine(on);
    let engine = Engine::connect(&server.url(), mode, RedisOptions::default())
        .await
        .unwrap();
    let now = now_ms();
    let mut clock = regis_wire::HybridClock::new(1);
    let commands: Vec<VersionedCommand> = every_command(now)
        .into_iter()
        .map(|c| VersionedCommand::new(clock.tick(now), c))
        .collect();
    let n = commands.len();
    // Two batches in one call, to exercise attribution.
    let first = batch(mode, "b1", commands[..7].to_vec());
    let second = batch(mode, "b2", commands[7..].to_vec());
    let results = engine.apply(&[&first, &second], now).await;
    assert_eq!(
        results[0].as_ref().unwrap(),
        &BatchApplied {
            commands: 7,
            ..Default::default()
        }
    );
    assert_eq!(
        results[1].as_ref().unwrap(),
        &BatchApplied {
            commands: n - 7,
            ..Default::default()
        }
    );

    let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();
    // Spot checks written out by hand.
    let (value, expiry) = read_key(&mut conn, b"s\xff\x00").await.unwrap();
    assert_eq!(value, ModelValue::String(b(b"\x00\xfe\xff")));
    assert!(expiry.unwrap().abs_diff(now + 60_000) <= EXPIRY_TOLERANCE_MS);
    assert!(
        read_key(&mut conn, b"s2")
            .await
            .unwrap()
            .1
            .unwrap()
            .abs_diff(now + 120_000)
            <= EXPIRY_TOLERANCE_MS
    );
    assert_eq!(read_key(&mut conn, b"s3").await.unwrap().1, None);
    assert_eq!(read_key(&mut conn, b"gone").await, None);
    assert_eq!(read_key(&mut conn, b"hr2").await, None);
    let hash: BTreeMap<Vec<u8>, Vec<u8>> = [(b(b"f\x00"), b(b"v\xff"))].into_iter().collect();
    assert_eq!(read_key(&mut conn, b"h\xff").await.unwrap().0, ModelValue::Hash(hash));
    let set: BTreeSet<Vec<u8>> = [b(b"\xff\xfe")].into_iter().collect();
    assert_eq!(read_key(&mut conn, b"set").await.unwrap().0, ModelValue::Set(set));
    let zset: BTreeMap<Vec<u8>, f64> = [(b(b"m\xff"), 1.5), (b(b"o"), 1e300), (b(b"p"), -2.25e-7)]
        .into_iter()
        .collect();
    assert_eq!(read_key(&mut conn, b"z").await.unwrap().0, ModelValue::SortedSet(zset));
    let (value, expiry) = read_key(&mut conn, b"hr").await.unwrap();
    let hash: BTreeMap<Vec<u8>, Vec<u8>> = [(b(b"x"), b(b"1")), (b(b"y\xff"), b(b"2"))].into_iter().collect();
    assert_eq!(value, ModelValue::Hash(hash));
    assert!(expiry.unwrap().abs_diff(now + 90_000) <= EXPIRY_TOLERANCE_MS);

    // And the whole database equals the reference model's state.
    let mut model = LwwModel::new();
    for c in &commands {
        model.apply(c);
    }
    let actual = dump(&mut conn).await;
    assert_eq!(actual.len(), 9, "{actual:?}");
    if let Some(d) = diff(&actual, &model.dump(now)) {
        panic!("{mode}: {d}");
    }
}

async fn every_command_lands_in_plain_mode(on: ServerEngine) {
    every_command_lands(on, Mode::Plain).await;
}

async fn every_command_lands_in_lww_mode(on: ServerEngine) {
    every_command_lands(on, Mode::Lww).await;
}

async fn auth_password_from_the_url(on: ServerEngine) {
    let server = RedisServer::start_engine_with_args(on, &["--requirepass", "s3cr@t"]);
    let url = format!("redis://:s3cr%40t@127.0.0.1:{}", server.port());
    for mode in [Mode::Plain, Mode::Lww] {
        let engine = Engine::connect(&url, mode, RedisOptions::default()).await.unwrap();
        let key = format!("auth-{mode}").into_bytes();
        let set = at(
            now_ms(),
            1,
            Command::Set {
                key: key.clone(),
                value: b(b"v"),
                expire_at_ms: None,
            },
        );
        let results = engine.apply(&[&batch(mode, "a", vec![set])], now_ms()).await;
        assert!(results[0].is_ok(), "{results:?}");
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let v: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        assert_eq!(v, b"v");
    }
    let wrong = format!("redis://:nope@127.0.0.1:{}", server.port());
    let err = Engine::connect(&wrong, Mode::Plain, RedisOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "redis-auth", "{err}");
}

async fn a_batch_in_the_wrong_mode_is_refused(on: ServerEngine) {
    let server = RedisServer::start_engine(on);
    for (engine_mode, batch_mode) in [(Mode::Lww, Mode::Plain), (Mode::Plain, Mode::Lww)] {
        let engine = Engine::connect(&server.url(), engine_mode, RedisOptions::default())
            .await
            .unwrap();
        let wrong = batch(
            batch_mode,
            "w",
            vec![at(
                1,
                1,
                Command::Set {
                    key: b(b"w"),
                    value: b(b"x"),
                    expire_at_ms: None,
                },
            )],
        );
        let right = batch(
            engine_mode,
            "r",
            vec![at(
                1,
                1,
                Command::Set {
                    key: b(b"r"),
                    value: b(b"x"),
                    expire_at_ms: None,
                },
            )],
        );
        let results = engine.apply(&[&wrong, &right], now_ms()).await;
        let err = results[0].as_ref().unwrap_err();
        assert!(matches!(err, ApplyError::ModeMismatch { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(err.reason(), "mode-mismatch");
        assert!(results[1].is_ok());
        let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();
        assert_eq!(
            read_key(&mut conn, b"w").await,
            None,
            "nothing of a refused batch is applied"
        );
    }
}

async fn wrongtype_in_plain_mode_fails_only_its_batch_permanently(on: ServerEngine) {
    let server = RedisServer::start_engine(on);
    let engine = Engine::connect(&server.url(), Mode::Plain, RedisOptions::default())
        .await
        .unwrap();
    let good = batch(
        Mode::Plain,
        "g",
        vec![at(
            1,
            1,
            Command::Set {
                key: b(b"str"),
                value: b(b"x"),
                expire_at_ms: None,
            },
        )],
    );
    let bad = batch(
        Mode::Plain,
        "b",
        vec![at(
            2,
            1,
            Command::HSet {
                key: b(b"str"),
                fields: vec![(b(b"f"), b(b"v"))],
            },
        )],
    );
    let also_good = batch(
        Mode::Plain,
        "g2",
        vec![at(
            3,
            1,
            Command::SAdd {
                key: b(b"s"),
                members: vec![b(b"m")],
            },
        )],
    );
    let results = engine.apply(&[&good, &bad, &also_good], now_ms()).await;
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        matches!(err, ApplyError::Rejected { command: "hset", code, .. } if code == "WRONGTYPE"),
        "{err:?}"
    );
    assert!(results[2].is_ok());
}

async fn type_conflicts_are_counted_in_lww_mode(on: ServerEngine) {
    let server = RedisServer::start_engine(on);
    let engine = Engine::connect(&server.url(), Mode::Lww, RedisOptions::default())
        .await
        .unwrap();
    let first = batch(
        Mode::Lww,
        "g",
        vec![at(
            1,
            1,
            Command::Set {
                key: b(b"str"),
                value: b(b"x"),
                expire_at_ms: None,
            },
        )],
    );
    let second = batch(
        Mode::Lww,
        "b",
        vec![at(
            2,
            1,
            Command::HSet {
                key: b(b"str"),
                fields: vec![(b(b"f"), b(b"v"))],
            },
        )],
    );
    let results = engine.apply(&[&first, &second], now_ms()).await;
    assert_eq!(
        results[1].as_ref().unwrap(),
        &BatchApplied {
            commands: 1,
            skipped_older: 0,
            type_conflicts: 1
        }
    );
}

regis_testkit::on_each_engine!(
    async: every_command_lands_in_plain_mode,
    every_command_lands_in_lww_mode,
    auth_password_from_the_url,
    a_batch_in_the_wrong_mode_is_refused,
    wrongtype_in_plain_mode_fails_only_its_batch_permanently,
    type_conflicts_are_counted_in_lww_mode,
);
