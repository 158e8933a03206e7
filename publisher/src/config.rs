//! Publisher configuration, with defaults and validation.

use std::time::Duration;

use regis_wire::{
    Compression, DEFAULT_MAX_CLOCK_SKEW_MS, DecodeLimits, Mode, SNS_DEFAULT_MAX_MESSAGE_BYTES, SNS_MAX_MESSAGE_BYTES,
    SigningKey, TenantRegistry,
};

use crate::error::ConfigError;

/// Smallest accepted `max_message_bytes`: below this the envelope and the
/// attributes leave no room for commands.
pub const MIN_MESSAGE_BYTES: usize = 1024;

/// What `publish` does when the send buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait until SNS has acknowledged enough (backpressure).
    #[default]
    Wait,
    /// Fail at once with [`crate::PublishError::BufferFull`].
    FailFast,
}

/// How failed SNS calls are retried: exponential backoff with full jitter
/// (a random wait between zero and `initial_backoff * 2^attempt`, capped at
/// `max_backoff`), until `deadline` after the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Upper bound of the first wait.
    pub initial_backoff: Duration,
    /// Largest upper bound of any wait.
    pub max_backoff: Duration,
    /// Time after the first attempt at which a message is given up.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the wait before retry number `retry` (1 for the
    /// first retry).
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(30);
        self.initial_backoff.saturating_mul(1 << shift).min(self.max_backoff)
    }
}

/// Everything a publisher needs to know.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PublisherConfig {
    /// The SNS topic to publish to.
    pub topic_arn: String,
    /// The region this publisher writes from (the `origin` attribute).
    pub origin_region: String,
    /// The origin region's rank: the last tie-break of versions.
    pub origin_rank: u16,
    /// The tenant of [`crate::Publisher::publish`] (the `*_for` methods name
    /// one explicitly).
    pub default_tenant: Option<String>,
    /// The tenant registry shared with the appliers and the deployment
    /// (`regis_wire::TenantRegistry`): each tenant's regions (the `regions`
    /// attribute) and key prefixes (checked by `publish`).
    pub tenants: TenantRegistry,
    /// Whether tenants not in `tenants` may publish. They are then
    /// unrestricted here (all regions, any key), and refused by every
    /// applier that has a registry. Default: false.
    pub allow_unknown_tenants: bool,
    /// The topic's maximum message size, attributes included (256 KiB by
    /// default, at most 1 MiB).
    pub max_message_bytes: usize,
    /// How long a batch stays open after its first command (default 5 ms).
    pub linger: Duration,
    /// Compression of the command list (default: zstd when it helps).
    pub compression: Compression,
    /// Key to sign every batch with (load it from Secrets Manager with
    /// [`crate::load_signing_key`]). A tenant it is not bound to is refused
    /// by `publish`, as the appliers would refuse its batches.
    pub signing_key: Option<SigningKey>,
    /// Cap on the serialized bytes of commands accepted but not yet
    /// acknowledged by SNS (default 64 MiB).
    pub max_buffered_bytes: usize,
    /// What `publish` does when that cap is reached.
    pub overflow: Overflow,
    /// How failed SNS calls are retried.
    pub retry: RetryPolicy,
    /// How the batches must be applied (default last-writer-wins).
    pub mode: Mode,
    /// Most SNS requests in flight at once (default 16).
    pub max_concurrent_requests: usize,
    /// How far ahead of this publisher's own wall clock a version may be
    /// (default 300 s, the appliers' default `REGIS_MAX_CLOCK_SKEW_SECONDS`;
    /// set it to the appliers' bound). After the wall clock steps back by
    /// more, `publish` refuses new commands with
    /// [`crate::PublishError::Clock`] until it has caught up, instead of
    /// stamping versions every applier would refuse; see
    /// [`regis_wire::HybridClock`]. Each refusal is counted in
    /// [`crate::Stats::clock_refusals`].
    pub max_clock_skew: Duration,
    /// The decode limits of the appliers (default: theirs). A command over
    /// a per-command limit is refused by `publish`
    /// ([`crate::PublishError::OverLimit`]); batches are closed at half of
    /// the batch limits.
    pub limits: DecodeLimits,
}

