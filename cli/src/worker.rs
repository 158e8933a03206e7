//! `regis worker`: the regional applier as a long-polling SQS worker.
//!
//! The same record handling as the Lambda function
//! ([`regis_lambda::records::Processor`]), behind a receive loop instead of
//! the Lambda runtime, for running outside Lambda (a container, a VM) and in
//! the local environment, where LocalStack cannot run Lambda functions.
//!
//! Each of `--receivers` loops long-polls the queue (`ReceiveMessage`, up
//! to 10 messages, `--wait-seconds`), processes what it got as one
//! invocation, then deletes the applied and parked messages with
//! `DeleteMessageBatch`. Failed messages are left alone: they become visible
//! again after the visibility timeout, and the queue's redrive policy moves
//! them to the DLQ after `maxReceiveCount` receives. While a batch takes
//! longer than half the visibility timeout its messages' visibility is
//! extended (`ChangeMessageVisibilityBatch`), so a slow Redis does not make
//! SQS hand them to another receiver.
//!
//! On SIGTERM or Ctrl-C the loops stop receiving (an outstanding long poll
//! is abandoned: anything SQS handed to it reappears after the visibility
//! timeout), finish the batches in flight, and the worker returns.
//!
//! Metrics are printed on stdout as CloudWatch embedded-metric lines, one
//! per processed receive; logs go to stderr.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName,
};
use regis_lambda::apply::{Engine, RedisOptions};
use regis_lambda::config::DEFAULT_TOMBSTONE_HORIZON_SECONDS;
use regis_lambda::dlq::SqsDeadLetters;
use regis_lambda::metrics::{self, CycleMetrics};
use regis_lambda::records::{DEFAULT_APPLY_BUDGET_COMMANDS, Outcome, Processor, Record};
use regis_wire::{DecodeLimits, Keyring, Mode};
use tokio::sync::watch;
use tracing::{Instrument as _, info, info_span, warn};

/// Most messages one `ReceiveMessage` call returns.
/// Source: Amazon SQS API Reference, `ReceiveMessage`, `MaxNumberOfMessages` ("Valid values: 1 to 10").
pub const RECEIVE_MAX_MESSAGES: i32 = 10;

/// Longest long poll. Source: Amazon SQS API Reference, `ReceiveMessage`,
/// `WaitTimeSeconds` (at most 20 seconds).
pub const MAX_WAIT_SECONDS: u8 = 20;

/// A batch's visibility is extended each time this fraction of the
/// visibility timeout has passed while it is still being processed.
pub const EXTEND_AFTER_FRACTION: f64 = 0.5;

/// Pause after a failed `ReceiveMessage` before trying again.
const RECEIVE_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Settings of `regis worker`; each flag has an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The region this worker serves: the SDK's region and the metrics' `Region` dimension.
    #[arg(long, env = "REGIS_REGION")]
    pub region: String,
    /// The apply queue to poll.
    #[arg(long, env = "REGIS_QUEUE_URL")]
    pub queue_url: String,
    /// The dead-letter queue where permanent failures are parked.
    #[arg(long, env = "REGIS_DLQ_URL")]
    pub dlq_url: String,
    /// `redis://` or `rediss://` URL, with user and password for AUTH/ACL.
    #[arg(long, env = "REGIS_REDIS_URL")]
    pub redis_url: String,
    /// Redis Cluster mode (the URL is then a seed node).
    #[arg(long, env = "REGIS_REDIS_CLUSTER")]
    pub cluster: bool,
    /// Apply mode: `lww` (versioned, last writer wins) or `plain`.
    #[arg(long, env = "REGIS_MODE", default_value = "lww")]
    pub mode: Mode,
    /// Comma-separated `id:base64secret`; when set, unsigned batches are refused.
    #[arg(long, env = "REGIS_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<String>,
    /// How long version bookkeeping outlives deleted data, in seconds.
    #[arg(long = "tombstone-horizon", env = "REGIS_TOMBSTONE_HORIZON_SECONDS", value_name = "SECONDS", default_value_t = DEFAULT_TOMBSTONE_HORIZON_SECONDS)]
    pub tombstone_horizon_seconds: u64,
    /// Report permanent failures and panics to Sentry.
    #[arg(long, env = "SENTRY_DSN", hide_env_values = true)]
    pub sentry_dsn: Option<String>,
    /// Concurrent long-polling receivers.
    #[arg(long, env = "REGIS_RECEIVERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub receivers: u16,
    /// Long-poll wait of each `ReceiveMessage`, 0 to 20 seconds.
    #[arg(long, env = "REGIS_WAIT_SECONDS", default_value_t = MAX_WAIT_SECONDS, value_parser = clap::value_parser!(u8).range(0..=20))]
    pub wait_seconds: u8,
    /// Visibility timeout of received messages, in seconds (default: the queue's own).
    #[arg(long, env = "REGIS_VISIBILITY_TIMEOUT", value_name = "SECONDS")]
    pub visibility_timeout: Option<u32>,
    /// Most commands applied in one pipelined call; a receive's records are
    /// decoded and applied in slices of this size, which bounds memory (a
    /// record larger than this goes alone).
    #[arg(long, env = "REGIS_APPLY_BUDGET", value_name = "COMMANDS", default_value_t = DEFAULT_APPLY_BUDGET_COMMANDS, value_parser = parse_apply_budget)]
    pub apply_budget: usize,
}

