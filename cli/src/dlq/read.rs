//! Reading a whole dead-letter queue without changing it.
//!
//! Receives with a visibility timeout of 0 only look. SQS returns at most
//! 10 messages per receive and samples its servers, so the whole queue is
//! read by receiving again until no new message ids appear (or the queue's
//! approximate depth has been seen), within a bounded number of rounds.

use std::collections::HashSet;

use regis_aws::{QueueAttribute, QueueClient, ReceiveOptions};

use super::letter::Letter;
use crate::output::{OpsError, progress};

/// Receives in a row that brought no new message id before a look at the
/// queue counts as complete.
pub const QUIET_ROUNDS: usize = 3;

/// A receive that only looks: up to 10 messages, a one-second long poll,
/// and visibility 0 so that nothing is hidden.
pub const PEEK: ReceiveOptions = ReceiveOptions {
    max_messages: regis_aws::batch::RECEIVE_MAX_MESSAGES,
    wait_seconds: 1,
    visibility_timeout: Some(0),
};

/// Reads the whole queue at `url` without changing it, in at most
/// `max_receives` receives; with `stop_at`, until the letter it names
/// ([`Letter::is`]) is found. Returns the letters and whether the read is
/// believed complete (the queue's depth was seen, several receives in a
/// row brought nothing new, or the letter searched for was found).
pub async fn peek_all(
    queue: &dyn QueueClient,
    url: &str,
    max_receives: usize,
    stop_at: Option<&str>,
) -> Result<(Vec<Letter>, bool), OpsError> {
    let depth: Option<usize> = queue
        .attribute(url, QueueAttribute::ApproximateNumberOfMessages)
        .await
        .map_err(|e| OpsError::service(url, e))?
        .and_then(|v| v.parse().ok());
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    let mut quiet = 0;
    let bar = progress(depth.map(|d| d as u64), "reading DLQ");
    for _ in 0..max_receives {
        let messages = queue.receive(url, PEEK).await.map_err(|e| OpsError::service(url, e))?;
        let mut new = 0;
        for message in messages {
            let letter = Letter::from_message(message);
            if seen.insert(letter.message_id.clone()) {
                new += 1;
                let found = stop_at.is_some_and(|id| letter.is(id));
                letters.push(letter);
                if found {
                    bar.finish_and_clear();
                    return Ok((letters, true));
                }
            }
        }
        bar.set_position(letters.len() as u64);
        quiet = if new == 0 { quiet + 1 } else { 0 };
        let depth_seen = depth.is_some_and(|d| letters.len() >= d) && stop_at.is_none();
        if depth_seen || quiet >= QUIET_ROUNDS {
            bar.finish_and_clear();
            return Ok((letters, true));
        }
    }
    bar.finish_and_clear();
    Ok((letters, false))
}

#[cfg(test)]
mod tests {
    use regis_testkit::MemoryQueue;

    use super::*;
    use crate::dlq::letter::tests::parked;

    const DLQ: &str = "dlq";

    fn dlq_of(n: usize) -> MemoryQueue {
        let queue = MemoryQueue::new();
        for i in 0..n {
            queue.push(DLQ, parked(&format!("m{i}"), Some("malformed"), Some(i as u64)));
        }
        queue
    }

    #[tokio::test]
    async fn the_whole_queue_is_read_and_left_as_it_was() {
        let queue = dlq_of(7);
        let (letters, complete) = peek_all(&queue, DLQ, 200, None).await.unwrap();
        assert!(complete);
        assert_eq!(letters.len(), 7);
        assert_eq!(letters[3].original_id.as_deref(), Some("orig-m3"));
        assert_eq!(queue.visible(DLQ), 7, "nothing was hidden");
        assert_eq!(queue.delete_calls(DLQ), 0);
    }

    #[tokio::test]
    async fn a_search_stops_at_the_letter_by_either_id() {
        let queue = dlq_of(5);
        let (letters, complete) = peek_all(&queue, DLQ, 200, Some("orig-m2")).await.unwrap();
        assert!(complete);
        assert_eq!(letters.last().map(|l| l.message_id.as_str()), Some("mem-3"));
        let (letters, _) = peek_all(&queue, DLQ, 200, Some("mem-5")).await.unwrap();
        assert_eq!(letters.len(), 5);
        // Not there: the read ends after the quiet rounds, having seen everything.
        let (letters, complete) = peek_all(&queue, DLQ, 200, Some("nope")).await.unwrap();
        assert_eq!((letters.len(), complete), (5, true));
    }

    #[tokio::test]
    async fn a_read_cut_short_by_max_receives_says_so() {
        // The in-memory queue shows the same first ten on every look, so
        // the depth (12) is never seen.
        let queue = dlq_of(12);
        let (letters, complete) = peek_all(&queue, DLQ, QUIET_ROUNDS, None).await.unwrap();
        assert_eq!((letters.len(), complete), (10, false));
        let (_, complete) = peek_all(&queue, DLQ, QUIET_ROUNDS + 1, None).await.unwrap();
        assert!(complete, "nothing new for {QUIET_ROUNDS} receives counts as complete");
    }

    #[tokio::test]
    async fn an_outage_is_a_retryable_failure_with_its_cause() {
        let is_outage = |e: &OpsError| {
            let cause = std::error::Error::source(e).and_then(|s| s.downcast_ref::<regis_aws::QueueError>());
            e.exit_code() == 1 && cause.is_some_and(regis_aws::QueueError::is_retryable)
        };
        let queue = dlq_of(1);
        queue.fail_calls(true);
        let e = peek_all(&queue, DLQ, 200, None).await.unwrap_err();
        assert!(is_outage(&e), "{e:?}");
        // The depth is read, then the receive fails.
        let queue = crate::testing::FaultyQueue::new();
        queue.faults().failing_receives = true;
        let e = peek_all(queue.as_ref(), DLQ, 200, None).await.unwrap_err();
        assert!(is_outage(&e), "{e:?}");
    }
}
