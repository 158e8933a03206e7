//! The publisher against the in-process SNS.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regis_wire::{
    Batch, ClockError, Command, CommandError, Compression, DecodeLimits, Keyring, Limit, MAX_ELEMENT_BYTES,
    MAX_ELEMENTS_PER_COMMAND, MAX_VALUE_BYTES, OverLimit, ParseError, SigningKey, Version,
};
use tokio::time::{Instant, timeout};

use crate::{
    AttributeValue, EntryFault, FailureCause, ManualClock, MemorySns, Overflow, PublishError, Publisher,
    PublisherConfig, SnsError, Tenant, message_size,
};

const T0: u64 = 1_700_000_000_000;

fn config() -> PublisherConfig {
    let mut c = PublisherConfig::new("arn:aws:sns:ap-southeast-1:000000000000:regis", "ap-southeast-1", 3);
    c.default_tenant = Some("acme".into());
    // Most tests publish for tenants they make up.
    c.allow_unknown_tenants = true;
    c
}

fn start(config: PublisherConfig, sns: &Arc<MemorySns>) -> (Publisher, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let publisher = Publisher::builder(config, Arc::clone(sns))
        .clock(Arc::clone(&clock))
        .seed(7)
        .start()
        .unwrap();
    (publisher, clock)
}

fn set(i: usize, value: impl Into<Vec<u8>>) -> Command {
    Command::Set {
        key: format!("user:{i}").into_bytes(),
        value: value.into(),
        expire_at_ms: None,
    }
}

fn decode_all(sns: &MemorySns) -> Vec<Batch> {
    sns.messages()
        .iter()
        .map(|m| regis_wire::decode(&m.body, &DecodeLimits::default(), &Keyring::default()).unwrap())
        .collect()
}

/// Every key published, each exactly once.
fn keys(batches: &[Batch]) -> Vec<Vec<u8>> {
    let keys: Vec<_> = batches
        .iter()
        .flat_map(|b| b.commands.iter().map(|c| c.command.key().to_vec()))
        .collect();
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "a command was sent twice"
    );
    keys
}

fn attribute(message: &crate::RecordedMessage, name: &str) -> AttributeValue {
    message
        .attributes
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value
        .clone()
}

#[tokio::test]
async fn no_message_over_the_limit_attributes_included_uncompressed() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.compression = Compression::None;
    c.max_message_bytes = 4096;
    // Large attributes: a limit that ignored them would be overrun.
    let regions: Vec<String> = (0..30).map(|i| format!("region-{i:02}")).collect();
    c.tenants
        .insert("acme", Tenant::new(Some(regions.clone()), vec![Vec::new()]));
    let (publisher, _) = start(c, &sns);
    for i in 0..500 {
        publisher.publish(set(i, vec![b'v'; 40 + i % 50])).await.unwrap();
    }
    publisher.flush().await.unwrap();

    let messages = sns.messages();
    let attrs = messages[0].attributes.clone();
    assert!(attrs.iter().map(crate::Attribute::size).sum::<usize>() > 400);
    for m in &messages {
        assert_eq!(m.size, message_size(&m.body, &m.attributes));
        assert!(m.size <= 4096, "message of {} bytes", m.size);
        assert_eq!(attribute(m, "regions"), AttributeValue::StringArray(regions.clone()));
    }
    // Batches are filled: all but the last come close to the limit.
    let mut sizes: Vec<_> = messages.iter().map(|m| m.size).collect();
    sizes.sort_unstable();
    assert!(sizes[1] > 4096 - 300, "{sizes:?}");
    assert_eq!(keys(&decode_all(&sns)).len(), 500);
    let stats = publisher.stats();
    assert_eq!(stats.commands, 500);
    assert_eq!(stats.messages_published as usize, messages.len());
    assert_eq!(stats.splits, 0, "exact planning without compression");
    assert_eq!(stats.buffered_bytes, 0);
}

