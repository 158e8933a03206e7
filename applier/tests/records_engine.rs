//! Record handling with the real engine and a real redis-server: while
//! Redis is down every record is reported as failed; once it is back the
//! retried records are applied, and applying them again changes nothing.

use std::sync::Arc;

use regis_applier::apply::{Engine, RedisOptions};
use regis_applier::dlq::DeadLetterQueue;
use regis_applier::records::{Outcome, Processor, Record};
use regis_testkit::batches::{batch, text};
use regis_testkit::{MemoryQueue, RedisServer};
use regis_wire::{Command, DecodeLimits, HybridClock, Keyring, Mode, VersionedCommand};

const NOW_MS: u64 = 1_700_000_000_000;

fn records() -> Vec<Record> {
    let mut clock = HybridClock::new(1);
    (0..5)
        .map(|b| {
            let commands = (0..4)
                .map(|k| {
                    VersionedCommand::new(
                        clock.tick(NOW_MS - 40),
                        Command::HSet {
                            key: format!("user:{b}").into_bytes(),
                            fields: vec![(format!("f{k}").into_bytes(), vec![b as u8, k as u8, 0xff])],
                        },
                    )
                })
                .collect();
            Record {
                message_id: format!("m{b}"),
                body: text(&batch(&format!("b{b}"), Mode::Lww, NOW_MS - 40, commands)),
                receive_count: 1,
                source_queue: "arn:aws:sqs:ap-south-1:000000000000:q".into(),
            }
        })
        .collect()
}

fn counts(outcomes: &[Outcome]) -> (usize, usize) {
    outcomes.iter().fold((0, 0), |(written, skipped), o| match o {
        Outcome::Applied { applied, .. } => (
            written + applied.commands - applied.skipped_older,
            skipped + applied.skipped_older,
        ),
        other => panic!("not applied: {other:?}"),
    })
}

#[tokio::test]
async fn records_fail_while_redis_is_down_and_apply_once_when_retried() {
    let mut redis = RedisServer::start();
    let options = RedisOptions {
        response_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let engine = Engine::connect(&redis.url(), Mode::Lww, options).await.unwrap();
    let dlq = Arc::new(MemoryQueue::new());
    let processor = Processor::new(
        engine,
        DeadLetterQueue::new(dlq.clone(), "dlq"),
        DecodeLimits::default(),
        Keyring::default(),
    );
    let records = records();

    redis.stop();
    let outcomes = processor.process(&records, NOW_MS).await;
    assert_eq!(outcomes.len(), 5);
    for outcome in &outcomes {
        assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
        assert!(!outcome.is_done());
    }
    assert!(dlq.messages("dlq").is_empty());

    redis.restart();
    // The connection comes back by itself; until it does, records stay retryable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let outcomes = loop {
        let outcomes = processor.process(&records, NOW_MS).await;
        if outcomes.iter().all(Outcome::is_done) {
            break outcomes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis did not come back: {outcomes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(counts(&outcomes), (20, 0), "every command written once");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Applied { lag_ms: 40, .. }))
    );

    // Delivered again (SQS is at-least-once): nothing is written twice.
    let again = processor.process(&records, NOW_MS + 1000).await;
    assert_eq!(counts(&again), (0, 20));

    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let user: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
        .arg("user:3")
        .query_async(&mut conn)
        .await
        .unwrap();
    let expected = (0..4u8)
        .map(|k| (format!("f{k}").into_bytes(), vec![3, k, 0xff]))
        .collect();
    assert_eq!(user, expected);
}