/// `--apply-budget`: a whole number of commands, at least 1.
fn parse_apply_budget(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// `--signing-keys` cannot be read.
    #[error("--signing-keys: {0}")]
    SigningKeys(#[from] regis_wire::KeySpecError),
    /// Redis cannot be reached or set up.
    #[error("cannot connect to Redis: {0}")]
    Redis(String),
    /// The queue's attributes cannot be read.
    #[error("cannot read the queue's visibility timeout: {0}")]
    Queue(String),
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages received (a message received twice counts twice).
    pub received: u64,
    /// Records whose batch was applied.
    pub applied: u64,
    /// Records parked in the DLQ.
    pub parked: u64,
    /// Records left in the queue to be delivered again.
    pub left_for_retry: u64,
    /// Messages deleted from the queue.
    pub deleted: u64,
    /// Visibility extensions sent.
    pub extensions: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    applied: AtomicU64,
    parked: AtomicU64,
    left_for_retry: AtomicU64,
    deleted: AtomicU64,
    extensions: AtomicU64,
}

impl Counters {
    fn summary(&self) -> Summary {
        Summary {
            received: self.received.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
            left_for_retry: self.left_for_retry.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            extensions: self.extensions.load(Ordering::Relaxed),
        }
    }
}

/// `regis worker`: builds the SQS client for `--region` (the endpoint comes
/// from `AWS_ENDPOINT_URL`, which the SDK reads itself) and serves until
/// SIGTERM or Ctrl-C.
pub async fn run(args: WorkerArgs) -> Result<Summary, WorkerError> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(args.region.clone()))
        .load()
        .await;
    serve(&args, aws_sdk_sqs::Client::new(&sdk), shutdown_signal()).await
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    info!("shutting down: no new receives, finishing batches in flight");
}