#[tokio::test]
async fn a_batch_that_compresses_badly_is_split_and_still_fits() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_message_bytes = 8192;
    c.linger = Duration::from_secs(3600);
    let (publisher, _) = start(c, &sns);
    // Learn a very good ratio first.
    for i in 0..3000 {
        publisher.publish(set(i, "a".repeat(100))).await.unwrap();
    }
    publisher.flush().await.unwrap();
    let compressed_phase = sns.messages().len();
    assert!(
        compressed_phase < 3000 * 130 / 8192,
        "compression let batches hold more: {compressed_phase} messages"
    );

    // Then data that does not compress: the estimate is wrong and the
    // sealed batch is over the limit.
    let mut rng = StdRng::seed_from_u64(1);
    for i in 3000..3400 {
        let value: Vec<u8> = (0..100).map(|_| rng.random()).collect();
        publisher.publish(set(i, value)).await.unwrap();
    }
    publisher.flush().await.unwrap();
    let stats = publisher.stats();
    assert!(stats.splits > 0, "{stats:?}");
    for m in sns.messages() {
        assert!(m.size <= 8192, "message of {} bytes", m.size);
    }
    let batches = decode_all(&sns);
    assert_eq!(keys(&batches).len(), 3400);
    assert_eq!(stats.messages as usize, batches.len());
    assert!(stats.uncompressed_bytes > stats.message_bytes);
}

#[tokio::test(start_paused = true)]
async fn a_lone_command_is_sent_after_the_linger() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_millis(50);
    let (publisher, _) = start(c, &sns);
    let begin = Instant::now();
    let receipt = publisher.publish(set(1, "v")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(sns.accepted(), 0, "sent before the linger");
    assert!(receipt.try_result().is_none());
    receipt.await.unwrap();
    assert!(begin.elapsed() >= Duration::from_millis(50));
    assert_eq!(sns.accepted(), 1);
    assert_eq!(sns.batch_requests(), 0, "a lone message goes out with Publish");
}

#[tokio::test(start_paused = true)]
async fn batches_ready_together_go_out_in_one_publish_batch() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, _) = start(config(), &sns);
    let mut receipts = Vec::new();
    for tenant in ["t1", "t2", "t3", "t4", "t5"] {
        receipts.push(publisher.publish_for(tenant, set(1, tenant)).await.unwrap());
    }
    for r in receipts {
        r.await.unwrap();
    }
    assert_eq!(sns.requests(), 1);
    assert_eq!(sns.batch_requests(), 1);
    let messages = sns.messages();
    assert_eq!(messages.len(), 5);
    assert!(messages.iter().all(|m| m.via_batch && m.request == 0));
    let tenants: HashSet<_> = messages
        .iter()
        .map(|m| format!("{:?}", attribute(m, "tenant")))
        .collect();
    assert_eq!(tenants.len(), 5);
    assert_eq!(publisher.stats().publish_batch_requests, 1);
}

#[tokio::test]
async fn more_than_ten_ready_batches_need_several_requests() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_secs(3600);
    let (publisher, _) = start(c, &sns);
    for t in 0..23 {
        publisher
            .publish_for(&format!("tenant-{t}"), set(t, "v"))
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(sns.accepted(), 23);
    assert_eq!(sns.requests(), 3, "10 + 10 + 3 entries");
    assert!(sns.messages().iter().all(|m| m.via_batch));
}

#[tokio::test]
async fn a_publish_batch_request_stays_within_the_message_size_limit() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.compression = Compression::None;
    c.max_message_bytes = 4096;
    c.linger = Duration::from_secs(3600);
    let (publisher, _) = start(c, &sns);
    for tenant in ["a", "b", "c"] {
        for i in 0..10 {
            publisher.publish_for(tenant, set(i, vec![b'x'; 120])).await.unwrap();
        }
    }
    publisher.flush().await.unwrap();
    let messages = sns.messages();
    assert_eq!(messages.len(), 3);
    assert!(
        messages.iter().all(|m| m.size > 4096 / 3),
        "each message is over a third of the limit"
    );
    // So at most two fit in one request, combined.
    assert_eq!((sns.requests(), sns.batch_requests()), (2, 1));
    for request in 0..2 {
        let combined: usize = messages.iter().filter(|m| m.request == request).map(|m| m.size).sum();
        assert!(combined <= 4096, "request {request} carried {combined} bytes");
    }
}

