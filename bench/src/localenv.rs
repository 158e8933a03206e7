//! A replication topology of the benchmark's own on LocalStack: a topic,
//! one queue (with DLQ) per region subscribed with the project's filter
//! policy and raw delivery, one `redis-server` per region, and one
//! `regis worker` process per region, all removed again on drop.
//!
//! The benchmark builds its own rather than using the shared local
//! environment so that it measures release-built workers, with queues
//! nobody else is writing to, and cannot disturb a test run.

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use regis_testkit::RedisServer;
use regis_testkit::localstack::{self, Queue};

use crate::measure::peak_rss_mib;

/// Visibility timeout of the benchmark's queues, seconds.
pub const VISIBILITY_TIMEOUT_S: u32 = 30;
/// Receives before SQS moves a message to the DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 3;
/// How long a worker may take to say it started.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a worker may take to stop after SIGTERM.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `regis worker`, stopped on drop.
pub struct WorkerProcess {
    child: Child,
    region: String,
    log: PathBuf,
}

/// What it takes to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerSpec<'a> {
    /// The `regis` binary.
    pub bin: &'a Path,
    /// LocalStack's endpoint.
    pub endpoint: &'a str,
    /// The region served.
    pub region: &'a str,
    /// Its queue.
    pub queue_url: &'a str,
    /// Its DLQ.
    pub dlq_url: &'a str,
    /// Its Redis.
    pub redis_url: &'a str,
    /// `lww` or `plain`.
    pub mode: &'a str,
    /// Where its stdout (metric lines) and stderr (logs) go.
    pub log_dir: &'a Path,
    /// Further flags (`--receivers 1`, ...).
    pub extra_args: &'a [String],
}

impl WorkerProcess {
    /// Starts a worker and waits until it logs that it is serving.
    pub fn start(spec: &WorkerSpec<'_>) -> Result<Self, Box<dyn Error>> {
        let log = spec.log_dir.join(format!("worker-{}.log", spec.region));
        let metrics = spec.log_dir.join(format!("worker-{}.metrics", spec.region));
        let child = Process::new(spec.bin)
            .arg("worker")
            .args([
                "--region",
                spec.region,
                "--queue-url",
                spec.queue_url,
                "--dlq-url",
                spec.dlq_url,
            ])
            .args(["--redis-url", spec.redis_url, "--mode", spec.mode])
            .args(spec.extra_args)
            .env("AWS_ENDPOINT_URL", spec.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", spec.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info,aws=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(File::create(&metrics)?)
            .stderr(File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.bin.display()))?;
        let mut worker = Self {
            child,
            region: spec.region.to_owned(),
            log,
        };
        let deadline = Instant::now() + WORKER_START_TIMEOUT;
        loop {
            if std::fs::read_to_string(&worker.log)?.contains("worker started") {
                return Ok(worker);
            }
            if let Some(status) = worker.child.try_wait()? {
                return Err(format!(
                    "worker {} exited at start ({status}): {}",
                    worker.region,
                    worker.log_tail()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err(format!("worker {} did not start: {}", worker.region, worker.log_tail()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far, MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        peak_rss_mib(self.pid())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it does not stop in time.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Process::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + WORKER_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One region of the topology.
pub struct Region {
    /// Its name.
    pub name: String,
    /// Its SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The apply queue.
    pub queue: Queue,
    /// The dead-letter queue.
    pub dlq: Queue,
    /// Its Redis.
    pub redis: RedisServer,
    /// Its worker, once started.
    pub worker: Option<WorkerProcess>,
}

/// A topic fanning out to the regions' queues.
pub struct Topology {
    /// The topic's region (the publishers' origin).
    pub topic_region: String,
    /// The SNS client of that region.
    pub sns: aws_sdk_sns::Client,
    /// The topic.
    pub topic_arn: String,
    /// The regions, the topic's first.
    pub regions: Vec<Region>,
    /// Worker logs.
    pub log_dir: tempfile::TempDir,
}

/// Creates a queue with a DLQ in `region` under a unique name.
pub async fn queue_pair(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (Queue, Queue) {
    localstack::create_queue_with_dlq(
        sqs,
        &localstack::unique_name(prefix),
        MAX_RECEIVE_COUNT,
        VISIBILITY_TIMEOUT_S,
    )
    .await
}

impl Topology {
    /// Creates the topic, queues, subscriptions and Redis servers; workers
    /// are started by [`Topology::start_workers`].
    pub async fn create(regions: &[&str]) -> Result<Self, Box<dyn Error>> {
        localstack::ensure_running().await;
        let topic_region = regions.first().ok_or("no regions")?.to_string();
        let sns = localstack::sns(&topic_region).await;
        let topic_arn = sns
            .create_topic()
            .name(localstack::unique_name("regis-bench"))
            .send()
            .await?
            .topic_arn
            .ok_or("no topic ARN")?;
        let mut out = Self {
            topic_region,
            sns,
            topic_arn,
            regions: Vec::new(),
            log_dir: tempfile::tempdir()?,
        };
        for name in regions {
            let sqs = localstack::sqs(name).await;
            let (queue, dlq) = queue_pair(&sqs, "regis-bench").await;
            // The subscription of the project's topology: this region or all
            // regions, matched on the message attribute, raw delivery.
            let filter = serde_json::json!({ "regions": [name, "*"] }).to_string();
            out.sns
                .subscribe()
                .topic_arn(&out.topic_arn)
                .protocol("sqs")
                .endpoint(&queue.arn)
                .attributes("RawMessageDelivery", "true")
                .attributes("FilterPolicy", filter)
                .attributes("FilterPolicyScope", "MessageAttributes")
                .return_subscription_arn(true)
                .send()
                .await?;
            out.regions.push(Region {
                name: (*name).to_owned(),
                sqs,
                queue,
                dlq,
                redis: RedisServer::start(),
                worker: None,
            });
        }
        Ok(out)
    }

    /// Starts one worker per region.
    pub fn start_workers(&mut self, bin: &Path, mode: &str) -> Result<(), Box<dyn Error>> {
        let endpoint = localstack::endpoint();
        for region in &mut self.regions {
            let redis_url = region.redis.url();
            region.worker = Some(WorkerProcess::start(&WorkerSpec {
                bin,
                endpoint: &endpoint,
                region: &region.name,
                queue_url: &region.queue.url,
                dlq_url: &region.dlq.url,
                redis_url: &redis_url,
                mode,
                log_dir: self.log_dir.path(),
                extra_args: &[],
            })?);
        }
        Ok(())
    }

    /// Messages in every region's DLQ (should be none).
    pub async fn dlq_depth(&self) -> Result<u64, Box<dyn Error>> {
        let mut total = 0;
        for region in &self.regions {
            total += queue_depth(&region.sqs, &region.dlq.url).await?;
        }
        Ok(total)
    }

    /// Stops the workers and deletes the topic and queues.
    pub async fn remove(mut self) {
        for region in &mut self.regions {
            if let Some(mut worker) = region.worker.take() {
                worker.stop();
            }
        }
        let _ = self.sns.delete_topic().topic_arn(&self.topic_arn).send().await;
        for region in &self.regions {
            for queue in [&region.queue, &region.dlq] {
                let _ = region.sqs.delete_queue().queue_url(&queue.url).send().await;
            }
        }
    }
}

/// Visible plus in-flight messages of a queue.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, Box<dyn Error>> {
    let attributes: HashMap<QueueAttributeName, String> = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes.values().filter_map(|v| v.parse::<u64>().ok()).sum())
}
