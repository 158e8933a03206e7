//! One SQS queue client behind a small trait.
//!
//! The worker's receive loop, DLQ parking, `regis dlq` and `regis resync`
//! need the same few calls: receive, send, delete and change visibility, in
//! batches, plus a queue attribute and (for a redrive) SQS's move task.
//! [`QueueClient`] names exactly those, with plain types in and out, so the
//! logic around them is written once and unit-tested on an in-memory queue
//! (`regis-testkit`'s `MemoryQueue`); [`SqsQueue`] is the SDK implementation.
//!
//! The `*_batch` methods are one API call each (at most
//! [`BATCH_MAX_ENTRIES`] entries); the provided `*_all` methods split any
//! number of entries into calls with [`plan_batches`] and return one result
//! per entry, in order: a batch call can succeed while some of its entries
//! fail, and every caller must know which.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::batch::{BATCH_MAX_ENTRIES, RECEIVE_MAX_MESSAGES, RECEIVE_MAX_WAIT_SECONDS, plan_batches};

/// A message attribute: SQS data type (`String`, `Number`, ...) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `String`, `Number` or `String.Array` (as text).
    pub data_type: String,
    /// The value, as text.
    pub value: String,
}

impl Attribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".into(),
            value: value.into(),
        }
    }

    /// A `Number` attribute.
    pub fn number(value: impl std::fmt::Display) -> Self {
        Self {
            data_type: "Number".into(),
            value: value.to_string(),
        }
    }
}

/// A message as `ReceiveMessage` returned it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedMessage {
    /// The SQS message id.
    pub message_id: String,
    /// The handle that deletes it or changes its visibility (valid for this receive only).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Its message attributes, by name.
    pub attributes: BTreeMap<String, Attribute>,
    /// `ApproximateReceiveCount`: how often SQS has delivered it (1 the first time).
    pub receive_count: u32,
    /// `SentTimestamp`: when SQS received it, epoch ms.
    pub sent_at_ms: Option<u64>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    /// The body.
    pub body: String,
    /// Message attributes, by name (empty values are not allowed by SQS).
    pub attributes: BTreeMap<String, Attribute>,
}

impl OutgoingMessage {
    /// Size as SQS counts it against its limits: the body plus each
    /// attribute's name, data type and value.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(name, a)| name.len() + a.data_type.len() + a.value.len())
                .sum::<usize>()
    }
}

/// How to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// At most this many messages, 1 to [`RECEIVE_MAX_MESSAGES`].
    pub max_messages: u8,
    /// Long-poll wait, 0 to [`RECEIVE_MAX_WAIT_SECONDS`].
    pub wait_seconds: u8,
    /// Visibility timeout for what is received; `None`: the queue's own.
    pub visibility_timeout: Option<u32>,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            max_messages: RECEIVE_MAX_MESSAGES,
            wait_seconds: RECEIVE_MAX_WAIT_SECONDS,
            visibility_timeout: None,
        }
    }
}

/// The queue attributes regis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueAttribute {
    /// `VisibilityTimeout`, seconds.
    VisibilityTimeout,
    /// `QueueArn`.
    QueueArn,
    /// `ApproximateNumberOfMessages` (visible).
    ApproximateNumberOfMessages,
    /// `MaximumMessageSize`, bytes.
    MaximumMessageSize,
    /// `MessageRetentionPeriod`, seconds.
    MessageRetentionPeriod,
}

impl QueueAttribute {
    fn sdk(self) -> QueueAttributeName {
        match self {
            Self::VisibilityTimeout => QueueAttributeName::VisibilityTimeout,
            Self::QueueArn => QueueAttributeName::QueueArn,
            Self::ApproximateNumberOfMessages => QueueAttributeName::ApproximateNumberOfMessages,
            Self::MaximumMessageSize => QueueAttributeName::MaximumMessageSize,
            Self::MessageRetentionPeriod => QueueAttributeName::MessageRetentionPeriod,
        }
    }
}

/// The state of a move task (`ListMessageMoveTasks`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MoveTask {
    /// `RUNNING`, `COMPLETED`, `CANCELLING`, `CANCELLED` or `FAILED`.
    pub status: String,
    /// Messages moved so far.
    pub moved: u64,
    /// Why it failed, when it did.
    pub failure_reason: Option<String>,
}

