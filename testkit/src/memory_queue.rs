//! An in-memory SQS for unit tests of the logic around queue calls.
//!
//! [`MemoryQueue`] implements [`QueueClient`] with SQS's visible rules:
//! a received message is invisible until its visibility is changed back to
//! 0, it is deleted, or the test says its timeout passed
//! ([`MemoryQueue::expire_visibility`]); a receive with visibility 0 only
//! looks. Queues spring into being on first use, by URL. Outages are
//! injected with [`MemoryQueue::fail_calls`]; a queue given a
//! `MaximumMessageSize` ([`MemoryQueue::set_attribute`]) refuses larger
//! messages, counting body and attributes as SQS does. Integration tests use the
//! real LocalStack instead ([`crate::localstack`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use regis_aws::{
    Attribute, BATCH_MAX_ENTRIES, MoveTask, OutgoingMessage, QueueAttribute, QueueClient, QueueError, ReceiveOptions,
    ReceivedMessage,
};

/// A message held by a [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its message id.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// Its message attributes.
    pub attributes: BTreeMap<String, Attribute>,
    /// How often it was received.
    pub receive_count: u32,
    /// The handle of its latest receive, while it is invisible.
    pub receipt_handle: Option<String>,
}

#[derive(Default)]
struct Queue {
    messages: Vec<StoredMessage>,
    send_calls: usize,
    delete_calls: usize,
    visibility_changes: Vec<u32>,
    attributes: HashMap<QueueAttribute, String>,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    failing: bool,
    next_id: u64,
    moves: HashMap<String, MoveTask>,
}

/// An in-memory [`QueueClient`]; see the module documentation.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue").finish_non_exhaustive()
    }
}

/// The ARN a [`MemoryQueue`] reports for a queue URL.
pub fn memory_arn(url: &str) -> String {
    format!("arn:aws:sqs:memory:000000000000:{url}")
}

impl MemoryQueue {
    /// An empty set of queues.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("memory queue lock"))
    }

    /// Puts a message in `url` as if SNS or a sender had (no call counted).
    pub fn push(&self, url: &str, message: OutgoingMessage) {
        self.with(|s| {
            s.next_id += 1;
            let message_id = format!("mem-{}", s.next_id);
            s.queues
                .entry(url.to_owned())
                .or_default()
                .messages
                .push(StoredMessage {
                    message_id,
                    body: message.body,
                    attributes: message.attributes,
                    receive_count: 0,
                    receipt_handle: None,
                });
        });
    }

    /// Every message of `url`, visible or not, oldest first.
    pub fn messages(&self, url: &str) -> Vec<StoredMessage> {
        self.with(|s| s.queues.get(url).map(|q| q.messages.clone()).unwrap_or_default())
    }

    /// How many messages of `url` a receive could return now.
    pub fn visible(&self, url: &str) -> usize {
        self.with(|s| {
            s.queues
                .get(url)
                .map(|q| q.messages.iter().filter(|m| m.receipt_handle.is_none()).count())
                .unwrap_or(0)
        })
    }

    /// While `failing`, every call fails as an outage would (retryable).
    pub fn fail_calls(&self, failing: bool) {
        self.with(|s| s.failing = failing);
    }

    /// `SendMessageBatch` calls made to `url`.
    pub fn send_calls(&self, url: &str) -> usize {
        self.with(|s| s.queues.get(url).map_or(0, |q| q.send_calls))
    }

    /// `DeleteMessageBatch` calls made to `url`.
    pub fn delete_calls(&self, url: &str) -> usize {
        self.with(|s| s.queues.get(url).map_or(0, |q| q.delete_calls))
    }

    /// The visibility timeouts set on messages of `url`, one per message and call.
    pub fn visibility_changes(&self, url: &str) -> Vec<u32> {
        self.with(|s| {
            s.queues
                .get(url)
                .map(|q| q.visibility_changes.clone())
                .unwrap_or_default()
        })
    }

    /// Every in-flight message of `url` becomes visible again, as when its
    /// visibility timeout passes.
    pub fn expire_visibility(&self, url: &str) {
        self.with(|s| {
            if let Some(q) = s.queues.get_mut(url) {
                for m in &mut q.messages {
                    m.receipt_handle = None;
                }
            }
        });
    }

    /// Sets an attribute that [`QueueClient::attribute`] reports for `url`.
    pub fn set_attribute(&self, url: &str, attribute: QueueAttribute, value: impl Into<String>) {
        self.with(|s| {
            s.queues
                .entry(url.to_owned())
                .or_default()
                .attributes
                .insert(attribute, value.into());
        });
    }

    fn outage(operation: &'static str) -> QueueError {
        let source: std::sync::Arc<dyn std::error::Error + Send + Sync> = std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        QueueError::Call {
            operation,
            message: "connection refused (injected)".into(),
            source,
        }
    }

    /// Applies `f` to the message holding `handle`, as one entry's result.
    fn by_handle(
        &self,
        url: &str,
        operation: &'static str,
        handles: &[&str],
        mut f: impl FnMut(&mut Queue, usize),
    ) -> Vec<Result<(), QueueError>> {
        self.with(|s| {
            if s.failing {
                return vec![Err(Self::outage(operation)); handles.len()];
            }
            let queue = s.queues.entry(url.to_owned()).or_default();
            handles
                .iter()
                .map(|handle| {
                    match queue
                        .messages
                        .iter()
                        .position(|m| m.receipt_handle.as_deref() == Some(*handle))
                    {
                        Some(index) => {
                            f(queue, index);
                            Ok(())
                        }
                        None => Err(QueueError::Refused {
                            code: "ReceiptHandleIsInvalid".into(),
                            message: format!("no in-flight message has the handle {handle}"),
                            sender_fault: true,
                        }),
                    }
                })
                .collect()
        })
    }
}

