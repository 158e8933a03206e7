//! `regis verify` against real redis-servers: identical regions pass,
//! bookkeeping keys are ignored, a key changed by hand in one region is
//! found and named, and extra and missing keys are counted per region.

mod ops_support;

use ops_support::{assert_exit, json, regis};
use redis::Commands as _;
use regis_testkit::RedisServer;

fn fill(server: &RedisServer) {
    let mut c = server.connection();
    let _: () = redis::cmd("SET")
        .arg("user:1")
        .arg("alice")
        .arg("PX")
        .arg(600_000)
        .query(&mut c)
        .unwrap();
    let _: () = c.set(b"bin:\xff\x00", b"\x00\x01\x02".as_slice()).unwrap();
    let _: () = c
        .hset_multiple("room:7", &[("status", "clean"), ("floor", "3")])
        .unwrap();
    let _: () = c.sadd("tags", &["a", "b", "c"]).unwrap();
    let _: () = c.zadd_multiple("board", &[(1.5, "x"), (2.0, "y")]).unwrap();
    let _: () = c.rpush("queue", &["1", "2"]).unwrap();
    for i in 0..2_500 {
        let _: () = c.set(format!("bulk:{i}"), i).unwrap();
    }
}

fn urls(servers: &[&RedisServer]) -> String {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("r{i}={}", s.url()))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_regions_pass_and_bookkeeping_is_ignored() {
    let (a, b, c) = (RedisServer::start(), RedisServer::start(), RedisServer::start());
    for s in [&a, &b, &c] {
        fill(s);
    }
    // Bookkeeping differs between regions (it is not data).
    let _: () = b
        .connection()
        .hset("regis:v:{x}:user:1", "k", "000000000001000000000001")
        .unwrap();
    let out = regis(&["verify", "--redis-urls", &urls(&[&a, &b, &c]), "--json"]).await;
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["identical"], true);
    assert_eq!(report["keys"], 2_506);
    assert_eq!(report["regions"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_by_hand_is_found_and_named() {
    let (a, b, c) = (RedisServer::start(), RedisServer::start(), RedisServer::start());
    for s in [&a, &b, &c] {
        fill(s);
    }
    let _: () = c.connection().hset("room:7", "status", "dirty").unwrap();
    let out = regis(&["verify", "--redis-urls", &urls(&[&a, &b, &c]), "--json"]).await;
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(report["identical"], false);
    assert_eq!(
        report["regions"][0],
        serde_json::json!({"region": "r1", "missing": 0, "extra": 0, "different": 0})
    );
    assert_eq!(
        report["regions"][1],
        serde_json::json!({"region": "r2", "missing": 0, "extra": 0, "different": 1})
    );
    assert_eq!(report["examples"][0]["key"], "room:7");
    assert_eq!(report["examples"][0]["region"], "r2");

    // The text report names the key too.
    let out = regis(&["verify", "--redis-urls", &urls(&[&a, &c])]).await;
    assert_exit(&out, 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("room:7") && text.contains("DIVERGED"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_extra_ttl_and_type_differences_are_counted() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    fill(&a);
    fill(&b);
    let mut cb = b.connection();
    let _: () = cb.del("tags").unwrap(); // missing in b
    let _: () = cb.set("only-in-b", 1).unwrap(); // extra in b
    let _: () = cb.persist("user:1").unwrap(); // TTL differs
    let _: () = cb.del("bulk:7").unwrap();
    let _: () = cb.sadd("bulk:7", 7).unwrap(); // type differs
    let _: () = a.connection().pexpire("bulk:8", 100_000).unwrap();
    let _: () = cb.pexpire("bulk:8", 99_000).unwrap(); // within the 2 s tolerance
    let out = regis(&["verify", "--redis-urls", &urls(&[&a, &b]), "--json", "--examples", "10"]).await;
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(
        report["regions"][0],
        serde_json::json!({"region": "r1", "missing": 1, "extra": 1, "different": 2})
    );
    let details: Vec<String> = report["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(details.iter().any(|d| d.starts_with("ttl")), "{details:?}");
    assert!(details.iter().any(|d| d == "type string vs set"), "{details:?}");

    // With a tolerance too small for bulk:8, it differs as well.
    let out = regis(&[
        "verify",
        "--redis-urls",
        &urls(&[&a, &b]),
        "--json",
        "--ttl-tolerance",
        "0.1",
    ])
    .await;
    assert_eq!(json(&out)["regions"][0]["different"], 3);
}

/// The divergence a region that applies sliding-TTL writes late could show:
/// the session extended everywhere else is gone there (missing), or kept
/// only its first, short TTL (a TTL difference far beyond the tolerance).
/// The applier's aside copies of expired data are not data, not "extra".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sliding_ttl_lost_or_not_extended_in_one_region_is_reported() {
    let (a, b, c) = (RedisServer::start(), RedisServer::start(), RedisServer::start());
    let extended = |server: &RedisServer, key: &str| {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("token")
            .arg("PX")
            .arg(600_000)
            .query(&mut server.connection())
            .unwrap();
    };
    for key in ["session:1", "session:2"] {
        extended(&a, key);
        extended(&b, key);
        extended(&c, key);
    }
    // In b, session:1 was lost and waits aside; in c, session:2 kept its
    // first TTL.
    let mut cb = b.connection();
    let _: () = cb.del("session:1").unwrap();
    let _: () = redis::cmd("SET")
        .arg("regis:x:{S7}:session:1")
        .arg("token")
        .arg("PX")
        .arg(3_600_000)
        .query(&mut cb)
        .unwrap();
    let _: () = c.connection().pexpire("session:2", 4_000).unwrap();
    let out = regis(&[
        "verify",
        "--redis-urls",
        &urls(&[&a, &b, &c]),
        "--json",
        "--examples",
        "10",
    ])
    .await;
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(
        report["regions"][0],
        serde_json::json!({"region": "r1", "missing": 1, "extra": 0, "different": 0})
    );
    assert_eq!(
        report["regions"][1],
        serde_json::json!({"region": "r2", "missing": 0, "extra": 0, "different": 1})
    );
    let examples = report["examples"].as_array().unwrap();
    assert!(
        examples
            .iter()
            .any(|e| e["key"] == "session:2" && e["detail"].as_str().unwrap().starts_with("ttl")),
        "{examples:?}"
    );
}
