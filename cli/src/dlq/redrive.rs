//! Moving dead letters back to the apply queue: by SQS's move task, or by
//! hand.
//!
//! Without a filter, SQS moves everything (`StartMessageMoveTask`, with an
//! explicit destination ARN: LocalStack needs it) and the task is watched
//! until it ends. With a reason filter, or `--manual`, or when the move
//! task is unavailable, messages are moved by hand: receive, send to the
//! apply queue (the body unchanged, the original attributes without the
//! DLQ bookkeeping ones), and delete from the DLQ only what the send
//! accepted. An interruption can therefore duplicate a message (harmless:
//! apply is idempotent) but never lose one. Messages that do not match the
//! filter are made visible again at the end.

use std::time::Duration;

use regis_aws::{OutgoingMessage, QueueAttribute, QueueClient, QueueError, ReceiveOptions};

use super::letter::Letter;
use super::read::PEEK;
use crate::output::{OpsError, progress};

/// How often a running move task is looked at.
const MOVE_TASK_POLL: Duration = Duration::from_millis(500);

/// Empty receives in a row that end a move by hand.
const EMPTY_ROUNDS: usize = 2;

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Messages now in the apply queue (and gone from the DLQ).
    pub moved: u64,
    /// Messages sent but not deleted from the DLQ (they will be moved again: a duplicate).
    pub duplicated: u64,
    /// Messages the send refused (still in the DLQ).
    pub failed: u64,
    /// Messages left alone because their reason did not match.
    pub skipped: u64,
    /// Messages left alone because they are older than the tombstone horizon.
    pub beyond_horizon: u64,
}

/// How the messages were moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// SQS's `StartMessageMoveTask`.
    MoveTask,
    /// Receive, send, delete.
    ByHand,
}

impl Method {
    /// The name `--json` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MoveTask => "move-task",
            Self::ByHand => "receive-send-delete",
        }
    }
}

/// What to redrive, and how.
#[derive(Debug, Clone, Copy)]
pub struct Redrive<'a> {
    /// The dead-letter queue.
    pub dlq_url: &'a str,
    /// The apply queue.
    pub queue_url: &'a str,
    /// Move only messages with this reason.
    pub reason: Option<&'a str>,
    /// Move by hand even without a reason.
    pub manual: bool,
    /// How long received messages stay hidden while being moved, seconds.
    pub visibility_timeout: u32,
    /// How long to wait for a move task.
    pub timeout: Duration,
    /// Leave batches older than this (milliseconds at `now_ms`) in the DLQ;
    /// `None` moves them too (`--include-beyond-horizon`).
    pub horizon_ms: Option<u64>,
    /// The operator's clock, epoch ms.
    pub now_ms: u64,
}

/// Redrives: by move task when everything is to be moved and it is
/// available, else by hand.
/// A move task moves everything, so it is used only when nothing is to be
/// left behind: no reason filter and no horizon check.
/// `queue` reaches the DLQ, `apply` the apply queue (the same client
/// unless the DLQ is a subscription DLQ in the topic's region; a move task
/// then cannot cross regions and messages move by hand).
pub async fn redrive(
    queue: &dyn QueueClient,
    apply: &dyn QueueClient,
    how: &Redrive<'_>,
) -> Result<(Method, Moved), OpsError> {
    let same_client = std::ptr::addr_eq(queue as *const dyn QueueClient, apply as *const dyn QueueClient);
    if how.reason.is_none() && !how.manual && how.horizon_ms.is_none() && same_client {
        match move_task(queue, how.dlq_url, how.queue_url, how.timeout).await {
            Ok(moved) => {
                let moved = Moved {
                    moved,
                    ..Moved::default()
                };
                return Ok((Method::MoveTask, moved));
            }
            Err(e) => eprintln!("regis: the SQS move task is not available ({e}); moving messages one by one"),
        }
    }
    let moved = move_by_hand(queue, apply, how).await?;
    Ok((Method::ByHand, moved))
}

async fn queue_arn(queue: &dyn QueueClient, url: &str) -> Result<String, OpsError> {
    queue
        .attribute(url, QueueAttribute::QueueArn)
        .await
        .map_err(|e| OpsError::service(url, e))?
        .ok_or_else(|| OpsError::Failed(format!("{url} has no QueueArn")))
}