#[async_trait]
impl QueueClient for MemoryQueue {
    async fn receive(&self, queue_url: &str, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.with(|s| {
            if s.failing {
                return Err(Self::outage("ReceiveMessage"));
            }
            s.next_id += 1;
            let receive_id = s.next_id;
            let peek = options.visibility_timeout == Some(0);
            let queue = s.queues.entry(queue_url.to_owned()).or_default();
            let mut out = Vec::new();
            for (i, m) in queue.messages.iter_mut().enumerate() {
                if out.len() >= usize::from(options.max_messages.max(1)) {
                    break;
                }
                if m.receipt_handle.is_some() {
                    continue;
                }
                m.receive_count += 1;
                let handle = format!("rh-{receive_id}-{i}");
                if !peek {
                    m.receipt_handle = Some(handle.clone());
                }
                out.push(ReceivedMessage {
                    message_id: m.message_id.clone(),
                    receipt_handle: handle,
                    body: m.body.clone(),
                    attributes: m.attributes.clone(),
                    receive_count: m.receive_count,
                    sent_at_ms: None,
                });
            }
            Ok(out)
        })
    }

    async fn send_batch(&self, queue_url: &str, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        if self.with(|s| s.failing) {
            return vec![Err(Self::outage("SendMessageBatch")); messages.len()];
        }
        if messages.len() > BATCH_MAX_ENTRIES {
            return vec![
                Err(QueueError::Refused {
                    code: "TooManyEntriesInBatchRequest".into(),
                    message: format!("{} entries", messages.len()),
                    sender_fault: true,
                });
                messages.len()
            ];
        }
        let max_size = self.with(|s| {
            let queue = s.queues.entry(queue_url.to_owned()).or_default();
            queue.send_calls += 1;
            queue
                .attributes
                .get(&QueueAttribute::MaximumMessageSize)
                .and_then(|v| v.parse::<usize>().ok())
        });
        messages
            .iter()
            .map(|message| {
                if max_size.is_some_and(|max| message.size() > max) {
                    return Err(QueueError::Refused {
                        code: "InvalidParameterValue".into(),
                        message: format!("{} bytes is over MaximumMessageSize", message.size()),
                        sender_fault: true,
                    });
                }
                self.push(queue_url, message.clone());
                Ok(())
            })
            .collect()
    }

