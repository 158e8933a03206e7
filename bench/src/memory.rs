//! Peak memory of a real `regis worker` applying a stream of 1 MiB batches.
//!
//! The batches are what a publisher makes for a topic whose maximum message
//! size is 1 MiB (realistic mix, compressed): they are produced in process,
//! sent straight to a queue of their own, and the worker (the release
//! binary) drains that queue into a `redis-server` of its own, ten records
//! per receive, with the default receivers and byte budget unless
//! `--worker-arg` says otherwise. Its `VmHWM` is read from `/proc` before it
//! is stopped.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_publisher::{MemorySns, Publisher, PublisherConfig};
use regis_testkit::RedisServer;
use regis_testkit::localstack;
use regis_wire::SNS_MAX_MESSAGE_BYTES;
use serde::Serialize;

use crate::localenv::{WorkerProcess, WorkerSpec, queue_depth, queue_pair};
use crate::publish::BENCH_TOPIC_ARN;
use crate::workload::{Keys, Mix, Workload};

/// Region of the memory run's queue.
const REGION: &str = "eu-west-1";
/// How long the worker may take to drain the queue.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

/// Worker memory figures.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerMemory {
    /// Peak RSS of the worker, MiB.
    pub peak_rss_mib: f64,
    /// Messages it applied.
    pub messages: usize,
    /// Average message size, bytes.
    pub avg_message_bytes: f64,
    /// Average command JSON per message before compression, bytes.
    pub avg_uncompressed_bytes: f64,
    /// Commands per message.
    pub commands_per_message: f64,
    /// Seconds the worker took to drain the queue.
    pub drain_seconds: f64,
    /// Messages that ended in the DLQ (should be 0).
    pub dlq_messages: u64,
    /// Flags the worker ran with besides queue, Redis and mode: none means
    /// the defaults (two receivers sharing the default byte budget).
    pub worker_args: Vec<String>,
}

/// Makes about `messages` batches of close to 1 MiB each.
async fn big_batches(messages: usize, now_ms: u64) -> Result<(Vec<String>, f64), Box<dyn Error>> {
    let sns = Arc::new(MemorySns::new());
    let mut config = PublisherConfig::new(BENCH_TOPIC_ARN, REGION, 1);
    config.default_tenant = Some("bench".into());
    config.max_message_bytes = SNS_MAX_MESSAGE_BYTES;
    config.linger = Duration::from_secs(60);
    let publisher = Publisher::new(config, Arc::clone(&sns))?;
    let mut workload = Workload::new(Mix::Realistic, Keys::Space(200_000), "mem:", 21, now_ms);
    // Publish until the wanted number of full messages exist; the last,
    // partial one closed by shutdown is dropped.
    while publisher.stats().messages < messages as u64 + 1 {
        for _ in 0..10_000 {
            publisher.publish(workload.next_command()).await?;
        }
        tokio::task::yield_now().await;
    }
    publisher.shutdown().await?;
    let stats = publisher.stats();
    let uncompressed_per_message = stats.uncompressed_bytes as f64 / stats.messages.max(1) as f64;
    let mut bodies: Vec<String> = sns.messages().into_iter().map(|m| m.body).collect();
    bodies.sort_by_key(|b| std::cmp::Reverse(b.len()));
    bodies.truncate(messages);
    Ok((bodies, uncompressed_per_message))
}

/// Fills a queue of its own with `messages` batches of about 1 MiB and
/// measures the worker that drains it (started with `extra_args` besides
/// the queue, Redis and mode).
pub async fn worker(
    bin: &Path,
    extra_args: &[String],
    messages: usize,
    now_ms: u64,
) -> Result<WorkerMemory, Box<dyn Error>> {
    localstack::ensure_running().await;
    let (bodies, avg_uncompressed_bytes) = big_batches(messages, now_ms).await?;
    let commands: usize = bodies
        .iter()
        .map(|b| regis_wire::decode(b, &Default::default(), &Default::default()).map(|batch| batch.commands.len()))
        .sum::<Result<usize, _>>()?;
    let sqs = localstack::sqs(REGION).await;
    let (queue, dlq) = queue_pair(&sqs, "regis-bench-mem").await;
    let result = async {
        for body in &bodies {
            sqs.send_message()
                .queue_url(&queue.url)
                .message_body(body)
                .send()
                .await?;
        }
        let redis = RedisServer::start();
        let logs = tempfile::tempdir()?;
        let endpoint = localstack::endpoint();
        let redis_url = redis.url();
        let mut worker = WorkerProcess::start(&WorkerSpec {
            bin,
            endpoint: &endpoint,
            region: REGION,
            queue_url: &queue.url,
            dlq_url: &dlq.url,
            redis_url: &redis_url,
            mode: "lww",
            log_dir: logs.path(),
            extra_args,
        })?;
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if queue_depth(&sqs, &queue.url).await? == 0 {
                break;
            }
            if start.elapsed() > DRAIN_TIMEOUT {
                return Err(format!("the worker did not drain the queue: {}", worker.log_tail()).into());
            }
        }
        let drain_seconds = start.elapsed().as_secs_f64();
        let peak = worker.peak_rss_mib().ok_or("cannot read the worker's /proc status")?;
        worker.stop();
        Ok::<_, Box<dyn Error>>(WorkerMemory {
            peak_rss_mib: peak,
            messages: bodies.len(),
            avg_message_bytes: bodies.iter().map(String::len).sum::<usize>() as f64 / bodies.len().max(1) as f64,
            avg_uncompressed_bytes,
            commands_per_message: commands as f64 / bodies.len().max(1) as f64,
            drain_seconds,
            dlq_messages: queue_depth(&sqs, &dlq.url).await?,
            worker_args: extra_args.to_vec(),
        })
    }
    .await;
    for url in [&queue.url, &dlq.url] {
        let _ = sqs.delete_queue().queue_url(url).send().await;
    }
    result
}
