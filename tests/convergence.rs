//! Last-writer-wins end to end: two origin regions publish conflicting
//! writes through the real topic, the batches reach the three regional
//! queues in whatever order, and the three Redis instances end identical,
//! in the state of applying every write in version order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{OPEN_TENANT, prefix, publish_all, state_after, wait_converged};
use regis_publisher::{AwsSns, Command, ManualClock, Publisher, PublisherConfig};

const CONVERGE: Duration = Duration::from_secs(120);

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A publisher for `origin` (with that region's rank) whose clock the test sets.
async fn origin_publisher(env: &common::Env, origin: &str, clock: Arc<ManualClock>) -> Publisher {
    let rank = env.region(origin).rank;
    let mut config = PublisherConfig::new(&env.topic_arn, origin, rank);
    config.tenants = env.tenants.clone();
    // The topic lives in its own region; every origin publishes to it there.
    let sns = AwsSns::from_sdk_config(&env.sdk_config(&env.topic_region).await);
    Publisher::builder(config, sns)
        .clock(clock)
        .start()
        .expect("publisher configuration")
}

/// One write of the scenario, `offset` ms after the test's start.
struct Write {
    offset: u64,
    command: Command,
}

async fn publish_at(publisher: &Publisher, clock: &ManualClock, t0: u64, writes: &[Write]) {
    for write in writes {
        clock.set(t0 + write.offset);
        publish_all(publisher, OPEN_TENANT, std::slice::from_ref(&write.command)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_writes_from_two_origins_converge_everywhere() {
    let env = common::load_env();
    let p = prefix("lww");
    let names = env.region_names();
    let (low, high) = (
        names.first().expect("regions").clone(),
        names.last().expect("regions").clone(),
    );
    assert!(
        env.region(&high).rank > env.region(&low).rank,
        "the topology ranks its regions"
    );
    let key = |k: &str| b(&format!("{p}{k}"));

    // The low-ranked origin's writes; within one publisher times increase.
    let mut from_low: Vec<Write> = (1..=10)
        .map(|i| Write {
            offset: i,
            command: Command::Set {
                key: key(&format!("k{i}")),
                value: b("low"),
                expire_at_ms: None,
            },
        })
        .collect();
    from_low.extend([
        Write {
            offset: 20,
            command: Command::HSet {
                key: key("hotel"),
                fields: vec![(b("f1"), b("low"))],
            },
        },
        Write {
            offset: 30,
            command: Command::Set {
                key: key("d"),
                value: b("older than the delete"),
                expire_at_ms: None,
            },
        },
        Write {
            offset: 40,
            command: Command::SAdd {
                key: key("s"),
                members: vec![b("x")],
            },
        },
        Write {
            offset: 41,
            command: Command::SRem {
                key: key("s"),
                members: vec![b("y")],
            },
        },
        Write {
            offset: 45,
            command: Command::SAdd {
                key: key("s"),
                members: vec![b("w")],
            },
        },
        Write {
            offset: 50,
            command: Command::ZAdd {
                key: key("z"),
                members: vec![(1.0, b("m"))],
            },
        },
    ]);
    // The high-ranked origin: the same milliseconds for k1..k10 and z
    // (rank decides), older writes that arrive after newer ones.
    let mut from_high: Vec<Write> = (1..=10)
        .map(|i| Write {
            offset: i,
            command: Command::Set {
                key: key(&format!("k{i}")),
                value: b("high"),
                expire_at_ms: None,
            },
        })
        .collect();
    from_high.extend([
        Write {
            offset: 15,
            command: Command::HReplace {
                key: key("hotel"),
                fields: vec![(b("f2"), b("high"))],
                expire_at_ms: None,
            },
        },
        Write {
            offset: 35,
            command: Command::Del { key: key("d") },
        },
        Write {
            offset: 39,
            command: Command::SAdd {
                key: key("s"),
                members: vec![b("y")],
            },
        },
        Write {
            offset: 42,
            command: Command::SRem {
                key: key("s"),
                members: vec![b("x")],
            },
        },
        Write {
            offset: 50,
            command: Command::ZAdd {
                key: key("z"),
                members: vec![(2.0, b("m"))],
            },
        },
    ]);

    // What every region must hold: every write applied in version order
    // (milliseconds, then the origin's rank).
    let mut ordered: Vec<(u64, u16, &Command)> = from_low
        .iter()
        .map(|w| (w.offset, env.region(&low).rank, &w.command))
        .chain(from_high.iter().map(|w| (w.offset, env.region(&high).rank, &w.command)))
        .collect();
    ordered.sort_by_key(|(offset, rank, _)| (*offset, *rank));
    let commands: Vec<Command> = ordered.into_iter().map(|(_, _, c)| c.clone()).collect();
    let want = state_after(&commands);
    assert_eq!(
        want.get(&key("k3")).map(|e| &e.value),
        Some(&regis_demo::model::Value::Str(b("high")))
    );
    assert!(!want.contains_key(&key("d")), "the newer delete wins");

    // The newer writes go out first, so every region sees older ones late.
    let t0 = common::now_ms();
    let low_clock = Arc::new(ManualClock::new(t0));
    let high_clock = Arc::new(ManualClock::new(t0));
    let low_publisher = origin_publisher(&env, &low, low_clock.clone()).await;
    let high_publisher = origin_publisher(&env, &high, high_clock.clone()).await;
    publish_at(&low_publisher, &low_clock, t0, &from_low).await;
    publish_at(&high_publisher, &high_clock, t0, &from_high).await;

    let took = wait_converged(&env, &names, &p, &want, CONVERGE).await;
    eprintln!("two origins: all {} regions identical after {took:?}", names.len());
    low_publisher.shutdown().await.expect("shutdown");
    high_publisher.shutdown().await.expect("shutdown");
}
