//! A group larger than one pipeline (`MAX_PIPELINE_COMMANDS`) is sent as
//! several consecutive pipelines: every command is applied once, in order,
//! in both modes, and a second apply of the same batches changes nothing.

use regis_applier::apply::{Engine, MAX_PIPELINE_COMMANDS, RedisOptions};
use regis_testkit::RedisServer;
use regis_wire::{Batch, BatchHeader, Command, HybridClock, Mode, VersionedCommand};

const NOW_MS: u64 = 1_700_000_000_000;

/// Two batches of `per_batch` SETs over `keys` keys: each key is written
/// several times, the last write (in batch order, then command order) wins.
fn batches(mode: Mode, per_batch: usize, keys: usize) -> Vec<Batch> {
    let mut clock = HybridClock::new(1);
    (0..2)
        .map(|b| Batch {
            header: BatchHeader {
                id: format!("b{b}"),
                origin: "ap-south-1".into(),
                published_at_ms: NOW_MS - 10,
                tenant: "acme".into(),
                mode,
            },
            commands: (0..per_batch)
                .map(|i| {
                    VersionedCommand::new(
                        clock.tick(NOW_MS - 10),
                        Command::Set {
                            key: format!("k{}", i % keys).into_bytes(),
                            value: format!("{b}:{i}").into_bytes(),
                            expire_at_ms: None,
                        },
                    )
                })
                .collect(),
        })
        .collect()
}

async fn check(mode: Mode) {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url(), mode, RedisOptions::default())
        .await
        .unwrap();
    let per_batch = MAX_PIPELINE_COMMANDS + MAX_PIPELINE_COMMANDS / 2 + 7;
    let keys = 1_000;
    let batches = batches(mode, per_batch, keys);
    let refs: Vec<&Batch> = batches.iter().collect();

    for round in 0..2 {
        let results = engine.apply(&refs, NOW_MS).await;
        assert_eq!(results.len(), 2);
        for result in results {
            let applied = result.unwrap_or_else(|e| panic!("{mode} round {round}: {e}"));
            assert_eq!(applied.commands, per_batch);
            if mode == Mode::Lww {
                // The second round only repeats versions already applied.
                let expected = if round == 0 { 0 } else { per_batch };
                assert_eq!(applied.skipped_older, expected, "round {round}");
            }
        }
    }

    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    // The last write of each key is in batch 1 at the highest index i with i % keys == key.
    for key in [0, 1, keys / 2, keys - 1] {
        let last = (0..per_batch).rev().find(|i| i % keys == key).unwrap();
        let value: String = redis::cmd("GET")
            .arg(format!("k{key}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(value, format!("1:{last}"), "{mode}: key k{key}");
    }
}

#[tokio::test]
async fn lww_groups_larger_than_one_pipeline_are_applied_whole_and_in_order() {
    check(Mode::Lww).await;
}

#[tokio::test]
async fn plain_groups_larger_than_one_pipeline_are_applied_whole_and_in_order() {
    check(Mode::Plain).await;
}
