//! Counters the caller can read while the publisher runs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a publisher's counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Commands accepted by `publish`.
    pub commands: u64,
    /// Batches closed (by size, linger, flush or shutdown).
    pub batches: u64,
    /// SNS messages encoded (a batch that had to be split counts each part).
    pub messages: u64,
    /// Batches that were split because their encoded size was over the limit.
    pub splits: u64,
    /// Bytes of command JSON encoded, before compression.
    pub uncompressed_bytes: u64,
    /// Bytes of message bodies encoded, after compression.
    pub message_bytes: u64,
    /// Messages SNS acknowledged.
    pub messages_published: u64,
    /// `Publish` requests made (retries included).
    pub publish_requests: u64,
    /// `PublishBatch` requests made (retries included).
    pub publish_batch_requests: u64,
    /// Requests or entries sent again after a retryable failure.
    pub retries: u64,
    /// Messages given up (rejected, or still failing at the deadline).
    pub failed_messages: u64,
    /// Commands in those messages.
    pub failed_commands: u64,
    /// Commands refused because the wall clock had stepped back by more
    /// than `max_clock_skew` (see [`crate::PublishError::Clock`]).
    pub clock_refusals: u64,
    /// Bytes of commands accepted and not yet acknowledged, now.
    pub buffered_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commands: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) splits: AtomicU64,
    pub(crate) uncompressed_bytes: AtomicU64,
    pub(crate) message_bytes: AtomicU64,
    pub(crate) messages_published: AtomicU64,
    pub(crate) publish_requests: AtomicU64,
    pub(crate) publish_batch_requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) failed_messages: AtomicU64,
    pub(crate) failed_commands: AtomicU64,
    pub(crate) clock_refusals: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, buffered_bytes: u64) -> Stats {
        Stats {
            commands: self.commands.load(Relaxed),
            batches: self.batches.load(Relaxed),
            messages: self.messages.load(Relaxed),
            splits: self.splits.load(Relaxed),
            uncompressed_bytes: self.uncompressed_bytes.load(Relaxed),
            message_bytes: self.message_bytes.load(Relaxed),
            messages_published: self.messages_published.load(Relaxed),
            publish_requests: self.publish_requests.load(Relaxed),
            publish_batch_requests: self.publish_batch_requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            failed_messages: self.failed_messages.load(Relaxed),
            failed_commands: self.failed_commands.load(Relaxed),
            clock_refusals: self.clock_refusals.load(Relaxed),
            buffered_bytes,
        }
    }
}