#[tokio::test(start_paused = true)]
async fn failed_entries_are_retried_individually() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, _) = start(config(), &sns);
    sns.fail_entries(
        2,
        EntryFault {
            code: "InternalError".into(),
            sender_fault: false,
        },
    );
    for tenant in ["a", "b", "c"] {
        publisher.publish_for(tenant, set(1, tenant)).await.unwrap();
    }
    publisher.flush().await.unwrap();
    assert_eq!(sns.batch_requests(), 1);
    assert_eq!(sns.requests(), 3, "one PublishBatch, then one Publish per failed entry");
    let messages = sns.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages.iter().filter(|m| !m.via_batch).count(), 2);
    let stats = publisher.stats();
    assert_eq!(
        (stats.retries, stats.failed_messages, stats.messages_published),
        (2, 0, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_requests_are_retried_with_backoff() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, _) = start(config(), &sns);
    sns.fail_requests(
        3,
        SnsError::Throttled {
            code: "Throttled".into(),
            message: "slow down".into(),
        },
    );
    let begin = Instant::now();
    publisher.publish(set(1, "v")).await.unwrap().await.unwrap();
    assert_eq!(publisher.stats().retries, 3);
    assert_eq!(sns.accepted(), 1);
    // Full jitter: the waits are random, but bounded by 50 + 100 + 200 ms
    // (plus the linger).
    assert!(begin.elapsed() <= Duration::from_millis(355), "{:?}", begin.elapsed());
}

#[tokio::test(start_paused = true)]
async fn persistent_failures_are_reported_after_the_deadline() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.retry.deadline = Duration::from_secs(30);
    let (publisher, _) = start(c, &sns);
    sns.fail_all(EntryFault {
        code: "InternalError".into(),
        sender_fault: false,
    });
    let begin = Instant::now();
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(publisher.publish(set(i, "v")).await.unwrap());
    }
    let flushed = publisher.flush().await.unwrap_err();
    assert!(
        begin.elapsed() >= Duration::from_secs(30),
        "gave up early: {:?}",
        begin.elapsed()
    );
    assert!(begin.elapsed() < Duration::from_secs(31));
    assert_eq!((flushed.failed_commands, flushed.failed_messages), (3, 1));
    for receipt in receipts {
        let error = receipt.await.unwrap_err();
        assert_eq!(error.commands, 3);
        assert_eq!(error.batch_id.len(), 32);
        assert_eq!(&*error.tenant, "acme");
        assert_eq!(
            error.keys.to_vec(),
            vec![b"user:0".to_vec(), b"user:1".to_vec(), b"user:2".to_vec()]
        );
        assert!(error.attempts > 5, "{error}");
        assert!(matches!(error.cause, FailureCause::Sns(SnsError::Server { .. })));
    }
    let stats = publisher.stats();
    assert_eq!(
        (stats.failed_commands, stats.failed_messages, stats.messages_published),
        (3, 1, 0)
    );
    assert!(stats.retries > 5);
    assert_eq!(stats.buffered_bytes, 0, "failed commands give their buffer back");
    assert_eq!(sns.accepted(), 0);

    // The publisher keeps working once SNS recovers.
    sns.heal();
    publisher.publish(set(9, "v")).await.unwrap().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_request_that_hangs_counts_toward_the_deadline() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.retry.deadline = Duration::from_secs(10);
    let (publisher, _) = start(c, &sns);
    sns.stall();
    let begin = Instant::now();
    let error = publisher.publish(set(1, "v")).await.unwrap().await.unwrap_err();
    assert!(
        matches!(error.cause, FailureCause::Sns(SnsError::Timeout(_))),
        "{error}"
    );
    assert!(begin.elapsed() >= Duration::from_secs(10) && begin.elapsed() < Duration::from_secs(11));
    assert_eq!(publisher.stats().buffered_bytes, 0);
}

