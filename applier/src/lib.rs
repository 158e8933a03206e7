//! The regis applier: takes batches from a region's SQS queue and applies
//! them to that region's Redis.
//!
//! [`apply`] is the engine that talks to Redis (plain mode and versioned
//! last-writer-wins; [`apply::bookkeeping`] owns the layout of the version
//! bookkeeping the Lua script writes). [`records`] is the record handling
//! around it: decode, mode check, one pipelined apply per invocation, one
//! [`records::Outcome`] per record, permanent failures parked in the DLQ
//! ([`dlq`]) and reported to Sentry ([`report`]), CloudWatch embedded
//! metrics ([`metrics`]). [`config`] is the one configuration type and
//! [`Applier`] the one assembly of all of it, used by the Lambda function
//! (the `regis-lambda` binary) and the long-polling worker (`regis
//! worker`) alike. [`snapshot`] reads a Redis key space page by page, for
//! the operator's `verify` and `resync` and for tests.
#![warn(missing_docs)]

mod applier;
pub mod apply;
pub mod config;
pub mod dlq;
pub mod metrics;
pub mod records;
pub mod report;
pub mod snapshot;
pub mod telemetry;

pub use applier::Applier;
pub use config::{ApplierConfig, ConfigError};
