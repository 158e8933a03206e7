//! End to end through LocalStack: publish in one region, applied in three.
//!
//! Three runs on one topology ([`crate::localenv::Topology`]):
//!
//! * batched: the [`Publisher`] as a service would use it, as fast as it goes;
//! * one command per SNS message, as the original design did: each command
//!   its own one-command batch and its own `Publish` request (16 in flight,
//!   as many as the publisher allows itself);
//! * lag: the publisher at a fixed moderate rate, each command timed from
//!   its `publish` call to the moment its key exists in each region.
//!
//! "Applied" is read from the regions' Redis: every command of these runs
//! writes a key of its own ([`Keys::Unique`]), so a key that exists has been
//! applied. The SNS requests and messages are counted on the way out for
//! the cost model.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use redis::aio::MultiplexedConnection;
use regis_publisher::{
    Attribute, AttributeValue, AwsSns, BatchOutcome, OutgoingMessage, Publisher, PublisherConfig, SnsClient, SnsError,
};
use regis_wire::{Batch, BatchHeader, Command, EncodeOptions, HybridClock, Mode, VersionedCommand, encode};
use serde::Serialize;

use crate::cost::Traffic;
use crate::localenv::Topology;
use crate::measure::{percentile, rate};
use crate::workload::{Keys, Mix, Workload};

/// Tenant of the benchmark's commands (not restricted: every region).
pub const TENANT: &str = "bench";
/// Requests in flight in the one-command-per-message run.
pub const SINGLE_CONCURRENCY: usize = 16;
/// How long a run may take before it is called failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct E2ePlan {
    /// Commands of the batched run.
    pub batched_commands: usize,
    /// Commands of the one-command-per-message run.
    pub single_commands: usize,
    /// Commands per second of the lag run.
    pub lag_rate: u32,
    /// Duration of the lag run.
    pub lag_seconds: u32,
    /// The publisher's linger in the lag run.
    pub lag_linger_ms: u64,
    /// Wall clock for expiries.
    pub now_ms: u64,
}

/// What one run sent.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Payload bytes of each SNS request.
    pub request_bytes: Vec<u64>,
    /// Size of each message SNS accepted.
    pub message_bytes: Vec<u64>,
    /// Their bodies.
    pub bodies: Vec<String>,
}

impl Sent {
    /// The run's traffic for the cost model.
    pub fn traffic(&self, commands: u64, regions: u32, apply_ms_per_record: f64) -> Traffic {
        Traffic {
            commands,
            regions,
            remote_regions: regions.saturating_sub(1),
            publish_request_bytes: self.request_bytes.clone(),
            message_bytes: self.message_bytes.clone(),
            apply_ms_per_record,
        }
    }
}

/// The real SNS client, counting requests and keeping the messages it sent.
pub struct CountingSns<S> {
    inner: S,
    sent: Mutex<Sent>,
}

impl<S> CountingSns<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            sent: Mutex::default(),
        }
    }

    /// Takes what was counted so far.
    pub fn take(&self) -> Sent {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn record(&self, request_bytes: u64, accepted: &[&OutgoingMessage]) {
        let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.request_bytes.push(request_bytes);
        for message in accepted {
            sent.message_bytes.push(message.size() as u64);
            sent.bodies.push(message.body.clone());
        }
    }
}

#[async_trait]
impl<S: SnsClient> SnsClient for CountingSns<S> {
    async fn publish(&self, topic_arn: &str, message: &OutgoingMessage) -> Result<(), SnsError> {
        let result = self.inner.publish(topic_arn, message).await;
        let accepted: &[&OutgoingMessage] = if result.is_ok() { &[message] } else { &[] };
        self.record(message.size() as u64, accepted);
        result
    }