/// Moves everything with `StartMessageMoveTask` and waits for the task to
/// end; returns how many messages it moved.
pub async fn move_task(
    queue: &dyn QueueClient,
    dlq_url: &str,
    queue_url: &str,
    timeout: Duration,
) -> Result<u64, OpsError> {
    let source = queue_arn(queue, dlq_url).await?;
    let destination = queue_arn(queue, queue_url).await?;
    let handle = queue
        .start_move_task(&source, &destination)
        .await
        .map_err(|e| OpsError::service("", e))?;
    let bar = progress(None, "moving (SQS move task)");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::time::sleep(MOVE_TASK_POLL).await;
        let task = queue
            .move_task(&source, &handle)
            .await
            .map_err(|e| OpsError::service("", e))?;
        if let Some(task) = task {
            bar.set_position(task.moved);
            if task.has_ended() {
                bar.finish_and_clear();
                if task.status != "COMPLETED" {
                    return Err(OpsError::Failed(format!(
                        "the move task ended {}: {}",
                        task.status,
                        task.failure_reason.as_deref().unwrap_or("no reason given")
                    )));
                }
                return Ok(task.moved);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(OpsError::Failed(format!(
                "the move task did not finish within {timeout:?}"
            )));
        }
    }
}

/// Receive, send, delete: only what the send accepted is deleted. Letters
/// whose reason is not `reason` are made visible again at the end, also
/// when the move stops on an error.
/// Letters older than the horizon (when one is given) are left too.
pub async fn move_by_hand(
    queue: &dyn QueueClient,
    apply: &dyn QueueClient,
    how: &Redrive<'_>,
) -> Result<Moved, OpsError> {
    let dlq_url = how.dlq_url;
    let mut skipped: Vec<String> = Vec::new();
    let moved = move_matching(queue, apply, how, &mut skipped).await;
    // Put back what did not match, so the DLQ looks as before.
    let handles: Vec<&str> = skipped.iter().map(String::as_str).collect();
    let results = queue.change_visibility_all(dlq_url, &handles, 0).await;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        eprintln!(
            "regis: could not make skipped messages visible again (they will be after the visibility timeout): {e}"
        );
    }
    moved
}

async fn move_matching(
    queue: &dyn QueueClient,
    apply: &dyn QueueClient,
    how: &Redrive<'_>,
    skipped: &mut Vec<String>,
) -> Result<Moved, OpsError> {
    let (dlq_url, queue_url, reason) = (how.dlq_url, how.queue_url, how.reason);
    let too_old = |l: &Letter| how.horizon_ms.is_some_and(|h| l.is_beyond_horizon(how.now_ms, h));
    let receive = ReceiveOptions {
        visibility_timeout: Some(how.visibility_timeout),
        ..PEEK
    };
    let mut result = Moved::default();
    let mut empty_rounds = 0;
    let bar = progress(None, "moving");
    while empty_rounds < EMPTY_ROUNDS {
        let messages = queue
            .receive(dlq_url, receive)
            .await
            .map_err(|e| OpsError::service(dlq_url, e))?;
        if messages.is_empty() {
            empty_rounds += 1;
            continue;
        }
        empty_rounds = 0;
        let (matching, other): (Vec<Letter>, Vec<Letter>) = messages
            .into_iter()
            .map(Letter::from_message)
            .partition(|l| reason.is_none_or(|r| l.reason == r) && !too_old(l));
        let old = other.iter().filter(|l| too_old(l)).count() as u64;
        result.beyond_horizon += old;
        result.skipped += other.len() as u64 - old;
        skipped.extend(other.into_iter().map(|l| l.receipt_handle));
        let (sent, failed_call) = send(apply, queue_url, &matching).await;
        result.failed += (matching.len() - sent.len()) as u64;
        let deleted = delete(queue, dlq_url, &sent).await;
        result.moved += deleted;
        result.duplicated += sent.len() as u64 - deleted;
        bar.set_position(result.moved);
        if let Some(e) = failed_call {
            // The apply queue is unreachable: what was sent is deleted,
            // the rest reappears in the DLQ after its visibility timeout.
            bar.finish_and_clear();
            return Err(e);
        }
    }
    bar.finish_and_clear();
    Ok(result)
}

/// Sends letters to the apply queue; returns those SQS accepted and, when
/// a call failed, its error. Entries SQS refused are reported and stay in
/// the DLQ.
async fn send<'a>(
    queue: &dyn QueueClient,
    queue_url: &str,
    letters: &'a [Letter],
) -> (Vec<&'a Letter>, Option<OpsError>) {
    let messages: Vec<OutgoingMessage> = letters.iter().map(Letter::forwarded).collect();
    let results = queue.send_all(queue_url, &messages).await;
    let mut sent = Vec::with_capacity(letters.len());
    let mut failed_call = None;
    for (letter, result) in letters.iter().zip(results) {
        match result {
            Ok(()) => sent.push(letter),
            Err(e @ QueueError::Call { .. }) => failed_call = Some(OpsError::service(queue_url, e)),
            Err(e) => eprintln!("regis: {e}"),
        }
    }
    (sent, failed_call)
}

