//! Faults for the unit tests of `dlq` and `resync`: testkit's
//! [`MemoryQueue`] with entries refused, calls failing, or move tasks
//! unavailable or failing, as SQS may.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use regis_aws::{MoveTask, OutgoingMessage, QueueAttribute, QueueClient, QueueError, ReceiveOptions, ReceivedMessage};
use regis_testkit::MemoryQueue;

/// What [`FaultyQueue`] gets wrong.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Every `ReceiveMessage` call fails as an outage.
    pub(crate) failing_receives: bool,
    /// Send entries with these bodies are refused (by the sender's fault).
    pub(crate) refused_bodies: HashSet<String>,
    /// The next this many `SendMessageBatch` calls fail as outages.
    pub(crate) failing_sends: usize,
    /// Every `DeleteMessageBatch` call fails as an outage.
    pub(crate) failing_deletes: bool,
    /// `StartMessageMoveTask` is not available (an emulator without it).
    pub(crate) no_move_tasks: bool,
    /// Move tasks end `FAILED` with this reason.
    pub(crate) move_task_fails: Option<String>,
}

/// A [`MemoryQueue`] with [`Faults`].
#[derive(Debug, Default)]
pub(crate) struct FaultyQueue {
    pub(crate) memory: MemoryQueue,
    faults: Mutex<Faults>,
}

impl FaultyQueue {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().expect("faults lock")
    }
}

fn outage(operation: &'static str) -> QueueError {
    QueueError::Call {
        operation,
        message: "connection refused (injected)".into(),
        source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    }
}

#[async_trait]
impl QueueClient for FaultyQueue {
    async fn receive(&self, queue_url: &str, options: ReceiveOptions) -> Result<Vec<ReceivedMessage>, QueueError> {
        if self.faults().failing_receives {
            return Err(outage("ReceiveMessage"));
        }
        self.memory.receive(queue_url, options).await
    }

    async fn send_batch(&self, queue_url: &str, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let refused: Vec<bool> = {
            let mut faults = self.faults();
            if faults.failing_sends > 0 {
                faults.failing_sends -= 1;
                return vec![Err(outage("SendMessageBatch")); messages.len()];
            }
            messages
                .iter()
                .map(|m| faults.refused_bodies.contains(&m.body))
                .collect()
        };
        let accepted: Vec<OutgoingMessage> = messages
            .iter()
            .zip(&refused)
            .filter(|(_, refused)| !**refused)
            .map(|(m, _)| m.clone())
            .collect();
        let mut sent = self.memory.send_batch(queue_url, &accepted).await.into_iter();
        refused
            .iter()
            .map(|refused| match refused {
                true => Err(QueueError::Refused {
                    code: "InvalidMessageContents".into(),
                    message: "refused (injected)".into(),
                    sender_fault: true,
                }),
                false => sent.next().unwrap_or(Err(QueueError::NoResult)),
            })
            .collect()
    }

    async fn delete_batch(&self, queue_url: &str, receipt_handles: &[&str]) -> Vec<Result<(), QueueError>> {
        if self.faults().failing_deletes {
            return vec![Err(outage("DeleteMessageBatch")); receipt_handles.len()];
        }
        self.memory.delete_batch(queue_url, receipt_handles).await
    }

    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        receipt_handles: &[&str],
        visibility_timeout: u32,
    ) -> Vec<Result<(), QueueError>> {
        self.memory
            .change_visibility_batch(queue_url, receipt_handles, visibility_timeout)
            .await
    }

    async fn attribute(&self, queue_url: &str, attribute: QueueAttribute) -> Result<Option<String>, QueueError> {
        self.memory.attribute(queue_url, attribute).await
    }

    async fn start_move_task(&self, source_arn: &str, destination_arn: &str) -> Result<String, QueueError> {
        if self.faults().no_move_tasks {
            return Err(QueueError::Unsupported("StartMessageMoveTask"));
        }
        self.memory.start_move_task(source_arn, destination_arn).await
    }

    async fn move_task(&self, source_arn: &str, handle: &str) -> Result<Option<MoveTask>, QueueError> {
        let task = self.memory.move_task(source_arn, handle).await?;
        Ok(match self.faults().move_task_fails.clone() {
            Some(reason) => task.map(|t| MoveTask {
                status: "FAILED".into(),
                failure_reason: Some(reason),
                ..t
            }),
            None => task,
        })
    }
}
