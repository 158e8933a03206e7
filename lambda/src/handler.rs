//! The Lambda handler: from an `SqsEvent` to an `SqsBatchResponse`.
//!
//! The event source mapping must have `ReportBatchItemFailures` on: the
//! response lists the records to deliver again, and Lambda deletes the
//! others. So a record is left out of `batchItemFailures` only when it was
//! applied or parked in the DLQ ([`Outcome::is_done`]). A permanent failure
//! whose DLQ send failed is listed: it comes back, and is parked on a later
//! delivery or moved to the DLQ by the queue's redrive policy.
//!
//! The whole invocation fails only when a record that must come back has no
//! message id to name it by; then every record comes back, which is safe
//! because applying a batch twice changes nothing.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use regis_applier::metrics::{self, CycleMetrics};
use regis_applier::records::{Apply, Outcome, Processor, Record};

/// The invocation cannot say which records to deliver again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// A record that failed has no message id.
    #[error("a failed record has no message id; failing the whole invocation so every record is delivered again")]
    UnnamedFailure,
}

/// The records of an SQS event.
pub fn records_from_event(event: &SqsEvent) -> Vec<Record> {
    event.records.iter().map(record_from_message).collect()
}

fn record_from_message(message: &SqsMessage) -> Record {
    Record {
        message_id: message.message_id.clone().unwrap_or_default(),
        body: message.body.clone().unwrap_or_default(),
        receive_count: receive_count(&message.attributes),
        source_queue: message.event_source_arn.clone().unwrap_or_default(),
    }
}

