//! Redis Cluster: a batch spanning many slots applies in both modes, and the
//! last-writer-wins bookkeeping sits in the slot of its data key.

mod redis_support;

use redis_support::{batch, diff, now_ms, read_key};
use regis_applier::apply::bookkeeping::bookkeeping_key;
use regis_applier::apply::model::LwwModel;
use regis_applier::apply::slot::key_slot;
use regis_applier::apply::{BatchApplied, Engine, RedisOptions};
use regis_testkit::RedisCluster;
use regis_wire::{Batch, Command, HybridClock, Mode, VersionedCommand};

const KEYS: usize = 300;

fn commands(prefix: &str) -> Vec<VersionedCommand> {
    let mut clock = HybridClock::new(1);
    let expiry = now_ms() + 3_600_000;
    (0..KEYS)
        .map(|i| {
            let key = format!("{prefix}:{i}").into_bytes();
            let command = match i % 5 {
                0 => Command::Set {
                    key,
                    value: format!("v{i}").into_bytes(),
                    expire_at_ms: Some(expiry),
                },
                1 => Command::HSet {
                    key,
                    fields: vec![(b"f".to_vec(), vec![0xff, i as u8])],
                },
                2 => Command::SAdd {
                    key,
                    members: vec![b"a".to_vec(), vec![i as u8]],
                },
                3 => Command::ZAdd {
                    key,
                    members: vec![(i as f64 / 3.0, b"m".to_vec())],
                },
                _ => Command::HReplace {
                    key,
                    fields: vec![(b"x".to_vec(), b"y".to_vec())],
                    expire_at_ms: None,
                },
            };
            VersionedCommand::new(clock.tick(1_700_000_000_000), command)
        })
        .collect()
}

async fn spanning_many_slots(cluster: &RedisCluster, mode: Mode) {
    let options = RedisOptions {
        cluster: true,
        ..RedisOptions::default()
    };
    let engine = Engine::connect(&cluster.urls()[0], mode, options).await.unwrap();
    let prefix = format!("{mode}-key");
    let all = commands(&prefix);
    let slots: std::collections::BTreeSet<u16> = all.iter().map(|c| key_slot(c.command.key())).collect();
    assert!(slots.len() > 250, "the batch spans many slots ({})", slots.len());
    // Two batches in one call, the second a copy of part of the first.
    let first: Batch = batch(mode, "c1", all.clone());
    let second: Batch = batch(mode, "c2", all[..50].to_vec());
    let results = engine.apply(&[&first, &second], now_ms()).await;
    assert_eq!(
        results[0].as_ref().unwrap(),
        &BatchApplied {
            commands: KEYS,
            ..Default::default()
        }
    );
    let expected_dup = match mode {
        Mode::Lww => BatchApplied {
            commands: 50,
            skipped_older: 50,
            type_conflicts: 0,
        },
        Mode::Plain => BatchApplied {
            commands: 50,
            ..Default::default()
        },
    };
    assert_eq!(results[1].as_ref().unwrap(), &expected_dup);

    let mut conn = cluster.client().get_async_connection().await.unwrap();
    let mut model = LwwModel::new();
    let mut actual = redis_support::Dump::new();
    for vc in &all {
        model.apply(vc);
        let key = vc.command.key();
        actual.insert(key.to_vec(), read_key(&mut conn, key).await.expect("key landed"));
    }
    if let Some(d) = diff(&actual, &model.dump(now_ms())) {
        panic!("{mode}: {d}");
    }
    if mode == Mode::Lww {
        let mut node = cluster.nodes()[0]
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for vc in all.iter().step_by(7) {
            let key = vc.command.key();
            let m = bookkeeping_key(key);
            let (data_slot, m_slot) = (
                redis_support::keyslot(&mut node, key).await,
                redis_support::keyslot(&mut node, &m).await,
            );
            assert_eq!(data_slot, m_slot, "{}", redis_support::show(key));
            assert_eq!(data_slot, key_slot(key));
            let exists: bool = redis::cmd("EXISTS").arg(&m).query_async(&mut conn).await.unwrap();
            assert!(exists, "bookkeeping of {}", redis_support::show(key));
        }
    }
}

#[tokio::test]
async fn a_batch_spanning_many_slots_applies_in_both_modes() {
    let cluster = RedisCluster::start();
    spanning_many_slots(&cluster, Mode::Plain).await;
    spanning_many_slots(&cluster, Mode::Lww).await;
}
