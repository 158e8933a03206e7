//! Record handling, shared by the Lambda function and `regis worker`.
//!
//! A [`Processor`] takes the SQS records of one invocation (or one receive),
//! decodes each, refuses batches written for the other apply mode, applies
//! the decoded batches in as few [`Apply::apply`] calls as its command
//! budget allows (pipelined: one round trip for many commands), parks
//! permanent failures in the dead-letter queue and returns one [`Outcome`]
//! per record, in order.
//!
//! Records are decoded and applied in slices of at most
//! [`DEFAULT_APPLY_BUDGET_COMMANDS`] commands (a record larger than the
//! budget goes alone), and only a small verdict per record is kept between
//! slices: a decoded command and its pipeline cost a few KiB, so memory is
//! bounded by the budget rather than by records × batch size.
//!
//! The rule it keeps: nothing is ever dropped without being applied or
//! parked. A record is [`Outcome::is_done`] (to be deleted from its queue)
//! only when its batch was applied or its copy is safely in the DLQ; every
//! other record is left for SQS to deliver again, and after
//! `maxReceiveCount` deliveries the queue's redrive policy moves it to the
//! DLQ itself.

use std::time::Duration;

use async_trait::async_trait;
use regis_wire::{Batch, DecodeLimits, Keyring, Mode, TenantRegistry};
use tracing::{Instrument as _, info, info_span, warn};

use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::report;

/// How long to wait for Sentry to send what a call captured before it
/// returns (a Lambda may be frozen right after it answers).
pub const SENTRY_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Default most commands handed to one [`Apply::apply`] call. Ten records
/// of small batches still go in one call; ten batches of ~1 MiB (about
/// 11,000 commands each) go one or two at a time, which keeps a worker's
/// memory in the tens of MiB instead of hundreds.
pub const DEFAULT_APPLY_BUDGET_COMMANDS: usize = 20_000;

/// One SQS message, as the Lambda event and `ReceiveMessage` both deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The SQS message id (the Lambda's `itemIdentifier`).
    pub message_id: String,
    /// The message text: one encoded batch.
    pub body: String,
    /// `ApproximateReceiveCount`: how often SQS has delivered it (1 the first time).
    pub receive_count: u32,
    /// The queue the record came from (ARN in the Lambda, URL in the
    /// worker), recorded with its DLQ copy.
    pub source_queue: String,
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Commands in the batch.
    pub commands: usize,
    /// Commands not written because the region already held a newer version.
    pub skipped_older: usize,
    /// Commands not written because the key holds another data type.
    pub type_conflicts: usize,
}

/// Why one batch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Whether the same batch may succeed later (Redis down, timeout,
    /// failover) as opposed to never (a command Redis refuses).
    pub retryable: bool,
    /// A short, stable reason code.
    pub reason: &'static str,
    /// The error text.
    pub detail: String,
}

/// The apply step, behind a small trait so record handling can be tested
/// without Redis. The engine in [`crate::apply`] implements it.
#[async_trait]
pub trait Apply: Send + Sync {
    /// The mode this applier writes; batches of the other mode are refused.
    fn mode(&self) -> Mode;

    /// Applies `batches` (pipelined) and returns one result per batch, in
    /// order.
    async fn apply(&self, batches: &[&Batch], now_ms: u64) -> Vec<Result<Applied, ApplyFailure>>;
}

/// The real engine. Its errors are mapped to [`ApplyFailure`]s.
#[async_trait]
impl Apply for crate::apply::Engine {
    fn mode(&self) -> Mode {
        crate::apply::Engine::mode(self)
    }