impl PublisherConfig {
    /// A configuration with defaults for everything but the topic and the
    /// origin.
    pub fn new(topic_arn: impl Into<String>, origin_region: impl Into<String>, origin_rank: u16) -> Self {
        Self {
            topic_arn: topic_arn.into(),
            origin_region: origin_region.into(),
            origin_rank,
            default_tenant: None,
            tenants: TenantRegistry::new(),
            allow_unknown_tenants: false,
            max_message_bytes: SNS_DEFAULT_MAX_MESSAGE_BYTES,
            linger: Duration::from_millis(5),
            compression: Compression::default(),
            signing_key: None,
            max_buffered_bytes: 64 * 1024 * 1024,
            overflow: Overflow::Wait,
            retry: RetryPolicy::default(),
            mode: Mode::Lww,
            max_concurrent_requests: 16,
            max_clock_skew: Duration::from_millis(DEFAULT_MAX_CLOCK_SKEW_MS),
            limits: DecodeLimits::default(),
        }
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.topic_arn.is_empty() {
            return Err(ConfigError::Empty("topic_arn"));
        }
        if self.origin_region.is_empty() {
            return Err(ConfigError::Empty("origin_region"));
        }
        if !(MIN_MESSAGE_BYTES..=SNS_MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Err(ConfigError::MessageSize {
                min: MIN_MESSAGE_BYTES,
                max: SNS_MAX_MESSAGE_BYTES,
                actual: self.max_message_bytes,
            });
        }
        if self.max_buffered_bytes == 0 || self.max_buffered_bytes > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::OutOfRange {
                name: "max_buffered_bytes",
                why: "must be positive and below 2^61",
            });
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::OutOfRange {
                name: "max_concurrent_requests",
                why: "must be at least 1",
            });
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(ConfigError::OutOfRange {
                name: "retry.initial_backoff",
                why: "must not exceed max_backoff",
            });
        }
        if self.retry.initial_backoff.is_zero() {
            return Err(ConfigError::OutOfRange {
                name: "retry.initial_backoff",
                why: "must be positive",
            });
        }
        if self.limits.max_elements_per_command > self.limits.max_elements_per_batch {
            return Err(ConfigError::OutOfRange {
                name: "limits.max_elements_per_command",
                why: "must not exceed limits.max_elements_per_batch",
            });
        }
        for name in self.tenants.names() {
            if name.is_empty() {
                return Err(ConfigError::Empty("tenant name"));
            }
            if let Some(regions) = self.tenants.get(name).and_then(|t| t.regions()) {
                if regions.is_empty() || regions.iter().any(String::is_empty) {
                    return Err(ConfigError::NoRegions(name.to_owned()));
                }
            }
        }
        if let Some(tenant) = &self.default_tenant {
            if tenant.is_empty() {
                return Err(ConfigError::Empty("default_tenant"));
            }
            if !self.allow_unknown_tenants && !self.tenants.contains(tenant) {
                return Err(ConfigError::UnknownDefaultTenant(tenant.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use regis_wire::Tenant;

    use super::*;

    fn config() -> PublisherConfig {
        PublisherConfig::new("arn:aws:sns:ap-southeast-1:000000000000:t", "ap-southeast-1", 1)
    }

    #[test]
    fn defaults_are_valid() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(c.max_message_bytes, 256 * 1024);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.mode, Mode::Lww);
        assert_eq!(c.max_clock_skew, Duration::from_secs(300));
        assert_eq!(c.limits, DecodeLimits::default());
        assert!(matches!(c.compression, Compression::Auto { .. }));
    }

    #[test]
    fn message_size_is_bounded_by_sns() {
        let mut c = config();
        c.max_message_bytes = SNS_MAX_MESSAGE_BYTES;
        c.validate().unwrap();
        c.max_message_bytes = SNS_MAX_MESSAGE_BYTES + 1;
        assert!(matches!(c.validate(), Err(ConfigError::MessageSize { .. })));
        c.max_message_bytes = 100;
        assert!(matches!(c.validate(), Err(ConfigError::MessageSize { .. })));
    }

    #[test]
    fn bad_tenants_are_refused() {
        let mut c = config();
        c.tenants.insert("acme", Tenant::new(Some(vec![]), vec![Vec::new()]));
        assert_eq!(c.validate(), Err(ConfigError::NoRegions("acme".into())));
        let mut c = config();
        assert!(!c.allow_unknown_tenants, "unknown tenants are refused by default");
        c.default_tenant = Some("ghost".into());
        assert_eq!(c.validate(), Err(ConfigError::UnknownDefaultTenant("ghost".into())));
        c.tenants.insert(
            "ghost",
            Tenant::new(Some(vec!["eu-west-1".into()]), vec![b"g:".to_vec()]),
        );
        c.validate().unwrap();
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = RetryPolicy::default();
        assert_eq!(r.backoff_cap(1), Duration::from_millis(50));
        assert_eq!(r.backoff_cap(2), Duration::from_millis(100));
        assert_eq!(r.backoff_cap(4), Duration::from_millis(400));
        assert_eq!(r.backoff_cap(40), Duration::from_secs(5));
    }
}
