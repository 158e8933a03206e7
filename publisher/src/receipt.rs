//! Receipts: how a caller learns that SNS has its commands.
//!
//! A receipt costs no allocation: it points at its batch's shared slot and
//! remembers its position. A batch may be split into several messages; the
//! slot resolves once every part has succeeded or failed, and a receipt
//! fails only if the part holding its command failed.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};

use crate::error::{DeliveryError, FailureCause};

/// Unresolved batches by sequence number, for `flush`.
pub(crate) type Registry = Mutex<BTreeMap<u64, Arc<BatchSlot>>>;

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// its data consistent before anything that could panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a batch ended.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Positions (in the batch) of the commands of each failed part.
    failures: Vec<(Range<usize>, DeliveryError)>,
}

impl Outcome {
    pub(crate) fn failed_commands(&self) -> usize {
        self.failures.iter().map(|(r, _)| r.len()).sum()
    }

    pub(crate) fn failures(&self) -> impl Iterator<Item = &DeliveryError> {
        self.failures.iter().map(|(_, e)| e)
    }

    fn error_for(&self, index: usize) -> Option<&DeliveryError> {
        self.failures.iter().find(|(r, _)| r.contains(&index)).map(|(_, e)| e)
    }
}

/// The shared state of one batch.
pub(crate) struct BatchSlot {
    seq: u64,
    tenant: Arc<str>,
    parts_left: AtomicUsize,
    failures: Mutex<Vec<(Range<usize>, DeliveryError)>>,
    outcome: watch::Sender<Option<Arc<Outcome>>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for BatchSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSlot")
            .field("seq", &self.seq)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl BatchSlot {
    /// A new, unresolved batch of one part, registered for `flush`.
    pub(crate) fn open(seq: u64, tenant: Arc<str>, registry: &Arc<Registry>) -> Arc<Self> {
        let slot = Arc::new(Self {
            seq,
            tenant,
            parts_left: AtomicUsize::new(1),
            failures: Mutex::new(Vec::new()),
            outcome: watch::Sender::new(None),
            registry: Arc::clone(registry),
        });
        lock(registry).insert(seq, Arc::clone(&slot));
        slot
    }

    fn part_done(&self, failure: Option<(Range<usize>, DeliveryError)>) {
        if let Some(failure) = failure {
            lock(&self.failures).push(failure);
        }
        if self.parts_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let failures = std::mem::take(&mut *lock(&self.failures));
            self.outcome.send_replace(Some(Arc::new(Outcome { failures })));
            lock(&self.registry).remove(&self.seq);
        }
    }

    /// Waits until every part is resolved.
    pub(crate) async fn wait(&self) -> Arc<Outcome> {
        let mut rx = self.outcome.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or_default(),
            // The slot owns the sender, so this cannot happen while `self`
            // is borrowed; report it as empty rather than panic.
            Err(_) => Arc::default(),
        }
    }

    fn peek(&self) -> Option<Arc<Outcome>> {
        self.outcome.borrow().clone()
    }
}

/// The obligation to resolve one part of a batch and to give back its
/// buffer bytes. Dropping it unresolved reports the part as abandoned, so no
/// receipt waits forever.
#[derive(Debug)]
pub(crate) struct Tracker {
    slot: Arc<BatchSlot>,
    range: Range<usize>,
    permits: usize,
    semaphore: Arc<Semaphore>,
    armed: bool,
}

impl Tracker {
    /// The whole of a batch of `len` commands holding `permits` buffer bytes.
    pub(crate) fn new(slot: Arc<BatchSlot>, len: usize, permits: usize, semaphore: Arc<Semaphore>) -> Self {
        Self {
            slot,
            range: 0..len,
            permits,
            semaphore,
            armed: true,
        }
    }

    pub(crate) fn tenant(&self) -> Arc<str> {
        Arc::clone(&self.slot.tenant)
    }

    /// Splits into the first `left_len` commands (holding `left_permits`
    /// bytes) and the rest.
    pub(crate) fn split(mut self, left_len: usize, left_permits: usize) -> (Self, Self) {
        self.slot.parts_left.fetch_add(1, Ordering::AcqRel);
        self.armed = false;
        let mid = self.range.start + left_len;
        let part = |range: Range<usize>, permits: usize| Self {
            slot: Arc::clone(&self.slot),
            range,
            permits,
            semaphore: Arc::clone(&self.semaphore),
            armed: true,
        };
        let left = part(self.range.start..mid, left_permits);
        let right = part(mid..self.range.end, self.permits.saturating_sub(left_permits));
        (left, right)
    }