#[tokio::test(start_paused = true)]
async fn sender_faults_are_not_retried() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, _) = start(config(), &sns);
    sns.fail_entries(
        1,
        EntryFault {
            code: "InvalidParameter".into(),
            sender_fault: true,
        },
    );
    let error = publisher.publish(set(1, "v")).await.unwrap().await.unwrap_err();
    assert_eq!(error.attempts, 1);
    assert!(matches!(error.cause, FailureCause::Sns(SnsError::Rejected { .. })));
    assert_eq!(publisher.stats().retries, 0);
    assert_eq!(sns.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_makes_publish_wait_while_sns_stalls() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_buffered_bytes = 2048;
    let (publisher, _) = start(c, &sns);
    sns.stall();
    let mut receipts = Vec::new();
    let mut blocked = false;
    for i in 0..200 {
        match timeout(Duration::from_secs(1), publisher.publish(set(i, "value"))).await {
            Ok(receipt) => receipts.push(receipt.unwrap()),
            Err(_) => {
                blocked = true;
                break;
            }
        }
        assert!(publisher.stats().buffered_bytes <= 2048);
    }
    assert!(blocked, "publish never waited");
    assert!(sns.stalled_requests() > 0);
    assert!(receipts.len() > 10, "only {} accepted", receipts.len());
    let buffered = publisher.stats().buffered_bytes;
    assert!(buffered <= 2048 && buffered > 1024, "{buffered}");

    sns.resume();
    publisher.publish(set(1000, "value")).await.unwrap();
    publisher.flush().await.unwrap();
    for r in receipts {
        r.await.unwrap();
    }
    assert_eq!(publisher.stats().buffered_bytes, 0);
    assert_eq!(keys(&decode_all(&sns)).len(), publisher.stats().commands as usize);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_instead_of_waiting() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_buffered_bytes = 2048;
    c.overflow = Overflow::FailFast;
    let (publisher, _) = start(c, &sns);
    sns.stall();
    let mut accepted = 0;
    let error = loop {
        match publisher.publish(set(accepted, "value")).await {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 200);
    };
    assert!(matches!(error, PublishError::BufferFull { max: 2048 }), "{error}");
    assert!(error.is_retryable());
    assert!(publisher.stats().buffered_bytes <= 2048);
    sns.resume();
    publisher.flush().await.unwrap();
    assert_eq!(
        sns.messages().iter().map(|m| decode_all_one(&m.body)).sum::<usize>(),
        accepted
    );
}

fn decode_all_one(body: &str) -> usize {
    regis_wire::decode(body, &DecodeLimits::default(), &Keyring::default())
        .unwrap()
        .commands
        .len()
}

#[tokio::test]
async fn raw_commands_refuse_non_idempotent_writes_and_make_expiry_absolute() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, clock) = start(config(), &sns);
    for line in ["INCR visits", "APPEND k v", "LPUSH q a"] {
        let error = publisher.publish_line(line).await.unwrap_err();
        assert!(
            matches!(error, PublishError::NotReplicable(ParseError::NotIdempotent { .. })),
            "{line}: {error}"
        );
        assert!(error.to_string().contains("not idempotent"), "{error}");
        assert!(!error.is_retryable());
    }
    assert!(matches!(
        publisher.publish_line("GET k").await,
        Err(PublishError::NotReplicable(ParseError::Unsupported(_)))
    ));
    publisher.publish_line("SET session:1 token EX 10").await.unwrap();
    clock.advance(Duration::from_secs(5));
    publisher
        .publish_raw(&[b"PEXPIRE".to_vec(), b"session:1".to_vec(), b"500".to_vec()])
        .await
        .unwrap();
    publisher
        .publish(publisher.set_ex("session:2", "t", Duration::from_secs(60)))
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let commands: Vec<_> = decode_all(&sns).into_iter().flat_map(|b| b.commands).collect();
    assert_eq!(
        commands.iter().map(|c| c.command.clone()).collect::<Vec<_>>(),
        vec![
            Command::Set {
                key: b"session:1".to_vec(),
                value: b"token".to_vec(),
                expire_at_ms: Some(T0 + 10_000)
            },
            Command::PExpireAt {
                key: b"session:1".to_vec(),
                at_ms: T0 + 5_500
            },
            Command::Set {
                key: b"session:2".to_vec(),
                value: b"t".to_vec(),
                expire_at_ms: Some(T0 + 65_000)
            },
        ]
    );
    // Versions come from the injected clock, with the origin's rank.
    assert_eq!(commands[0].version, Version::new(T0, 0, 3));
    assert_eq!(commands[1].version, Version::new(T0 + 5_000, 0, 3));
    assert_eq!(commands[2].version, Version::new(T0 + 5_000, 1, 3));
}