    async fn apply(&self, batches: &[&Batch], now_ms: u64) -> Vec<Result<Applied, ApplyFailure>> {
        crate::apply::Engine::apply(self, batches, now_ms)
            .await
            .into_iter()
            .map(|result| match result {
                Ok(done) => Ok(Applied {
                    commands: done.commands,
                    skipped_older: done.skipped_older,
                    type_conflicts: done.type_conflicts,
                }),
                Err(error) => Err(ApplyFailure {
                    retryable: error.is_retryable(),
                    reason: error.reason(),
                    detail: error.to_string(),
                }),
            })
            .collect()
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The batch was applied (delete the record).
    Applied {
        /// The batch id.
        batch_id: String,
        /// What the apply did.
        applied: Applied,
        /// Replication lag: apply time minus publish time, in milliseconds
        /// (0 if the publisher's clock is ahead).
        lag_ms: u64,
    },
    /// Failed for good and parked in the DLQ (delete the record).
    Parked {
        /// The reason code (the DLQ copy's `reason` attribute).
        reason: &'static str,
        /// The error text.
        detail: String,
    },
    /// Failed, may succeed later: leave it to SQS to deliver again.
    Retry {
        /// The reason code.
        reason: &'static str,
        /// The error text.
        detail: String,
    },
    /// Failed for good, but the DLQ copy could not be sent: leave it to
    /// SQS, so it is parked on a later delivery or moved to the DLQ by the
    /// redrive policy. Never deleted.
    ParkFailed {
        /// The reason code of the original failure.
        reason: &'static str,
        /// The error text of the original failure.
        detail: String,
        /// Why the DLQ send failed.
        dlq_error: String,
    },
}

impl Outcome {
    /// True when the record may be deleted from its queue: applied, or
    /// parked in the DLQ.
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Applied { .. } | Self::Parked { .. })
    }
}

fn missing_result() -> Result<Applied, ApplyFailure> {
    Err(ApplyFailure {
        retryable: true,
        reason: "no-result",
        detail: "the engine gave no result for this batch".into(),
    })
}

/// A record's verdict before parking.
enum Verdict {
    Applied {
        batch_id: String,
        applied: Applied,
        lag_ms: u64,
    },
    Retry {
        reason: &'static str,
        detail: String,
    },
    Permanent {
        batch_id: Option<String>,
        reason: &'static str,
        detail: String,
    },
}

/// Decodes, applies and parks: the record handling of one invocation.
#[derive(Debug)]
pub struct Processor<A> {
    applier: A,
    dead_letters: DeadLetterQueue,
    limits: DecodeLimits,
    keyring: Keyring,
    budget_commands: usize,
    checks: Checks,
    tenants: Option<TenantScope>,
}

/// The region an applier serves and the registry its batches' tenants are
/// checked against.
#[derive(Debug, Clone)]
struct TenantScope {
    region: String,
    registry: TenantRegistry,
}

/// The bounds a last-writer-wins batch's versions are checked against, at
/// the applier's clock, before anything of it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// A version further ahead than this is refused (`clock-skew`): it
    /// would win every conflict on its keys until the clocks meet.
    pub max_clock_skew_ms: u64,
    /// A version older than this is refused (`beyond-horizon`): the
    /// tombstones it should lose to may be gone.
    pub horizon_ms: u64,
}

impl Default for Checks {
    /// The configuration's defaults: five minutes ahead, the default
    /// tombstone horizon behind.
    fn default() -> Self {
        Self {
            max_clock_skew_ms: crate::config::DEFAULT_MAX_CLOCK_SKEW_SECONDS * 1000,
            horizon_ms: crate::config::DEFAULT_TOMBSTONE_HORIZON_SECONDS * 1000,
        }
    }
}

impl<A: Apply> Processor<A> {
    /// A processor that applies with `applier`, parks in `dead_letters` and
    /// decodes with `limits` and `keyring`.
    pub fn new(applier: A, dead_letters: DeadLetterQueue, limits: DecodeLimits, keyring: Keyring) -> Self {
        Self {
            applier,
            dead_letters,
            limits,
            keyring,
            budget_commands: DEFAULT_APPLY_BUDGET_COMMANDS,
            checks: Checks::default(),
            tenants: None,
        }
    }

