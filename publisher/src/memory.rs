//! An in-process SNS: records what is published, and on request stalls or
//! fails. For unit tests of code that publishes, and as the sink of
//! benchmarks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::SnsError;
use crate::receipt::lock;
use crate::sns::{Attribute, BatchOutcome, EntryFailure, OutgoingMessage, SnsClient};

/// A message as [`MemorySns`] received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    /// The topic it was published to.
    pub topic_arn: String,
    /// The message id (the batch id).
    pub id: String,
    /// The body.
    pub body: String,
    /// The attributes.
    pub attributes: Vec<Attribute>,
    /// Bytes it counts toward the message size (body and attributes).
    pub size: usize,
    /// Number of the request that carried it (from 0, both operations).
    pub request: u64,
    /// Whether that request was a `PublishBatch`.
    pub via_batch: bool,
}

/// How an entry is made to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFault {
    /// The error code SNS would give.
    pub code: String,
    /// Whether SNS would blame the sender (then it is not retried).
    pub sender_fault: bool,
}

#[derive(Debug, Default)]
struct Script {
    request_failures: VecDeque<SnsError>,
    entry_failures: VecDeque<EntryFault>,
    failing: Option<EntryFault>,
}

/// An in-process [`SnsClient`].
#[derive(Debug)]
pub struct MemorySns {
    record: bool,
    messages: Mutex<Vec<RecordedMessage>>,
    script: Mutex<Script>,
    open: watch::Sender<bool>,
    requests: AtomicU64,
    batch_requests: AtomicU64,
    accepted: AtomicU64,
    accepted_bytes: AtomicU64,
    stalled: AtomicUsize,
}

impl Default for MemorySns {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySns {
    /// A fake that keeps every message.
    pub fn new() -> Self {
        Self {
            record: true,
            messages: Mutex::default(),
            script: Mutex::default(),
            open: watch::Sender::new(true),
            requests: AtomicU64::new(0),
            batch_requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            accepted_bytes: AtomicU64::new(0),
            stalled: AtomicUsize::new(0),
        }
    }

    /// A fake that only counts messages and bytes (for benchmarks).
    pub fn counting() -> Self {
        Self {
            record: false,
            ..Self::new()
        }
    }

    /// Requests wait from now on until [`MemorySns::resume`].
    pub fn stall(&self) {
        self.open.send_replace(false);
    }

    /// Lets waiting and future requests through.
    pub fn resume(&self) {
        self.open.send_replace(true);
    }

    /// Requests waiting because of [`MemorySns::stall`].
    pub fn stalled_requests(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    /// The next `n` requests fail as a whole with `error`.
    pub fn fail_requests(&self, n: usize, error: SnsError) {
        lock(&self.script)
            .request_failures
            .extend(std::iter::repeat_n(error, n));
    }

    /// The next `n` messages (entries of `PublishBatch` or `Publish` calls)
    /// fail with this fault.
    pub fn fail_entries(&self, n: usize, fault: EntryFault) {
        lock(&self.script).entry_failures.extend(std::iter::repeat_n(fault, n));
    }

    /// Every message fails with this fault until [`MemorySns::heal`].
    pub fn fail_all(&self, fault: EntryFault) {
        lock(&self.script).failing = Some(fault);
    }

    /// Stops [`MemorySns::fail_all`].
    pub fn heal(&self) {
        lock(&self.script).failing = None;
    }

    /// The messages accepted so far (empty for [`MemorySns::counting`]).
    pub fn messages(&self) -> Vec<RecordedMessage> {
        lock(&self.messages).clone()
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Bytes (body and attributes) of the messages accepted so far.
    pub fn accepted_bytes(&self) -> u64 {
        self.accepted_bytes.load(Ordering::SeqCst)
    }

    /// Requests received (both operations).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// `PublishBatch` requests received.
    pub fn batch_requests(&self) -> u64 {
        self.batch_requests.load(Ordering::SeqCst)
    }

    async fn enter(&self, batch: bool) -> Result<u64, SnsError> {
        let request = self.requests.fetch_add(1, Ordering::SeqCst);
        if batch {
            self.batch_requests.fetch_add(1, Ordering::SeqCst);
        }
        let mut open = self.open.subscribe();
        if !*open.borrow() {
            self.stalled.fetch_add(1, Ordering::SeqCst);
            let _ = open.wait_for(|o| *o).await;
            self.stalled.fetch_sub(1, Ordering::SeqCst);
        }
        match lock(&self.script).request_failures.pop_front() {
            Some(error) => Err(error),
            None => Ok(request),
        }
    }

    fn entry_fault(&self) -> Option<EntryFault> {
        let mut script = lock(&self.script);
        script.entry_failures.pop_front().or_else(|| script.failing.clone())
    }

    fn accept(&self, topic_arn: &str, message: &OutgoingMessage, request: u64, via_batch: bool) {
        let size = message.size();
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.accepted_bytes.fetch_add(size as u64, Ordering::SeqCst);
        if self.record {
            lock(&self.messages).push(RecordedMessage {
                topic_arn: topic_arn.to_owned(),
                id: message.id.clone(),
                body: message.body.clone(),
                attributes: message.attributes.to_vec(),
                size,
                request,
                via_batch,
            });
        }
    }
}

#[async_trait]
impl SnsClient for MemorySns {
    async fn publish(&self, topic_arn: &str, message: &OutgoingMessage) -> Result<(), SnsError> {
        let request = self.enter(false).await?;
        if let Some(fault) = self.entry_fault() {
            let failure = EntryFailure {
                id: message.id.clone(),
                code: fault.code,
                message: "injected".into(),
                sender_fault: fault.sender_fault,
            };
            return Err(failure.to_error());
        }
        self.accept(topic_arn, message, request, false);
        Ok(())
    }

    async fn publish_batch(&self, topic_arn: &str, messages: &[&OutgoingMessage]) -> Result<BatchOutcome, SnsError> {
        let request = self.enter(true).await?;
        let mut outcome = BatchOutcome::default();
        for message in messages {
            match self.entry_fault() {
                Some(fault) => outcome.failed.push(EntryFailure {
                    id: message.id.clone(),
                    code: fault.code,
                    message: "injected".into(),
                    sender_fault: fault.sender_fault,
                }),
                None => {
                    self.accept(topic_arn, message, request, true);
                    outcome.successful.push(message.id.clone());
                }
            }
        }
        Ok(outcome)
    }
}
