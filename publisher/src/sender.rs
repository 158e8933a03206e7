//! The sender task: seals closed batches into messages, groups ready
//! messages into `PublishBatch` requests, and retries what failed.
//!
//! Several messages ready at once go out in one `PublishBatch` request (at
//! most [`PUBLISH_BATCH_MAX_ENTRIES`], their combined size within the topic's
//! limit); a lone message goes out with `Publish`. A `PublishBatch` answer is
//! read entry by entry: entries SNS refused as the sender's fault fail at
//! once, the others are retried individually with `Publish`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::Rng as _;
use rand::rngs::StdRng;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::batch::{ClosedBatch, Part, Sealer};
use crate::config::RetryPolicy;
use crate::error::{FailureCause, SnsError};
use crate::receipt::lock;
use crate::sns::{PUBLISH_BATCH_MAX_ENTRIES, SnsClient};
use crate::stats::{Counters, add};

/// Most messages sealed before the sender starts sending them.
const READY_TARGET: usize = 4 * PUBLISH_BATCH_MAX_ENTRIES;

/// What the sending side shares with its request tasks.
pub(crate) struct SendContext {
    pub(crate) sns: Arc<dyn SnsClient>,
    pub(crate) topic_arn: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_message_bytes: usize,
    pub(crate) counters: Arc<Counters>,
    pub(crate) jitter: Mutex<StdRng>,
    pub(crate) requests: Arc<Semaphore>,
}

/// Runs until the channel is closed and everything in flight is resolved.
pub(crate) async fn run(mut rx: mpsc::UnboundedReceiver<ClosedBatch>, mut sealer: Sealer, ctx: Arc<SendContext>) {
    let mut tasks = JoinSet::new();
    let mut ready = Vec::new();
    while let Some(batch) = rx.recv().await {
        sealer.seal(batch, &mut ready);
        while ready.len() < READY_TARGET {
            match rx.try_recv() {
                Ok(batch) => sealer.seal(batch, &mut ready),
                Err(_) => break,
            }
        }
        for group in group(std::mem::take(&mut ready), ctx.max_message_bytes) {
            let Ok(permit) = Arc::clone(&ctx.requests).acquire_owned().await else {
                break;
            };
            let ctx = Arc::clone(&ctx);
            tasks.spawn(async move {
                send_group(&ctx, group).await;
                drop(permit);
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Groups messages, in order, into requests of at most ten entries whose
/// combined size is within the message size limit.
pub(crate) fn group(parts: Vec<Part>, max_bytes: usize) -> Vec<Vec<Part>> {
    let mut groups: Vec<Vec<Part>> = Vec::new();
    let mut size = 0;
    for part in parts {
        match groups.last_mut() {
            Some(last) if last.len() < PUBLISH_BATCH_MAX_ENTRIES && size + part.size <= max_bytes => {
                size += part.size;
                last.push(part);
            }
            _ => {
                size = part.size;
                groups.push(vec![part]);
            }
        }
    }
    groups
}

async fn send_group(ctx: &SendContext, mut group: Vec<Part>) {
    let deadline = Instant::now() + ctx.retry.deadline;
    if group.len() == 1 {
        let part = group.pop().expect("one part");
        add(&ctx.counters.publish_requests, 1);
        match within(deadline, ctx.sns.publish(&ctx.topic_arn, &part.message)).await {
            Ok(()) => succeed(ctx, part),
            Err(e) if e.is_retryable() => retry_single(ctx, part, deadline, 1, e).await,
            Err(e) => fail(ctx, part, 1, e),
        }
        return;
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        add(&ctx.counters.publish_batch_requests, 1);
        let messages: Vec<_> = group.iter().map(|p| &p.message).collect();
        let result = within(deadline, ctx.sns.publish_batch(&ctx.topic_arn, &messages)).await;
        drop(messages);
        match result {
            Ok(outcome) => {
                let successful: HashSet<String> = outcome.successful.into_iter().collect();
                let mut failed: HashMap<String, SnsError> =
                    outcome.failed.iter().map(|f| (f.id.clone(), f.to_error())).collect();
                let mut retries = Vec::new();
                for part in group {
                    if successful.contains(&part.message.id) {
                        succeed(ctx, part);
                        continue;
                    }
                    let error = failed.remove(&part.message.id).unwrap_or_else(|| SnsError::Server {
                        code: "MissingEntryResult".into(),
                        message: "PublishBatch reported neither success nor failure for this entry".into(),
                    });
                    if error.is_retryable() {
                        retries.push(retry_single(ctx, part, deadline, attempts, error));
                    } else {
                        fail(ctx, part, attempts, error);
                    }
                }
                futures::future::join_all(retries).await;
                return;
            }
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                backoff(ctx, attempts, deadline).await;
                add(&ctx.counters.retries, 1);
            }
            Err(e) => {
                for part in group {
                    fail(ctx, part, attempts, e.clone());
                }
                return;
            }
        }
    }
}

/// Retries one message with `Publish` until it succeeds, is rejected, or the
/// deadline passes.
async fn retry_single(ctx: &SendContext, part: Part, deadline: Instant, mut attempts: u32, mut last: SnsError) {
    loop {
        if Instant::now() >= deadline {
            return fail(ctx, part, attempts, last);
        }
        backoff(ctx, attempts, deadline).await;
        add(&ctx.counters.retries, 1);
        add(&ctx.counters.publish_requests, 1);
        attempts += 1;
        match within(deadline, ctx.sns.publish(&ctx.topic_arn, &part.message)).await {
            Ok(()) => return succeed(ctx, part),
            Err(e) if e.is_retryable() => last = e,
            Err(e) => return fail(ctx, part, attempts, e),
        }
    }
}

/// Bounds one SNS call by the retry deadline, so a request that hangs
/// counts toward it. (SNS may still have stored a message whose answer came
/// too late: it is then reported failed but delivered, which idempotent
/// commands tolerate.)
async fn within<T>(deadline: Instant, call: impl Future<Output = Result<T, SnsError>>) -> Result<T, SnsError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| Err(SnsError::Timeout("no answer from SNS before the retry deadline".into())))
}

/// Full jitter: a random wait up to the exponential cap, never past the
/// deadline.
async fn backoff(ctx: &SendContext, retry: u32, deadline: Instant) {
    let cap = ctx.retry.backoff_cap(retry);
    let nanos = lock(&ctx.jitter).random_range(0..=cap.as_nanos().min(u64::MAX as u128) as u64);
    let until = (Instant::now() + std::time::Duration::from_nanos(nanos)).min(deadline);
    tokio::time::sleep_until(until).await;
}

fn succeed(ctx: &SendContext, part: Part) {
    add(&ctx.counters.messages_published, 1);
    part.tracker.succeed();
}

fn fail(ctx: &SendContext, part: Part, attempts: u32, error: SnsError) {
    add(&ctx.counters.failed_messages, 1);
    add(&ctx.counters.failed_commands, part.commands);
    let error = part.delivery_error(attempts, FailureCause::Sns(error));
    tracing::error!(batch_id = %error.batch_id, tenant = %error.tenant, commands = error.commands, "giving up: {error}");
    part.tracker.fail(error);
}
