//! Parking permanent failures in the dead-letter queue.
//!
//! The DLQ copy of a record is its body unchanged, with the message
//! attributes `docs/ARCHITECTURE.md` lists: `reason`, `detail`,
//! `source-queue`, `message-id` and `failed-at` (epoch ms), so `regis dlq`
//! can group by reason and an operator can redrive after a fix. Copies are
//! sent with `SendMessageBatch`, and every entry's result is checked: a
//! batch call can succeed while some of its entries fail.

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

/// Most entries in one `SendMessageBatch` call.
/// Source: Amazon SQS API Reference, `SendMessageBatch` ("up to 10 messages").
pub const SEND_MESSAGE_BATCH_MAX_ENTRIES: usize = 10;

/// Most bytes in one `SendMessageBatch` call, bodies and attributes of all
/// entries together. Source: Amazon SQS API Reference, `SendMessageBatch`
/// ("the sum of all the messages' lengths" may not exceed 256 KiB).
pub const SEND_MESSAGE_BATCH_MAX_BYTES: usize = 256 * 1024;

/// The `detail` attribute is cut to this many characters: it is for a
/// human reading `regis dlq show`, and must leave room for the body.
pub const DETAIL_MAX_CHARS: usize = 1024;

/// A record to park.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original message body, unchanged (so it can be redriven).
    pub body: String,
    /// Stable reason code.
    pub reason: String,
    /// Error text.
    pub detail: String,
    /// The queue the record came from.
    pub source_queue: String,
    /// The original SQS message id.
    pub message_id: String,
    /// When it failed, epoch milliseconds.
    pub failed_at_ms: u64,
}

impl DeadLetter {
    /// The message attributes of the DLQ copy as (name, SQS data type,
    /// value), empty values left out (SQS refuses them). Values are cleaned
    /// of characters SQS does not accept in attributes.
    pub fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        let detail: String = clean(&self.detail).chars().take(DETAIL_MAX_CHARS).collect();
        [
            ("reason", "String", clean(&self.reason)),
            ("detail", "String", detail),
            ("source-queue", "String", clean(&self.source_queue)),
            ("message-id", "String", clean(&self.message_id)),
            ("failed-at", "Number", self.failed_at_ms.to_string()),
        ]
        .into_iter()
        .filter(|(_, _, value)| !value.is_empty())
        .collect()
    }

    /// Size as SQS counts it: body plus each attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes()
                .iter()
                .map(|(n, t, v)| n.len() + t.len() + v.len())
                .sum::<usize>()
    }
}

/// Replaces characters outside what SQS allows in message text (XML 1.0
/// characters: tab, newline, carriage return, U+0020..U+D7FF,
/// U+E000..U+FFFD, U+10000..) with U+FFFD.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => c,
            _ => '\u{FFFD}',
        })
        .collect()
}

/// Splits letters into consecutive groups that each fit one
/// `SendMessageBatch` call. A letter too big to share a call gets one of
/// its own (SQS then decides).
pub fn plan_batches(letters: &[DeadLetter]) -> Vec<std::ops::Range<usize>> {
    plan_send_batches(letters.iter().map(DeadLetter::size))
}

/// Splits messages of the given sizes (body and attributes, in bytes) into
/// consecutive index ranges that each fit one `SendMessageBatch` call (or
/// SNS `PublishBatch`, which has the same limits): at most
/// [`SEND_MESSAGE_BATCH_MAX_ENTRIES`] entries and
/// [`SEND_MESSAGE_BATCH_MAX_BYTES`] together. A message too big to share a
/// call gets one of its own.
pub fn plan_send_batches(sizes: impl IntoIterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes, mut count) = (0, 0, 0);
    for (i, size) in sizes.into_iter().enumerate() {
        let full = i - start == SEND_MESSAGE_BATCH_MAX_ENTRIES || bytes + size > SEND_MESSAGE_BATCH_MAX_BYTES;
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

/// Why a letter could not be parked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DlqError {
    /// The call itself failed (network, throttling, credentials, ...).
    #[error("SendMessageBatch failed: {0}")]
    Call(String),
    /// SQS refused this entry.
    #[error("SQS refused the DLQ copy: {code}: {message}")]
    Refused {
        /// SQS error code.
        code: String,
        /// SQS error message.
        message: String,
        /// True when SQS blames the request (retrying the same entry will
        /// fail again).
        sender_fault: bool,
    },
    /// SQS answered without a result for this entry.
    #[error("SQS gave no result for the DLQ copy")]
    NoResult,
    /// The entry could not be built.
    #[error("invalid DLQ entry: {0}")]
    Invalid(String),
}