    /// Checks every batch's tenant against `registry` for `region`: a
    /// tenant not in the registry, not allowed in the region, or writing a
    /// key outside its prefixes is parked whole as `tenant-denied`. Without
    /// this call (the library's default, for tests) tenants are not
    /// checked; the binaries always configure a registry unless told
    /// explicitly that any tenant may write (`REGIS_ALLOW_ANY_TENANT`).
    pub fn with_tenants(mut self, region: impl Into<String>, registry: TenantRegistry) -> Self {
        self.tenants = Some(TenantScope {
            region: region.into(),
            registry,
        });
        self
    }

    /// Caps the commands handed to one [`Apply::apply`] call at
    /// `budget_commands` (at least 1; a record larger than the budget is
    /// applied alone). Default: [`DEFAULT_APPLY_BUDGET_COMMANDS`].
    pub fn with_apply_budget(mut self, budget_commands: usize) -> Self {
        self.budget_commands = budget_commands.max(1);
        self
    }

    /// The most commands handed to one [`Apply::apply`] call.
    pub fn apply_budget(&self) -> usize {
        self.budget_commands
    }

    /// Checks versions against the applier's clock with these bounds
    /// (last-writer-wins mode). Default: [`Checks::default`].
    pub fn with_checks(mut self, checks: Checks) -> Self {
        self.checks = checks;
        self
    }

    /// The apply step.
    pub fn applier(&self) -> &A {
        &self.applier
    }

    /// Where permanent failures are parked.
    pub fn dead_letters(&self) -> &DeadLetterQueue {
        &self.dead_letters
    }

    /// Handles `records` received at `now_ms` (epoch milliseconds) and
    /// returns one outcome per record, in order.
    ///
    /// Permanent failures are reported to Sentry (when a client is bound)
    /// and Sentry is flushed before this returns if anything was captured.
    pub async fn process(&self, records: &[Record], now_ms: u64) -> Vec<Outcome> {
        let verdicts = self.judge(records, now_ms).await;

        let mut letters = Vec::new();
        let mut captured = false;
        for (record, verdict) in records.iter().zip(&verdicts) {
            if let Verdict::Permanent {
                batch_id,
                reason,
                detail,
            } = verdict
            {
                // A batch that could not be decoded has no id to log.
                let span = info_span!("batch", message_id = %record.message_id, batch_id = tracing::field::Empty);
                if let Some(id) = batch_id {
                    span.record("batch_id", id.as_str());
                }
                span.in_scope(|| warn!(reason, detail = %detail, receive_count = record.receive_count, "permanent failure, parking in the DLQ"));
                captured |= report::permanent_failure(record, batch_id.as_deref(), reason, detail);
                letters.push(DeadLetter {
                    body: record.body.clone(),
                    reason: (*reason).to_owned(),
                    detail: detail.clone(),
                    source_queue: record.source_queue.clone(),
                    message_id: record.message_id.clone(),
                    failed_at_ms: now_ms,
                });
            }
        }
        let mut parked = if letters.is_empty() {
            Vec::new().into_iter()
        } else {
            let results = self.dead_letters.park(&letters).await;
            let mut results: Vec<_> = results.into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
            // A short answer is a bug in the implementation; the records it
            // does not cover must not be deleted.
            results.resize_with(letters.len(), || {
                Err("the DLQ gave no result for this record".to_owned())
            });
            results.into_iter()
        };

        let outcomes: Vec<Outcome> = records
            .iter()
            .zip(verdicts)
            .map(|(record, verdict)| match verdict {
                Verdict::Applied { batch_id, applied, lag_ms } => Outcome::Applied { batch_id, applied, lag_ms },
                Verdict::Retry { reason, detail } => Outcome::Retry { reason, detail },
                Verdict::Permanent { reason, detail, .. } => {
                    match parked.next().unwrap_or_else(|| Err("the DLQ gave no result for this record".to_owned())) {
                        Ok(()) => Outcome::Parked { reason, detail },
                        Err(dlq_error) => {
                            warn!(message_id = %record.message_id, reason, dlq_error = %dlq_error, "could not park; leaving the record in its queue");
                            Outcome::ParkFailed { reason, detail, dlq_error }
                        }
                    }
                }
            })
            .collect();

        if captured {
            report::flush(SENTRY_FLUSH_TIMEOUT).await;
        }
        outcomes
    }