    async fn publish_batch(&self, topic_arn: &str, messages: &[&OutgoingMessage]) -> Result<BatchOutcome, SnsError> {
        let result = self.inner.publish_batch(topic_arn, messages).await;
        let accepted: Vec<&OutgoingMessage> = match &result {
            Ok(outcome) => messages
                .iter()
                .copied()
                .filter(|m| outcome.successful.contains(&m.id))
                .collect(),
            Err(_) => Vec::new(),
        };
        self.record(messages.iter().map(|m| m.size() as u64).sum(), &accepted);
        result
    }
}

/// When each key was first seen in each region.
struct Poller {
    conns: Vec<MultiplexedConnection>,
    /// `seen[region][key]`.
    seen: Vec<Vec<Option<Instant>>>,
}

impl Poller {
    async fn new(topology: &Topology, keys: usize) -> Result<Self, Box<dyn Error>> {
        let mut conns = Vec::new();
        for region in &topology.regions {
            conns.push(region.redis.client().get_multiplexed_async_connection().await?);
        }
        let seen = vec![vec![None; keys]; conns.len()];
        Ok(Self { conns, seen })
    }

    /// Checks the first `upto` keys not yet seen; true when all `keys` are
    /// seen everywhere.
    async fn poll(&mut self, keys: &[Vec<u8>], upto: usize) -> Result<bool, Box<dyn Error>> {
        for (conn, seen) in self.conns.iter_mut().zip(&mut self.seen) {
            let pending: Vec<usize> = (0..upto.min(keys.len())).filter(|&i| seen[i].is_none()).collect();
            for chunk in pending.chunks(5_000) {
                let mut pipe = redis::pipe();
                for &i in chunk {
                    pipe.exists(&keys[i]);
                }
                let found: Vec<bool> = pipe.query_async(conn).await?;
                let now = Instant::now();
                for (&i, exists) in chunk.iter().zip(found) {
                    if exists {
                        seen[i] = Some(now);
                    }
                }
            }
        }
        Ok(self.seen.iter().all(|s| s.iter().all(Option::is_some)))
    }

    /// Polls every `every` until all keys are seen; the last time one was.
    async fn until_all(&mut self, keys: &[Vec<u8>], every: Duration) -> Result<Instant, Box<dyn Error>> {
        let deadline = Instant::now() + RUN_TIMEOUT;
        while !self.poll(keys, keys.len()).await? {
            if Instant::now() > deadline {
                let missing: Vec<usize> = self
                    .seen
                    .iter()
                    .map(|s| s.iter().filter(|t| t.is_none()).count())
                    .collect();
                return Err(
                    format!("commands not applied after {RUN_TIMEOUT:?} (missing per region: {missing:?})").into(),
                );
            }
            tokio::time::sleep(every).await;
        }
        Ok(self
            .seen
            .iter()
            .flatten()
            .flatten()
            .copied()
            .max()
            .unwrap_or_else(Instant::now))
    }
}

/// The figures of the three runs.
#[derive(Debug, Clone, Serialize)]
pub struct E2eFigures {
    /// Commands of the batched run.
    pub batched_commands: usize,
    /// SNS messages they made.
    pub batched_messages: usize,
    /// From the first publish to the last command applied in every region.
    pub batched_seconds: f64,
    /// Commands per second, applied in all regions.
    pub batched_per_sec: f64,
    /// Commands of the one-command-per-message run.
    pub single_commands: usize,
    /// Its duration.
    pub single_seconds: f64,
    /// Its commands per second.
    pub single_per_sec: f64,
    /// `batched_per_sec / single_per_sec`.
    pub batched_vs_single_ratio: f64,
    /// Commands per second of the lag run.
    pub lag_rate: u32,
    /// Publisher linger in the lag run, ms.
    pub lag_linger_ms: u64,
    /// Commands of the lag run.
    pub lag_commands: usize,
    /// Lag samples (commands × regions).
    pub lag_samples: usize,
    /// Median lag, ms.
    pub lag_p50_ms: f64,
    /// 99th percentile lag, ms.
    pub lag_p99_ms: f64,
    /// Largest lag, ms.
    pub lag_max_ms: f64,
    /// Messages in the DLQs after the runs (should be 0).
    pub dlq_messages: u64,
    /// Largest peak RSS of the three workers, MiB.
    pub worker_peak_rss_mib: f64,
}