    /// SNS has the part.
    pub(crate) fn succeed(mut self) {
        self.finish(None);
    }

    /// The part will never reach SNS.
    pub(crate) fn fail(mut self, error: DeliveryError) {
        self.finish(Some(error));
    }

    fn finish(&mut self, error: Option<DeliveryError>) {
        self.armed = false;
        self.semaphore.add_permits(std::mem::take(&mut self.permits));
        self.slot.part_done(error.map(|e| (self.range.clone(), e)));
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if self.armed {
            let error = DeliveryError {
                batch_id: "".into(),
                tenant: Arc::clone(&self.slot.tenant),
                commands: self.range.len(),
                keys: Arc::from(Vec::new()),
                attempts: 0,
                cause: FailureCause::Abandoned,
            };
            self.finish(Some(error));
        }
    }
}

/// Proof that a command was accepted into a batch. Await it (or call
/// [`Receipt::wait`]) to learn whether SNS stored the batch: `Ok` once SNS
/// acknowledged the message holding the command, or the [`DeliveryError`]
/// of that message. Dropping a receipt does not cancel anything.
#[derive(Debug, Clone)]
pub struct Receipt {
    slot: Arc<BatchSlot>,
    index: usize,
}

impl Receipt {
    pub(crate) fn new(slot: Arc<BatchSlot>, index: usize) -> Self {
        Self { slot, index }
    }

    /// Waits until the batch holding the command is resolved.
    pub async fn wait(&self) -> Result<(), DeliveryError> {
        let outcome = self.slot.wait().await;
        outcome.error_for(self.index).cloned().map_or(Ok(()), Err)
    }

    /// The result, if the batch is resolved already.
    pub fn try_result(&self) -> Option<Result<(), DeliveryError>> {
        self.slot
            .peek()
            .map(|o| o.error_for(self.index).cloned().map_or(Ok(()), Err))
    }
}

impl IntoFuture for Receipt {
    type Output = Result<(), DeliveryError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(commands: usize) -> DeliveryError {
        DeliveryError {
            batch_id: "b".into(),
            tenant: "t".into(),
            commands,
            keys: Arc::from(Vec::new()),
            attempts: 1,
            cause: FailureCause::Abandoned,
        }
    }

    #[tokio::test]
    async fn split_batch_resolves_each_receipt_by_its_part() {
        let registry = Arc::new(Registry::default());
        let semaphore = Arc::new(Semaphore::new(0));
        let slot = BatchSlot::open(7, "t".into(), &registry);
        let receipts: Vec<_> = (0..4).map(|i| Receipt::new(Arc::clone(&slot), i)).collect();
        let tracker = Tracker::new(slot, 4, 100, Arc::clone(&semaphore));
        let (left, right) = tracker.split(1, 30);
        assert!(receipts[0].try_result().is_none());
        left.fail(error(1));
        assert!(receipts[0].try_result().is_none(), "resolved only when every part is");
        assert_eq!(lock(&registry).len(), 1);
        right.succeed();
        assert_eq!(receipts[0].wait().await, Err(error(1)));
        for r in &receipts[1..] {
            assert_eq!(r.clone().await, Ok(()));
        }
        assert_eq!(semaphore.available_permits(), 100);
        assert!(lock(&registry).is_empty());
    }

    #[tokio::test]
    async fn dropped_tracker_reports_abandoned() {
        let registry = Arc::new(Registry::default());
        let semaphore = Arc::new(Semaphore::new(0));
        let slot = BatchSlot::open(1, "t".into(), &registry);
        let receipt = Receipt::new(Arc::clone(&slot), 0);
        drop(Tracker::new(slot, 1, 10, Arc::clone(&semaphore)));
        let err = receipt.wait().await.unwrap_err();
        assert_eq!(err.cause, FailureCause::Abandoned);
        assert_eq!(semaphore.available_permits(), 10);
    }
}