impl MoveTask {
    /// Whether the task has ended, one way or another.
    pub fn has_ended(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "CANCELLED" | "FAILED")
    }
}

/// Why a queue call, or one entry of a batch call, failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The call itself failed (network, throttling, credentials, a missing
    /// queue, ...). The text is the SDK's whole error chain; the SDK error
    /// itself is the source.
    #[error("{operation} failed: {message}")]
    Call {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error with its causes, as text.
        message: String,
        /// The SDK's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// SQS refused this entry of a batch call.
    #[error("SQS refused the entry: {code}: {message}")]
    Refused {
        /// SQS error code.
        code: String,
        /// SQS error message.
        message: String,
        /// True when SQS blames the request (retrying the same entry fails again).
        sender_fault: bool,
    },
    /// SQS answered without a result for this entry.
    #[error("SQS gave no result for the entry")]
    NoResult,
    /// The entry could not be built (an attribute SQS would refuse).
    #[error("invalid entry: {0}")]
    Invalid(String),
    /// The call is not available here (an emulator without move tasks).
    #[error("{0} is not available")]
    Unsupported(&'static str),
}

impl QueueError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Call { .. } | Self::NoResult => true,
            Self::Refused { sender_fault, .. } => !sender_fault,
            Self::Invalid(_) | Self::Unsupported(_) => false,
        }
    }
}

/// The SQS calls regis makes, one queue URL per call.
#[async_trait]
pub trait QueueClient: Send + Sync {
    /// `ReceiveMessage`, with all message attributes, the receive count and
    /// the sent timestamp.
    async fn receive(&self, queue_url: &str, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// One `SendMessageBatch` call (at most [`BATCH_MAX_ENTRIES`] messages);
    /// one result per message, in order.
    async fn send_batch(&self, queue_url: &str, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>>;

    /// One `DeleteMessageBatch` call; one result per receipt handle.
    async fn delete_batch(&self, queue_url: &str, receipt_handles: &[&str]) -> Vec<Result<(), QueueError>>;

    /// One `ChangeMessageVisibilityBatch` call; one result per receipt handle.
    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        visibility_timeout: u32,
    ) -> Vec<Result<(), QueueError>>;

    /// One attribute of the queue (`GetQueueAttributes`).
    async fn attribute(&self, queue_url: &str, attribute: QueueAttribute) -> Result<Option<String>, QueueError>;

    /// `StartMessageMoveTask` from one queue (a DLQ) to another, by ARN;
    /// returns the task handle.
    async fn start_move_task(&self, source_arn: &str, destination_arn: &str) -> Result<String, QueueError>;

    /// The state of the move task `handle` from `source_arn`; `None` when
    /// SQS lists no such task.
    async fn move_task(&self, source_arn: &str, handle: &str) -> Result<Option<MoveTask>, QueueError>;

    /// Sends any number of messages in as few calls as the limits allow
    /// ([`plan_batches`]), the calls side by side; one result per message.
    async fn send_all(&self, queue_url: &str, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let groups = plan_batches(messages.iter().map(OutgoingMessage::size));
        let calls = groups.iter().map(|g| self.send_batch(queue_url, &messages[g.clone()]));
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }

    /// Deletes any number of messages, [`BATCH_MAX_ENTRIES`] per call; one
    /// result per handle.
    async fn delete_all(&self, queue_url: &str, receipt_handles: &[&str]) -> Vec<Result<(), QueueError>> {
        let calls = receipt_handles
            .chunks(BATCH_MAX_ENTRIES)
            .map(|chunk| self.delete_batch(queue_url, chunk));
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }

    /// Changes the visibility of any number of messages,
    /// [`BATCH_MAX_ENTRIES`] per call; one result per handle.
    async fn change_visibility_all(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        visibility_timeout: u32,
    ) -> Vec<Result<(), QueueError>> {
        let calls = receipt_handles
            .chunks(BATCH_MAX_ENTRIES)
            .map(|chunk| self.change_visibility_batch(queue_url, chunk, visibility_timeout));
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }
}

/// [`QueueClient`] on the AWS SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
}

impl SqsQueue {
    /// A client for the region and endpoint of `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
        }
    }

    /// Wraps an SDK client.
    pub fn from_client(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }
}

