//! A Redis restart in the middle of a stream of batches: while Redis is down
//! `apply` reports retryable errors, and once it is back (empty, on the same
//! port) the connection manager reconnects by itself and the batches applied
//! again all land.

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::{batch, now_ms, read_key};
use regis_applier::apply::model::ModelValue;
use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::RedisServer;
use regis_wire::{Batch, Command, HybridClock, Mode, VersionedCommand};

const BATCHES: usize = 12;
const PER_BATCH: usize = 20;

fn stream(mode: Mode) -> Vec<Batch> {
    let mut clock = HybridClock::new(1);
    (0..BATCHES)
        .map(|b| {
            let commands = (0..PER_BATCH)
                .map(|c| {
                    let key = format!("k{b}-{c}").into_bytes();
                    let command = if c % 2 == 0 {
                        Command::Set {
                            key,
                            value: vec![b as u8, c as u8, 0xff],
                            expire_at_ms: None,
                        }
                    } else {
                        Command::HSet {
                            key,
                            fields: vec![(b"f".to_vec(), vec![b as u8])],
                        }
                    };
                    VersionedCommand::new(clock.tick(1_700_000_000_000 + b as u64), command)
                })
                .collect();
            batch(mode, &format!("b{b}"), commands)
        })
        .collect()
}

/// Applies until it succeeds (the manager reconnects in the background).
async fn apply_until_ok(engine: &Engine, b: &Batch) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match engine.apply(&[b], now_ms()).await.remove(0) {
            Ok(applied) => {
                assert_eq!(applied.commands, PER_BATCH);
                return;
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                assert!(Instant::now() < deadline, "Redis did not come back: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn restart_during_stream(mode: Mode) {
    let mut server = RedisServer::start();
    let options = RedisOptions {
        response_timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    };
    let engine = Engine::connect(&server.url(), mode, options).await.unwrap();
    let batches = stream(mode);

    for b in &batches[..4] {
        engine.apply(&[b], now_ms()).await.remove(0).unwrap();
    }
    server.stop();
    let mut failed = Vec::new();
    for b in &batches[4..8] {
        let err = engine.apply(&[b], now_ms()).await.remove(0).unwrap_err();
        assert!(err.is_retryable(), "{mode}: {err:?}");
        assert!(matches!(err.reason(), "redis-unavailable" | "redis-busy"), "{err:?}");
        failed.push(b);
    }
    server.restart();
    // The failed batches come back from the queue, then the stream goes on.
    for b in failed.into_iter().chain(&batches[8..]) {
        apply_until_ok(&engine, b).await;
    }
    let mut conn = server.client().get_multiplexed_async_connection().await.unwrap();
    for (i, b) in batches.iter().enumerate().skip(4) {
        for (c, vc) in b.commands.iter().enumerate() {
            let value = read_key(&mut conn, vc.command.key()).await.map(|(v, _)| v);
            let expected = if c % 2 == 0 {
                ModelValue::String(vec![i as u8, c as u8, 0xff])
            } else {
                ModelValue::Hash([(b"f".to_vec(), vec![i as u8])].into_iter().collect())
            };
            assert_eq!(value, Some(expected), "{mode}: batch {i} command {c}");
        }
    }
}

#[tokio::test]
async fn restart_during_a_stream_in_plain_mode() {
    restart_during_stream(Mode::Plain).await;
}

#[tokio::test]
async fn restart_during_a_stream_in_lww_mode() {
    restart_during_stream(Mode::Lww).await;
}

/// After an outage, the first delivery that arrives once Redis is back must
/// land: the record has a limited number of receives before it goes to the
/// DLQ, and each costs a visibility timeout.
async fn first_delivery_after_an_outage_lands(mode: Mode) {
    let mut server = RedisServer::start();
    let engine = Engine::connect(&server.url(), mode, RedisOptions::default())
        .await
        .unwrap();
    let batches = stream(mode);
    engine.apply(&[&batches[0]], now_ms()).await.remove(0).unwrap();
    server.stop();
    for b in &batches[1..3] {
        assert!(engine.apply(&[b], now_ms()).await.remove(0).unwrap_err().is_retryable());
    }
    // Long enough for the connection manager to give up its own retries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    // The queue hands the record back after its visibility timeout.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let applied = engine.apply(&[&batches[1]], now_ms()).await.remove(0);
    assert_eq!(
        applied.expect("first delivery after the outage").commands,
        PER_BATCH,
        "{mode}"
    );
}

#[tokio::test]
async fn first_delivery_after_an_outage_lands_in_plain_mode() {
    first_delivery_after_an_outage_lands(Mode::Plain).await;
}

#[tokio::test]
async fn first_delivery_after_an_outage_lands_in_lww_mode() {
    first_delivery_after_an_outage_lands(Mode::Lww).await;
}
