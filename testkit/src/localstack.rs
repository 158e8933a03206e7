//! LocalStack clients for integration tests.
//!
//! The endpoint comes from `AWS_ENDPOINT_URL` (the variable the AWS SDKs
//! read themselves), defaulting to LocalStack's `http://127.0.0.1:4566`.
//! Every test creates its own resources under [`unique_name`]s, so tests
//! can run side by side against one LocalStack.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use rand::Rng as _;

/// LocalStack's default edge endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// The account id LocalStack reports.
pub const ACCOUNT_ID: &str = "000000000000";

/// The endpoint tests talk to.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned())
}

/// `prefix-<12 random hex digits>`, valid as a queue or topic name.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{:012x}", n & 0xffff_ffff_ffff)
}

/// Panics with a clear message when LocalStack does not answer.
pub async fn ensure_running() {
    let url = format!("{}/_localstack/health", endpoint());
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:4566")
        .to_owned();
    let reachable = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr.clone()))
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    assert!(
        reachable,
        "LocalStack is not reachable at {addr}: start the local environment with `make up` (or run `make test`)"
    );
}

/// SDK configuration for `region` with test credentials and the LocalStack endpoint.
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    regis_aws::sdk::config(region, &regis_aws::sdk::Endpoint::local(endpoint())).await
}

/// An SQS client for `region`.
pub async fn sqs(region: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config(region).await)
}

/// An SNS client for `region`.
pub async fn sns(region: &str) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&sdk_config(region).await)
}

/// A queue's URL and ARN.
#[derive(Debug, Clone)]
pub struct Queue {
    /// The queue URL.
    pub url: String,
    /// The queue ARN.
    pub arn: String,
}

/// Creates a queue (idempotent for identical attributes).
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Queue {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"))
        .queue_url
        .expect("queue URL");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue ARN of {name}: {e:?}"))
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN");
    Queue { url, arn }
}

/// Creates a DLQ and a queue that redrives into it after `max_receive_count` receives.
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout_s: u32,
) -> (Queue, Queue) {
    let dlq = create_queue(sqs, &format!("{name}-dlq"), HashMap::new()).await;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq.arn, "maxReceiveCount": max_receive_count });
    let attributes = HashMap::from([
        (QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string()),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
    ]);
    let queue = create_queue(sqs, name, attributes).await;
    (queue, dlq)
}

/// Receives up to `max` messages within `wait` (several receive calls),
/// with all attributes, without deleting them.
pub async fn receive_all(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
    wait: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < max && tokio::time::Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive from {queue_url}: {e:?}"));
        out.extend(got.messages.unwrap_or_default());
    }
    out
}

/// A new SNS topic named [`unique_name`]`(prefix)`; returns its ARN.
pub async fn create_topic(sns: &aws_sdk_sns::Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    sns.create_topic()
        .name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e:?}"))
        .topic_arn
        .expect("topic ARN")
}

/// Subscribes `queue` to `topic_arn` the way a region's queue is subscribed
/// in the project's topology: a queue policy that lets the topic send, raw
/// message delivery, and the filter policy `{"regions": [region, "*"]}` on
/// message attributes (docs/ARCHITECTURE.md).
pub async fn subscribe_region_queue(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    queue: &Queue,
    region: &str,
) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue.arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue policy of {}: {e:?}", queue.url));
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue.arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicyScope", "MessageAttributes")
        .attributes(
            "FilterPolicy",
            serde_json::json!({ "regions": [region, "*"] }).to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("subscribe {} to {topic_arn}: {e:?}", queue.arn));
}