fn call_error<E, R>(operation: &'static str, error: aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    QueueError::Call {
        operation,
        message: DisplayErrorContext(&error).to_string(),
        source: Arc::new(error),
    }
}

/// Fills one result per entry from a batch call's answer: entry ids are
/// the indexes of the request.
fn entry_results<'a>(
    len: usize,
    successful: impl Iterator<Item = &'a str>,
    failed: impl Iterator<Item = (&'a str, QueueError)>,
) -> Vec<Result<(), QueueError>> {
    let mut results: Vec<Option<Result<(), QueueError>>> = vec![None; len];
    for id in successful {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
            *slot = Some(Ok(()));
        }
    }
    for (id, error) in failed {
        if let Some(slot) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
            *slot = Some(Err(error));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(QueueError::NoResult)))
        .collect()
}

/// The refused entries of a batch call's answer, by entry id.
fn refusals(failed: &[BatchResultErrorEntry]) -> impl Iterator<Item = (&str, QueueError)> {
    failed
        .iter()
        .map(|f| (f.id(), refused(f.code(), f.message(), f.sender_fault())))
}

fn refused(code: &str, message: Option<&str>, sender_fault: bool) -> QueueError {
    QueueError::Refused {
        code: code.to_owned(),
        message: message.unwrap_or_default().to_owned(),
        sender_fault,
    }
}

