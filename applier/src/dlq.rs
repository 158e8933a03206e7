//! Parking permanent failures in the dead-letter queue.
//!
//! The DLQ copy of a record is its body unchanged, with the message
//! attributes `docs/ARCHITECTURE.md` lists: `reason`, `detail`,
//! `source-queue`, `message-id` and `failed-at` (epoch ms), so `regis dlq`
//! can group by reason and an operator can redrive after a fix. Copies are
//! sent with `SendMessageBatch`, and every entry's result is checked: a
//! batch call can succeed while some of its entries fail.

use std::sync::Arc;

use regis_aws::{Attribute, OutgoingMessage, QueueClient, QueueError};

/// The `detail` attribute is cut to this many bytes (on a character
/// boundary): it is for a human reading `regis dlq show`, and must leave
/// room for the body.
pub const DETAIL_MAX_BYTES: usize = 1024;

/// `source-queue` and `message-id` are cut to this many bytes (an ARN or
/// URL and an SQS message id are far shorter; the cut only bounds the
/// worst case).
pub const NAME_MAX_BYTES: usize = 256;

/// The most bytes the DLQ attributes of one copy take, names, data types
/// and values together, as SQS counts them against `MaximumMessageSize`.
/// A DLQ whose maximum message size is at least the apply queue's plus this
/// always takes the copy of a record at the apply queue's limit (the body is
/// kept unchanged so it can be redriven). The Terraform region module sizes
/// the DLQ by this rule.
pub const ATTRIBUTES_MAX_BYTES: usize = 2048;

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
    /// Every value is cut so that all of them together stay within
    /// [`ATTRIBUTES_MAX_BYTES`].
    pub fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        [
            ("reason", "String", cut(clean(&self.reason), NAME_MAX_BYTES)),
            ("detail", "String", cut(clean(&self.detail), DETAIL_MAX_BYTES)),
            ("source-queue", "String", cut(clean(&self.source_queue), NAME_MAX_BYTES)),
            ("message-id", "String", cut(clean(&self.message_id), NAME_MAX_BYTES)),
            ("failed-at", "Number", self.failed_at_ms.to_string()),
        ]
        .into_iter()
        .filter(|(_, _, value)| !value.is_empty())
        .collect()
    }

    /// The DLQ copy as a message to send.
    pub fn message(&self) -> OutgoingMessage {
        OutgoingMessage {
            body: self.body.clone(),
            attributes: self
                .attributes()
                .into_iter()
                .map(|(name, data_type, value)| {
                    (
                        name.to_owned(),
                        Attribute {
                            data_type: data_type.to_owned(),
                            value,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Size as SQS counts it: body plus each attribute's name, type and value.
    pub fn size(&self) -> usize {
        self.message().size()
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
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

/// The dead-letter queue, where permanent failures are parked.
///
/// Parking goes through the shared [`QueueClient`], so the same code parks
/// in SQS and, in tests, in an in-memory queue.
#[derive(Clone)]
pub struct DeadLetterQueue {
    client: Arc<dyn QueueClient>,
    url: String,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl DeadLetterQueue {
    /// Parks in the queue at `url` through `client`.
    pub fn new(client: Arc<dyn QueueClient>, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Parks `letters` (as few `SendMessageBatch` calls as the limits
    /// allow); one result per letter, in order.
    pub async fn park(&self, letters: &[DeadLetter]) -> Vec<Result<(), QueueError>> {
        let messages: Vec<OutgoingMessage> = letters.iter().map(DeadLetter::message).collect();
        self.client.send_all(&self.url, &messages).await
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
        assert!(detail.len() <= DETAIL_MAX_BYTES && detail.len() > DETAIL_MAX_BYTES - 4);
    }

    #[test]
    fn attributes_never_exceed_their_budget() {
        // Four-byte characters everywhere, far over every cut.
        let wide = "\u{1F600}".repeat(10_000);
        let l = DeadLetter {
            body: String::new(),
            reason: wide.clone(),
            detail: wide.clone(),
            source_queue: wide.clone(),
            message_id: wide,
            failed_at_ms: u64::MAX,
        };
        assert!(l.size() <= ATTRIBUTES_MAX_BYTES, "{}", l.size());
        assert!(
            l.attributes()
                .iter()
                .all(|(_, _, v)| std::str::from_utf8(v.as_bytes()).is_ok())
        );
    }

    #[tokio::test]
    async fn a_body_at_the_queue_limit_is_parked_in_a_dlq_sized_by_the_rule() {
        const QUEUE_MAX: usize = 256 * 1024;
        let mut l = letter(QUEUE_MAX);
        l.detail = "x".repeat(100_000);
        let queue = Arc::new(regis_testkit::MemoryQueue::new());
        let max = (QUEUE_MAX + ATTRIBUTES_MAX_BYTES).to_string();
        queue.set_attribute("dlq", regis_aws::QueueAttribute::MaximumMessageSize, max);
        let results = DeadLetterQueue::new(queue.clone(), "dlq").park(&[l.clone()]).await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert_eq!(queue.messages("dlq")[0].body.len(), QUEUE_MAX, "the body is kept whole");
        // A DLQ only as large as the queue refuses it: the rule matters.
        queue.set_attribute(
            "small",
            regis_aws::QueueAttribute::MaximumMessageSize,
            QUEUE_MAX.to_string(),
        );
        let results = DeadLetterQueue::new(queue.clone(), "small").park(&[l]).await;
        assert!(results[0].is_err());
    }

    #[tokio::test]
    async fn letters_are_parked_with_their_attributes_in_order() {
        let queue = Arc::new(regis_testkit::MemoryQueue::new());
        let dlq = DeadLetterQueue::new(queue.clone(), "dlq");
        let letters: Vec<DeadLetter> = (0..23).map(|i| letter(i + 1)).collect();
        let results = dlq.park(&letters).await;
        assert_eq!(results.len(), 23);
        assert!(results.iter().all(Result::is_ok));
        let parked = queue.messages("dlq");
        assert_eq!(parked.len(), 23);
        assert_eq!(parked[4].body.len(), 5);
        assert_eq!(parked[0].attributes["reason"].value, "malformed");
        assert_eq!(
            parked[0].attributes["failed-at"],
            Attribute::number(1_700_000_000_000u64)
        );
        assert_eq!(queue.send_calls("dlq"), 3, "at most ten letters per call");
    }

    #[tokio::test]
    async fn a_dlq_outage_fails_every_letter_retryably() {
        let queue = Arc::new(regis_testkit::MemoryQueue::new());
        queue.fail_calls(true);
        let results = DeadLetterQueue::new(queue.clone(), "dlq")
            .park(&[letter(3), letter(4)])
            .await;
        assert!(results.iter().all(|r| r.as_ref().is_err_and(QueueError::is_retryable)));
        assert!(queue.messages("dlq").is_empty());
    }
}
