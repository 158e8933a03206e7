//! `regis publish`, `regis resync --all` and `regis lag` against LocalStack:
//! commands reach a subscribed queue through the topic, refusals publish
//! nothing and exit 2, and the lag probe is seen in a region served by a
//! real `regis worker` process.

mod ops_support;

use std::process::Stdio;
use std::time::Duration;

use ops_support::{assert_exit, drain, json, regis, subscribed_queue, topic};
use regis_testkit::RedisServer;
use regis_testkit::localstack;
use regis_wire::{Command, DecodeLimits, Keyring};

const REGION: &str = "ap-southeast-1";

fn decode(messages: &[regis_aws::ReceivedMessage]) -> Vec<Command> {
    messages
        .iter()
        .flat_map(|m| {
            regis_wire::decode(&m.body, &DecodeLimits::default(), &Keyring::default())
                .unwrap()
                .commands
        })
        .map(|c| c.command)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_sends_commands_through_the_topic_and_refusals_send_nothing() {
    localstack::ensure_running().await;
    let (sns, sqs) = (localstack::sns(REGION).await, localstack::sqs(REGION).await);
    let topic_arn = topic(&sns).await;
    let queue = subscribed_queue(&sns, &sqs, &topic_arn, REGION).await;
    let to = [
        "publish",
        "--topic-arn",
        topic_arn.as_str(),
        "--tenant",
        "acme",
        "--tenants",
        r#"{"acme": {"regions": ["*"], "prefixes": [""]}}"#,
    ];

    let out = regis(&[&to[..], &["--json", "SET", "user:1", "alice", "EX", "60"]].concat()).await;
    assert_exit(&out, 0);
    assert_eq!(json(&out)["commands"], 1);
    let commands = decode(&drain(&sqs, &queue.url, Duration::from_secs(3)).await);
    assert_eq!(commands.len(), 1);
    let Command::Set {
        key,
        value,
        expire_at_ms: Some(at),
    } = &commands[0]
    else {
        panic!("{commands:?}")
    };
    assert_eq!((key.as_slice(), value.as_slice()), (&b"user:1"[..], &b"alice"[..]));
    assert!(
        at.abs_diff(ops_support::now_ms() + 60_000) < 30_000,
        "EX became an absolute expiry"
    );

    // A refused single command: exit 2, the wire crate's reason, nothing sent.
    let out = regis(&[&to[..], &["INCR", "visits"]].concat()).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not idempotent"));

    // A file with refused lines: all named, nothing published.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmds.txt");
    std::fs::write(
        &file,
        "SET a 1\nAPPEND a 2\n# comment\nHSET room:7 status clean\nLPUSH q x\n",
    )
    .unwrap();
    let out = regis(&[&to[..], &["--file", file.to_str().unwrap()]].concat()).await;
    assert_exit(&out, 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("line 5") && !stderr.contains("line 1:"),
        "{stderr}"
    );
    assert!(
        drain(&sqs, &queue.url, Duration::from_secs(3)).await.is_empty(),
        "nothing was published"
    );

    // A good file: every command, counted.
    std::fs::write(&file, "SET a 1\nHSET room:7 status clean\nSADD tags x y\nDEL old\n").unwrap();
    let out = regis(&[&to[..], &["--json", "--file", file.to_str().unwrap()]].concat()).await;
    assert_exit(&out, 0);
    assert_eq!(json(&out)["commands"], 4);
    let commands = decode(&drain(&sqs, &queue.url, Duration::from_secs(3)).await);
    assert_eq!(
        commands.iter().map(Command::name).collect::<Vec<_>>(),
        ["set", "hset", "sadd", "del"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_all_publishes_to_the_topic() {
    localstack::ensure_running().await;
    let (sns, sqs) = (localstack::sns(REGION).await, localstack::sqs(REGION).await);
    let topic_arn = topic(&sns).await;
    let queue = subscribed_queue(&sns, &sqs, &topic_arn, REGION).await;
    let source = RedisServer::start();
    let mut c = source.connection();
    for i in 0..50 {
        let _: () = redis::Commands::set(&mut c, format!("k:{i}"), i).unwrap();
    }
    let out = regis(&[
        "resync",
        "--from",
        &source.url(),
        "--all",
        "--topic-arn",
        &topic_arn,
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    assert_eq!(json(&out)["keys_fresh"], 50);
    let messages = drain(&sqs, &queue.url, Duration::from_secs(3)).await;
    let commands = decode(&messages);
    assert_eq!(commands.len(), 50);
    assert!(commands.iter().all(|c| c.name() == "set"));
}

/// The registry `regis lag` publishes its probe under.
const PROBE_TENANTS: &str = r#"{"regis-probe": {"regions": ["*"], "prefixes": ["regis:probe:"]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_sees_the_probe_in_a_region_served_by_a_worker() {
    localstack::ensure_running().await;
    let (sns, sqs) = (localstack::sns(REGION).await, localstack::sqs(REGION).await);
    let topic_arn = topic(&sns).await;
    let queue = subscribed_queue(&sns, &sqs, &topic_arn, REGION).await;
    let dlq = localstack::create_queue(&sqs, &localstack::unique_name("ops-lag-dlq"), Default::default()).await;
    let redis = RedisServer::start();
    let logs = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(logs.path().join(format!("worker-{REGION}.log"))).unwrap();
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_regis"))
        .args([
            "worker",
            "--region",
            REGION,
            "--queue-url",
            &queue.url,
            "--dlq-url",
            &dlq.url,
        ])
        .args(["--redis-url", &redis.url(), "--wait-seconds", "1", "--receivers", "1"])
        .args(["--allow-unsigned", "--allow-any-tenant"])
        .env("AWS_ENDPOINT_URL", localstack::endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let out = regis(&[
        "lag",
        "--topic-arn",
        &topic_arn,
        "--tenants",
        PROBE_TENANTS,
        "--redis-urls",
        &format!("{REGION}={}", redis.url()),
        "--log-dir",
        logs.path().to_str().unwrap(),
        "--timeout",
        "60",
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    let report = json(&out);
    let region = &report["regions"][0];
    assert_eq!(region["region"], REGION);
    assert_eq!(region["probe_seen"], true, "{report}");
    assert!(region["probe_lag_ms"].as_u64().unwrap() < 60_000);
    // The worker logged the probe's batch: its lag figure is read back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = regis(&[
        "lag",
        "--no-probe",
        "--redis-urls",
        &format!("{REGION}={}", redis.url()),
        "--log-dir",
        logs.path().to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_exit(&out, 0);
    assert!(
        json(&out)["regions"][0]["applier"]["batches"].as_u64().unwrap() >= 1,
        "{}",
        json(&out)
    );

    // A region that never applies: the probe is not seen, exit 1.
    worker.kill().await.unwrap();
    let idle = RedisServer::start();
    let out = regis(&[
        "lag",
        "--topic-arn",
        &topic_arn,
        "--tenants",
        PROBE_TENANTS,
        "--redis-urls",
        &format!("idle={}", idle.url()),
        "--timeout",
        "2",
    ])
    .await;
    assert_exit(&out, 1);
}
