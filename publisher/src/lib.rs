//! What a service calls instead of writing Redis itself.
//!
//! A [`Publisher`] stamps each idempotent [`Command`] with a hybrid-clock
//! version, packs commands into one batch per tenant, compresses and
//! optionally signs each batch, and publishes it to an SNS topic, from
//! which every region's queue receives it. It is cheap to clone and safe to
//! share across tasks.
//!
//! ```no_run
//! use std::time::Duration;
//! use regis_publisher::{AwsSns, Command, Publisher, PublisherConfig, TenantRegistry};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sdk = aws_config::load_from_env().await;
//! let mut config = PublisherConfig::new("arn:aws:sns:ap-southeast-1:123456789012:regis", "ap-southeast-1", 1);
//! config.default_tenant = Some("hotel-sg".into());
//! // The registry the appliers enforce (REGIS_TENANTS), and the tenant's key from Secrets Manager.
//! config.tenants = TenantRegistry::parse(
//!     r#"{"hotel-sg": {"regions": ["ap-southeast-1", "ap-south-1"], "prefixes": ["room:", "session:"]}}"#,
//! )?;
//! let secrets = regis_publisher::secrets_manager(&sdk);
//! config.signing_key = Some(regis_publisher::load_signing_key(&secrets, "regis/signing/hotel-sg").await?);
//! let publisher = Publisher::new(config, AwsSns::from_sdk_config(&sdk))?;
//!
//! // Returns as soon as the command is in a batch.
//! let receipt = publisher.publish(Command::Del { key: b"room:12".to_vec() }).await?;
//! publisher.publish(publisher.set_ex("session:9", "token", Duration::from_secs(60))).await?;
//! publisher.publish_line("HSET room:7 status clean").await?;
//! assert!(publisher.publish_line("INCR visits").await.is_err()); // not idempotent
//!
//! receipt.await?; // SNS has the batch holding the DEL
//! publisher.shutdown().await?; // delivers everything else
//! # Ok(()) }
//! ```
//!
//! # Batching
//!
//! A tenant's batch is closed when the next command would make its message
//! larger than [`PublisherConfig::max_message_bytes`] (attributes included),
//! or [`PublisherConfig::linger`] after its first command. With compression
//! the final size is estimated from the compression ratio seen so far; a
//! batch that still encodes too large is split, so no message is ever over
//! the limit. A single command too large for any message is refused by
//! `publish` ([`PublishError::TooLarge`]).
//!
//! # Delivery
//!
//! Several ready messages go out in one `PublishBatch` request, a lone one
//! with `Publish`. Throttling, server errors, timeouts and connection
//! errors are retried with exponential backoff and full jitter until
//! [`RetryPolicy::deadline`]; requests SNS rejects as wrong are not. A
//! message given up resolves its commands' [`Receipt`]s to a
//! [`DeliveryError`] (batch id, tenant, keys) and is counted in [`Stats`].
//!
//! Commands accepted but not yet acknowledged are capped at
//! [`PublisherConfig::max_buffered_bytes`]: when full, `publish` waits, or
//! fails at once with [`Overflow::FailFast`].
//!
//! # Clocks and limits
//!
//! Versions come from a hybrid logical clock over the injectable [`Clock`].
//! When the wall clock steps back by more than
//! [`PublisherConfig::max_clock_skew`] (default 300 s, the appliers' own
//! bound), `publish` refuses new commands with [`PublishError::Clock`]
//! (retryable, counted in [`Stats::clock_refusals`]) until the wall clock has
//! caught up, rather than stamp versions that every applier would refuse as
//! too far ahead. Keys in the appliers' reserved namespace (`regis:`, except
//! the lag probes `regis:probe:`) are refused ([`PublishError::ReservedKey`]),
//! and so are commands over the appliers' decode limits
//! ([`PublishError::OverLimit`]) and values Redis would refuse
//! ([`PublishError::Invalid`]). The wire format is specified in
//! `docs/WIRE.md`.
//!
//! # Tenants
//!
//! Every message carries the attributes `tenant`, `origin` and `regions`
//! (the tenant's allowed regions, `["*"]` when unrestricted), which the
//! regional subscriptions' filter policies match. A tenant may be limited to
//! a key prefix. Tenants not in [`PublisherConfig::tenants`] are unrestricted
//! unless [`PublisherConfig::allow_unknown_tenants`] is false.
#![warn(missing_docs)]

mod aws;
mod batch;
mod config;
mod error;
mod memory;
mod publisher;
mod receipt;
mod sender;
mod sns;
mod stats;

pub use aws::{ATTEMPT_TIMEOUT, AwsSns};
pub use batch::{MAX_BATCH_COMMANDS, MAX_BATCH_ELEMENTS, MAX_BATCH_JSON_BYTES};
pub use config::{MIN_MESSAGE_BYTES, Overflow, PublisherConfig, RetryPolicy};
pub use error::{ConfigError, DeliveryError, FailureCause, FlushError, PublishError, SnsError};
pub use memory::{EntryFault, MemorySns, RecordedMessage};
pub use publisher::{Publisher, PublisherBuilder};
pub use receipt::Receipt;
pub use regis_aws::clock::{Clock, ManualClock, SystemClock};
pub use regis_aws::secrets::{SecretError, SecretSource, load_signing_key, secrets_manager};
pub use regis_wire::{Command, Compression, Mode, SigningKey, Tenant, TenantRegistry};
pub use sns::{
    Attribute, AttributeValue, BatchOutcome, EntryFailure, OutgoingMessage, PUBLISH_BATCH_MAX_ENTRIES, SnsClient,
    message_size, routing_attributes,
};
pub use stats::Stats;
