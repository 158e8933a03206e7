//! The publisher through the real `aws-sdk-sns` client against LocalStack:
//! a topic in one region fanning out, with raw delivery and per-region
//! filter policies, to queues in two other regions.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regis_publisher::{AwsSns, Command, Publisher, PublisherConfig, Tenant};
use regis_testkit::localstack::{self, Queue};
use regis_wire::{DecodeLimits, Keyring};

const TOPIC_REGION: &str = "ap-southeast-1";
const MAX_MESSAGE_BYTES: usize = 8 * 1024;
const SHARED_COMMANDS: usize = 3000;
const EU_ONLY_COMMANDS: usize = 300;

/// A queue in `region` that accepts the topic's messages, subscribed with
/// raw delivery and the filter policy a region's subscription has.
async fn subscribed_queue(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    region: &str,
    name: &str,
) -> (aws_sdk_sqs::Client, Queue) {
    let sqs = localstack::sqs(region).await;
    let queue = localstack::create_queue(
        &sqs,
        name,
        HashMap::from([(QueueAttributeName::VisibilityTimeout, "600".to_owned())]),
    )
    .await;
    localstack::subscribe_region_queue(sns, &sqs, topic_arn, &queue, region).await;
    (sqs, queue)
}

/// What a queue received: batches by id (duplicates dropped), and the size
/// each message counted toward SNS's limit.
struct Received {
    batches: HashMap<String, regis_wire::Batch>,
    tenants: HashMap<String, (String, String, Vec<String>)>,
    largest: usize,
    deliveries: usize,
}