/// Deletes sent letters from the DLQ; returns how many were deleted. A
/// failed delete leaves the message to be moved again later (a duplicate).
async fn delete(queue: &dyn QueueClient, dlq_url: &str, sent: &[&Letter]) -> u64 {
    let handles: Vec<&str> = sent.iter().map(|l| l.receipt_handle.as_str()).collect();
    let results = queue.delete_all(dlq_url, &handles).await;
    if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
        eprintln!("regis: DeleteMessageBatch failed (the messages stay and may be moved twice): {e}");
    }
    results.iter().filter(|r| r.is_ok()).count() as u64
}

#[cfg(test)]
mod tests {
    use regis_aws::OutgoingMessage;

    use super::*;
    use crate::dlq::letter::tests::parked;
    use crate::testing::FaultyQueue;

    const DLQ: &str = "dlq";
    const APPLY: &str = "apply";

    fn by_hand(reason: Option<&str>) -> Redrive<'_> {
        Redrive {
            dlq_url: DLQ,
            queue_url: APPLY,
            reason,
            manual: true,
            visibility_timeout: 30,
            timeout: Duration::from_secs(60),
            horizon_ms: None,
            now_ms: 0,
        }
    }

    /// A DLQ holding `n` letters, every third with reason `bad-signature`,
    /// the others `malformed`.
    fn dlq_of(n: usize) -> std::sync::Arc<FaultyQueue> {
        let queue = FaultyQueue::new();
        for i in 0..n {
            let reason = if i % 3 == 2 { "bad-signature" } else { "malformed" };
            queue.memory.push(DLQ, parked(&format!("m{i}"), Some(reason), Some(1)));
        }
        queue
    }

    fn bodies(queue: &FaultyQueue, url: &str) -> Vec<String> {
        let mut bodies: Vec<String> = queue.memory.messages(url).into_iter().map(|m| m.body).collect();
        bodies.sort();
        bodies
    }

    #[tokio::test]
    async fn a_reason_filter_moves_only_its_letters_and_puts_the_rest_back() {
        let queue = dlq_of(15);
        let (method, moved) = redrive(queue.as_ref(), queue.as_ref(), &by_hand(Some("malformed")))
            .await
            .unwrap();
        assert_eq!(method, Method::ByHand);
        assert_eq!(
            moved,
            Moved {
                moved: 10,
                skipped: 5,
                ..Moved::default()
            }
        );
        let applied = queue.memory.messages(APPLY);
        assert_eq!(applied.len(), 10);
        assert!(
            applied
                .iter()
                .all(|m| m.attributes.keys().collect::<Vec<_>>() == ["tenant"]),
            "the DLQ bookkeeping attributes are dropped, the others kept"
        );
        let left = queue.memory.messages(DLQ);
        assert_eq!(left.len(), 5);
        assert!(left.iter().all(|m| m.attributes["reason"].value == "bad-signature"));
        assert_eq!(queue.memory.visible(DLQ), 5, "skipped letters are visible again");
        assert_eq!(queue.memory.visibility_changes(DLQ), [0; 5]);
    }

    #[tokio::test]
    async fn only_what_the_send_accepted_is_deleted() {
        let queue = dlq_of(6);
        queue.faults().refused_bodies.insert("body-m1".into());
        let (_, moved) = redrive(queue.as_ref(), queue.as_ref(), &by_hand(None)).await.unwrap();
        assert_eq!(
            moved,
            Moved {
                moved: 5,
                failed: 1,
                ..Moved::default()
            }
        );
        assert_eq!(bodies(&queue, DLQ), ["body-m1"], "the refused letter stays");
        assert!(!bodies(&queue, APPLY).contains(&"body-m1".to_owned()));
    }

    #[tokio::test]
    async fn letters_sent_but_not_deleted_count_as_duplicates() {
        let queue = dlq_of(4);
        queue.faults().failing_deletes = true;
        let moved = move_by_hand(queue.as_ref(), queue.as_ref(), &by_hand(None))
            .await
            .unwrap();
        assert_eq!(
            moved,
            Moved {
                duplicated: 4,
                ..Moved::default()
            }
        );
        assert_eq!(queue.memory.messages(DLQ).len(), 4, "nothing is lost");
        assert_eq!(queue.memory.messages(APPLY).len(), 4);
    }

    #[tokio::test]
    async fn an_unreachable_apply_queue_stops_the_move_and_loses_nothing() {
        let queue = dlq_of(6);
        queue.faults().failing_sends = usize::MAX;
        let e = move_by_hand(queue.as_ref(), queue.as_ref(), &by_hand(Some("malformed")))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            std::error::Error::source(&e).is_some_and(|s| s.is::<QueueError>()),
            "{e:?}"
        );
        assert_eq!(queue.memory.messages(DLQ).len(), 6);
        assert_eq!(queue.memory.delete_calls(DLQ), 0);
        assert_eq!(queue.memory.visible(DLQ), 2, "the skipped letters are put back");
    }

    #[tokio::test]
    async fn sends_are_grouped_by_count_and_size() {
        let queue = FaultyQueue::new();
        for i in 0..10 {
            queue.memory.push(
                DLQ,
                OutgoingMessage {
                    body: format!("{i}{}", "x".repeat(100 * 1024)),
                    ..Default::default()
                },
            );
        }
        queue.memory.push(DLQ, parked("small", None, None));
        let moved = move_by_hand(queue.as_ref(), queue.as_ref(), &by_hand(None))
            .await
            .unwrap();
        assert_eq!(moved.moved, 11);
        // Ten of 100 KiB: two per 256 KiB call; then the small one alone.
        assert_eq!(queue.memory.send_calls(APPLY), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_filter_the_move_task_moves_everything() {
        let queue = dlq_of(12);
        let how = Redrive {
            manual: false,
            ..by_hand(None)
        };
        let (method, moved) = redrive(queue.as_ref(), queue.as_ref(), &how).await.unwrap();
        assert_eq!((method, moved.moved), (Method::MoveTask, 12));
        assert_eq!(queue.memory.messages(APPLY).len(), 12);
        assert_eq!(queue.memory.send_calls(APPLY), 0, "SQS moved them");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_move_task_letters_are_moved_by_hand() {
        let queue = dlq_of(12);
        queue.faults().no_move_tasks = true;
        let how = Redrive {
            manual: false,
            ..by_hand(None)
        };
        let (method, moved) = redrive(queue.as_ref(), queue.as_ref(), &how).await.unwrap();
        assert_eq!((method, moved.moved), (Method::ByHand, 12));
        assert!(queue.memory.messages(DLQ).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_move_task_is_an_error_with_its_reason() {
        let queue = dlq_of(2);
        queue.faults().move_task_fails = Some("AccessDenied".into());
        let e = move_task(queue.as_ref(), DLQ, APPLY, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.to_string(), "the move task ended FAILED: AccessDenied");
    }

    #[tokio::test(start_paused = true)]
    async fn batches_beyond_the_horizon_stay_unless_asked_for() {
        const DAY: u64 = 86_400_000;
        let now = 1_700_000_000_000 + 30 * DAY;
        let letter = |id: &str, at_ms: u64| OutgoingMessage {
            body: regis_testkit::batches::set_batch_text(id, regis_wire::Mode::Lww, at_ms, 1),
            ..Default::default()
        };
        let queue = FaultyQueue::new();
        queue.memory.push(DLQ, letter("old", now - 8 * DAY));
        queue.memory.push(DLQ, letter("fresh", now - DAY));
        let how = Redrive {
            manual: false,
            horizon_ms: Some(7 * DAY),
            now_ms: now,
            ..by_hand(None)
        };
        // No filter, but a horizon: by hand, never by move task.
        let (method, moved) = redrive(queue.as_ref(), queue.as_ref(), &how).await.unwrap();
        assert_eq!(method, Method::ByHand);
        assert_eq!((moved.moved, moved.beyond_horizon, moved.skipped), (1, 1, 0));
        assert_eq!(queue.memory.messages(DLQ).len(), 1, "the old batch stays parked");
        assert_eq!(queue.memory.visible(DLQ), 1, "and visible again");
        // Told to include it.
        let how = Redrive {
            horizon_ms: None,
            ..how
        };
        let (_, moved) = redrive(queue.as_ref(), queue.as_ref(), &how).await.unwrap();
        assert_eq!(moved.moved, 1);
        assert!(queue.memory.messages(DLQ).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscription_dlq_in_another_region_is_moved_by_hand_to_the_region_client() {
        let topic_region = dlq_of(5);
        let region = regis_testkit::MemoryQueue::new();
        let how = Redrive {
            manual: false,
            ..by_hand(None)
        };
        let (method, moved) = redrive(topic_region.as_ref(), &region, &how).await.unwrap();
        assert_eq!(
            (method, moved.moved),
            (Method::ByHand, 5),
            "a move task cannot cross regions"
        );
        assert_eq!(region.messages(APPLY).len(), 5, "sent with the region's client");
        assert!(topic_region.memory.messages(APPLY).is_empty());
        assert!(topic_region.memory.messages(DLQ).is_empty());
    }
}
