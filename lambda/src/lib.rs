//! The regis applier: takes batches from a region's SQS queue and applies
//! them to that region's Redis.
//!
//! [`apply`] is the engine that talks to Redis (plain mode and versioned
//! last-writer-wins). [`records`] is the record handling around it: decode,
//! mode check, one pipelined apply per invocation, one [`records::Outcome`]
//! per record, permanent failures parked in the DLQ ([`dlq`]) and reported
//! to Sentry ([`report`]), CloudWatch embedded metrics ([`metrics`]). The
//! same library serves the Lambda function (the `regis-lambda` binary,
//! through [`handler`]) and the long-polling worker (`regis worker`).
#![warn(missing_docs)]

pub mod apply;
pub mod config;
pub mod dlq;
pub mod handler;
pub mod metrics;
pub mod records;
pub mod report;
