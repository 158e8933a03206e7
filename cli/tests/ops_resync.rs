//! `regis resync` against real redis-servers and LocalStack: a Redis
//! emptied by FLUSHALL is brought back to identical by applying the
//! resync's batches with the real apply engine, and a resync racing with
//! newer live writes does not overwrite them.

mod ops_support;

use std::time::Duration;

use ops_support::{apply_messages, assert_exit, drain, json, now_ms, regis};
use redis::Commands as _;
use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::localstack;
use regis_testkit::{RedisServer, batches};
use regis_wire::{Batch, Command, Mode, Version, VersionedCommand};

const REGION: &str = "eu-west-1";

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A last-writer-wins batch of these writes.
fn batch(id: &str, writes: Vec<(Version, Command)>) -> Batch {
    let commands = writes.into_iter().map(|(v, c)| VersionedCommand::new(v, c)).collect();
    batches::batch(id, Mode::Lww, now_ms(), commands)
}

/// The source's history: whole-key writes, later element and expiry
/// writes, a delete, and enough keys for several SCAN pages.
fn history(base: u64) -> Vec<Batch> {
    let v = |n: u64| Version::new(base + n, 0, 1);
    let mut first = vec![
        (
            v(1),
            Command::Set {
                key: k("s:1"),
                value: k("one"),
                expire_at_ms: Some(base + 600_000),
            },
        ),
        (
            v(1),
            Command::HReplace {
                key: k("h:1"),
                fields: vec![(k("a"), k("1")), (k("b"), k("2"))],
                expire_at_ms: None,
            },
        ),
        (
            v(1),
            Command::SAdd {
                key: k("set:1"),
                members: vec![k("m1"), k("m2")],
            },
        ),
        (
            v(1),
            Command::ZReplace {
                key: k("z:1"),
                members: vec![(1.0, k("x")), (2.5, k("y"))],
                expire_at_ms: None,
            },
        ),
        (
            v(1),
            Command::Set {
                key: k("gone:1"),
                value: k("x"),
                expire_at_ms: None,
            },
        ),
    ];
    for i in 0..1_500 {
        first.push((
            v(1),
            Command::Set {
                key: format!("bulk:{i}").into_bytes(),
                value: vec![b'v'; 50],
                expire_at_ms: None,
            },
        ));
    }
    let second = vec![
        (
            v(2),
            Command::HSet {
                key: k("h:1"),
                fields: vec![(k("c"), k("3"))],
            },
        ),
        (
            v(3),
            Command::HDel {
                key: k("h:1"),
                fields: vec![k("a")],
            },
        ),
        (
            v(2),
            Command::SRem {
                key: k("set:1"),
                members: vec![k("m2")],
            },
        ),
        (
            v(2),
            Command::PExpireAt {
                key: k("z:1"),
                at_ms: base + 300_000,
            },
        ),
        (v(2), Command::Del { key: k("gone:1") }),
    ];
    vec![batch("h1", first), batch("h2", second)]
}

async fn engine(server: &RedisServer) -> Engine {
    Engine::connect(&server.url(), Mode::Lww, RedisOptions::default())
        .await
        .expect("engine")
}

async fn apply(engine: &Engine, batches: &[Batch]) {
    let refs: Vec<&Batch> = batches.iter().collect();
    for result in engine.apply(&refs, now_ms()).await {
        result.expect("apply");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_region_is_rebuilt_and_newer_live_writes_survive() {
    localstack::ensure_running().await;
    let base = now_ms();
    let (source, target, racing) = (RedisServer::start(), RedisServer::start(), RedisServer::start());
    apply(&engine(&source).await, &history(base)).await;
    // Keys written outside regis: no bookkeeping, fresh versions.
    let mut src = source.connection();
    let _: () = src.set("raw:1", "r").unwrap();
    let _: () = src.hset("raw:h", "f", "v").unwrap();
    let _: () = src.zadd("raw:z", "q", 1.0).unwrap();

    // The target had the same data, then lost it.
    let target_engine = engine(&target).await;
    apply(&target_engine, &history(base)).await;
    let _: () = redis::cmd("FLUSHALL").query(&mut target.connection()).unwrap();

    let sqs = localstack::sqs(REGION).await;
    let queue = localstack::create_queue(&sqs, &localstack::unique_name("ops-resync"), Default::default()).await;
    let out = regis(&[
        "resync",
        "--from",
        &source.url(),
        "--to-region",
        REGION,
        "--queue-url",
        &queue.url,
        "--rate",
        "0",
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    let summary = json(&out);
    assert_eq!(summary["keys_versioned"], 1_504, "{summary}");
    assert_eq!(summary["keys_fresh"], 3, "{summary}");
    assert_eq!(summary["tombstones"], 1, "{summary}");
    let messages = drain(&sqs, &queue.url, Duration::from_secs(3)).await;
    assert_eq!(messages.len() as u64, summary["messages"].as_u64().unwrap());
    assert!(!messages.is_empty());
    let commands = apply_messages(&target_engine, &messages).await;
    assert_eq!(commands as u64, summary["commands"].as_u64().unwrap());

    let out = regis(&[
        "verify",
        "--redis-urls",
        &format!("source={},target={}", source.url(), target.url()),
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(json(&out)["keys"], 1_507);
    // Applying the resync twice changes nothing.
    apply_messages(&target_engine, &messages).await;
    let out = regis(&[
        "verify",
        "--redis-urls",
        &format!("source={},target={}", source.url(), target.url()),
    ])
    .await;
    assert_exit(&out, 0);

    // A region that received newer live writes before the resync arrives.
    let racing_engine = engine(&racing).await;
    let newer = Version::new(base + 1_000, 0, 2);
    apply(
        &racing_engine,
        &[batch(
            "live",
            vec![
                (
                    newer,
                    Command::Set {
                        key: k("s:1"),
                        value: k("newer"),
                        expire_at_ms: None,
                    },
                ),
                (
                    newer,
                    Command::HSet {
                        key: k("h:1"),
                        fields: vec![(k("c"), k("newer"))],
                    },
                ),
                (
                    newer,
                    Command::SAdd {
                        key: k("set:1"),
                        members: vec![k("m2")],
                    },
                ),
            ],
        )],
    )
    .await;
    apply_messages(&racing_engine, &messages).await;
    let mut r = racing.connection();
    assert_eq!(r.get::<_, String>("s:1").unwrap(), "newer");
    assert_eq!(r.ttl::<_, i64>("s:1").unwrap(), -1, "the newer SET had no expiry");
    assert_eq!(r.hget::<_, _, String>("h:1", "c").unwrap(), "newer");
    assert_eq!(
        r.hget::<_, _, String>("h:1", "b").unwrap(),
        "2",
        "older fields come from the resync"
    );
    assert!(
        !r.hexists::<_, _, bool>("h:1", "a").unwrap(),
        "the source's HDEL is restated"
    );
    let mut members: Vec<String> = r.smembers("set:1").unwrap();
    members.sort();
    assert_eq!(members, ["m1", "m2"], "the newer SADD beats the source's older SREM");
    assert_eq!(r.get::<_, String>("bulk:1499").unwrap(), "v".repeat(50));
    let out = regis(&[
        "verify",
        "--redis-urls",
        &format!("source={},racing={}", source.url(), racing.url()),
        "--json",
    ])
    .await;
    assert_exit(&out, 1);
    assert_eq!(json(&out)["regions"][0]["different"], 3);
}