/// What the runs sent, for the cost model.
pub struct E2eTraffic {
    /// The batched run.
    pub batched: Sent,
    /// The one-command-per-message run.
    pub single: Sent,
}

fn keys_of(commands: &[Command]) -> Vec<Vec<u8>> {
    commands.iter().map(|c| c.key().to_vec()).collect()
}

fn publisher_config(topology: &Topology, linger: Duration) -> PublisherConfig {
    let mut config = PublisherConfig::new(&topology.topic_arn, &topology.topic_region, 1);
    config.default_tenant = Some(TENANT.into());
    config.linger = linger;
    config
}

async fn batched_run(
    topology: &Topology,
    sns: &Arc<CountingSns<AwsSns>>,
    plan: &E2ePlan,
    prefix: &str,
) -> Result<(f64, Sent), Box<dyn Error>> {
    let commands = Workload::new(Mix::Realistic, Keys::Unique, prefix, 11, plan.now_ms).take(plan.batched_commands);
    let keys = keys_of(&commands);
    let mut poller = Poller::new(topology, keys.len()).await?;
    let publisher = Publisher::new(publisher_config(topology, Duration::from_millis(5)), Arc::clone(sns))?;
    let start = Instant::now();
    for command in commands {
        publisher.publish(command).await?;
    }
    publisher.shutdown().await?;
    let stats = publisher.stats();
    if stats.failed_messages > 0 {
        return Err(format!("{} messages could not be published", stats.failed_messages).into());
    }
    let last = poller.until_all(&keys, Duration::from_millis(20)).await?;
    Ok(((last - start).as_secs_f64(), sns.take()))
}

async fn single_run(
    topology: &Topology,
    sns: &Arc<CountingSns<AwsSns>>,
    plan: &E2ePlan,
    prefix: &str,
) -> Result<(f64, Sent), Box<dyn Error>> {
    let commands = Workload::new(Mix::Realistic, Keys::Unique, prefix, 12, plan.now_ms).take(plan.single_commands);
    let keys = keys_of(&commands);
    let mut poller = Poller::new(topology, keys.len()).await?;
    let attributes: Arc<[Attribute]> = Arc::from(vec![
        Attribute {
            name: "tenant".into(),
            value: AttributeValue::String(TENANT.into()),
        },
        Attribute {
            name: "origin".into(),
            value: AttributeValue::String(topology.topic_region.clone()),
        },
        Attribute {
            name: "regions".into(),
            value: AttributeValue::StringArray(vec!["*".into()]),
        },
    ]);
    let mut clock = HybridClock::new(1);
    let start = Instant::now();
    let results: Vec<Result<(), SnsError>> = futures::stream::iter(commands.into_iter().enumerate())
        .map(|(i, command)| {
            let now = plan.now_ms + start.elapsed().as_millis() as u64;
            let batch = Batch {
                header: BatchHeader {
                    id: format!("{:032x}", i),
                    origin: topology.topic_region.clone(),
                    published_at_ms: now,
                    tenant: TENANT.into(),
                    mode: Mode::Lww,
                },
                commands: vec![VersionedCommand::new(clock.tick(now), command)],
            };
            let message = encode(&batch, &EncodeOptions::default()).map(|e| OutgoingMessage {
                id: batch.header.id.clone(),
                body: e.text,
                attributes: Arc::clone(&attributes),
            });
            let sns = Arc::clone(sns);
            let topic = topology.topic_arn.clone();
            async move {
                let message = message.map_err(|e| SnsError::Rejected {
                    code: "Encode".into(),
                    message: e.to_string(),
                })?;
                sns.publish(&topic, &message).await
            }
        })
        .buffer_unordered(SINGLE_CONCURRENCY)
        .collect()
        .await;
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(format!("one-command publish failed: {e}").into());
    }
    let last = poller.until_all(&keys, Duration::from_millis(20)).await?;
    Ok(((last - start).as_secs_f64(), sns.take()))
}

