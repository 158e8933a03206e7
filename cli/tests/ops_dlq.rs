//! `regis dlq` against LocalStack: poison messages parked by the real
//! worker are listed with their reasons and shown decoded (or raw), and
//! `redrive` moves them back to the apply queue, first only those of one
//! reason (receive, send, delete), then the rest (SQS move task).

mod ops_support;

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use ops_support::{assert_exit, drain, json, regis};
use regis_cli::worker::{WorkerArgs, serve};
use regis_testkit::RedisServer;
use regis_testkit::localstack;
use regis_wire::Mode;

const REGION: &str = "eu-west-1";
/// Longer than the queue's visibility timeout (5 s): a message a stopped
/// receiver's last long poll took is seen again within it.
const QUIET: Duration = Duration::from_secs(8);
const MALFORMED: &str = "this is not a batch";
const FUTURE: &str = r#"{"regis":99,"id":"b-future","origin":"ap-south-1","ts":1,"tenant":"acme","mode":"lww","enc":"json","n":0,"cmds":[]}"#;

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = out.attributes.unwrap_or_default();
    let n = |k: &QueueAttributeName| a.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    n(&QueueAttributeName::ApproximateNumberOfMessages) + n(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// Runs the real worker until both poison messages are parked in the DLQ.
async fn park_poison(sqs: &aws_sdk_sqs::Client, queue_url: &str, dlq_url: &str, redis_url: &str) {
    for body in [MALFORMED, FUTURE] {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let args = WorkerArgs {
        region: REGION.into(),
        queue_url: queue_url.into(),
        dlq_url: dlq_url.into(),
        redis_url: redis_url.into(),
        cluster: false,
        mode: Mode::Lww,
        signing_keys: None,
        signing_secret_ids: None,
        allow_unsigned: true,
        tenants: None,
        allow_any_tenant: true,
        tombstone_horizon_seconds: 3600,
        max_clock_skew_seconds: 300,
        sentry_dsn: None,
        receivers: 1,
        wait_seconds: 1,
        visibility_timeout: Some(5),
        apply_budget: regis_applier::records::DEFAULT_APPLY_BUDGET_COMMANDS,
        byte_budget_mib: regis_cli::worker::DEFAULT_BYTE_BUDGET_MIB,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let sqs = sqs.clone();
        async move {
            serve(
                &args,
                std::sync::Arc::new(regis_aws::SqsQueue::from_client(sqs)),
                async {
                    stopped.await.ok();
                },
            )
            .await
            .unwrap()
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while depth(sqs, dlq_url).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not park the poison messages"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.send(()).unwrap();
    let summary = worker.await.unwrap();
    assert_eq!(summary.parked, 2, "{summary:?}");
}

fn reasons(list: &serde_json::Value) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = list["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_listed_shown_and_redriven_with_and_without_a_reason() {
    localstack::ensure_running().await;
    let redis = RedisServer::start();
    let sqs = localstack::sqs(REGION).await;
    let (queue, dlq) = localstack::create_queue_with_dlq(&sqs, &localstack::unique_name("ops-dlq"), 5, 5).await;
    park_poison(&sqs, &queue.url, &dlq.url, &redis.url()).await;
    let base = ["--region", REGION, "--dlq-url", dlq.url.as_str()];

    // list: grouped by reason, without changing the queue.
    let out = regis(&[&["dlq", "list"][..], &base, &["--json"]].concat()).await;
    assert_exit(&out, 0);
    let list = json(&out);
    assert_eq!(list["total"], 2);
    assert_eq!(list["complete"], true);
    assert_eq!(
        reasons(&list),
        [("malformed".to_owned(), 1), ("unknown-version".to_owned(), 1)]
    );
    assert!(list["reasons"][0]["oldest_age_ms"].as_u64().unwrap() < 120_000);
    let text = regis(&[&["dlq", "list"][..], &base].concat()).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("malformed"));

    // show: by DLQ message id; an undecodable body is shown raw.
    let malformed = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["reason"] == "malformed")
        .unwrap();
    let id = malformed["message_id"].as_str().unwrap();
    let out = regis(&[&["dlq", "show"][..], &base, &[id, "--json"]].concat()).await;
    assert_exit(&out, 0);
    let shown = json(&out);
    assert_eq!(shown["reason"], "malformed");
    assert_eq!(shown["raw"], MALFORMED);
    assert!(shown["detail"].as_str().unwrap().contains("malformed"), "{shown}");
    assert_eq!(shown["source_queue"], queue.url.as_str());
    let out = regis(&[&["dlq", "show"][..], &base, &["no-such-id"]].concat()).await;
    assert_exit(&out, 1);

    // redrive --reason: only the malformed one goes back.
    let redrive = [
        &["dlq", "redrive"][..],
        &base,
        &["--queue-url", queue.url.as_str(), "--json"],
    ]
    .concat();
    let out = regis(&[&redrive[..], &["--reason", "malformed"]].concat()).await;
    assert_exit(&out, 0);
    let moved = json(&out);
    assert_eq!(
        (moved["moved"].as_u64(), moved["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{moved}"
    );
    let back = drain(&sqs, &queue.url, QUIET).await;
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [MALFORMED]);
    let attributes = &back[0].attributes;
    assert!(
        !attributes.contains_key("reason"),
        "DLQ bookkeeping attributes are dropped: {attributes:?}"
    );
    let out = regis(&[&["dlq", "list"][..], &base, &["--json"]].concat()).await;
    assert_eq!(reasons(&json(&out)), [("unknown-version".to_owned(), 1)]);

    // redrive without a filter, and without the horizon check: the SQS move
    // task moves the rest (with the check, messages move by hand).
    let out = regis(&[&redrive[..], &["--include-beyond-horizon"]].concat()).await;
    assert_exit(&out, 0);
    let moved = json(&out);
    assert_eq!(moved["method"], "move-task", "{moved}");
    let back = drain(&sqs, &queue.url, QUIET).await;
    assert_eq!(back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), [FUTURE]);
    let out = regis(&[&["dlq", "list"][..], &base, &["--json"]].concat()).await;
    assert_eq!(json(&out)["total"], 0);
}
