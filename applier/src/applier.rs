//! The applier, assembled once from its configuration.

use std::sync::Arc;

use regis_aws::QueueClient;

use crate::apply::{ApplyError, Engine, RedisOptions};
use crate::config::ApplierConfig;
use crate::dlq::DeadLetterQueue;
use crate::metrics::{self, CycleMetrics};
use crate::records::{Checks, Outcome, Processor, Record};

/// Everything that applies one region's records: the engine connected to
/// the region's Redis and the record handling around it, parking in the
/// configured DLQ through `queues`. Built the same way by the Lambda
/// function and by `regis worker`; they differ only in where records come
/// from and how the outcomes are answered.
#[derive(Debug)]
pub struct Applier {
    processor: Processor<Engine>,
    region: String,
}

impl Applier {
    /// Connects to the configured Redis (loading the script in
    /// last-writer-wins mode). Fails when Redis cannot be reached (retryable)
    /// or the URL cannot work.
    pub async fn connect(config: &ApplierConfig, queues: Arc<dyn QueueClient>) -> Result<Self, ApplyError> {
        let options = RedisOptions {
            cluster: config.cluster,
            tombstone_horizon: config.tombstone_horizon,
            ..Default::default()
        };
        let engine = Engine::connect(&config.redis_url, config.mode, options).await?;
        let mut processor = Processor::new(
            engine,
            DeadLetterQueue::new(queues, config.dlq_url.clone()),
            config.limits,
            config.keyring.clone(),
        )
        .with_apply_budget(config.apply_budget)
        .with_checks(Checks {
            max_clock_skew_ms: u64::try_from(config.max_clock_skew.as_millis()).unwrap_or(u64::MAX),
            horizon_ms: u64::try_from(config.tombstone_horizon.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(registry) = &config.tenants {
            processor = processor.with_tenants(config.region.clone(), registry.clone());
        }
        Ok(Self {
            processor,
            region: config.region.clone(),
        })
    }

    /// The record handling.
    pub fn processor(&self) -> &Processor<Engine> {
        &self.processor
    }

    /// The record handling, for a caller that drives it itself (the worker's
    /// receive loops share it).
    pub fn into_processor(self) -> Processor<Engine> {
        self.processor
    }

    /// The region served.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Handles the records of one invocation (or one receive) at `now_ms`:
    /// one outcome per record, in order, and the cycle's metric line on
    /// stdout.
    pub async fn handle(&self, records: &[Record], now_ms: u64) -> Vec<Outcome> {
        let outcomes = self.processor.process(records, now_ms).await;
        metrics::emit(&self.region, now_ms, &CycleMetrics::from_outcomes(&outcomes));
        outcomes
    }
}