/// Serves the queue with `sqs` until `shutdown` resolves, then finishes the
/// batches in flight and returns what was done.
pub async fn serve(
    args: &WorkerArgs,
    sqs: aws_sdk_sqs::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary, WorkerError> {
    let keyring = Keyring::parse(args.signing_keys.as_deref().unwrap_or_default())?;
    let options = RedisOptions {
        cluster: args.cluster,
        tombstone_horizon: Duration::from_secs(args.tombstone_horizon_seconds),
        ..Default::default()
    };
    let engine = Engine::connect(&args.redis_url, args.mode, options)
        .await
        .map_err(|e| WorkerError::Redis(e.to_string()))?;
    let visibility_timeout = match args.visibility_timeout {
        Some(seconds) => seconds,
        None => queue_visibility_timeout(&sqs, &args.queue_url).await?,
    };
    let dead_letters = SqsDeadLetters::new(sqs.clone(), args.dlq_url.clone());
    let worker = Arc::new(Worker {
        processor: Processor::new(engine, dead_letters, DecodeLimits::default(), keyring)
            .with_apply_budget(args.apply_budget),
        sqs,
        queue_url: args.queue_url.clone(),
        region: args.region.clone(),
        wait_seconds: args.wait_seconds.min(MAX_WAIT_SECONDS),
        visibility_timeout,
        counters: Counters::default(),
    });
    info!(
        queue_url = %args.queue_url,
        receivers = args.receivers,
        mode = %args.mode,
        visibility_timeout,
        apply_budget = args.apply_budget,
        "worker started"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let loops: Vec<_> = (0..args.receivers.max(1))
        .map(|n| {
            let worker = Arc::clone(&worker);
            let stop = stop_rx.clone();
            tokio::spawn(async move { worker.receive_loop(stop).instrument(info_span!("receiver", n)).await })
        })
        .collect();
    shutdown.await;
    let _ = stop_tx.send(true);
    for receiver in loops {
        if let Err(e) = receiver.await {
            warn!(error = %e, "a receiver ended abnormally");
        }
    }
    let summary = worker.counters.summary();
    info!(?summary, "worker stopped");
    Ok(summary)
}

async fn queue_visibility_timeout(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u32, WorkerError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| WorkerError::Queue(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
    output
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| WorkerError::Queue("no VisibilityTimeout attribute".into()))
}

struct Worker {
    processor: Processor<Engine, SqsDeadLetters>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    region: String,
    wait_seconds: u8,
    visibility_timeout: u32,
    counters: Counters,
}

impl Worker {
    async fn receive_loop(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let received = tokio::select! {
                biased;
                _ = stop.changed() => return,
                received = self.receive() => received,
            };
            match received {
                Ok(messages) if messages.is_empty() => {}
                // Not raced against `stop`: a batch in flight is finished.
                Ok(messages) => self.handle(messages).await,
                Err(error) => {
                    warn!(error = %error, "ReceiveMessage failed");
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(RECEIVE_ERROR_BACKOFF) => {}
                    }
                }
            }
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(RECEIVE_MAX_MESSAGES)
            .wait_time_seconds(i32::from(self.wait_seconds))
            .visibility_timeout(self.visibility_timeout as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn handle(&self, mut messages: Vec<Message>) {
        let now = now_ms();
        self.counters
            .received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        // The bodies move into the records (a receive of ten 1 MiB
        // messages is not held twice).
        let records: Vec<Record> = messages.iter_mut().map(|m| record(m, &self.queue_url)).collect();
        let handles: Vec<&str> = messages.iter().filter_map(|m| m.receipt_handle()).collect();

        let outcomes = self
            .extending_visibility(self.processor.process(&records, now), &handles)
            .await;

        metrics::emit(&self.region, now, &CycleMetrics::from_outcomes(&outcomes));
        let mut done = Vec::new();
        for (message, outcome) in messages.iter().zip(&outcomes) {
            match outcome {
                Outcome::Applied { .. } => self.counters.applied.fetch_add(1, Ordering::Relaxed),
                Outcome::Parked { .. } => self.counters.parked.fetch_add(1, Ordering::Relaxed),
                _ => self.counters.left_for_retry.fetch_add(1, Ordering::Relaxed),
            };
            if let (true, Some(handle)) = (outcome.is_done(), message.receipt_handle()) {
                done.push((message.message_id().unwrap_or_default(), handle));
            }
        }
        self.delete(&done).await;
    }

    /// Runs `work`, extending the visibility of `handles` each time
    /// [`EXTEND_AFTER_FRACTION`] of the visibility timeout passes.
    async fn extending_visibility<T>(&self, work: impl Future<Output = T>, handles: &[&str]) -> T {
        let period = Duration::from_secs_f64(f64::from(self.visibility_timeout) * EXTEND_AFTER_FRACTION);
        if period.is_zero() || handles.is_empty() {
            return work.await;
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep(period) => {
                    // The extension runs alongside the work, never instead of it.
                    let extension = self.extend(handles);
                    tokio::pin!(extension);
                    tokio::select! {
                        out = &mut work => return out,
                        _ = extension => {}
                    }
                }
            }
        }
    }

    async fn extend(&self, handles: &[&str]) {
        let entries: Vec<_> = handles
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(self.visibility_timeout as i32)
                    .build()
                    .ok()
            })
            .collect();
        self.counters.extensions.fetch_add(1, Ordering::Relaxed);
        match self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                for failed in output.failed() {
                    warn!(
                        entry = failed.id(),
                        code = failed.code(),
                        message = failed.message(),
                        "visibility extension refused"
                    );
                }
            }
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ChangeMessageVisibilityBatch failed")
            }
        }
    }

    /// Deletes applied and parked messages. A delete that fails leaves the
    /// message to come back: it is applied again (which changes nothing) or
    /// parked again.
    async fn delete(&self, done: &[(&str, &str)]) {
        if done.is_empty() {
            return;
        }
        let entries: Vec<_> = done
            .iter()
            .enumerate()
            .filter_map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .ok()
            })
            .collect();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                self.counters
                    .deleted
                    .fetch_add(output.successful().len() as u64, Ordering::Relaxed);
                for failed in output.failed() {
                    let message_id = failed.id().parse::<usize>().ok().and_then(|i| done.get(i)).map(|d| d.0);
                    warn!(
                        message_id,
                        code = failed.code(),
                        message = failed.message(),
                        "delete refused; the message will come back"
                    );
                }
            }
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; the messages will come back")
            }
        }
    }
}