impl DlqError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Call(_) | Self::NoResult => true,
            Self::Refused { sender_fault, .. } => !sender_fault,
            Self::Invalid(_) => false,
        }
    }
}

/// Where permanent failures go.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Parks `letters`; one result per letter, in order.
    async fn park(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>>;
}

/// The DLQ as an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// Parks in the queue at `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    async fn send(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        let mut entries = Vec::with_capacity(letters.len());
        let mut results: Vec<Option<Result<(), DlqError>>> = vec![None; letters.len()];
        for (i, letter) in letters.iter().enumerate() {
            match entry(i, letter) {
                Ok(entry) => entries.push(entry),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !entries.is_empty() {
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    for ok in output.successful() {
                        if let Some(slot) = ok.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                            *slot = Some(Ok(()));
                        }
                    }
                    for failed in output.failed() {
                        if let Some(slot) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                            *slot = Some(Err(DlqError::Refused {
                                code: failed.code().to_owned(),
                                message: failed.message().unwrap_or_default().to_owned(),
                                sender_fault: failed.sender_fault(),
                            }));
                        }
                    }
                }
                Err(error) => {
                    let text = aws_sdk_sqs::error::DisplayErrorContext(&error).to_string();
                    for slot in results.iter_mut().filter(|s| s.is_none()) {
                        *slot = Some(Err(DlqError::Call(text.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(DlqError::NoResult)))
            .collect()
    }
}

/// One `SendMessageBatch` entry; its id is the letter's index in its group.
fn entry(index: usize, letter: &DeadLetter) -> Result<SendMessageBatchRequestEntry, DlqError> {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&letter.body);
    for (name, data_type, value) in letter.attributes() {
        let value = MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .map_err(|e| DlqError::Invalid(e.to_string()))?;
        builder = builder.message_attributes(name, value);
    }
    builder.build().map_err(|e| DlqError::Invalid(e.to_string()))
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn park(&self, letters: &[DeadLetter]) -> Vec<Result<(), DlqError>> {
        let groups = plan_batches(letters);
        let sends = groups.iter().map(|group| self.send(&letters[group.clone()]));
        futures::future::join_all(sends).await.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(body_len: usize) -> DeadLetter {
        DeadLetter {
            body: "x".repeat(body_len),
            reason: "malformed".into(),
            detail: "malformed batch: expected value".into(),
            source_queue: "arn:aws:sqs:eu-west-1:000000000000:q".into(),
            message_id: "m-1".into(),
            failed_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn attributes_follow_the_architecture_contract() {
        let attrs = letter(3).attributes();
        let names: Vec<_> = attrs.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["reason", "detail", "source-queue", "message-id", "failed-at"]);
        assert_eq!(attrs[4], ("failed-at", "Number", "1700000000000".to_owned()));
    }

    #[test]
    fn attributes_are_cleaned_cut_and_never_empty() {
        let mut l = letter(3);
        l.detail = format!("unknown command \"\u{0}\u{1}\" {}", "y".repeat(5000));
        l.source_queue = String::new();
        let attrs = l.attributes();
        assert!(attrs.iter().all(|(n, _, _)| *n != "source-queue"));
        let detail = &attrs.iter().find(|(n, _, _)| *n == "detail").unwrap().2;
        assert!(detail.starts_with("unknown command \"\u{FFFD}\u{FFFD}\""));
        assert_eq!(detail.chars().count(), DETAIL_MAX_CHARS);
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        let letters = vec![letter(10); 23];
        assert_eq!(plan_batches(&letters), vec![0..10, 10..20, 20..23]);
        assert!(plan_batches(&[]).is_empty());
    }

    #[test]
    fn batches_hold_at_most_256_kib() {
        let letters = vec![letter(100 * 1024); 5];
        assert_eq!(plan_batches(&letters), vec![0..2, 2..4, 4..5]);
        // Too big to share a call: sent alone rather than dropped.
        let letters = vec![letter(10), letter(300 * 1024), letter(10)];
        assert_eq!(plan_batches(&letters), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn refusals_by_the_sender_are_not_retryable() {
        let refused = |sender_fault| DlqError::Refused {
            code: "X".into(),
            message: String::new(),
            sender_fault,
        };
        assert!(!refused(true).is_retryable());
        assert!(refused(false).is_retryable());
        assert!(DlqError::Call("timeout".into()).is_retryable());
    }
}
