//! Sliding TTLs end to end, with a region that applies late.
//!
//! The most common cache pattern: a key written with a short TTL and
//! extended before that TTL passes (a session refreshed, a cart kept
//! alive). One region's worker is stopped while such a workload of strings,
//! hashes, sets and sorted sets is published; the other regions apply it on
//! time. Once the first TTLs have passed, the worker is started again and
//! applies the backlog late: every extended key must exist there too, with
//! the extended TTL, key by key as in the other regions (`regis verify`
//! compares them, TTLs included), and the keys that were not extended must
//! be gone everywhere.

mod common;

use std::time::{Duration, Instant};

use common::{OPEN_TENANT, Restart, State, local_script, prefix, publish_all, regis, snapshot, wait_converged};
use regis_demo::model::{Entry, Value};
use regis_publisher::Command;

const CONVERGE: Duration = Duration::from_secs(180);
/// The TTL keys are first written with: long enough for the regions that
/// apply on time to apply the extensions before it passes.
const FIRST_TTL: Duration = Duration::from_secs(15);
/// Keys of each type.
const PER_TYPE: usize = 5;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The workload: for each type, `PER_TYPE` keys written with a TTL ending
/// at `first`, given more content, then extended twice (each extension
/// stamped before the expiry it extends) to `last`; and one key of each
/// type written with the same TTL and never extended. Returns the commands
/// in publish order and what every region must end with.
fn sliding_workload(p: &str, first: u64, last: u64) -> (Vec<Command>, State) {
    let mut commands = Vec::new();
    let mut want = State::new();
    for kind in ["str", "hash", "set", "zset"] {
        for i in 0..=PER_TYPE {
            let key = b(&format!("{p}{kind}:{i}"));
            let (write, more, value) = match kind {
                "str" => (
                    Command::Set {
                        key: key.clone(),
                        value: b(&format!("token-{i}")),
                        expire_at_ms: Some(first),
                    },
                    None,
                    Value::Str(b(&format!("token-{i}"))),
                ),
                "hash" => (
                    Command::HReplace {
                        key: key.clone(),
                        fields: vec![(b("user"), b(&i.to_string()))],
                        expire_at_ms: Some(first),
                    },
                    Some(Command::HSet {
                        key: key.clone(),
                        fields: vec![(b("cart"), b("2 items"))],
                    }),
                    Value::Hash(
                        [(b("user"), b(&i.to_string())), (b("cart"), b("2 items"))]
                            .into_iter()
                            .collect(),
                    ),
                ),
                "set" => (
                    Command::SReplace {
                        key: key.clone(),
                        members: vec![b("read")],
                        expire_at_ms: Some(first),
                    },
                    Some(Command::SAdd {
                        key: key.clone(),
                        members: vec![b("write")],
                    }),
                    Value::Set([b("read"), b("write")].into_iter().collect()),
                ),
                _ => (
                    Command::ZReplace {
                        key: key.clone(),
                        members: vec![(1.0, b("page:1"))],
                        expire_at_ms: Some(first),
                    },
                    Some(Command::ZAdd {
                        key: key.clone(),
                        members: vec![(2.0, b("page:2"))],
                    }),
                    Value::ZSet([(b("page:1"), 1.0), (b("page:2"), 2.0)].into_iter().collect()),
                ),
            };
            commands.push(write);
            commands.extend(more);
            if i == PER_TYPE {
                // Never extended: expires everywhere.
                continue;
            }
            commands.push(Command::PExpireAt {
                key: key.clone(),
                at_ms: first + FIRST_TTL.as_millis() as u64 / 2,
            });
            commands.push(Command::PExpireAt {
                key: key.clone(),
                at_ms: last,
            });
            want.insert(key, Entry { value, has_ttl: true });
        }
    }
    (commands, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_applying_a_sliding_ttl_workload_late_ends_like_the_others() {
    let env = common::load_env();
    let names = env.region_names();
    let late = names.last().expect("regions").clone();
    let on_time: Vec<String> = names.iter().filter(|n| **n != late).cloned().collect();
    let p = prefix("sliding-ttl");
    let t0 = common::now_ms();
    let first = t0 + FIRST_TTL.as_millis() as u64;
    let last = t0 + 3_600_000;
    let (commands, want) = sliding_workload(&p, first, last);
    let publisher = common::publisher(&env).await;

    local_script(&env, "worker.sh", &["stop", &late]);
    {
        let _restart = Restart {
            env: &env,
            script: "worker.sh",
            region: late.clone(),
        };
        publish_all(&publisher, OPEN_TENANT, &commands).await;
        // The regions on time apply it (before the first TTL passes).
        let took = wait_converged(&env, &on_time, &p, &want, CONVERGE).await;
        eprintln!("on-time regions converged {took:?} after publishing");
        // Past the first TTLs (and the middle ones), by the clocks of the
        // late region's Redis and worker alike.
        let past = first + FIRST_TTL.as_millis() as u64 / 2 + 2_000;
        tokio::time::sleep(Duration::from_millis(past.saturating_sub(common::now_ms()))).await;
        let mut conn = common::redis(&env, &late).await;
        let held = snapshot(&mut conn, &p).await.expect("snapshot");
        assert!(held.is_empty(), "{late} applied writes while its worker was stopped");
        // Dropping `_restart` starts the late region's worker again.
    }
    let restarted = Instant::now();
    let took = wait_converged(&env, &names, &p, &want, CONVERGE).await;
    eprintln!("{late} caught up {took:?} after its worker was restarted");

    // Key by key with TTLs: the late region holds the extended TTL.
    let mut conn = common::redis(&env, &late).await;
    for key in want.keys() {
        let at: i64 = redis::cmd("PEXPIRETIME").arg(key).query_async(&mut conn).await.unwrap();
        assert_eq!(at, last as i64, "{}", String::from_utf8_lossy(key));
    }
    let pattern = format!("{p}*");
    let regions = names.join(",");
    let out = regis(&["verify", "--regions", &regions, "--match", &pattern, "--json"]);
    assert!(
        out.status.success(),
        "regis verify: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    assert_eq!(report["identical"], true, "{report}");
    assert_eq!(report["keys"], want.len(), "{report}");
    eprintln!(
        "verified {} keys {:?} after the restart",
        want.len(),
        restarted.elapsed()
    );
    publisher.shutdown().await.expect("shutdown");
}
