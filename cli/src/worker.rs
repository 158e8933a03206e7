//! `regis worker`: the regional applier as a long-polling SQS worker.
//!
//! The same [`Applier`] as the Lambda function, behind a receive loop
//! instead of the Lambda runtime, for running outside Lambda (a container,
//! a VM) and in the local environment, where LocalStack cannot run Lambda
//! functions.
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
//! What the receivers hold is bounded by a byte budget they share
//! (`--byte-budget-mib`): before processing a receive, a receiver takes a
//! permit for the bytes of the bodies it holds, and gives it back once the
//! receive is done, so the decoding and applying of several large receives
//! never run at once beyond the budget. A receive larger than the whole
//! budget waits for all of it and runs alone. Waiting for the budget
//! extends visibility like processing does.
//!
//! Every queue call goes through the shared [`QueueClient`], so the loop's
//! logic is unit-tested on an in-memory queue below and against LocalStack
//! in `cli/tests/worker_localstack.rs`.
//!
//! On SIGTERM or Ctrl-C the loops stop receiving (an outstanding long poll
//! is abandoned: anything SQS handed to it reappears after the visibility
//! timeout), finish the batches in flight, and the worker returns.
//!
//! Metrics are printed on stdout as CloudWatch embedded-metric lines, one
//! per processed receive; logs go to stderr.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regis_applier::config::{
    DEFAULT_APPLY_BUDGET_COMMANDS, DEFAULT_MAX_CLOCK_SKEW_SECONDS, DEFAULT_TOMBSTONE_HORIZON_SECONDS,
    parse_apply_budget,
};
use regis_applier::metrics::{self, CycleMetrics};
use regis_applier::records::{Apply, Outcome, Processor, Record};
use regis_applier::{Applier, ApplierConfig};
use regis_aws::batch::RECEIVE_MAX_WAIT_SECONDS;
use regis_aws::clock::now_ms;
use regis_aws::{QueueAttribute, QueueClient, QueueError, ReceiveOptions, ReceivedMessage};
use regis_wire::Mode;
use tokio::sync::{Semaphore, SemaphorePermit, watch};
use tracing::{Instrument as _, info, info_span, warn};

/// Longest long poll (re-exported for the flag's range).
pub const MAX_WAIT_SECONDS: u8 = RECEIVE_MAX_WAIT_SECONDS;

/// A batch's visibility is extended each time this fraction of the
/// visibility timeout has passed while it is still being processed.
pub const EXTEND_AFTER_FRACTION: f64 = 0.5;

/// Default of `--byte-budget-mib`: a little more than one full receive of
/// ten 1 MiB messages, so that with the default two receivers one receive
/// of 1 MiB batches is decoded and applied at a time (the decoded commands
/// take several times the bodies' bytes), while receives of small messages
/// still run side by side.
pub const DEFAULT_BYTE_BUDGET_MIB: u32 = 12;

/// Largest `--byte-budget-mib` (the budget is counted in bytes in a `u32`).
pub const MAX_BYTE_BUDGET_MIB: u32 = 4095;