    /// Decodes the records in order, applies the decoded batches in slices
    /// of at most the command budget and judges each record. Only the
    /// verdicts outlive a slice.
    async fn judge(&self, records: &[Record], now_ms: u64) -> Vec<Verdict> {
        let mut verdicts: Vec<Option<Verdict>> = (0..records.len()).map(|_| None).collect();
        let mut slice: Vec<(usize, Batch)> = Vec::new();
        let mut slice_commands = 0usize;
        for (index, record) in records.iter().enumerate() {
            let batch = match self.decode(record, now_ms) {
                Ok(batch) => batch,
                Err(verdict) => {
                    verdicts[index] = Some(verdict);
                    continue;
                }
            };
            let commands = batch.commands.len();
            if !slice.is_empty() && slice_commands.saturating_add(commands) > self.budget_commands {
                self.apply_slice(records, std::mem::take(&mut slice), now_ms, &mut verdicts)
                    .await;
                slice_commands = 0;
            }
            slice_commands = slice_commands.saturating_add(commands);
            slice.push((index, batch));
        }
        if !slice.is_empty() {
            self.apply_slice(records, slice, now_ms, &mut verdicts).await;
        }
        verdicts
            .into_iter()
            .map(|verdict| {
                verdict.unwrap_or_else(|| Verdict::Retry {
                    reason: "no-result",
                    detail: "the record was not judged".into(),
                })
            })
            .collect()
    }