    async fn delete_batch(&self, queue_url: &str, receipt_handles: &[&str]) -> Vec<Result<(), QueueError>> {
        let mut deleted = Vec::new();
        let results = self.by_handle(queue_url, "DeleteMessageBatch", receipt_handles, |_, index| {
            deleted.push(index)
        });
        self.with(|s| {
            if let Some(q) = s.queues.get_mut(queue_url) {
                q.delete_calls += 1;
                deleted.sort_unstable();
                for index in deleted.into_iter().rev() {
                    q.messages.remove(index);
                }
            }
        });
        results
    }

    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        visibility_timeout: u32,
    ) -> Vec<Result<(), QueueError>> {
        self.by_handle(
            queue_url,
            "ChangeMessageVisibilityBatch",
            receipt_handles,
            |q, index| {
                q.visibility_changes.push(visibility_timeout);
                if visibility_timeout == 0 {
                    q.messages[index].receipt_handle = None;
                }
            },
        )
    }

    async fn attribute(&self, queue_url: &str, attribute: QueueAttribute) -> Result<Option<String>, QueueError> {
        self.with(|s| {
            if s.failing {
                return Err(Self::outage("GetQueueAttributes"));
            }
            let queue = s.queues.entry(queue_url.to_owned()).or_default();
            Ok(match attribute {
                QueueAttribute::QueueArn => Some(
                    queue
                        .attributes
                        .get(&attribute)
                        .cloned()
                        .unwrap_or_else(|| memory_arn(queue_url)),
                ),
                QueueAttribute::ApproximateNumberOfMessages => Some(
                    queue
                        .messages
                        .iter()
                        .filter(|m| m.receipt_handle.is_none())
                        .count()
                        .to_string(),
                ),
                other => queue.attributes.get(&other).cloned(),
            })
        })
    }

    async fn start_move_task(&self, source_arn: &str, destination_arn: &str) -> Result<String, QueueError> {
        self.with(|s| {
            if s.failing {
                return Err(Self::outage("StartMessageMoveTask"));
            }
            let url_of = |s: &State, arn: &str| {
                s.queues
                    .iter()
                    .find(|(url, q)| {
                        q.attributes
                            .get(&QueueAttribute::QueueArn)
                            .map_or(memory_arn(url), Clone::clone)
                            == arn
                    })
                    .map(|(url, _)| url.clone())
            };
            let (Some(source), Some(destination)) = (url_of(s, source_arn), url_of(s, destination_arn)) else {
                return Err(QueueError::Refused {
                    code: "ResourceNotFoundException".into(),
                    message: "no such queue".into(),
                    sender_fault: true,
                });
            };
            let moved: Vec<StoredMessage> = s
                .queues
                .get_mut(&source)
                .map(|q| std::mem::take(&mut q.messages))
                .unwrap_or_default();
            let count = moved.len() as u64;
            s.queues
                .entry(destination)
                .or_default()
                .messages
                .extend(moved.into_iter().map(|mut m| {
                    m.receipt_handle = None;
                    m.receive_count = 0;
                    m
                }));
            s.next_id += 1;
            let handle = format!("move-{}", s.next_id);
            s.moves.insert(
                handle.clone(),
                MoveTask {
                    status: "COMPLETED".into(),
                    moved: count,
                    failure_reason: None,
                },
            );
            Ok(handle)
        })
    }

    async fn move_task(&self, _source_arn: &str, handle: &str) -> Result<Option<MoveTask>, QueueError> {
        self.with(|s| {
            if s.failing {
                return Err(Self::outage("ListMessageMoveTasks"));
            }
            Ok(s.moves.get(handle).cloned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn received_messages_stay_hidden_until_deleted_or_released() {
        let q = MemoryQueue::new();
        q.send_all("q", &[message("a"), message("b")]).await;
        let got = q.receive("q", ReceiveOptions::default()).await.unwrap();
        assert_eq!(got.len(), 2);
        assert!(q.receive("q", ReceiveOptions::default()).await.unwrap().is_empty());
        let handles: Vec<&str> = got.iter().map(|m| m.receipt_handle.as_str()).collect();
        assert!(q.delete_all("q", &handles[..1]).await[0].is_ok());
        q.expire_visibility("q");
        let again = q.receive("q", ReceiveOptions::default()).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].body.as_str(), again[0].receive_count), ("b", 2));
        // A stale handle is refused, as SQS does.
        assert!(q.delete_all("q", &handles[..1]).await[0].is_err());
    }

    #[tokio::test]
    async fn a_zero_visibility_receive_only_looks() {
        let q = MemoryQueue::new();
        q.push("q", message("a"));
        let peek = ReceiveOptions {
            visibility_timeout: Some(0),
            ..Default::default()
        };
        assert_eq!(q.receive("q", peek).await.unwrap().len(), 1);
        assert_eq!(q.visible("q"), 1);
    }

    #[tokio::test]
    async fn outages_fail_every_call() {
        let q = MemoryQueue::new();
        q.fail_calls(true);
        assert!(q.receive("q", ReceiveOptions::default()).await.is_err());
        assert!(q.send_all("q", &[message("a")]).await[0].is_err());
        q.fail_calls(false);
        assert!(q.send_all("q", &[message("a")]).await[0].is_ok());
    }

    #[tokio::test]
    async fn a_move_task_moves_everything() {
        let q = MemoryQueue::new();
        q.push("dlq", message("a"));
        q.push("dlq", message("b"));
        q.set_attribute("apply", QueueAttribute::VisibilityTimeout, "30");
        let handle = q
            .start_move_task(&memory_arn("dlq"), &memory_arn("apply"))
            .await
            .unwrap();
        let task = q.move_task(&memory_arn("dlq"), &handle).await.unwrap().unwrap();
        assert!(task.has_ended());
        assert_eq!(task.moved, 2);
        assert_eq!(q.messages("apply").len(), 2);
        assert!(q.messages("dlq").is_empty());
    }
}
