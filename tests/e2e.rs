//! End-to-end tests against the local multi-region environment (`make up`):
//! real SNS fan-out and filter policies (LocalStack), real workers, one real
//! Redis per region. These tests share the environment and run in parallel,
//! each under its own key prefix; the ones that break a region are in
//! `faults.rs`.

mod common;

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use common::{OPEN_TENANT, RESTRICTED_TENANT, expected, prefix, publish_all, snapshot, wait_converged, workload};
use regis_publisher::Command;

const CONVERGE: Duration = Duration::from_secs(120);

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fans_out_to_every_region() {
    let env = common::load_env();
    let p = prefix("fanout");
    let publisher = common::publisher(&env).await;
    let expire = common::now_ms() + 3_600_000;
    let commands = vec![
        Command::HSet {
            key: b(&format!("{p}hotel:1")),
            fields: vec![
                (b("name"), b("Marina Bay")),
                (b("city"), b("Singapore")),
                (b("stars"), b("5")),
            ],
        },
        Command::SAdd {
            key: b(&format!("{p}hotel:1:amenities")),
            members: vec![b("pool"), b("spa"), b("wifi")],
        },
        Command::ZAdd {
            key: b(&format!("{p}rates")),
            members: vec![(210.5, b("hotel:1")), (99.0, b("hotel:2"))],
        },
        Command::Set {
            key: b(&format!("{p}session:9")),
            value: b("token"),
            expire_at_ms: Some(expire),
        },
        Command::Set {
            key: b(&format!("{p}gone")),
            value: b("soon deleted"),
            expire_at_ms: None,
        },
        Command::Del {
            key: b(&format!("{p}gone")),
        },
        // Bytes that are not UTF-8 must survive the trip unchanged.
        Command::Set {
            key: b(&format!("{p}binary")),
            value: vec![0, 255, 1, 254, b'\n'],
            expire_at_ms: None,
        },
    ];
    let want = expected(&commands);
    assert_eq!(want.len(), 5, "the model keeps the five live keys");
    publish_all(&publisher, OPEN_TENANT, &commands).await;
    let took = wait_converged(&env, &env.region_names(), &p, &want, CONVERGE).await;
    eprintln!("fan-out: all {} regions converged in {took:?}", env.regions.len());
    publisher.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_tenant_never_reaches_other_regions() {
    let env = common::load_env();
    let allowed = env.regions_of(RESTRICTED_TENANT);
    let excluded: Vec<String> = env
        .region_names()
        .into_iter()
        .filter(|r| !allowed.contains(r))
        .collect();
    assert!(
        !excluded.is_empty(),
        "{RESTRICTED_TENANT} must be restricted in the topology"
    );

    let p_sg = prefix("residency-sg");
    let p_marker = prefix("residency-marker");
    let publisher = common::publisher(&env).await;
    let sg: Vec<Command> = (0..20)
        .map(|i| Command::HSet {
            key: b(&format!("{p_sg}guest:{i}")),
            fields: vec![
                (b("name"), b(&format!("guest {i}"))),
                (b("passport"), b(&format!("S{i:07}"))),
            ],
        })
        .collect();
    publish_all(&publisher, RESTRICTED_TENANT, &sg).await;
    // Published after the restricted data: once this unrestricted marker is
    // applied in an excluded region, that region's worker has had every
    // chance to receive the restricted batches too.
    let marker = vec![Command::Set {
        key: b(&format!("{p_marker}m")),
        value: b("after"),
        expire_at_ms: None,
    }];
    publish_all(&publisher, OPEN_TENANT, &marker).await;

    wait_converged(&env, &allowed, &p_sg, &expected(&sg), CONVERGE).await;
    wait_converged(&env, &env.region_names(), &p_marker, &expected(&marker), CONVERGE).await;
    // And a little longer, for a reordered delivery.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for region in &excluded {
        let mut conn = common::redis(&env, region).await;
        let leaked = snapshot(&mut conn, &p_sg).await.expect("snapshot");
        assert!(
            leaked.is_empty(),
            "{RESTRICTED_TENANT} data reached {region}: {} keys",
            leaked.len()
        );
    }
    publisher.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_lands_in_its_regions_dlq_while_good_traffic_flows() {
    let env = common::load_env();
    let region = env.regions.last().expect("regions").clone();
    let sqs = env.sqs(&region.name).await;
    let p = prefix("poison");
    let publisher = common::publisher(&env).await;

    let before: Vec<Command> = (0..10)
        .map(|i| Command::Set {
            key: b(&format!("{p}before:{i}")),
            value: b("ok"),
            expire_at_ms: None,
        })
        .collect();
    publish_all(&publisher, OPEN_TENANT, &before).await;

    // Straight into the region's queue, as if SNS had delivered it.
    let body = format!("not a regis batch {p}");
    sqs.send_message()
        .queue_url(&region.queue_url)
        .message_body(&body)
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
        .expect("send poison");

    let after: Vec<Command> = (0..10)
        .map(|i| Command::Set {
            key: b(&format!("{p}after:{i}")),
            value: b("ok"),
            expire_at_ms: None,
        })
        .collect();
    publish_all(&publisher, OPEN_TENANT, &after).await;
    let all: Vec<Command> = before.iter().chain(&after).cloned().collect();
    wait_converged(&env, &env.region_names(), &p, &expected(&all), CONVERGE).await;

    // Permanent failures go to the DLQ at once, with a reason: well before
    // the redrive policy could move it (max receives x visibility timeout).
    let deadline = tokio::time::Instant::now() + env.visibility_timeout() * env.max_receive_count;
    let found = loop {
        let got = sqs
            .receive_message()
            .queue_url(&region.dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(5)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive from DLQ");
        let mut found = None;
        for message in got.messages.unwrap_or_default() {
            if message.body() == Some(body.as_str()) {
                found = Some(message);
            } else if let Some(handle) = message.receipt_handle() {
                // Not ours: make it visible again at once.
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(&region.dlq_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        if let Some(message) = found {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poison message did not reach {}'s DLQ",
            region.name
        );
    };
    let attributes = found.message_attributes().cloned().unwrap_or_default();
    let attr = |name: &str| attributes.get(name).and_then(|v| v.string_value()).map(str::to_owned);
    assert_eq!(
        attr("reason").as_deref(),
        Some("malformed"),
        "DLQ attributes: {attributes:?}"
    );
    assert!(
        attr("detail").is_some_and(|d| !d.is_empty()),
        "DLQ attributes: {attributes:?}"
    );
    sqs.delete_message()
        .queue_url(&region.dlq_url)
        .receipt_handle(found.receipt_handle().expect("receipt handle"))
        .send()
        .await
        .expect("delete from DLQ");
    publisher.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_end_in_the_same_state_everywhere() {
    let env = common::load_env();
    let p = prefix("thousand");
    let commands = workload(&p, 1000, 120, 0x5eed_1000);
    let want = expected(&commands);
    assert!(
        want.len() > 50,
        "the workload leaves a substantial state ({} keys)",
        want.len()
    );
    let publisher = common::publisher(&env).await;
    let started = std::time::Instant::now();
    publish_all(&publisher, OPEN_TENANT, &commands).await;
    let published = started.elapsed();
    let took = wait_converged(&env, &env.region_names(), &p, &want, CONVERGE).await;
    eprintln!(
        "1000 commands ({} keys): published in {published:?}, every region converged {took:?} later",
        want.len()
    );
    publisher.shutdown().await.expect("shutdown");
}
