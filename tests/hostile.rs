//! End-to-end: hostile and faulty batches sent straight to one region's
//! queue, as anyone who can send to it could, while good traffic flows.
//! Each is parked in that region's DLQ with its reason, nothing of it
//! reaches Redis, the worker keeps applying the good traffic, and `regis
//! verify` finds the regions identical afterwards.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{OPEN_TENANT, expected, now_ms, prefix, publish_all, regis, wait_converged};
use regis_publisher::Command as PublishedCommand;
use regis_wire::{Command, Mode, Version, VersionedCommand};

const CONVERGE: Duration = Duration::from_secs(180);
const DAY_MS: u64 = 86_400_000;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn at(millis: u64, command: Command) -> VersionedCommand {
    VersionedCommand::new(Version::new(millis, 0, 3), command)
}

fn set(key: &str) -> Command {
    Command::Set {
        key: b(key),
        value: b("hostile"),
        expire_at_ms: None,
    }
}

/// The message text of a batch of `commands` for tenant [`OPEN_TENANT`].
fn text(id: &str, commands: Vec<VersionedCommand>) -> String {
    let mut batch = regis_testkit::batches::batch(id, Mode::Lww, now_ms(), commands);
    batch.header.tenant = OPEN_TENANT.into();
    regis_testkit::batches::text(&batch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_batches_are_parked_with_their_reasons_and_reach_no_redis() {
    let env = common::load_env();
    let region = env.regions.last().expect("regions").clone();
    let sqs = env.sqs(&region.name).await;
    let p = prefix("hostile");
    let now = now_ms();

    // Each hostile batch also holds an innocent-looking write, which must
    // not be applied either: a refusal is for the whole batch.
    let victim = format!("{p}victim");
    let hostile: Vec<(&str, String, Vec<String>)> = vec![
        (
            "reserved-key",
            text(
                &format!("{p}reserved"),
                vec![
                    at(now, set(&format!("{p}reserved:ok"))),
                    at(
                        now,
                        Command::HSet {
                            key: format!("regis:v:{{a}}:{victim}").into_bytes(),
                            fields: vec![(b("k"), b("ffffffffffffffffffffffff"))],
                        },
                    ),
                ],
            ),
            vec![format!("{p}reserved:ok"), format!("regis:v:{{a}}:{victim}")],
        ),
        (
            "clock-skew",
            text(
                &format!("{p}future"),
                vec![
                    at(now, set(&format!("{p}future:ok"))),
                    at(now + DAY_MS, set(&format!("{p}future"))),
                ],
            ),
            vec![format!("{p}future:ok"), format!("{p}future")],
        ),
        (
            "beyond-horizon",
            text(&format!("{p}old"), vec![at(now - 30 * DAY_MS, set(&format!("{p}old")))]),
            vec![format!("{p}old")],
        ),
        (
            "over-limit",
            text(
                &format!("{p}big"),
                vec![at(
                    now,
                    Command::SAdd {
                        key: b(&format!("{p}big")),
                        members: (0..regis_wire::MAX_ELEMENTS_PER_COMMAND + 1)
                            .map(|i| i.to_string().into_bytes())
                            .collect(),
                    },
                )],
            ),
            vec![format!("{p}big")],
        ),
    ];

    let publisher = common::publisher(&env).await;
    let before: Vec<PublishedCommand> = (0..10)
        .map(|i| PublishedCommand::Set {
            key: b(&format!("{p}before:{i}")),
            value: b("ok"),
            expire_at_ms: None,
        })
        .collect();
    publish_all(&publisher, OPEN_TENANT, &before).await;
    for (_, body, _) in &hostile {
        sqs.send_message()
            .queue_url(&region.queue_url)
            .message_body(body)
            .message_attributes(
                "tenant",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(OPEN_TENANT)
                    .build()
                    .expect("attribute"),
            )
            .send()
            .await
            .expect("send a hostile batch");
    }
    let after: Vec<PublishedCommand> = (0..10)
        .map(|i| PublishedCommand::Set {
            key: b(&format!("{p}after:{i}")),
            value: b("ok"),
            expire_at_ms: None,
        })
        .collect();
    publish_all(&publisher, OPEN_TENANT, &after).await;
    let all: Vec<PublishedCommand> = before.iter().chain(&after).cloned().collect();
    // The good traffic reaches every region: the worker kept running.
    wait_converged(&env, &env.region_names(), &p, &expected(&all), CONVERGE).await;

    // Every hostile batch is in the DLQ with its reason.
    let mut reasons: HashMap<String, String> = HashMap::new();
    let bodies: HashMap<&str, &str> = hostile.iter().map(|(r, body, _)| (body.as_str(), *r)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while reasons.len() < hostile.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all hostile batches were parked in {}'s DLQ: found {reasons:?}",
            region.name
        );
        let got = sqs
            .receive_message()
            .queue_url(&region.dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive from the DLQ");
        for message in got.messages.unwrap_or_default() {
            let handle = message.receipt_handle().unwrap_or_default().to_owned();
            match bodies.get(message.body().unwrap_or_default()) {
                Some(expected_reason) => {
                    let reason = message
                        .message_attributes()
                        .and_then(|a| a.get("reason"))
                        .and_then(|v| v.string_value())
                        .unwrap_or_default()
                        .to_owned();
                    reasons.insert((*expected_reason).to_owned(), reason);
                    let _ = sqs
                        .delete_message()
                        .queue_url(&region.dlq_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
                None => {
                    // Not ours: visible again at once for whoever wants it.
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&region.dlq_url)
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .send()
                        .await;
                }
            }
        }
    }
    for (expected_reason, _, _) in &hostile {
        assert_eq!(
            reasons.get(*expected_reason).map(String::as_str),
            Some(*expected_reason),
            "parked with the wrong reason: {reasons:?}"
        );
    }

    // Nothing of them in any region's Redis.
    for r in &env.regions {
        let mut conn = common::redis(&env, &r.name).await;
        for (reason, _, keys) in &hostile {
            for key in keys {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("EXISTS");
                assert!(!exists, "{}: {key} of the {reason} batch was written", r.name);
            }
        }
    }

    // The regions agree key by key.
    let regions = env.region_names().join(",");
    let pattern = format!("{p}*");
    let out = regis(&["verify", "--regions", &regions, "--match", &pattern]);
    assert!(
        out.status.success(),
        "verify found differences: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    publisher.shutdown().await.expect("shutdown");
}