#[tokio::test]
async fn tenant_policies_restrict_keys_and_regions() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.tenants =
        regis_wire::TenantRegistry::parse(r#"{"acme": {"regions": ["eu-west-1"], "prefixes": ["acme:", "shared:"]}}"#)
            .unwrap();
    let (publisher, _) = start(c.clone(), &sns);
    let error = publisher
        .publish(Command::Del {
            key: b"globex:1".to_vec(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PublishError::TenantDenied(d) if d.reason() == "tenant-denied"),
        "{error}"
    );
    publisher
        .publish(Command::Del {
            key: b"acme:1".to_vec(),
        })
        .await
        .unwrap();
    // Unknown tenants, when allowed, are unrestricted.
    publisher
        .publish_for(
            "globex",
            Command::Del {
                key: b"globex:1".to_vec(),
            },
        )
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    let messages = sns.messages();
    assert_eq!(messages.len(), 2);
    for m in &messages {
        let AttributeValue::String(tenant) = attribute(m, "tenant") else {
            panic!()
        };
        let expected = if tenant == "acme" {
            vec!["eu-west-1".to_owned()]
        } else {
            vec!["*".to_owned()]
        };
        assert_eq!(attribute(m, "regions"), AttributeValue::StringArray(expected));
        assert_eq!(attribute(m, "origin"), AttributeValue::String("ap-southeast-1".into()));
    }

    c.allow_unknown_tenants = PublisherConfig::new("t", "r", 1).allow_unknown_tenants;
    let (strict, _) = start(c, &sns);
    let error = strict
        .publish_for("globex", Command::Del { key: b"k".to_vec() })
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::UnknownTenant(t) if t == "globex"));
}

#[tokio::test]
async fn commands_too_large_for_any_message_are_refused() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_message_bytes = 4096;
    let (publisher, _) = start(c.clone(), &sns);
    // Large but compressible: fits once compressed, alone in its message.
    publisher.publish(set(1, "a".repeat(50_000))).await.unwrap();
    // Large and incompressible: no message can carry it.
    let mut rng = StdRng::seed_from_u64(2);
    let noise: Vec<u8> = (0..5000).map(|_| rng.random()).collect();
    let error = publisher.publish(set(2, noise.clone())).await.unwrap_err();
    assert!(matches!(error, PublishError::TooLarge { max: 4096, .. }), "{error}");
    publisher.flush().await.unwrap();
    assert_eq!(keys(&decode_all(&sns)), vec![b"user:1".to_vec()]);
    assert!(sns.messages().iter().all(|m| m.size <= 4096));

    c.compression = Compression::None;
    let (plain, _) = start(c, &sns);
    assert!(matches!(
        plain.publish(set(3, "a".repeat(5000))).await,
        Err(PublishError::TooLarge { .. })
    ));
    assert!(matches!(
        plain
            .publish(Command::SAdd {
                key: b"s".to_vec(),
                members: vec![]
            })
            .await,
        Err(PublishError::Invalid(_))
    ));
}

#[tokio::test]
async fn flush_and_shutdown_deliver_everything() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_secs(3600);
    let (publisher, _) = start(c, &sns);
    let mut tasks = Vec::new();
    for t in 0..3 {
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..400 {
                publisher
                    .publish_for(&format!("tenant-{t}"), set(t * 1000 + i, "v"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The linger is an hour: only flush can have sent these.
    timeout(Duration::from_secs(10), publisher.flush())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(keys(&decode_all(&sns)).len(), 1200);

    let last = publisher.publish(set(5000, "v")).await.unwrap();
    timeout(Duration::from_secs(10), publisher.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.try_result(), Some(Ok(())));
    assert_eq!(keys(&decode_all(&sns)).len(), 1201);
    assert!(matches!(
        publisher.publish(set(1, "v")).await,
        Err(PublishError::Closed)
    ));
    let stats = publisher.stats();
    assert_eq!((stats.commands, stats.buffered_bytes), (1201, 0));
    // Batch ids: unique, 128 bits of hex.
    let ids: HashSet<_> = sns.messages().into_iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), sns.messages().len());
    assert!(
        ids.iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    );
}

#[tokio::test]
async fn dropping_the_last_handle_still_delivers() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_secs(3600);
    let (publisher, _) = start(c, &sns);
    let receipt = publisher.publish(set(1, "v")).await.unwrap();
    drop(publisher);
    timeout(Duration::from_secs(10), receipt).await.unwrap().unwrap();
    assert_eq!(sns.accepted(), 1);
}

