//! Limits of the SQS and SNS batch calls, and the planner that respects them.
//!
//! `SendMessageBatch` (SQS) and `PublishBatch` (SNS) share their limits, so
//! one planner serves DLQ parking, `regis dlq redrive`, `regis resync` and
//! the publisher's batched publishing.

use std::ops::Range;

/// Most entries in one `SendMessageBatch`, `DeleteMessageBatch`,
/// `ChangeMessageVisibilityBatch` or SNS `PublishBatch` call.
/// Source: Amazon SQS API Reference, `SendMessageBatch` ("up to 10
/// messages"); Amazon SNS API Reference, `PublishBatch` ("up to 10").
pub const BATCH_MAX_ENTRIES: usize = 10;

/// Most bytes in one `SendMessageBatch` (or `PublishBatch`) call, bodies
/// and attributes of all entries together. Source: Amazon SQS API
/// Reference, `SendMessageBatch` ("the sum of all the messages' lengths"
/// may not exceed 256 KiB); Amazon SNS API Reference, `PublishBatch`.
pub const BATCH_MAX_BYTES: usize = 256 * 1024;

/// Most messages one `ReceiveMessage` call returns.
/// Source: Amazon SQS API Reference, `ReceiveMessage`,
/// `MaxNumberOfMessages` ("Valid values: 1 to 10").
pub const RECEIVE_MAX_MESSAGES: u8 = 10;

/// Longest long poll. Source: Amazon SQS API Reference, `ReceiveMessage`,
/// `WaitTimeSeconds` (at most 20 seconds).
pub const RECEIVE_MAX_WAIT_SECONDS: u8 = 20;

/// Splits messages of the given sizes (body and attributes, in bytes) into
/// consecutive index ranges that each fit one batch call: at most
/// [`BATCH_MAX_ENTRIES`] entries and [`BATCH_MAX_BYTES`] together. A
/// message too big to share a call gets one of its own (the service then
/// decides).
pub fn plan_batches(sizes: impl IntoIterator<Item = usize>) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes, mut count) = (0, 0, 0);
    for (i, size) in sizes.into_iter().enumerate() {
        let full = i - start == BATCH_MAX_ENTRIES || bytes + size > BATCH_MAX_BYTES;
        if i > start && full {
            groups.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
        count = i + 1;
    }
    if start < count {
        groups.push(start..count);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hold_at_most_ten_entries() {
        assert_eq!(plan_batches([10; 23]), vec![0..10, 10..20, 20..23]);
        assert!(plan_batches([]).is_empty());
    }

    #[test]
    fn groups_hold_at_most_256_kib() {
        assert_eq!(plan_batches([100 * 1024; 5]), vec![0..2, 2..4, 4..5]);
        // Too big to share a call: sent alone rather than dropped.
        assert_eq!(plan_batches([10, 300 * 1024, 10]), vec![0..1, 1..2, 2..3]);
        // Exactly at the limit still fits.
        assert_eq!(plan_batches([128 * 1024, 128 * 1024]), vec![0..2]);
    }
}