async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str, expected_commands: usize) -> Received {
    let mut received = Received {
        batches: HashMap::new(),
        tenants: HashMap::new(),
        largest: 0,
        deliveries: 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut commands = 0;
    while commands < expected_commands && tokio::time::Instant::now() < deadline {
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        for message in messages {
            received.deliveries += 1;
            let body = message.body().expect("body");
            let attributes = message.message_attributes().cloned().unwrap_or_default();
            let value = |name: &str| {
                attributes
                    .get(name)
                    .and_then(|v| v.string_value())
                    .unwrap_or_else(|| panic!("attribute {name} missing: {attributes:?}"))
                    .to_owned()
            };
            let size = body.len()
                + attributes
                    .iter()
                    .map(|(name, v)| name.len() + v.data_type().len() + v.string_value().unwrap_or_default().len())
                    .sum::<usize>();
            received.largest = received.largest.max(size);
            let batch = regis_wire::decode(body, &DecodeLimits::default(), &Keyring::default()).expect("decode");
            let regions: Vec<String> = serde_json::from_str(&value("regions")).expect("regions is a JSON array");
            received
                .tenants
                .insert(batch.header.id.clone(), (value("tenant"), value("origin"), regions));
            if !received.batches.contains_key(&batch.header.id) {
                commands += batch.commands.len();
                received.batches.insert(batch.header.id.clone(), batch);
            }
        }
    }
    received
}

/// Keys of every command, asserting none appears twice.
fn keys_once(received: &Received) -> HashSet<Vec<u8>> {
    let mut keys = HashSet::new();
    for batch in received.batches.values() {
        for command in &batch.commands {
            assert!(
                keys.insert(command.command.key().to_vec()),
                "command for {:?} delivered in two batches",
                command.command.key()
            );
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_commands_reach_both_regions_in_few_messages() {
    localstack::ensure_running().await;
    let sns_client = localstack::sns(TOPIC_REGION).await;
    let topic_arn = sns_client
        .create_topic()
        .name(localstack::unique_name("regis-pub"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");
    let (sqs_in, queue_in) = subscribed_queue(
        &sns_client,
        &topic_arn,
        "ap-south-1",
        &localstack::unique_name("regis-pub-in"),
    )
    .await;
    let (sqs_eu, queue_eu) = subscribed_queue(
        &sns_client,
        &topic_arn,
        "eu-west-1",
        &localstack::unique_name("regis-pub-eu"),
    )
    .await;

    let mut config = PublisherConfig::new(topic_arn.clone(), TOPIC_REGION, 1);
    config.max_message_bytes = MAX_MESSAGE_BYTES;
    config.default_tenant = Some("hotel-sg".into());
    config.tenants.insert(
        "hotel-sg",
        Tenant::new(Some(vec!["ap-south-1".into(), "eu-west-1".into()]), vec![Vec::new()]),
    );
    config.tenants.insert(
        "hotel-eu",
        Tenant::new(Some(vec!["eu-west-1".into()]), vec![b"eu:".to_vec()]),
    );
    let sdk = localstack::sdk_config(TOPIC_REGION).await;
    let publisher = Publisher::builder(config, AwsSns::from_sdk_config(&sdk))
        .seed(11)
        .start()
        .expect("start");

    let mut rng = StdRng::seed_from_u64(5);
    let mut receipts = Vec::new();
    for i in 0..SHARED_COMMANDS {
        // Values that compress only partly, so batching by size matters.
        let value: String = (0..48).map(|_| char::from(b'a' + rng.random_range(0..16u8))).collect();
        let command = Command::Set {
            key: format!("room:{i}").into_bytes(),
            value: value.into_bytes(),
            expire_at_ms: None,
        };
        receipts.push(publisher.publish(command).await.expect("publish"));
    }
    for i in 0..EU_ONLY_COMMANDS {
        let command = Command::HSet {
            key: format!("eu:guest:{i}").into_bytes(),
            fields: vec![(b"n".to_vec(), b"1".to_vec())],
        };
        publisher.publish_for("hotel-eu", command).await.expect("publish");
    }
    publisher.shutdown().await.expect("every batch reached SNS");
    for receipt in receipts {
        receipt.await.expect("receipt");
    }
    let stats = publisher.stats();
    assert_eq!(stats.commands as usize, SHARED_COMMANDS + EU_ONLY_COMMANDS);
    assert_eq!(stats.failed_commands, 0);
    assert_eq!(stats.messages, stats.messages_published);

    let india = receive(&sqs_in, &queue_in.url, SHARED_COMMANDS).await;
    let europe = receive(&sqs_eu, &queue_eu.url, SHARED_COMMANDS + EU_ONLY_COMMANDS).await;

    let shared_keys: HashSet<Vec<u8>> = (0..SHARED_COMMANDS).map(|i| format!("room:{i}").into_bytes()).collect();
    let eu_keys: HashSet<Vec<u8>> = (0..EU_ONLY_COMMANDS)
        .map(|i| format!("eu:guest:{i}").into_bytes())
        .collect();
    assert_eq!(
        keys_once(&india),
        shared_keys,
        "ap-south-1 gets hotel-sg's commands and nothing of hotel-eu"
    );
    assert_eq!(
        keys_once(&europe),
        &shared_keys | &eu_keys,
        "eu-west-1 gets both tenants"
    );

    for received in [&india, &europe] {
        assert!(
            received.largest <= MAX_MESSAGE_BYTES,
            "a message of {} bytes",
            received.largest
        );
        let messages = received.batches.len();
        assert!(
            messages > 3 && messages * 20 < SHARED_COMMANDS,
            "{messages} messages: batching did not happen"
        );
        for (id, (tenant, origin, regions)) in &received.tenants {
            let batch = &received.batches[id];
            assert_eq!(tenant, &batch.header.tenant);
            assert_eq!(origin, TOPIC_REGION);
            assert_eq!(batch.header.origin, TOPIC_REGION);
            let expected: Vec<String> = match tenant.as_str() {
                "hotel-sg" => vec!["ap-south-1".into(), "eu-west-1".into()],
                "hotel-eu" => vec!["eu-west-1".into()],
                other => panic!("unexpected tenant {other}"),
            };
            assert_eq!(regions, &expected);
        }
    }
    println!(
        "{} commands in {} messages ({} KiB of JSON sent as {} KiB); ap-south-1: {} deliveries, eu-west-1: {}",
        stats.commands,
        stats.messages,
        stats.uncompressed_bytes / 1024,
        stats.message_bytes / 1024,
        india.deliveries,
        europe.deliveries
    );

    // Best-effort cleanup; LocalStack is shared.
    let _ = sns_client.delete_topic().topic_arn(&topic_arn).send().await;
    let _ = sqs_in.delete_queue().queue_url(&queue_in.url).send().await;
    let _ = sqs_eu.delete_queue().queue_url(&queue_eu.url).send().await;
}