/// The record of a received message.
/// The record of `message`, whose body it takes.
fn record(message: &mut Message, queue_url: &str) -> Record {
    let receive_count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    Record {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        body: message.body.take().unwrap_or_default(),
        receive_count,
        source_queue: queue_url.to_owned(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    const REQUIRED: [&str; 9] = [
        "regis",
        "--region",
        "eu-west-1",
        "--queue-url",
        "http://127.0.0.1:4566/000000000000/q",
        "--dlq-url",
        "http://127.0.0.1:4566/000000000000/dlq",
        "--redis-url",
        "redis://127.0.0.1:6379",
    ];

    #[test]
    fn defaults_follow_the_architecture_table() {
        let args = Cli::try_parse_from(REQUIRED).unwrap().worker;
        assert_eq!(args.mode, Mode::Lww);
        assert!(!args.cluster);
        assert_eq!(args.receivers, 2);
        assert_eq!(args.wait_seconds, 20);
        assert_eq!(args.tombstone_horizon_seconds, 345_600);
        assert_eq!(args.visibility_timeout, None);
        assert_eq!(args.signing_keys, None);
    }

    #[test]
    fn flags_are_read() {
        let mut argv = REQUIRED.to_vec();
        argv.extend([
            "--cluster",
            "--mode",
            "plain",
            "--receivers",
            "4",
            "--wait-seconds",
            "1",
            "--visibility-timeout",
            "30",
            "--tombstone-horizon",
            "60",
        ]);
        let args = Cli::try_parse_from(argv).unwrap().worker;
        assert!(args.cluster);
        assert_eq!(args.mode, Mode::Plain);
        assert_eq!(
            (args.receivers, args.wait_seconds, args.visibility_timeout),
            (4, 1, Some(30))
        );
        assert_eq!(args.tombstone_horizon_seconds, 60);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [["--wait-seconds", "21"], ["--receivers", "0"], ["--mode", "fast"]] {
            let mut argv = REQUIRED.to_vec();
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn records_carry_receive_count_and_queue() {
        let mut message = Message::builder()
            .message_id("m1")
            .body("text")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .build();
        let r = record(&mut message, "http://q");
        assert_eq!(
            r,
            Record {
                message_id: "m1".into(),
                body: "text".into(),
                receive_count: 3,
                source_queue: "http://q".into()
            }
        );
        assert_eq!(message.body(), None, "the body was moved, not copied");
    }
}