fn receive_count(attributes: &HashMap<String, String>) -> u32 {
    attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The batch response for `outcomes` of `records`: every record not
/// [`Outcome::is_done`] is a batch item failure.
pub fn batch_response(records: &[Record], outcomes: &[Outcome]) -> Result<SqsBatchResponse, HandlerError> {
    let mut response = SqsBatchResponse::default();
    for (record, outcome) in records.iter().zip(outcomes) {
        if !outcome.is_done() {
            if record.message_id.is_empty() {
                return Err(HandlerError::UnnamedFailure);
            }
            response.add_failure(record.message_id.clone());
        }
    }
    Ok(response)
}

/// Handles one invocation received at `now_ms`: processes its records,
/// prints the invocation's metric line and answers which records failed.
pub async fn handle_event<A: Apply>(
    processor: &Processor<A>,
    region: &str,
    event: &SqsEvent,
    now_ms: u64,
) -> Result<SqsBatchResponse, HandlerError> {
    let records = records_from_event(event);
    let outcomes = processor.process(&records, now_ms).await;
    metrics::emit(region, now_ms, &CycleMetrics::from_outcomes(&outcomes));
    batch_response(&records, &outcomes)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use aws_lambda_events::event::sqs::SqsMessage;
    use regis_applier::dlq::DeadLetterQueue;
    use regis_applier::records::{Applied, ApplyFailure};
    use regis_testkit::{MemoryQueue, StoredMessage};
    use regis_wire::{Batch, DecodeLimits, Keyring, Mode};

    use super::*;

    const NOW_MS: u64 = 1_700_000_001_000;
    const QUEUE_ARN: &str = "arn:aws:sqs:eu-west-1:000000000000:regis-eu-west-1";

    /// Applies nothing; records which batches it was given, and answers
    /// each with `failure` (or success when `None`).
    struct FakeApply {
        mode: Mode,
        failure: Option<ApplyFailure>,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl FakeApply {
        fn new(mode: Mode, failure: Option<ApplyFailure>) -> Self {
            Self {
                mode,
                failure,
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Apply for FakeApply {
        fn mode(&self) -> Mode {
            self.mode
        }

        async fn apply(&self, batches: &[&Batch], _now_ms: u64) -> Vec<Result<Applied, ApplyFailure>> {
            self.calls
                .lock()
                .unwrap()
                .push(batches.iter().map(|b| b.header.id.clone()).collect());
            batches
                .iter()
                .map(|b| match &self.failure {
                    Some(failure) => Err(failure.clone()),
                    None => Ok(Applied {
                        commands: b.commands.len(),
                        ..Default::default()
                    }),
                })
                .collect()
        }
    }

    const DLQ: &str = "dlq";

    fn batch_text(id: &str, mode: Mode, commands: usize) -> String {
        regis_testkit::batches::set_batch_text(id, mode, NOW_MS - 250, commands)
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.event_source_arn = Some(QUEUE_ARN.into());
        m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
        m
    }

    fn event(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = messages;
        e
    }

    /// Nine good batches and one malformed message at position 4.
    fn nine_good_one_bad() -> SqsEvent {
        event(
            (0..10)
                .map(|i| {
                    let body = if i == 4 {
                        "{not a batch".to_owned()
                    } else {
                        batch_text(&format!("b{i}"), Mode::Lww, 3)
                    };
                    message(&format!("m{i}"), &body)
                })
                .collect(),
        )
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    fn processor_with(apply: FakeApply, keyring: Keyring) -> (Processor<FakeApply>, Arc<MemoryQueue>) {
        let dlq = Arc::new(MemoryQueue::new());
        let p = Processor::new(
            apply,
            DeadLetterQueue::new(dlq.clone(), DLQ),
            DecodeLimits::default(),
            keyring,
        );
        (p, dlq)
    }

    fn processor(apply: FakeApply) -> (Processor<FakeApply>, Arc<MemoryQueue>) {
        processor_with(apply, Keyring::default())
    }

    fn parked(dlq: &MemoryQueue) -> Vec<StoredMessage> {
        dlq.messages(DLQ)
    }

    fn attribute<'a>(message: &'a StoredMessage, name: &str) -> &'a str {
        message.attributes.get(name).map_or("", |a| a.value.as_str())
    }

    #[tokio::test]
    async fn one_malformed_record_is_parked_and_the_nine_good_ones_applied() {
        let (p, dlq) = processor(FakeApply::new(Mode::Lww, None));
        let response = handle_event(&p, "eu-west-1", &nine_good_one_bad(), NOW_MS)
            .await
            .unwrap();

        assert!(
            failures(&response).is_empty(),
            "the parked record must not come back: {response:?}"
        );
        let calls = p.applier().calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "all batches go to Redis in one pipelined call");
        assert_eq!(calls[0], ["b0", "b1", "b2", "b3", "b5", "b6", "b7", "b8", "b9"]);

        let parked = parked(&dlq);
        assert_eq!(parked.len(), 1);
        assert_eq!(attribute(&parked[0], "message-id"), "m4");
        assert_eq!(attribute(&parked[0], "reason"), "malformed");
        assert_eq!(parked[0].body, "{not a batch");
        assert_eq!(attribute(&parked[0], "source-queue"), QUEUE_ARN);
        assert_eq!(attribute(&parked[0], "failed-at"), NOW_MS.to_string());
        assert!(
            attribute(&parked[0], "detail").starts_with("malformed batch"),
            "{}",
            attribute(&parked[0], "detail")
        );
    }

    #[tokio::test]
    async fn every_record_fails_while_redis_is_unreachable() {
        let down = ApplyFailure {
            retryable: true,
            reason: "redis-unavailable",
            detail: "connection refused".into(),
        };
        let (p, dlq) = processor(FakeApply::new(Mode::Lww, Some(down)));
        let e = event(
            (0..10)
                .map(|i| message(&format!("m{i}"), &batch_text(&format!("b{i}"), Mode::Lww, 2)))
                .collect(),
        );
        let response = handle_event(&p, "eu-west-1", &e, NOW_MS).await.unwrap();

        let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(failures(&response), expected);
        assert!(parked(&dlq).is_empty(), "retryable failures are not parked");
    }

    #[tokio::test]
    async fn a_dlq_outage_sends_the_permanent_record_back_to_the_queue() {
        let (p, dlq) = processor(FakeApply::new(Mode::Lww, None));
        dlq.fail_calls(true);
        let response = handle_event(&p, "eu-west-1", &nine_good_one_bad(), NOW_MS)
            .await
            .unwrap();
        assert_eq!(failures(&response), ["m4"]);
        assert_eq!(p.applier().calls.lock().unwrap()[0].len(), 9);
    }

    #[tokio::test]
    async fn batches_of_the_other_mode_are_parked_as_mode_mismatch() {
        let (p, dlq) = processor(FakeApply::new(Mode::Lww, None));
        let e = event(vec![
            message("m0", &batch_text("b0", Mode::Plain, 1)),
            message("m1", &batch_text("b1", Mode::Lww, 1)),
        ]);
        let records = records_from_event(&e);
        let outcomes = p.process(&records, NOW_MS).await;
        assert!(
            matches!(
                &outcomes[0],
                Outcome::Parked {
                    reason: "mode-mismatch",
                    ..
                }
            ),
            "{outcomes:?}"
        );
        assert!(
            matches!(&outcomes[1], Outcome::Applied { lag_ms: 250, .. }),
            "{outcomes:?}"
        );
        assert_eq!(p.applier().calls.lock().unwrap()[0], ["b1"]);
        assert_eq!(attribute(&parked(&dlq)[0], "reason"), "mode-mismatch");
    }

    #[tokio::test]
    async fn non_retryable_apply_errors_are_parked() {
        let refused = ApplyFailure {
            retryable: false,
            reason: "redis-refused",
            detail: "ERR unknown command".into(),
        };
        let (p, dlq) = processor(FakeApply::new(Mode::Lww, Some(refused)));
        let response = handle_event(
            &p,
            "eu-west-1",
            &event(vec![message("m0", &batch_text("b0", Mode::Lww, 1))]),
            NOW_MS,
        )
        .await
        .unwrap();
        assert!(failures(&response).is_empty());
        let parked = parked(&dlq);
        assert_eq!(
            (attribute(&parked[0], "reason"), attribute(&parked[0], "detail")),
            ("redis-refused", "ERR unknown command")
        );
    }

    #[tokio::test]
    async fn signed_batches_are_required_when_keys_are_configured() {
        let keyring = Keyring::parse("k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=:*").unwrap();
        let (p, dlq) = processor_with(FakeApply::new(Mode::Lww, None), keyring);
        let response = handle_event(
            &p,
            "eu-west-1",
            &event(vec![message("m0", &batch_text("b0", Mode::Lww, 1))]),
            NOW_MS,
        )
        .await
        .unwrap();
        assert!(failures(&response).is_empty());
        assert_eq!(attribute(&parked(&dlq)[0], "reason"), "unsigned");
        assert!(
            p.applier().calls.lock().unwrap().is_empty(),
            "nothing to apply, no call"
        );
    }

    #[tokio::test]
    async fn a_failed_record_without_message_id_fails_the_invocation() {
        let down = ApplyFailure {
            retryable: true,
            reason: "redis-unavailable",
            detail: String::new(),
        };
        let (p, _dlq) = processor(FakeApply::new(Mode::Lww, Some(down)));
        let mut m = message("", &batch_text("b0", Mode::Lww, 1));
        m.message_id = None;
        assert_eq!(
            handle_event(&p, "eu-west-1", &event(vec![m]), NOW_MS).await,
            Err(HandlerError::UnnamedFailure)
        );
    }

    #[test]
    fn records_carry_the_receive_count_and_source_queue() {
        let mut m = message("m0", "body");
        m.attributes.insert("ApproximateReceiveCount".into(), "3".into());
        let records = records_from_event(&event(vec![m, SqsMessage::default()]));
        assert_eq!(records[0].receive_count, 3);
        assert_eq!(records[0].source_queue, QUEUE_ARN);
        assert_eq!(
            records[1],
            Record {
                message_id: String::new(),
                body: String::new(),
                receive_count: 1,
                source_queue: String::new()
            }
        );
    }

    #[test]
    fn permanent_failures_are_reported_to_sentry_with_their_reason() {
        let events = sentry::test::with_captured_events(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (p, _dlq) = processor(FakeApply::new(Mode::Lww, None));
            let response = runtime
                .block_on(handle_event(&p, "eu-west-1", &nine_good_one_bad(), NOW_MS))
                .unwrap();
            assert!(failures(&response).is_empty());
        });
        assert_eq!(events.len(), 1, "one permanent failure, one event: {events:?}");
        let event = &events[0];
        assert_eq!(event.tags.get("reason").map(String::as_str), Some("malformed"));
        assert_eq!(event.tags.get("source_queue").map(String::as_str), Some(QUEUE_ARN));
        assert_eq!(event.extra.get("message_id"), Some(&serde_json::json!("m4")));
        assert!(
            event.message.as_deref().unwrap_or_default().contains("malformed"),
            "{:?}",
            event.message
        );
        assert_eq!(event.level, sentry::Level::Error);
    }
}