/// Pause after an empty receive when long polling is off (`--wait-seconds 0`).
const EMPTY_SHORT_POLL_PAUSE: Duration = Duration::from_millis(100);

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
    /// Comma-separated `id:base64secret:tenant1|tenant2` (`*`: any tenant),
    /// inline keys for local development; unsigned batches are then refused.
    #[arg(long, env = "REGIS_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<String>,
    /// Comma-separated Secrets Manager secret ids (ARNs or names), one
    /// signing key per secret, loaded at start.
    #[arg(long, env = "REGIS_SIGNING_SECRET_IDS")]
    pub signing_secret_ids: Option<String>,
    /// Accept unsigned batches when no key is configured (without it, no
    /// key is a configuration error).
    #[arg(long, env = "REGIS_ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,
    /// The tenant registry, inline JSON
    /// (`{"t": {"regions": [...], "prefixes": [...]}}`): batches of tenants
    /// not allowed in this region or outside their prefixes are parked.
    #[arg(long, env = "REGIS_TENANTS")]
    pub tenants: Option<String>,
    /// Let any tenant write anything when no registry is given (without it,
    /// no registry is a configuration error).
    #[arg(long, env = "REGIS_ALLOW_ANY_TENANT")]
    pub allow_any_tenant: bool,
    /// How long version bookkeeping outlives deleted data, in seconds.
    #[arg(long = "tombstone-horizon", env = "REGIS_TOMBSTONE_HORIZON_SECONDS", value_name = "SECONDS", default_value_t = DEFAULT_TOMBSTONE_HORIZON_SECONDS)]
    pub tombstone_horizon_seconds: u64,
    /// How far ahead of this worker's clock a version may be, in seconds; a
    /// batch holding one further ahead is parked (`clock-skew`).
    #[arg(long = "max-clock-skew", env = "REGIS_MAX_CLOCK_SKEW_SECONDS", value_name = "SECONDS", default_value_t = DEFAULT_MAX_CLOCK_SKEW_SECONDS)]
    pub max_clock_skew_seconds: u64,
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
    /// Bytes of message bodies the receivers may process at once, shared by
    /// all of them, in MiB; a receive larger than this runs alone.
    #[arg(long, env = "REGIS_BYTE_BUDGET_MIB", value_name = "MIB", default_value_t = DEFAULT_BYTE_BUDGET_MIB, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BYTE_BUDGET_MIB)))]
    pub byte_budget_mib: u32,
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A setting is missing or cannot be read (named by its variable), or
    /// a signing secret cannot be loaded.
    #[error(transparent)]
    Config(#[from] regis_applier::config::ConfigError),
    /// Redis cannot be reached or set up.
    #[error("cannot connect to Redis")]
    Redis(#[source] regis_applier::apply::ApplyError),
    /// The queue's attributes cannot be read.
    #[error("cannot read the queue's visibility timeout")]
    Queue(#[source] QueueError),
    /// The queue has no usable `VisibilityTimeout` attribute.
    #[error("the queue reports no usable VisibilityTimeout")]
    NoVisibilityTimeout,
}

impl WorkerArgs {
    /// The applier's configuration: the one type the Lambda reads from its
    /// environment, here filled from the flags (which fall back to the same
    /// variables).
    pub fn applier_config(&self) -> Result<ApplierConfig, WorkerError> {
        // One parser: the flags are handed to the Lambda's reader under
        // their variables' names, so both check the same things.
        let settings: HashMap<&str, String> = [
            ("REGIS_REGION", Some(self.region.clone())),
            ("REGIS_REDIS_URL", Some(self.redis_url.clone())),
            ("REGIS_REDIS_CLUSTER", Some(self.cluster.to_string())),
            ("REGIS_DLQ_URL", Some(self.dlq_url.clone())),
            ("REGIS_MODE", Some(self.mode.to_string())),
            ("REGIS_SIGNING_KEYS", self.signing_keys.clone()),
            ("REGIS_SIGNING_SECRET_IDS", self.signing_secret_ids.clone()),
            ("REGIS_ALLOW_UNSIGNED", Some(self.allow_unsigned.to_string())),
            ("REGIS_TENANTS", self.tenants.clone()),
            ("REGIS_ALLOW_ANY_TENANT", Some(self.allow_any_tenant.to_string())),
            (
                "REGIS_TOMBSTONE_HORIZON_SECONDS",
                Some(self.tombstone_horizon_seconds.to_string()),
            ),
            (
                "REGIS_MAX_CLOCK_SKEW_SECONDS",
                Some(self.max_clock_skew_seconds.to_string()),
            ),
            ("SENTRY_DSN", self.sentry_dsn.clone()),
            ("REGIS_APPLY_BUDGET", Some(self.apply_budget.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        Ok(ApplierConfig::from_lookup(|name| settings.get(name).cloned())?)
    }
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
    let sdk = regis_aws::sdk::config(&args.region, &regis_aws::sdk::Endpoint::aws()).await;
    serve(&args, Arc::new(regis_aws::SqsQueue::new(&sdk)), shutdown_signal()).await
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

/// Serves the queue through `queues` until `shutdown` resolves, then
/// finishes the batches in flight and returns what was done.
pub async fn serve(
    args: &WorkerArgs,
    queues: Arc<dyn QueueClient>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary, WorkerError> {
    let mut config = args.applier_config()?;
    if !config.signing_secret_ids.is_empty() {
        let sdk = regis_aws::sdk::config(&args.region, &regis_aws::sdk::Endpoint::aws()).await;
        config
            .load_signing_secrets(&regis_aws::secrets::secrets_manager(&sdk))
            .await?;
    }
    let applier = Applier::connect(&config, Arc::clone(&queues))
        .await
        .map_err(WorkerError::Redis)?;
    let visibility_timeout = match args.visibility_timeout {
        Some(seconds) => seconds,
        None => queue_visibility_timeout(queues.as_ref(), &args.queue_url).await?,
    };
    let worker = Arc::new(Worker {
        processor: applier.into_processor(),
        queues,
        queue_url: args.queue_url.clone(),
        region: args.region.clone(),
        wait_seconds: args.wait_seconds.min(MAX_WAIT_SECONDS),
        visibility_timeout,
        budget: ByteBudget::new(args.byte_budget_mib * 1024 * 1024),
        counters: Counters::default(),
    });
    info!(
        queue_url = %args.queue_url,
        receivers = args.receivers,
        mode = %args.mode,
        visibility_timeout,
        apply_budget = args.apply_budget,
        byte_budget_mib = args.byte_budget_mib,
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

async fn queue_visibility_timeout(queues: &dyn QueueClient, queue_url: &str) -> Result<u32, WorkerError> {
    queues
        .attribute(queue_url, QueueAttribute::VisibilityTimeout)
        .await
        .map_err(WorkerError::Queue)?
        .and_then(|v| v.parse().ok())
        .ok_or(WorkerError::NoVisibilityTimeout)
}

/// The bytes of message bodies the receivers may process at once.
struct ByteBudget {
    permits: Semaphore,
    bytes: u32,
}

impl ByteBudget {
    fn new(bytes: u32) -> Self {
        Self {
            permits: Semaphore::new(bytes as usize),
            bytes,
        }
    }

    /// Waits until `held` bytes fit in the budget and takes them until the
    /// permit is dropped. A receive larger than the whole budget takes all
    /// of it (runs alone) rather than waiting forever.
    async fn take(&self, held: usize) -> SemaphorePermit<'_> {
        let wanted = held.clamp(1, self.bytes as usize) as u32;
        self.permits
            .acquire_many(wanted)
            .await
            .expect("the byte budget's semaphore is never closed")
    }
}

/// One region's receive loops: what each receiver shares.
struct Worker<A> {
    processor: Processor<A>,
    queues: Arc<dyn QueueClient>,
    queue_url: String,
    region: String,
    wait_seconds: u8,
    visibility_timeout: u32,
    budget: ByteBudget,
    counters: Counters,
}

impl<A: Apply> Worker<A> {
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
                Ok(messages) if messages.is_empty() => {
                    // A short poll that found nothing: pause rather than spin.
                    if self.wait_seconds == 0 {
                        tokio::select! {
                            _ = stop.changed() => return,
                            _ = tokio::time::sleep(EMPTY_SHORT_POLL_PAUSE) => {}
                        }
                    }
                }
                // Not raced against `stop`: a batch in flight is finished.
                Ok(messages) => self.handle(messages, now_ms()).await,
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

    async fn receive(&self) -> Result<Vec<ReceivedMessage>, QueueError> {
        let options = ReceiveOptions {
            wait_seconds: self.wait_seconds,
            visibility_timeout: Some(self.visibility_timeout),
            ..ReceiveOptions::default()
        };
        self.queues.receive(&self.queue_url, options).await
    }

    /// Processes one receive's messages at `now` and deletes what is done.
    async fn handle(&self, mut messages: Vec<ReceivedMessage>, now: u64) {
        self.counters
            .received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        // The bodies move into the records (a receive of ten 1 MiB
        // messages is not held twice).
        let records: Vec<Record> = messages.iter_mut().map(|m| record(m, &self.queue_url)).collect();
        let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();

        let held: usize = records.iter().map(|r| r.body.len()).sum();
        let work = async {
            let _permit = self.budget.take(held).await;
            self.processor.process(&records, now).await
        };
        let outcomes = self.extending_visibility(work, &handles).await;

        metrics::emit(&self.region, now, &CycleMetrics::from_outcomes(&outcomes));
        let mut done = Vec::new();
        for (message, outcome) in messages.iter().zip(&outcomes) {
            match outcome {
                Outcome::Applied { .. } => self.counters.applied.fetch_add(1, Ordering::Relaxed),
                Outcome::Parked { .. } => self.counters.parked.fetch_add(1, Ordering::Relaxed),
                Outcome::Retry { .. } | Outcome::ParkFailed { .. } => {
                    self.counters.left_for_retry.fetch_add(1, Ordering::Relaxed)
                }
            };
            if outcome.is_done() {
                done.push((message.message_id.as_str(), message.receipt_handle.as_str()));
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
        self.counters.extensions.fetch_add(1, Ordering::Relaxed);
        let results = self
            .queues
            .change_visibility_all(&self.queue_url, handles, self.visibility_timeout)
            .await;
        for error in results.into_iter().filter_map(Result::err) {
            warn!(error = %error, "visibility extension failed");
        }
    }

    /// Deletes applied and parked messages (`(message id, receipt handle)`).
    /// A delete that fails leaves the message to come back: it is applied
    /// again (which changes nothing) or parked again.
    async fn delete(&self, done: &[(&str, &str)]) {
        if done.is_empty() {
            return;
        }
        let handles: Vec<&str> = done.iter().map(|(_, handle)| *handle).collect();
        let results = self.queues.delete_all(&self.queue_url, &handles).await;
        for ((message_id, _), result) in done.iter().zip(results) {
            match result {
                Ok(()) => {
                    self.counters.deleted.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => warn!(message_id, error = %error, "delete failed; the message will come back"),
            }
        }
    }
}

/// The record of `message`, whose body it takes.
fn record(message: &mut ReceivedMessage, queue_url: &str) -> Record {
    Record {
        message_id: message.message_id.clone(),
        body: std::mem::take(&mut message.body),
        receive_count: message.receive_count,
        source_queue: queue_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use regis_applier::config::ConfigError;
    use regis_wire::{DecodeLimits, Keyring};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    /// The settings without which nothing works; the worker still refuses
    /// to start on them alone (no keys, no tenants).
    const BARE: [&str; 9] = [
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

    /// A worker that starts: one inline key, one tenant.
    const REQUIRED: [&str; 13] = [
        "regis",
        "--region",
        "eu-west-1",
        "--queue-url",
        "http://127.0.0.1:4566/000000000000/q",
        "--dlq-url",
        "http://127.0.0.1:4566/000000000000/dlq",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--signing-keys",
        "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=:*",
        "--tenants",
        r#"{"acme": {"regions": ["*"], "prefixes": [""]}}"#,
    ];

    #[test]
    fn defaults_follow_the_architecture_table() {
        let args = Cli::try_parse_from(REQUIRED).unwrap().worker;
        assert_eq!(args.mode, Mode::Lww);
        assert!(!args.cluster);
        assert_eq!(args.receivers, 2);
        assert_eq!(args.byte_budget_mib, DEFAULT_BYTE_BUDGET_MIB);
        assert_eq!(args.wait_seconds, 20);
        assert_eq!(args.tombstone_horizon_seconds, 604_800);
        assert_eq!(args.visibility_timeout, None);
        let args = Cli::try_parse_from(BARE).unwrap().worker;
        assert_eq!(args.signing_keys, None);
        assert!(!args.allow_unsigned && !args.allow_any_tenant);
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
            "--byte-budget-mib",
            "5",
        ]);
        let args = Cli::try_parse_from(argv).unwrap().worker;
        assert!(args.cluster);
        assert_eq!(args.mode, Mode::Plain);
        assert_eq!(
            (args.receivers, args.wait_seconds, args.visibility_timeout),
            (4, 1, Some(30))
        );
        assert_eq!(args.tombstone_horizon_seconds, 60);
        assert_eq!(args.byte_budget_mib, 5);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            ["--wait-seconds", "21"],
            ["--receivers", "0"],
            ["--mode", "fast"],
            ["--byte-budget-mib", "0"],
            ["--byte-budget-mib", "4096"],
        ] {
            let mut argv = REQUIRED.to_vec();
            argv.extend(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn records_carry_receive_count_and_queue() {
        let mut message = ReceivedMessage {
            message_id: "m1".into(),
            receipt_handle: "h".into(),
            body: "text".into(),
            receive_count: 3,
            ..Default::default()
        };
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
        assert!(message.body.is_empty(), "the body was moved, not copied");
    }

    #[test]
    fn worker_flags_make_the_applier_configuration() {
        let mut argv = REQUIRED.to_vec();
        argv.extend(["--mode", "plain", "--apply-budget", "7"]);
        let config = Cli::try_parse_from(argv).unwrap().worker.applier_config().unwrap();
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.mode, Mode::Plain);
        assert_eq!(config.apply_budget, 7);
        assert_eq!(config.tombstone_horizon.as_secs(), DEFAULT_TOMBSTONE_HORIZON_SECONDS);
        let mut argv = REQUIRED.to_vec();
        argv.extend(["--tombstone-horizon", "60"]);
        let err = Cli::try_parse_from(argv).unwrap().worker.applier_config().unwrap_err();
        assert!(err.to_string().contains("REGIS_TOMBSTONE_HORIZON_SECONDS"), "{err}");
        for (flag, value) in [
            ("--signing-keys", "nocolon"),
            ("--signing-keys", ","),
            ("--signing-secret-ids", ","),
        ] {
            let mut argv = BARE.to_vec();
            argv.push("--allow-any-tenant");
            argv.extend([flag, value]);
            let err = Cli::try_parse_from(argv).unwrap().worker.applier_config().unwrap_err();
            assert!(
                matches!(err, WorkerError::Config(ConfigError::Invalid { .. })),
                "{flag} {value}: {err}"
            );
        }
    }

    #[test]
    fn a_worker_without_keys_or_tenants_refuses_to_start_unless_told() {
        let parse = |extra: &[&str]| {
            let mut argv: Vec<&str> = BARE.to_vec();
            argv.extend(extra);
            Cli::try_parse_from(argv).unwrap().worker.applier_config()
        };
        assert!(matches!(parse(&[]), Err(WorkerError::Config(ConfigError::Unsigned))));
        assert!(matches!(
            parse(&["--allow-unsigned"]),
            Err(WorkerError::Config(ConfigError::NoTenants))
        ));
        let config = parse(&["--allow-unsigned", "--allow-any-tenant"]).unwrap();
        assert!(config.keyring.is_empty() && config.tenants.is_none());
        let config = parse(&[
            "--signing-secret-ids",
            "k1,k2",
            "--tenants",
            r#"{"t": {"regions": ["*"], "prefixes": [""]}}"#,
        ])
        .unwrap();
        assert_eq!(config.signing_secret_ids, ["k1", "k2"]);
        assert!(config.tenants.is_some_and(|t| t.contains("t")));
    }

    /// Applies every batch, or fails every batch retryably while `down`;
    /// optionally takes `delay` per call.
    struct FakeApply {
        down: std::sync::atomic::AtomicBool,
        delay: Duration,
        /// Apply calls running now, and the most that ever ran at once.
        in_flight: std::sync::atomic::AtomicUsize,
        most_in_flight: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Apply for FakeApply {
        fn mode(&self) -> Mode {
            Mode::Lww
        }

        async fn apply(
            &self,
            batches: &[&regis_wire::Batch],
            _now_ms: u64,
        ) -> Vec<Result<regis_applier::records::Applied, regis_applier::records::ApplyFailure>> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let down = self.down.load(Ordering::Relaxed);
            batches
                .iter()
                .map(|b| {
                    if down {
                        Err(regis_applier::records::ApplyFailure {
                            retryable: true,
                            reason: "redis-unavailable",
                            detail: "connection refused".into(),
                        })
                    } else {
                        Ok(regis_applier::records::Applied {
                            commands: b.commands.len(),
                            ..Default::default()
                        })
                    }
                })
                .collect()
        }
    }

    const QUEUE: &str = "apply";
    const DLQ: &str = "dlq";
    const NOW: u64 = 1_700_000_000_000;

    fn worker(queues: &Arc<regis_testkit::MemoryQueue>, delay: Duration) -> Worker<FakeApply> {
        worker_with_budget(queues, delay, DEFAULT_BYTE_BUDGET_MIB * 1024 * 1024)
    }

    fn worker_with_budget(
        queues: &Arc<regis_testkit::MemoryQueue>,
        delay: Duration,
        budget_bytes: u32,
    ) -> Worker<FakeApply> {
        let apply = FakeApply {
            down: false.into(),
            delay,
            in_flight: 0.into(),
            most_in_flight: 0.into(),
        };
        Worker {
            processor: Processor::new(
                apply,
                regis_applier::dlq::DeadLetterQueue::new(queues.clone(), DLQ),
                DecodeLimits::default(),
                Keyring::default(),
            ),
            queues: queues.clone(),
            queue_url: QUEUE.into(),
            region: "eu-west-1".into(),
            wait_seconds: 0,
            visibility_timeout: 30,
            budget: ByteBudget::new(budget_bytes),
            counters: Counters::default(),
        }
    }

    fn push(queues: &regis_testkit::MemoryQueue, body: String) {
        queues.push(
            QUEUE,
            regis_aws::OutgoingMessage {
                body,
                ..Default::default()
            },
        );
    }

    async fn receive_and_handle<A: Apply>(w: &Worker<A>) {
        let messages = w.receive().await.unwrap();
        w.handle(messages, NOW).await;
    }

    #[tokio::test]
    async fn applied_and_parked_messages_are_deleted_failed_ones_stay() {
        let queues = Arc::new(regis_testkit::MemoryQueue::new());
        let w = worker(&queues, Duration::ZERO);
        push(&queues, regis_testkit::batches::set_batch_text("b1", Mode::Lww, NOW, 2));
        push(&queues, "{not a batch".into());
        receive_and_handle(&w).await;
        assert!(queues.messages(QUEUE).is_empty(), "applied and parked are deleted");
        assert_eq!(queues.messages(DLQ).len(), 1);
        let summary = w.counters.summary();
        assert_eq!(
            (summary.received, summary.applied, summary.parked, summary.deleted),
            (2, 1, 1, 2)
        );

        // Redis down: the message stays in the queue, invisible until its
        // timeout passes, then comes back and is applied.
        w.processor.applier().down.store(true, Ordering::Relaxed);
        push(&queues, regis_testkit::batches::set_batch_text("b2", Mode::Lww, NOW, 1));
        receive_and_handle(&w).await;
        assert_eq!(queues.messages(QUEUE).len(), 1);
        assert_eq!(w.counters.summary().left_for_retry, 1);
        queues.expire_visibility(QUEUE);
        w.processor.applier().down.store(false, Ordering::Relaxed);
        receive_and_handle(&w).await;
        assert!(queues.messages(QUEUE).is_empty());
        assert_eq!(w.counters.summary().applied, 2);
    }

    #[tokio::test]
    async fn a_permanent_failure_that_cannot_be_parked_is_not_deleted() {
        let queues = Arc::new(regis_testkit::MemoryQueue::new());
        let w = worker(&queues, Duration::ZERO);
        push(&queues, "{not a batch".into());
        let messages = w.receive().await.unwrap();
        // The DLQ (and everything else) is down while the record is handled.
        queues.fail_calls(true);
        w.handle(messages, NOW).await;
        queues.fail_calls(false);
        assert_eq!(queues.messages(QUEUE).len(), 1, "never deleted unparked");
        assert!(queues.messages(DLQ).is_empty());
        assert_eq!(w.counters.summary().left_for_retry, 1);
    }

    /// Two receives handled at once by receivers sharing a budget: they
    /// run side by side when both fit in it, one after the other when they
    /// do not, and a receive larger than the whole budget still runs.
    #[tokio::test(start_paused = true)]
    async fn receivers_process_at_most_the_byte_budget_at_once() {
        let body = |id: &str| regis_testkit::batches::set_batch_text(id, Mode::Lww, NOW, 3);
        let size = body("a").len() as u32;
        for (budget, most) in [(2 * size, 2), (2 * size - 1, 1), (size / 2, 1)] {
            let queues = Arc::new(regis_testkit::MemoryQueue::new());
            let w = worker_with_budget(&queues, Duration::from_secs(1), budget);
            push(&queues, body("a"));
            let first = w.receive().await.unwrap();
            push(&queues, body("b"));
            let second = w.receive().await.unwrap();
            assert_eq!((first.len(), second.len()), (1, 1));
            tokio::join!(w.handle(first, NOW), w.handle(second, NOW));
            let apply = w.processor.applier();
            assert_eq!(
                apply.most_in_flight.load(Ordering::SeqCst),
                most,
                "budget {budget} B for receives of {size} B"
            );
            assert_eq!(w.counters.summary().applied, 2);
            assert!(queues.messages(QUEUE).is_empty());
            assert_eq!(
                w.budget.permits.available_permits(),
                budget as usize,
                "every permit returned"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_batch_has_its_visibility_extended() {
        let queues = Arc::new(regis_testkit::MemoryQueue::new());
        // 30 s visibility, extended every 15 s; the apply takes 40 s.
        let w = worker(&queues, Duration::from_secs(40));
        push(&queues, regis_testkit::batches::set_batch_text("b1", Mode::Lww, NOW, 1));
        receive_and_handle(&w).await;
        assert_eq!(queues.visibility_changes(QUEUE), vec![30, 30]);
        assert_eq!(w.counters.summary().extensions, 2);
        assert!(queues.messages(QUEUE).is_empty());
    }

    #[tokio::test]
    async fn receive_failures_back_off_and_the_loop_stops_on_request() {
        let queues = Arc::new(regis_testkit::MemoryQueue::new());
        let w = Arc::new(worker(&queues, Duration::ZERO));
        queues.fail_calls(true);
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn({
            let w = Arc::clone(&w);
            async move { w.receive_loop(stop_rx).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        queues.fail_calls(false);
        // The loop reads the system clock: a batch of now.
        push(
            &queues,
            regis_testkit::batches::set_batch_text("b1", Mode::Lww, now_ms(), 1),
        );
        // The loop recovers after its back-off and applies the message.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while w.counters.summary().applied == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        running.await.unwrap();
        assert_eq!(w.counters.summary().applied, 1);
    }
}
