//! The AWS plumbing every regis component shares.
//!
//! * [`sdk`]: one way to build the AWS SDK configuration, for the Lambda,
//!   the worker, the operator's tool, the tests and the benchmarks;
//! * [`queue`]: the SQS queue client behind the small [`QueueClient`]
//!   trait (receive, send, delete and change visibility, in batches), so
//!   the worker's receive loop, DLQ parking, `regis dlq` and `regis resync`
//!   are written once against the trait and unit-tested on an in-memory
//!   queue (`regis-testkit`'s `MemoryQueue`);
//! * [`deployment`]: the description of a deployment (`.regis/env.json`),
//!   read one way by the operator's tool, the demo and the tests;
//! * [`batch`]: the limits of SQS and SNS batch calls, as named constants
//!   citing their AWS documents, and the one planner that splits messages
//!   into calls within them;
//! * [`secrets`]: signing keys kept in AWS Secrets Manager.
#![warn(missing_docs)]

pub mod batch;
pub mod clock;
pub mod deployment;
pub mod queue;
pub mod sdk;
pub mod secrets;

pub use batch::{BATCH_MAX_BYTES, BATCH_MAX_ENTRIES, plan_batches};
pub use queue::{
    Attribute, MoveTask, OutgoingMessage, QueueAttribute, QueueClient, QueueError, ReceiveOptions, ReceivedMessage,
    SqsQueue,
};