#[tokio::test]
async fn a_key_bound_to_tenants_refuses_the_others() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.signing_key = Some(SigningKey::new("k1", vec![7; 32]).for_tenants(["acme"]));
    let (publisher, _) = start(c, &sns);
    publisher.publish(set(1, "v")).await.unwrap();
    let error = publisher.publish_for("globex", set(2, "v")).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::KeyNotForTenant { key, tenant } if key == "k1" && tenant == "globex"),
        "{error}"
    );
    publisher.flush().await.unwrap();
    assert_eq!(sns.messages().len(), 1);
}

#[tokio::test]
async fn batches_are_signed_with_the_configured_key() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    let key = SigningKey::new("k1", vec![7; 32]);
    c.signing_key = Some(key.clone());
    let (publisher, _) = start(c, &sns);
    for i in 0..100 {
        publisher.publish(set(i, "v")).await.unwrap();
    }
    publisher.flush().await.unwrap();
    let good = Keyring::new(vec![key]);
    let other = Keyring::new(vec![SigningKey::new("k1", vec![8; 32])]);
    for m in sns.messages() {
        assert_eq!(
            regis_wire::decode(&m.body, &DecodeLimits::default(), &good)
                .unwrap()
                .commands
                .len(),
            100
        );
        assert!(regis_wire::decode(&m.body, &DecodeLimits::default(), &other).is_err());
    }
}

#[tokio::test]
async fn keys_in_the_reserved_namespace_are_refused_in_every_form() {
    let sns = Arc::new(MemorySns::new());
    let (publisher, _) = start(config(), &sns);
    for key in ["regis:v:{ab}:victim", "regis:x"] {
        let error = publisher.publish(Command::Del { key: key.into() }).await.unwrap_err();
        assert!(
            matches!(&error, PublishError::ReservedKey { key: k } if k == key.as_bytes()),
            "{error}"
        );
        assert!(error.to_string().contains("reserved namespace"), "{error}");
        assert!(!error.is_retryable());
        let error = publisher.publish_line(&format!("SET {key} 1")).await.unwrap_err();
        assert!(
            matches!(error, PublishError::NotReplicable(ParseError::ReservedKey { .. })),
            "{error}"
        );
    }
    // Lag probes are ordinary data.
    publisher.publish_line("SET regis:probe:01 1 PX 60000").await.unwrap();
    publisher.flush().await.unwrap();
    assert_eq!(keys(&decode_all(&sns)), vec![b"regis:probe:01".to_vec()]);
}

#[tokio::test]
async fn a_wall_clock_stepped_back_refuses_new_commands_until_it_catches_up() {
    const DAY: u64 = 86_400_000;
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_secs(3600);
    let (publisher, clock) = start(c, &sns);
    // Booted a day ahead...
    clock.set(T0 + DAY);
    publisher.publish(set(1, "ahead")).await.unwrap();
    // ...then corrected: a version stamped now would be a day ahead.
    clock.set(T0);
    let error = publisher.publish(set(2, "now")).await.unwrap_err();
    assert!(
        matches!(
            error,
            PublishError::Clock(ClockError::SteppedBack {
                behind_ms: DAY,
                max_lead_ms: 300_000
            })
        ),
        "{error}"
    );
    assert!(error.is_retryable());
    let error = publisher.publish_line("DEL k").await.unwrap_err();
    assert!(matches!(error, PublishError::Clock(_)), "{error}");
    let stats = publisher.stats();
    assert_eq!(stats.clock_refusals, 2);
    assert_eq!(stats.commands, 1);
    // Within the bound again: stamping resumes, after the version before.
    clock.set(T0 + DAY - 300_000);
    publisher.publish(set(3, "caught up")).await.unwrap();
    publisher.flush().await.unwrap();
    let commands: Vec<_> = decode_all(&sns).into_iter().flat_map(|b| b.commands).collect();
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0].version, Version::new(T0 + DAY, 0, 3));
    assert_eq!(commands[1].version, Version::new(T0 + DAY, 1, 3));
    assert_eq!(publisher.stats().buffered_bytes, 0, "refused commands hold no buffer");
}