    /// Decodes one record and checks it before anything of it is applied:
    /// the signature and its key's tenants (in the decoder), the apply
    /// mode, the tenant's region and key prefixes, the reserved namespace
    /// (both modes), and in
    /// last-writer-wins mode the versions against the applier's clock
    /// `now_ms`: none further ahead than the clock-skew bound, none older
    /// than the tombstone horizon. Any refusal is permanent, for the whole
    /// batch.
    fn decode(&self, record: &Record, now_ms: u64) -> Result<Batch, Verdict> {
        let mode = self.applier.mode();
        let batch =
            regis_wire::decode(&record.body, &self.limits, &self.keyring).map_err(|error| Verdict::Permanent {
                batch_id: None,
                reason: error.reason(),
                detail: error.to_string(),
            })?;
        let refused = |reason: &'static str, detail: String, batch: Batch| Verdict::Permanent {
            reason,
            detail,
            batch_id: Some(batch.header.id),
        };
        if batch.header.mode != mode {
            let detail = format!(
                "batch written for {} mode, this applier runs {} mode",
                batch.header.mode, mode
            );
            return Err(refused("mode-mismatch", detail, batch));
        }
        if let Some(scope) = &self.tenants {
            if let Err(denied) = scope
                .registry
                .check(&batch.header.tenant, &scope.region, &batch.commands)
            {
                return Err(refused(denied.reason(), denied.to_string(), batch));
            }
        }
        let checked = match mode {
            Mode::Plain => regis_wire::check_reserved_keys(&batch.commands),
            Mode::Lww => regis_wire::check_reserved_keys(&batch.commands)
                .and_then(|()| regis_wire::check_clock_skew(&batch.commands, now_ms, self.checks.max_clock_skew_ms))
                .and_then(|()| regis_wire::check_horizon(&batch.commands, now_ms, self.checks.horizon_ms)),
        };
        match checked {
            Ok(()) => Ok(batch),
            Err(refusal) => Err(refused(refusal.reason(), refusal.to_string(), batch)),
        }
    }

    /// Applies one slice of decoded batches (`(record index, batch)`) in a
    /// single call and stores each record's verdict; the batches are
    /// dropped when it returns.
    async fn apply_slice(
        &self,
        records: &[Record],
        slice: Vec<(usize, Batch)>,
        now_ms: u64,
        verdicts: &mut [Option<Verdict>],
    ) {
        let batches: Vec<&Batch> = slice.iter().map(|(_, batch)| batch).collect();
        let span = info_span!("apply", batches = batches.len());
        let mut results = self.applier.apply(&batches, now_ms).instrument(span).await;
        drop(batches);
        // A short answer is a bug in the implementation: retry what it does
        // not cover rather than guess.
        results.resize_with(slice.len(), missing_result);
        for ((index, batch), result) in slice.into_iter().zip(results) {
            let record = &records[index];
            let span = info_span!("batch", message_id = %record.message_id, batch_id = %batch.header.id);
            let _entered = span.enter();
            verdicts[index] = Some(match result {
                Ok(applied) => {
                    let lag_ms = now_ms.saturating_sub(batch.header.published_at_ms);
                    info!(
                        commands = applied.commands,
                        skipped_older = applied.skipped_older,
                        type_conflicts = applied.type_conflicts,
                        lag_ms,
                        origin = %batch.header.origin,
                        tenant = %batch.header.tenant,
                        "applied"
                    );
                    Verdict::Applied {
                        batch_id: batch.header.id,
                        applied,
                        lag_ms,
                    }
                }
                Err(failure) if failure.retryable => {
                    warn!(reason = failure.reason, detail = %failure.detail, receive_count = record.receive_count, "retryable failure");
                    Verdict::Retry {
                        reason: failure.reason,
                        detail: failure.detail,
                    }
                }
                Err(failure) => Verdict::Permanent {
                    batch_id: Some(batch.header.id),
                    reason: failure.reason,
                    detail: failure.detail,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use regis_testkit::MemoryQueue;
    use regis_wire::{BatchHeader, Command, EncodeOptions, Version, VersionedCommand};

    use super::*;

    const NOW_MS: u64 = 1_700_000_001_000;

    /// Applies nothing; records the command count of every batch of every call.
    struct SizeRecorder {
        calls: Mutex<Vec<Vec<usize>>>,
    }

    #[async_trait]
    impl Apply for SizeRecorder {
        fn mode(&self) -> Mode {
            Mode::Lww
        }

        async fn apply(&self, batches: &[&Batch], _now_ms: u64) -> Vec<Result<Applied, ApplyFailure>> {
            self.calls
                .lock()
                .unwrap()
                .push(batches.iter().map(|b| b.commands.len()).collect());
            batches
                .iter()
                .map(|b| {
                    Ok(Applied {
                        commands: b.commands.len(),
                        ..Default::default()
                    })
                })
                .collect()
        }
    }

    fn record(id: &str, commands: usize) -> Record {
        let batch = Batch {
            header: BatchHeader {
                id: id.into(),
                origin: "ap-southeast-1".into(),
                published_at_ms: NOW_MS - 100,
                tenant: "acme".into(),
                mode: Mode::Lww,
            },
            commands: (0..commands)
                .map(|i| {
                    VersionedCommand::new(
                        Version::new(NOW_MS - 100, i as u32, 1),
                        Command::Set {
                            key: format!("{id}:{i}").into_bytes(),
                            value: b"v".to_vec(),
                            expire_at_ms: None,
                        },
                    )
                })
                .collect(),
        };
        Record {
            message_id: format!("m-{id}"),
            body: regis_wire::encode(&batch, &EncodeOptions::default()).unwrap().text,
            receive_count: 1,
            source_queue: "q".into(),
        }
    }

    fn processor(budget: usize) -> (Processor<SizeRecorder>, Arc<MemoryQueue>) {
        let dlq = Arc::new(MemoryQueue::new());
        let p = Processor::new(
            SizeRecorder {
                calls: Mutex::new(Vec::new()),
            },
            DeadLetterQueue::new(dlq.clone(), "dlq"),
            DecodeLimits::default(),
            Keyring::default(),
        )
        .with_apply_budget(budget);
        (p, dlq)
    }

    #[tokio::test]
    async fn batches_are_applied_in_slices_bounded_by_the_budget() {
        let (p, _) = processor(10);
        // 4+4 fit; 4+4+4 would not. 25 is over the budget and goes alone.
        let records: Vec<Record> = [4, 4, 4, 25, 3, 7, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| record(&format!("b{i}"), n))
            .collect();
        let outcomes = p.process(&records, NOW_MS).await;

        let calls = p.applier().calls.lock().unwrap().clone();
        assert_eq!(calls, vec![vec![4, 4], vec![4], vec![25], vec![3, 7], vec![1]]);
        let applied: Vec<usize> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Applied { applied, .. } => applied.commands,
                other => panic!("not applied: {other:?}"),
            })
            .collect();
        assert_eq!(applied, vec![4, 4, 4, 25, 3, 7, 1], "one outcome per record, in order");
    }

    #[tokio::test]
    async fn outcomes_keep_record_order_across_slices_with_malformed_records() {
        let (p, dlq) = processor(5);
        let mut records = vec![record("a", 3), record("b", 3), record("c", 2)];
        records.insert(
            1,
            Record {
                body: "{not a batch".into(),
                ..record("bad", 1)
            },
        );
        let outcomes = p.process(&records, NOW_MS).await;

        assert_eq!(p.applier().calls.lock().unwrap().clone(), vec![vec![3], vec![3, 2]]);
        assert!(matches!(&outcomes[0], Outcome::Applied { batch_id, .. } if batch_id == "a"));
        assert!(matches!(&outcomes[1], Outcome::Parked { .. }), "{:?}", outcomes[1]);
        assert!(matches!(&outcomes[2], Outcome::Applied { batch_id, .. } if batch_id == "b"));
        assert!(matches!(&outcomes[3], Outcome::Applied { batch_id, .. } if batch_id == "c"));
        assert_eq!(dlq.messages("dlq").len(), 1);
    }

    #[tokio::test]
    async fn the_default_budget_keeps_small_batches_in_one_call() {
        let p = Processor::new(
            SizeRecorder {
                calls: Mutex::new(Vec::new()),
            },
            DeadLetterQueue::new(Arc::new(MemoryQueue::new()), "dlq"),
            DecodeLimits::default(),
            Keyring::default(),
        );
        assert_eq!(p.apply_budget(), DEFAULT_APPLY_BUDGET_COMMANDS);
        let records: Vec<Record> = (0..10).map(|i| record(&format!("s{i}"), 100)).collect();
        p.process(&records, NOW_MS).await;
        assert_eq!(p.applier().calls.lock().unwrap().len(), 1);
    }

    fn batch_record(id: &str, commands: Vec<VersionedCommand>) -> Record {
        let batch = regis_testkit::batches::batch(id, Mode::Lww, NOW_MS, commands);
        Record {
            message_id: format!("m-{id}"),
            body: regis_testkit::batches::text(&batch),
            receive_count: 1,
            source_queue: "q".into(),
        }
    }

    fn set(key: &str, millis: u64) -> VersionedCommand {
        VersionedCommand::new(
            Version::new(millis, 0, 1),
            Command::Set {
                key: key.into(),
                value: b"v".to_vec(),
                expire_at_ms: None,
            },
        )
    }

    fn reason(outcome: &Outcome) -> &'static str {
        match outcome {
            Outcome::Parked { reason, .. } => reason,
            other => panic!("not parked: {other:?}"),
        }
    }

    const MINUTE: u64 = 60_000;
    const DAY: u64 = 86_400_000;

    #[tokio::test]
    async fn a_batch_writing_the_reserved_namespace_is_parked_whole() {
        let (p, dlq) = processor(100);
        let bad = batch_record("bad", vec![set("ok:1", NOW_MS), set("regis:v:{a}:victim", NOW_MS)]);
        let good = batch_record("good", vec![set("ok:2", NOW_MS), set("regis:probe:1", NOW_MS)]);
        let outcomes = p.process(&[bad, good], NOW_MS).await;
        assert_eq!(reason(&outcomes[0]), "reserved-key");
        assert!(
            matches!(&outcomes[1], Outcome::Applied { .. }),
            "probes are data: {:?}",
            outcomes[1]
        );
        assert_eq!(
            p.applier().calls.lock().unwrap().clone(),
            vec![vec![2]],
            "nothing of the bad batch"
        );
        let parked = dlq.messages("dlq");
        assert!(parked[0].attributes["detail"].value.contains("regis:v:{a}:victim"));
    }

    #[tokio::test]
    async fn versions_too_far_ahead_of_the_applier_clock_are_parked_as_clock_skew() {
        let (p, dlq) = processor(100);
        let checks = Checks {
            max_clock_skew_ms: 5 * MINUTE,
            horizon_ms: 7 * DAY,
        };
        let p = p.with_checks(checks);
        let ahead = batch_record("ahead", vec![set("a", NOW_MS), set("b", NOW_MS + 6 * MINUTE)]);
        let near = batch_record("near", vec![set("c", NOW_MS + 5 * MINUTE)]);
        // The applier's clock reads NOW_MS: one is six minutes ahead, one five.
        let outcomes = p.process(&[ahead.clone(), near], NOW_MS).await;
        assert_eq!(reason(&outcomes[0]), "clock-skew");
        assert!(matches!(&outcomes[1], Outcome::Applied { .. }));
        let detail = &dlq.messages("dlq")[0].attributes["detail"].value;
        assert!(
            detail.contains("command 1") && detail.contains("360000 ms ahead"),
            "{detail}"
        );
        // The same batch, to an applier whose clock is two minutes later, applies.
        let outcomes = p.process(&[ahead], NOW_MS + 2 * MINUTE).await;
        assert!(matches!(&outcomes[0], Outcome::Applied { .. }), "{outcomes:?}");
    }

    #[tokio::test]
    async fn batches_older_than_the_horizon_are_parked_as_beyond_horizon() {
        let (p, _dlq) = processor(100);
        let p = p.with_checks(Checks {
            max_clock_skew_ms: 5 * MINUTE,
            horizon_ms: 7 * DAY,
        });
        let record = batch_record("old", vec![set("a", NOW_MS)]);
        // Applied late but within the horizon: fine.
        let outcomes = p.process(std::slice::from_ref(&record), NOW_MS + 7 * DAY).await;
        assert!(matches!(&outcomes[0], Outcome::Applied { .. }), "{outcomes:?}");
        // A millisecond past it (a redrive from the DLQ eight days later): refused.
        let outcomes = p.process(std::slice::from_ref(&record), NOW_MS + 7 * DAY + 1).await;
        assert_eq!(reason(&outcomes[0]), "beyond-horizon");
        assert_eq!(
            p.applier().calls.lock().unwrap().len(),
            1,
            "the old batch reached Redis once only"
        );
    }

    const TENANTS: &str = r#"{"acme": {"regions": ["eu-west-1"], "prefixes": ["acme:"]},
                              "hotel-sg": {"regions": ["*"], "prefixes": [""]}}"#;

    fn with_tenants(p: Processor<SizeRecorder>, region: &str) -> Processor<SizeRecorder> {
        p.with_tenants(region, TenantRegistry::parse(TENANTS).unwrap())
    }

    fn encoded(batch: &Batch, key: Option<&regis_wire::SigningKey>) -> Record {
        let options = EncodeOptions {
            signing_key: key.cloned(),
            ..EncodeOptions::default()
        };
        Record {
            message_id: format!("m-{}", batch.header.id),
            body: regis_wire::encode(batch, &options).unwrap().text,
            receive_count: 1,
            source_queue: "q".into(),
        }
    }

    #[tokio::test]
    async fn batches_outside_their_tenant_are_parked_whole_as_tenant_denied() {
        let (p, dlq) = processor(100);
        let p = with_tenants(p, "eu-west-1");
        let good = batch_record("good", vec![set("acme:1", NOW_MS)]);
        let foreign_key = batch_record("foreign", vec![set("acme:2", NOW_MS), set("hotel-sg:9", NOW_MS)]);
        let mut unknown = regis_testkit::batches::batch("unknown", Mode::Lww, NOW_MS, vec![set("x", NOW_MS)]);
        unknown.header.tenant = "globex".into();
        let outcomes = p.process(&[good, foreign_key, encoded(&unknown, None)], NOW_MS).await;
        assert!(matches!(outcomes[0], Outcome::Applied { .. }), "{:?}", outcomes[0]);
        assert_eq!(reason(&outcomes[1]), "tenant-denied");
        assert_eq!(reason(&outcomes[2]), "tenant-denied");
        assert_eq!(
            p.applier().calls.lock().unwrap().clone(),
            vec![vec![1]],
            "only the good batch"
        );
        let parked = dlq.messages("dlq");
        let detail = &parked[0].attributes["detail"].value;
        assert!(detail.contains("hotel-sg:9") && detail.contains("acme"), "{detail}");
        assert!(parked[1].attributes["detail"].value.contains("globex"));

        // The same batch, delivered in a region its tenant may not be in.
        let (p, dlq) = processor(100);
        let p = with_tenants(p, "ap-south-1");
        let outcomes = p
            .process(&[batch_record("elsewhere", vec![set("acme:1", NOW_MS)])], NOW_MS)
            .await;
        assert_eq!(reason(&outcomes[0]), "tenant-denied");
        assert!(dlq.messages("dlq")[0].attributes["detail"].value.contains("ap-south-1"));
        assert!(p.applier().calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_key_signs_only_for_its_tenants_and_two_keys_rotate() {
        let old = regis_wire::SigningKey::new("old", vec![1; 32]).for_tenants(["acme"]);
        let new = regis_wire::SigningKey::new("new", vec![2; 32]).for_tenants(["acme"]);
        let other = regis_wire::SigningKey::new("sg", vec![3; 32]).for_tenants(["hotel-sg"]);
        let p = Processor::new(
            SizeRecorder {
                calls: Mutex::new(Vec::new()),
            },
            DeadLetterQueue::new(Arc::new(MemoryQueue::new()), "dlq"),
            DecodeLimits::default(),
            Keyring::new(vec![old.clone(), new.clone(), other.clone()]),
        );
        let p = with_tenants(p, "eu-west-1");
        let batch = |id: &str| regis_testkit::batches::batch(id, Mode::Lww, NOW_MS, vec![set("acme:1", NOW_MS)]);
        let outcomes = p
            .process(
                &[
                    encoded(&batch("by-old"), Some(&old)),
                    encoded(&batch("by-new"), Some(&new)),
                    encoded(&batch("by-other-tenant"), Some(&other)),
                    encoded(&batch("unsigned"), None),
                ],
                NOW_MS,
            )
            .await;
        assert!(matches!(outcomes[0], Outcome::Applied { .. }), "{:?}", outcomes[0]);
        assert!(matches!(outcomes[1], Outcome::Applied { .. }), "{:?}", outcomes[1]);
        assert_eq!(reason(&outcomes[2]), "key-not-for-tenant");
        assert_eq!(reason(&outcomes[3]), "unsigned");
        assert_eq!(p.applier().calls.lock().unwrap().clone(), vec![vec![1, 1]]);
    }
}
