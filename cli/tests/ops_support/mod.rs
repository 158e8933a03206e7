//! What the `ops_*` tests share: running the built `regis` binary against
//! LocalStack, draining a queue, and applying queued batches with the real
//! apply engine. Test batches are built by `regis_testkit::batches`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Output;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use regis_applier::apply::Engine;
pub use regis_aws::clock::now_ms;
use regis_aws::{QueueClient, ReceiveOptions, ReceivedMessage, SqsQueue};
use regis_testkit::localstack::{self, Queue};
use regis_wire::{Batch, DecodeLimits, Keyring};

/// Runs `regis` with `args`, talking to LocalStack with test credentials.
pub async fn regis(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(args)
        .env("AWS_ENDPOINT_URL", localstack::endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("REGIS_ENV_FILE")
        .env_remove("REGIS_TENANT")
        .env_remove("REGIS_REGION")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run regis")
}

/// The exit code, with stdout and stderr shown when it is not `expected`.
pub fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The JSON document `--json` printed.
pub fn json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Receives everything in a queue (deleting it) until it stays empty for `quiet`.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str, quiet: Duration) -> Vec<ReceivedMessage> {
    let queue = SqsQueue::from_client(sqs.clone());
    let receive = ReceiveOptions {
        wait_seconds: 1,
        ..ReceiveOptions::default()
    };
    let mut out = Vec::new();
    let mut last = tokio::time::Instant::now();
    while last.elapsed() < quiet {
        let messages = queue.receive(queue_url, receive).await.expect("receive");
        if messages.is_empty() {
            continue;
        }
        last = tokio::time::Instant::now();
        let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();
        for deleted in queue.delete_all(queue_url, &handles).await {
            deleted.expect("delete");
        }
        out.extend(messages);
    }
    out
}

/// Decodes queued messages and applies them with the real engine, in order.
pub async fn apply_messages(engine: &Engine, messages: &[ReceivedMessage]) -> usize {
    let batches: Vec<Batch> = messages
        .iter()
        .map(|m| regis_wire::decode(&m.body, &DecodeLimits::default(), &Keyring::default()).expect("decode"))
        .collect();
    let refs: Vec<&Batch> = batches.iter().collect();
    for result in engine.apply(&refs, now_ms()).await {
        result.expect("apply");
    }
    batches.iter().map(|b| b.commands.len()).sum()
}

/// A queue subscribed to `topic_arn` with raw delivery and the region filter policy.
pub async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    region: &str,
) -> Queue {
    let queue = localstack::create_queue(
        sqs,
        &localstack::unique_name("ops-sub"),
        HashMap::from([(QueueAttributeName::VisibilityTimeout, "30".to_owned())]),
    )
    .await;
    localstack::subscribe_region_queue(sns, sqs, topic_arn, &queue, region).await;
    queue
}

/// A new topic.
pub async fn topic(sns: &aws_sdk_sns::Client) -> String {
    sns.create_topic()
        .name(localstack::unique_name("ops-topic"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic ARN")
}
