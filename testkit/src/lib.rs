//! Test helpers for regis.
//!
//! Integration tests run against real processes, never mocks of them:
//! [`RedisServer`] spawns a real `redis-server` on a free port and kills it
//! on drop (as redis-rs's own test support does), [`RedisCluster`] three of
//! them in cluster mode, either of them on Redis or Valkey ([`ServerEngine`];
//! [`on_each_engine!`] runs a test on both), and [`localstack`] builds SDK clients for the
//! LocalStack endpoint with unique resource names per test (as vector's
//! SNS/SQS sink tests do). Unit tests of the logic around queue calls use
//! [`MemoryQueue`], an in-memory implementation of the shared queue client
//! trait; [`batches`] builds encoded test batches.
#![warn(missing_docs)]

pub mod batches;
pub mod localstack;
mod memory_queue;
mod redis_server;

pub use memory_queue::{MemoryQueue, StoredMessage, memory_arn};
pub use redis_server::{RedisCluster, RedisServer, ServerEngine, VALKEY_SERVER_VAR};