fn sdk_attributes(
    attributes: &BTreeMap<String, Attribute>,
) -> Result<Option<std::collections::HashMap<String, MessageAttributeValue>>, QueueError> {
    if attributes.is_empty() {
        return Ok(None);
    }
    attributes
        .iter()
        .map(|(name, a)| {
            MessageAttributeValue::builder()
                .data_type(&a.data_type)
                .string_value(&a.value)
                .build()
                .map(|v| (name.clone(), v))
                .map_err(|e| QueueError::Invalid(e.to_string()))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

#[async_trait]
impl QueueClient for SqsQueue {
    async fn receive(&self, queue_url: &str, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        let mut request = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::from(options.max_messages.clamp(1, RECEIVE_MAX_MESSAGES)))
            .wait_time_seconds(i32::from(options.wait_seconds.min(RECEIVE_MAX_WAIT_SECONDS)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All");
        if let Some(timeout) = options.visibility_timeout {
            request = request.visibility_timeout(i32::try_from(timeout).unwrap_or(i32::MAX));
        }
        let output = request.send().await.map_err(|e| call_error("ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let system = |name: MessageSystemAttributeName| m.attributes().and_then(|a| a.get(&name)).cloned();
                let receive_count = system(MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                let sent_at_ms = system(MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse().ok());
                let attributes = m
                    .message_attributes()
                    .map(|attrs| {
                        attrs
                            .iter()
                            .map(|(name, v)| {
                                (
                                    name.clone(),
                                    Attribute {
                                        data_type: v.data_type().to_owned(),
                                        value: v.string_value().unwrap_or_default().to_owned(),
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ReceivedMessage {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    // Moved, not copied: ten 1 MiB bodies are not held twice.
                    body: m.body.unwrap_or_default(),
                    attributes,
                    receive_count,
                    sent_at_ms,
                }
            })
            .collect())
    }

    async fn send_batch(&self, queue_url: &str, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let mut results: Vec<Option<Result<(), QueueError>>> = vec![None; messages.len()];
        let mut entries = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let entry = sdk_attributes(&message.attributes).and_then(|attributes| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body)
                    .set_message_attributes(attributes)
                    .build()
                    .map_err(|e| QueueError::Invalid(e.to_string()))
            });
            match entry {
                Ok(entry) => entries.push(entry),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if entries.is_empty() {
            return results
                .into_iter()
                .map(|r| r.unwrap_or(Err(QueueError::NoResult)))
                .collect();
        }
        let answered = match self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => entry_results(
                messages.len(),
                output.successful().iter().map(|s| s.id()),
                refusals(output.failed()),
            ),
            Err(e) => vec![Err(call_error("SendMessageBatch", e)); messages.len()],
        };
        results
            .into_iter()
            .zip(answered)
            .map(|(built, answer)| built.unwrap_or(answer))
            .collect()
    }

    async fn delete_batch(&self, queue_url: &str, receipt_handles: &[&str]) -> Vec<Result<(), QueueError>> {
        if receipt_handles.is_empty() {
            return Vec::new();
        }
        let entries: Result<Vec<_>, _> = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .map_err(|e| QueueError::Invalid(e.to_string()))
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return vec![Err(e); receipt_handles.len()],
        };
        match self
            .client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => entry_results(
                receipt_handles.len(),
                output.successful().iter().map(|s| s.id()),
                refusals(output.failed()),
            ),
            Err(e) => vec![Err(call_error("DeleteMessageBatch", e)); receipt_handles.len()],
        }
    }

    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        visibility_timeout: u32,
    ) -> Vec<Result<(), QueueError>> {
        if receipt_handles.is_empty() {
            return Vec::new();
        }
        let timeout = i32::try_from(visibility_timeout).unwrap_or(i32::MAX);
        let entries: Result<Vec<_>, _> = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(timeout)
                    .build()
                    .map_err(|e| QueueError::Invalid(e.to_string()))
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => return vec![Err(e); receipt_handles.len()],
        };
        match self
            .client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => entry_results(
                receipt_handles.len(),
                output.successful().iter().map(|s| s.id()),
                refusals(output.failed()),
            ),
            Err(e) => vec![Err(call_error("ChangeMessageVisibilityBatch", e)); receipt_handles.len()],
        }
    }

    async fn attribute(&self, queue_url: &str, attribute: QueueAttribute) -> Result<Option<String>, QueueError> {
        let name = attribute.sdk();
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| call_error("GetQueueAttributes", e))?;
        Ok(output.attributes.and_then(|mut a| a.remove(&name)))
    }

    async fn start_move_task(&self, source_arn: &str, destination_arn: &str) -> Result<String, QueueError> {
        let started = self
            .client
            .start_message_move_task()
            .source_arn(source_arn)
            .destination_arn(destination_arn)
            .send()
            .await
            .map_err(|e| call_error("StartMessageMoveTask", e))?;
        Ok(started.task_handle().unwrap_or_default().to_owned())
    }

    async fn move_task(&self, source_arn: &str, handle: &str) -> Result<Option<MoveTask>, QueueError> {
        let tasks = self
            .client
            .list_message_move_tasks()
            .source_arn(source_arn)
            .max_results(10)
            .send()
            .await
            .map_err(|e| call_error("ListMessageMoveTasks", e))?;
        // Ours by handle; entries that have ended may carry none, and the
        // newest one is then ours.
        let results = tasks.results();
        let ours = results
            .iter()
            .find(|t| t.task_handle() == Some(handle))
            .or_else(|| results.iter().max_by_key(|t| t.started_timestamp()));
        Ok(ours.map(|task| MoveTask {
            status: task.status().unwrap_or_default().to_owned(),
            moved: task.approximate_number_of_messages_moved().max(0) as u64,
            failure_reason: task.failure_reason().map(str::to_owned),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_body_and_attributes() {
        let mut message = OutgoingMessage {
            body: "abc".into(),
            ..Default::default()
        };
        message
            .attributes
            .insert("reason".into(), Attribute::string("malformed"));
        assert_eq!(message.size(), 3 + "reason".len() + "String".len() + "malformed".len());
    }

    #[test]
    fn entry_results_follow_request_order_and_flag_missing_answers() {
        let results = entry_results(
            3,
            ["2", "0"].into_iter(),
            std::iter::once(("1", refused("X", None, true))),
        );
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(QueueError::Refused { sender_fault: true, .. })
        ));
        assert!(results[2].is_ok());
        let results = entry_results(2, std::iter::empty(), std::iter::empty());
        assert!(results.iter().all(|r| matches!(r, Err(QueueError::NoResult))));
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn refusals_by_the_sender_are_not_retryable() {
        assert!(!refused("X", None, true).is_retryable());
        assert!(refused("X", None, false).is_retryable());
        assert!(QueueError::NoResult.is_retryable());
        assert!(!QueueError::Unsupported("StartMessageMoveTask").is_retryable());
    }

    #[test]
    fn move_tasks_end_three_ways() {
        for (status, ended) in [
            ("RUNNING", false),
            ("COMPLETED", true),
            ("FAILED", true),
            ("CANCELLED", true),
        ] {
            let task = MoveTask {
                status: status.into(),
                ..Default::default()
            };
            assert_eq!(task.has_ended(), ended, "{status}");
        }
    }
}