#[tokio::test]
async fn the_clock_bound_follows_the_configuration() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_clock_skew = Duration::from_secs(1);
    let (publisher, clock) = start(c, &sns);
    publisher.publish(set(1, "a")).await.unwrap();
    clock.set(T0 - 1_000);
    publisher.publish(set(2, "b")).await.unwrap();
    clock.set(T0 - 1_001);
    assert!(matches!(
        publisher.publish(set(3, "c")).await,
        Err(PublishError::Clock(ClockError::SteppedBack { behind_ms: 1_001, .. }))
    ));
}

#[tokio::test]
async fn commands_over_the_appliers_limits_are_refused() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.max_message_bytes = regis_wire::SNS_MAX_MESSAGE_BYTES;
    let (publisher, _) = start(c, &sns);
    let members = |n: usize| (0..n).map(|i| format!("m{i}").into_bytes()).collect::<Vec<_>>();
    let cases = [
        (
            Command::SAdd {
                key: b"s".to_vec(),
                members: members(MAX_ELEMENTS_PER_COMMAND + 1),
            },
            Limit::ElementsPerCommand,
        ),
        (
            Command::Del {
                key: vec![b'k'; MAX_ELEMENT_BYTES + 1],
            },
            Limit::ElementBytes,
        ),
        (
            Command::HSet {
                key: b"h".to_vec(),
                fields: vec![(vec![b'f'; MAX_ELEMENT_BYTES + 1], b"v".to_vec())],
            },
            Limit::ElementBytes,
        ),
        (set(1, vec![b'v'; MAX_VALUE_BYTES + 1]), Limit::ValueBytes),
        // Under the value limit, but escaped to more JSON than a batch may hold.
        (set(1, vec![1u8; MAX_VALUE_BYTES]), Limit::DecompressedBytes),
    ];
    for (command, limit) in cases {
        match publisher.publish(command).await {
            Err(PublishError::OverLimit(OverLimit { limit: l, .. })) => assert_eq!(l, limit),
            other => panic!("{limit:?}: {other:?}"),
        }
    }
    assert!(matches!(
        publisher
            .publish(Command::PExpireAt {
                key: b"k".to_vec(),
                at_ms: 0
            })
            .await,
        Err(PublishError::Invalid(CommandError::ExpiryOutOfRange { at_ms: 0 }))
    ));
    // At the limit is fine.
    publisher
        .publish(Command::SAdd {
            key: b"s".to_vec(),
            members: members(MAX_ELEMENTS_PER_COMMAND),
        })
        .await
        .unwrap();
    publisher.flush().await.unwrap();
    assert_eq!(decode_all(&sns).len(), 1);
}

#[tokio::test]
async fn batches_close_at_half_the_appliers_element_limit() {
    let sns = Arc::new(MemorySns::new());
    let mut c = config();
    c.linger = Duration::from_secs(3600);
    c.max_message_bytes = regis_wire::SNS_MAX_MESSAGE_BYTES;
    let (publisher, _) = start(c, &sns);
    for i in 0..12 {
        publisher
            .publish(Command::SAdd {
                key: format!("s{i}").into_bytes(),
                members: (0..MAX_ELEMENTS_PER_COMMAND)
                    .map(|m| vec![b'a' + (m % 7) as u8])
                    .collect(),
            })
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    let batches = decode_all(&sns);
    let elements: Vec<usize> = batches
        .iter()
        .map(|b| b.commands.iter().map(|c| c.command.elements()).sum())
        .collect();
    assert_eq!(elements.iter().sum::<usize>(), 12 * MAX_ELEMENTS_PER_COMMAND);
    assert!(
        elements.iter().all(|e| *e <= regis_wire::MAX_ELEMENTS_PER_BATCH / 2),
        "{elements:?}"
    );
    assert_eq!(batches.len(), 3, "{elements:?}");
}
