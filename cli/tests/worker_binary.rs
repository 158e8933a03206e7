//! The built `regis worker` binary: configured through its environment
//! variables, it applies a queued batch, prints the embedded-metric line on
//! stdout, and exits 0 on SIGTERM.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use regis_aws::clock::now_ms;
use regis_aws::{OutgoingMessage, QueueClient as _, SqsQueue};
use regis_testkit::localstack;
use regis_testkit::{RedisServer, batches};
use regis_wire::{Command, HybridClock, Mode, VersionedCommand};
use serde_json::Value;

const REGION: &str = "ap-south-1";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_applies_reports_lag_and_stops_cleanly_on_sigterm() {
    localstack::ensure_running().await;
    let redis = RedisServer::start();
    let sqs = localstack::sqs(REGION).await;
    let (queue, dlq) = localstack::create_queue_with_dlq(&sqs, &localstack::unique_name("worker-bin"), 3, 5).await;

    let mut clock = HybridClock::new(3);
    let now = now_ms();
    let commands = vec![
        VersionedCommand::new(
            clock.tick(now),
            Command::Set {
                key: b"bin:a".to_vec(),
                value: vec![0, 1, 2, 0xff],
                expire_at_ms: None,
            },
        ),
        VersionedCommand::new(
            clock.tick(now),
            Command::SAdd {
                key: b"bin:s".to_vec(),
                members: vec![b"x".to_vec(), b"y".to_vec()],
            },
        ),
    ];
    let message = OutgoingMessage {
        body: batches::text(&batches::batch("bin-1", Mode::Plain, now, commands)),
        ..Default::default()
    };
    let sent = SqsQueue::from_client(sqs).send_all(&queue.url, &[message]).await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_regis"))
        .arg("worker")
        .envs(HashMap::from([
            ("REGIS_REGION", REGION.to_owned()),
            ("REGIS_QUEUE_URL", queue.url.clone()),
            ("REGIS_DLQ_URL", dlq.url.clone()),
            ("REGIS_REDIS_URL", redis.url()),
            ("REGIS_MODE", "plain".to_owned()),
            ("REGIS_RECEIVERS", "1".to_owned()),
            ("REGIS_WAIT_SECONDS", "1".to_owned()),
            ("AWS_ENDPOINT_URL", localstack::endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]))
        .env_remove("SENTRY_DSN")
        .env_remove("REGIS_SIGNING_KEYS")
        .env("REGIS_ALLOW_UNSIGNED", "true")
        .env("REGIS_ALLOW_ANY_TENANT", "true")
        .env_remove("REGIS_REDIS_CLUSTER")
        .env_remove("REGIS_VISIBILITY_TIMEOUT")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the regis binary starts");
    let mut child = KillOnDrop(child);

    let mut conn = redis.client().get_multiplexed_async_connection().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let value: Option<Vec<u8>> = redis::cmd("GET").arg("bin:a").query_async(&mut conn).await.unwrap();
        if let Some(value) = value {
            assert_eq!(value, [0, 1, 2, 0xff]);
            break;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "the worker exited early");
        assert!(tokio::time::Instant::now() < deadline, "the batch was not applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg("bin:s")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members.len(), 2);

    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");

    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout carries only EMF lines"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let emf = &lines[0];
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Regis");
    assert_eq!(emf["Region"], REGION);
    assert_eq!(emf["Batches"], 1);
    assert_eq!(emf["CommandsApplied"], 2);
    assert_eq!(emf["ReplicationLagMs"].as_array().map(Vec::len), Some(1));
}
