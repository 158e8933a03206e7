//! `regis worker` against real SQS (LocalStack) and a real redis-server:
//! it drains the queue into Redis, parks a poison message in the DLQ with
//! its reason, and leaves a message that keeps failing (Redis stopped) to
//! the queue's redrive policy, which moves it to the DLQ after
//! `maxReceiveCount` receives.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, SendMessageBatchRequestEntry};
use regis_aws::clock::now_ms;
use regis_cli::worker::{WorkerArgs, serve};
use regis_testkit::RedisServer;
use regis_testkit::localstack;
use regis_wire::{Batch, BatchHeader, Command, EncodeOptions, HybridClock, Mode, VersionedCommand};

const REGION: &str = "eu-west-1";

fn batch_text(id: &str, keys: &[String], clock: &mut HybridClock, now_ms: u64) -> String {
    let batch = Batch {
        header: BatchHeader {
            id: id.into(),
            origin: "ap-southeast-1".into(),
            published_at_ms: now_ms,
            tenant: "acme".into(),
            mode: Mode::Lww,
        },
        commands: keys
            .iter()
            .map(|key| {
                let value = format!("value of {key}").into_bytes();
                VersionedCommand::new(
                    clock.tick(now_ms),
                    Command::Set {
                        key: key.clone().into_bytes(),
                        value,
                        expire_at_ms: None,
                    },
                )
            })
            .collect(),
    };
    regis_wire::encode(&batch, &EncodeOptions::default()).unwrap().text
}

fn attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

async fn send(sqs: &aws_sdk_sqs::Client, queue_url: &str, bodies: &[String]) {
    let entries = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .unwrap()
        })
        .collect();
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert!(out.failed().is_empty(), "{:?}", out.failed());
}

fn args(queue_url: &str, dlq_url: &str, redis_url: &str) -> WorkerArgs {
    WorkerArgs {
        region: REGION.into(),
        queue_url: queue_url.into(),
        dlq_url: dlq_url.into(),
        redis_url: redis_url.into(),
        cluster: false,
        mode: Mode::Lww,
        signing_keys: None,
        signing_secret_ids: None,
        allow_unsigned: true,
        tenants: None,
        allow_any_tenant: true,
        tombstone_horizon_seconds: 3600,
        max_clock_skew_seconds: 300,
        sentry_dsn: None,
        receivers: 2,
        wait_seconds: 1,
        // Taken from the queue (2 s), as in production.
        visibility_timeout: None,
        apply_budget: regis_applier::records::DEFAULT_APPLY_BUDGET_COMMANDS,
        byte_budget_mib: regis_cli::worker::DEFAULT_BYTE_BUDGET_MIB,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_drains_the_queue_parks_poison_and_leaves_failures_to_the_redrive_policy() {
    localstack::ensure_running().await;
    let mut redis = RedisServer::start();
    let sqs = localstack::sqs(REGION).await;
    let (queue, dlq) = localstack::create_queue_with_dlq(&sqs, &localstack::unique_name("worker"), 2, 2).await;

    // Five good batches of three keys, and one poison message.
    let mut clock = HybridClock::new(1);
    let keys: Vec<Vec<String>> = (0..5)
        .map(|b| (0..3).map(|k| format!("worker:{b}:{k}")).collect())
        .collect();
    let mut bodies: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(b, k)| batch_text(&format!("b{b}"), k, &mut clock, now_ms()))
        .collect();
    bodies.insert(2, r#"{"regis":1,"id":"poison""#.to_owned());
    send(&sqs, &queue.url, &bodies).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let args = args(&queue.url, &dlq.url, &redis.url());
        let sqs = sqs.clone();
        async move {
            serve(
                &args,
                std::sync::Arc::new(regis_aws::SqsQueue::from_client(sqs)),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });

    // Every key arrives in Redis.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let all_keys: Vec<String> = keys.concat();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&all_keys).query_async(&mut conn).await.unwrap();
        if values.iter().all(Option::is_some) {
            for (key, value) in all_keys.iter().zip(values) {
                assert_eq!(value.unwrap(), format!("value of {key}").into_bytes());
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every key was applied: {values:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The poison message is in the DLQ, unchanged, with its reason.
    let parked = localstack::receive_all(&sqs, &dlq.url, 1, Duration::from_secs(30)).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].body(), Some(bodies[2].as_str()));
    assert_eq!(attribute(&parked[0], "reason").as_deref(), Some("malformed"));
    assert_eq!(
        attribute(&parked[0], "source-queue").as_deref(),
        Some(queue.url.as_str())
    );
    assert!(attribute(&parked[0], "message-id").is_some_and(|id| !id.is_empty()));
    assert!(attribute(&parked[0], "detail").is_some_and(|d| d.starts_with("malformed batch")));
    let failed_at: u64 = attribute(&parked[0], "failed-at").unwrap().parse().unwrap();
    assert!(failed_at > 1_700_000_000_000);

    // With Redis down, a good batch keeps failing; after maxReceiveCount (2)
    // receives the redrive policy moves it to the DLQ, without a reason
    // attribute since the worker never parked it.
    redis.stop();
    let late = batch_text("late", &["worker:late".to_owned()], &mut clock, now_ms());
    send(&sqs, &queue.url, std::slice::from_ref(&late)).await;
    let redriven = localstack::receive_all(&sqs, &dlq.url, 1, Duration::from_secs(90)).await;
    assert_eq!(redriven.len(), 1, "the failing message did not reach the DLQ");
    assert_eq!(redriven[0].body(), Some(late.as_str()));
    assert_eq!(attribute(&redriven[0], "reason"), None);

    stop.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
    // At least: a slow LocalStack may deliver a message twice, which the
    // versioned apply absorbs.
    assert!(summary.applied >= 5, "{summary:?}");
    assert!(summary.parked >= 1, "{summary:?}");
    assert!(summary.left_for_retry >= 2, "{summary:?}");
    assert!(summary.deleted >= 6, "{summary:?}");

    // Nothing is left in the queue.
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let counts: HashMap<_, _> = attrs.attributes().cloned().unwrap_or_default();
    assert!(counts.values().all(|v| v == "0"), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_extends_the_visibility_of_a_batch_that_outlasts_half_the_timeout() {
    localstack::ensure_running().await;
    let redis = RedisServer::start();
    let sqs = localstack::sqs(REGION).await;
    let (queue, dlq) = localstack::create_queue_with_dlq(&sqs, &localstack::unique_name("worker-slow"), 5, 2).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let args = args(&queue.url, &dlq.url, &redis.url());
        let sqs = sqs.clone();
        async move {
            serve(
                &args,
                std::sync::Arc::new(regis_aws::SqsQueue::from_client(sqs)),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        }
    });

    // Redis holds every write for 4 s: the apply outlasts the 2 s visibility
    // timeout, so without extensions the other receiver would get the
    // message again.
    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut clock = HybridClock::new(1);
    send(
        &sqs,
        &queue.url,
        &[batch_text("slow", &["worker:slow".to_owned()], &mut clock, now_ms())],
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value: Option<String> = redis::cmd("GET")
            .arg("worker:slow")
            .query_async(&mut conn)
            .await
            .unwrap();
        if value.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the slow batch was not applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Longer than the visibility timeout: a message whose visibility lapsed
    // would be received again meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
    assert!(summary.extensions >= 1, "{summary:?}");
    assert_eq!(summary.received, 1, "received again although extended: {summary:?}");
    assert_eq!((summary.applied, summary.deleted), (1, 1), "{summary:?}");
}