async fn lag_run(
    topology: &Topology,
    sns: &Arc<CountingSns<AwsSns>>,
    plan: &E2ePlan,
    prefix: &str,
) -> Result<Vec<f64>, Box<dyn Error>> {
    let n = (plan.lag_rate * plan.lag_seconds) as usize;
    let commands = Workload::new(Mix::Realistic, Keys::Unique, prefix, 13, plan.now_ms).take(n);
    let keys = keys_of(&commands);
    let mut poller = Poller::new(topology, n).await?;
    let publisher = Publisher::new(
        publisher_config(topology, Duration::from_millis(plan.lag_linger_ms)),
        Arc::clone(sns),
    )?;
    let published: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let producer = {
        let published = Arc::clone(&published);
        let publisher = publisher.clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(plan.lag_rate.max(1)));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for command in commands {
                ticks.tick().await;
                let at = Instant::now();
                publisher.publish(command).await?;
                published
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(at);
            }
            Ok::<_, regis_publisher::PublishError>(())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(u64::from(plan.lag_seconds)) + RUN_TIMEOUT;
    loop {
        let upto = published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        if poller.poll(&keys, upto).await? && upto == n {
            break;
        }
        if Instant::now() > deadline {
            return Err("lag run: commands not applied in time".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    producer.await??;
    publisher.shutdown().await?;
    sns.take();
    let published = published
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(poller
        .seen
        .iter()
        .flat_map(|region| {
            region
                .iter()
                .zip(&published)
                .filter_map(|(seen, at)| seen.map(|s| (s - *at).as_secs_f64() * 1000.0))
        })
        .collect())
}

/// Runs the three runs on `topology` (workers started).
pub async fn run(topology: &Topology, plan: &E2ePlan) -> Result<(E2eFigures, E2eTraffic), Box<dyn Error>> {
    let sdk = regis_testkit::localstack::sdk_config(&topology.topic_region).await;
    let sns = Arc::new(CountingSns::new(AwsSns::from_sdk_config(&sdk)));
    let tag = regis_testkit::localstack::unique_name("e2e");

    let (batched_seconds, batched) = batched_run(topology, &sns, plan, &format!("{tag}:b:")).await?;
    let (single_seconds, single) = single_run(topology, &sns, plan, &format!("{tag}:s:")).await?;
    let lags = lag_run(topology, &sns, plan, &format!("{tag}:l:")).await?;

    let batched_per_sec = rate(plan.batched_commands as u64, batched_seconds);
    let single_per_sec = rate(plan.single_commands as u64, single_seconds);
    let worker_peak_rss_mib = topology
        .regions
        .iter()
        .filter_map(|r| r.worker.as_ref().and_then(|w| w.peak_rss_mib()))
        .fold(0.0, f64::max);
    let figures = E2eFigures {
        batched_commands: plan.batched_commands,
        batched_messages: batched.message_bytes.len(),
        batched_seconds,
        batched_per_sec,
        single_commands: plan.single_commands,
        single_seconds,
        single_per_sec,
        batched_vs_single_ratio: batched_per_sec / single_per_sec,
        lag_rate: plan.lag_rate,
        lag_linger_ms: plan.lag_linger_ms,
        lag_commands: (plan.lag_rate * plan.lag_seconds) as usize,
        lag_samples: lags.len(),
        lag_p50_ms: percentile(&lags, 50.0).unwrap_or(f64::NAN),
        lag_p99_ms: percentile(&lags, 99.0).unwrap_or(f64::NAN),
        lag_max_ms: percentile(&lags, 100.0).unwrap_or(f64::NAN),
        dlq_messages: topology.dlq_depth().await?,
        worker_peak_rss_mib,
    };
    Ok((figures, E2eTraffic { batched, single }))
}
