//! `regis dlq list|show|redrive`: what sits in a region's dead-letter queue,
//! why, and moving it back to the apply queue after a fix.
//!
//! `list` and `show` only look: they receive with a visibility timeout of 0
//! and never delete, so the queue is left as it was. SQS returns at most 10
//! messages per receive and samples its servers, so the whole queue is read
//! by receiving again until no new message ids appear (or the queue's
//! approximate depth has been seen), within a bounded number of rounds.
//!
//! `redrive` without a filter asks SQS to move everything
//! (`StartMessageMoveTask`, with an explicit `DestinationArn`: LocalStack
//! needs it) and waits until the task ends (`ListMessageMoveTasks`). With
//! `--reason`, or `--manual`, or when the move task is unavailable, it moves
//! messages itself: receive, send to the apply queue (`SendMessageBatch`,
//! the body unchanged and the original message attributes without the DLQ
//! bookkeeping ones), and delete from the DLQ only what the send accepted.
//! An interruption can therefore duplicate a message (harmless: apply is
//! idempotent) but never lose one. Messages that do not match the filter
//! are made visible again at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use regis_aws::{BATCH_MAX_ENTRIES as SEND_MESSAGE_BATCH_MAX_ENTRIES, plan_batches as plan_send_batches};
use regis_wire::{DecodeLimits, Keyring};
use serde_json::{Value, json};

use crate::local_env::{EnvArgs, LocalEnv, pick, sdk_config};
use crate::output::{OpsError, Outcome, print_json, progress};
use crate::publish::now_ms;

/// Most messages one `ReceiveMessage` call returns.
/// Source: Amazon SQS API Reference, `ReceiveMessage`, `MaxNumberOfMessages` ("Valid values: 1 to 10").
pub const RECEIVE_MAX_MESSAGES: i32 = 10;

/// The message attributes the DLQ copy carries about the failure
/// (docs/ARCHITECTURE.md); a redrive drops them.
pub const BOOKKEEPING_ATTRIBUTES: [&str; 5] = ["reason", "detail", "source-queue", "message-id", "failed-at"];

/// Receives in a row that brought no new message id before a look at the
/// queue counts as complete.
const QUIET_ROUNDS: usize = 3;

/// Move-task states that mean it has ended. Source: Amazon SQS API
/// Reference, `ListMessageMoveTasksResultEntry`, `Status` (RUNNING,
/// COMPLETED, CANCELLING, CANCELLED, FAILED).
const TASK_ENDED: [&str; 3] = ["COMPLETED", "CANCELLED", "FAILED"];

/// `regis dlq`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Inspect a region's dead-letter queue and move its messages back to the apply queue. \
`list` groups what is there by reason, `show` decodes one message, `redrive` moves messages back after a fix \
(all of them, or only those with one reason). list and show never change the queue.",
    after_help = "Examples:
  regis dlq list --region eu-west-1
  regis dlq show --region eu-west-1 4f1c2a9e-0b7d-4c3e-9a51-2f6d8e0c1b7a
  regis dlq redrive --region eu-west-1 --reason bad-signature"
)]
pub struct DlqArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DlqAction,
}

/// The `regis dlq` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqAction {
    /// Count what sits in the DLQ, grouped by reason, with the oldest and newest ages.
    #[command(after_help = "Example:\n  regis dlq list --region eu-west-1 --json")]
    List(ListArgs),
    /// Show one message decoded: header, commands, reason and detail (the raw text when it cannot be decoded).
    #[command(after_help = "Example:\n  regis dlq show --region eu-west-1 4f1c2a9e-0b7d-4c3e-9a51-2f6d8e0c1b7a")]
    Show(ShowArgs),
    /// Move messages back to the apply queue (all, or those with one reason).
    #[command(after_help = "Examples:
  regis dlq redrive --region eu-west-1
  regis dlq redrive --region eu-west-1 --reason unknown-version

Without --reason, SQS moves everything (StartMessageMoveTask) and the command waits for it to finish.
With --reason (or --manual) messages are received, sent to the apply queue, then deleted from the DLQ:
an interruption may duplicate a message (harmless, apply is idempotent) but never loses one.")]
    Redrive(RedriveArgs),
}

/// Which region's queues.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// The region whose DLQ to work on.
    #[arg(long, env = "REGIS_REGION")]
    pub region: String,
    /// The dead-letter queue [default: the environment file's, for --region].
    #[arg(long, env = "REGIS_DLQ_URL", value_name = "URL")]
    pub dlq_url: Option<String>,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
}

/// `regis dlq list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// The region and its DLQ.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Stop after this many receive calls even if new messages keep coming.
    #[arg(long, default_value_t = 200)]
    pub max_receives: usize,
    /// Print JSON (groups, and one entry per message).
    #[arg(long)]
    pub json: bool,
}

/// `regis dlq show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The region and its DLQ.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The DLQ message id, or the original message id (the `message-id` attribute).
    pub message_id: String,
    /// Stop after this many receive calls.
    #[arg(long, default_value_t = 200)]
    pub max_receives: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `regis dlq redrive`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedriveArgs {
    /// The region and its DLQ.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The apply queue to move messages to [default: the environment file's].
    #[arg(long, env = "REGIS_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,
    /// Move only messages with this `reason` attribute.
    #[arg(long)]
    pub reason: Option<String>,
    /// Move by receive, send and delete even without --reason.
    #[arg(long)]
    pub manual: bool,
    /// How long received messages stay hidden while being moved, seconds.
    #[arg(long, default_value_t = 30)]
    pub visibility_timeout: u32,
    /// Give up waiting for a move task after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One DLQ message as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The DLQ copy's SQS message id.
    pub message_id: String,
    /// The receipt handle of the last receive.
    pub receipt_handle: String,
    /// The body (the original batch text).
    pub body: String,
    /// The `reason` attribute (`unknown` when absent: e.g. moved by the redrive policy).
    pub reason: String,
    /// The `detail` attribute.
    pub detail: Option<String>,
    /// The `source-queue` attribute.
    pub source_queue: Option<String>,
    /// The original message id (`message-id` attribute).
    pub original_id: Option<String>,
    /// When it failed (`failed-at`), else when it was sent to the DLQ.
    pub failed_at_ms: Option<u64>,
    /// All message attributes as received.
    pub attributes: HashMap<String, MessageAttributeValue>,
}

/// Reason given to messages that carry none: the queue's redrive policy
/// moved them after `maxReceiveCount` failed receives (retryable failures).
pub const NO_REASON: &str = "max-receives";

impl Letter {
    /// Reads a received message.
    pub fn from_message(message: &Message) -> Self {
        let attributes = message.message_attributes().cloned().unwrap_or_default();
        let text = |name: &str| attributes.get(name).and_then(|v| v.string_value()).map(str::to_owned);
        let sent = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
            .and_then(|v| v.parse().ok());
        Self {
            message_id: message.message_id().unwrap_or_default().to_owned(),
            receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
            body: message.body().unwrap_or_default().to_owned(),
            reason: text("reason").unwrap_or_else(|| NO_REASON.to_owned()),
            detail: text("detail"),
            source_queue: text("source-queue"),
            original_id: text("message-id"),
            failed_at_ms: text("failed-at").and_then(|v| v.parse().ok()).or(sent),
            attributes,
        }
    }

    /// The attributes a redriven copy keeps: all but the DLQ bookkeeping.
    pub fn forwarded_attributes(&self) -> HashMap<String, MessageAttributeValue> {
        self.attributes
            .iter()
            .filter(|(name, _)| !BOOKKEEPING_ATTRIBUTES.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// Bytes SQS counts for the forwarded copy: body and attributes.
    pub fn forwarded_size(&self) -> usize {
        self.body.len()
            + self
                .forwarded_attributes()
                .iter()
                .map(|(n, v)| n.len() + v.data_type().len() + v.string_value().map_or(0, str::len))
                .sum::<usize>()
    }
}

/// What one reason accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonGroup {
    /// The reason code.
    pub reason: String,
    /// How many messages.
    pub count: usize,
    /// Failure time of the oldest, epoch ms.
    pub oldest_ms: Option<u64>,
    /// Failure time of the newest, epoch ms.
    pub newest_ms: Option<u64>,
}

/// Groups letters by reason, largest group first (then by name).
pub fn group_by_reason(letters: &[Letter]) -> Vec<ReasonGroup> {
    let mut groups: BTreeMap<&str, ReasonGroup> = BTreeMap::new();
    for letter in letters {
        let group = groups.entry(&letter.reason).or_insert_with(|| ReasonGroup {
            reason: letter.reason.clone(),
            count: 0,
            oldest_ms: None,
            newest_ms: None,
        });
        group.count += 1;
        if let Some(at) = letter.failed_at_ms {
            group.oldest_ms = Some(group.oldest_ms.map_or(at, |o| o.min(at)));
            group.newest_ms = Some(group.newest_ms.map_or(at, |n| n.max(at)));
        }
    }
    let mut out: Vec<ReasonGroup> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    out
}

/// An age in a short human form (`45s`, `12m3s`, `2h5m`, `3d4h`).
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

struct Queues {
    sqs: aws_sdk_sqs::Client,
    dlq_url: String,
}

async fn open(queue: &QueueArgs) -> Result<(Queues, Option<LocalEnv>), OpsError> {
    let env = queue.env.load()?;
    let region_env = env.as_ref().and_then(|e| e.region(&queue.region));
    let dlq_url = pick(
        queue.dlq_url.as_deref(),
        region_env.and_then(|r| r.dlq_url.as_deref()),
        &format!("DLQ URL for region {}", queue.region),
        "--dlq-url",
    )?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&queue.region, env.as_ref()).await);
    Ok((Queues { sqs, dlq_url }, env))
}

async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>, OpsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| OpsError::aws(&format!("GetQueueAttributes {url}"), e))?;
    Ok(out.attributes.and_then(|mut a| a.remove(&name)))
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    visibility_timeout: u32,
    wait_seconds: i32,
) -> Result<Vec<Message>, OpsError> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(RECEIVE_MAX_MESSAGES)
        .visibility_timeout(visibility_timeout as i32)
        .wait_time_seconds(wait_seconds)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .send()
        .await
        .map_err(|e| OpsError::aws(&format!("ReceiveMessage {url}"), e))?;
    Ok(out.messages.unwrap_or_default())
}

/// Reads the whole queue without changing it. Returns the messages and
/// whether the read is believed complete (the queue's depth was seen, or
/// several receives in a row brought nothing new).
async fn peek_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max_receives: usize,
    stop_at: Option<&str>,
) -> Result<(Vec<Letter>, bool), OpsError> {
    let depth: Option<usize> = queue_attribute(sqs, url, QueueAttributeName::ApproximateNumberOfMessages)
        .await?
        .and_then(|v| v.parse().ok());
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    let mut quiet = 0;
    let bar = progress(depth.map(|d| d as u64), "reading DLQ");
    for _ in 0..max_receives {
        let messages = receive(sqs, url, 0, 1).await?;
        let mut new = 0;
        for message in &messages {
            let letter = Letter::from_message(message);
            if seen.insert(letter.message_id.clone()) {
                new += 1;
                let found =
                    stop_at.is_some_and(|id| letter.message_id == id || letter.original_id.as_deref() == Some(id));
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

/// `regis dlq`.
pub async fn run(args: DlqArgs) -> Result<Outcome, OpsError> {
    match args.action {
        DlqAction::List(a) => list(a).await,
        DlqAction::Show(a) => show(a).await,
        DlqAction::Redrive(a) => redrive(a).await,
    }
}

async fn list(args: ListArgs) -> Result<Outcome, OpsError> {
    let (queues, _) = open(&args.queue).await?;
    let (letters, complete) = peek_all(&queues.sqs, &queues.dlq_url, args.max_receives, None).await?;
    let groups = group_by_reason(&letters);
    let now = now_ms();
    let age = |at: Option<u64>| at.map(|at| now.saturating_sub(at));
    if args.json {
        let reasons: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "reason": g.reason, "count": g.count,
                    "oldest_failed_at_ms": g.oldest_ms, "newest_failed_at_ms": g.newest_ms,
                    "oldest_age_ms": age(g.oldest_ms), "newest_age_ms": age(g.newest_ms),
                })
            })
            .collect();
        let messages: Vec<Value> = letters
            .iter()
            .map(|l| {
                json!({
                    "message_id": l.message_id, "original_message_id": l.original_id,
                    "reason": l.reason, "failed_at_ms": l.failed_at_ms, "source_queue": l.source_queue,
                })
            })
            .collect();
        print_json(&json!({
            "region": args.queue.region, "dlq_url": queues.dlq_url, "total": letters.len(),
            "complete": complete, "reasons": reasons, "messages": messages,
        }));
    } else {
        println!(
            "{} message(s) in the DLQ of {}{}",
            letters.len(),
            args.queue.region,
            if complete {
                ""
            } else {
                " (at least: the read stopped at --max-receives)"
            }
        );
        if !groups.is_empty() {
            println!("{:<20} {:>7} {:>10} {:>10}", "reason", "count", "oldest", "newest");
            for g in &groups {
                let show = |at| age(at).map_or_else(|| "-".to_owned(), human_age);
                println!(
                    "{:<20} {:>7} {:>10} {:>10}",
                    g.reason,
                    g.count,
                    show(g.oldest_ms),
                    show(g.newest_ms)
                );
            }
        }
    }
    Ok(Outcome::Clean)
}

/// A decoded view of one letter, for `show`.
pub fn describe(letter: &Letter) -> Value {
    let mut out = json!({
        "message_id": letter.message_id,
        "original_message_id": letter.original_id,
        "reason": letter.reason,
        "detail": letter.detail,
        "source_queue": letter.source_queue,
        "failed_at_ms": letter.failed_at_ms,
    });
    match regis_wire::decode(&letter.body, &DecodeLimits::default(), &Keyring::default()) {
        Ok(batch) => {
            let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
            for c in &batch.commands {
                *by_name.entry(c.command.name()).or_default() += 1;
            }
            let first: Vec<Value> = batch
                .commands
                .iter()
                .take(10)
                .map(|c| {
                    json!({
                        "op": c.command.name(),
                        "key": crate::output::show_bytes(c.command.key()),
                        "version": c.version.to_string(),
                    })
                })
                .collect();
            out["batch"] = json!({
                "id": batch.header.id, "origin": batch.header.origin, "tenant": batch.header.tenant,
                "published_at_ms": batch.header.published_at_ms, "mode": batch.header.mode.as_str(),
                "commands": batch.commands.len(), "by_command": by_name, "first_commands": first,
            });
        }
        Err(e) => {
            out["decode_error"] = json!(e.to_string());
            out["raw"] = json!(letter.body);
        }
    }
    out
}

async fn show(args: ShowArgs) -> Result<Outcome, OpsError> {
    let (queues, _) = open(&args.queue).await?;
    let (letters, _) = peek_all(&queues.sqs, &queues.dlq_url, args.max_receives, Some(&args.message_id)).await?;
    let id = args.message_id.as_str();
    let Some(letter) = letters
        .iter()
        .find(|l| l.message_id == id || l.original_id.as_deref() == Some(id))
    else {
        return Err(OpsError::Failed(format!(
            "message {id} is not in the DLQ of {}",
            args.queue.region
        )));
    };
    let view = describe(letter);
    if args.json {
        print_json(&view);
        return Ok(Outcome::Clean);
    }
    println!("message      {}", letter.message_id);
    if let Some(original) = &letter.original_id {
        println!("original id  {original}");
    }
    println!("reason       {}", letter.reason);
    if let Some(detail) = &letter.detail {
        println!("detail       {detail}");
    }
    if let Some(source) = &letter.source_queue {
        println!("from queue   {source}");
    }
    if let Some(at) = letter.failed_at_ms {
        println!("failed       {} ago ({at} ms)", human_age(now_ms().saturating_sub(at)));
    }
    if let Some(batch) = view.get("batch") {
        println!(
            "batch        {} from {} for tenant {}, mode {}, published at {} ms",
            batch["id"].as_str().unwrap_or_default(),
            batch["origin"].as_str().unwrap_or_default(),
            batch["tenant"].as_str().unwrap_or_default(),
            batch["mode"].as_str().unwrap_or_default(),
            batch["published_at_ms"]
        );
        let summary: Vec<String> = batch["by_command"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect())
            .unwrap_or_default();
        println!("commands     {} ({})", batch["commands"], summary.join(", "));
        for c in batch["first_commands"].as_array().into_iter().flatten() {
            println!(
                "  {} {} @ {}",
                c["op"].as_str().unwrap_or_default(),
                c["key"].as_str().unwrap_or_default(),
                c["version"].as_str().unwrap_or_default()
            );
        }
    } else {
        println!("undecodable  {}", view["decode_error"].as_str().unwrap_or_default());
        println!("raw body:\n{}", letter.body);
    }
    Ok(Outcome::Clean)
}

/// Groups letters into `SendMessageBatch` calls (at most 10 entries and
/// 256 KiB each).
pub fn plan_sends(letters: &[&Letter]) -> Vec<std::ops::Range<usize>> {
    plan_send_batches(letters.iter().map(|letter| letter.forwarded_size()))
}

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
}

async fn redrive(args: RedriveArgs) -> Result<Outcome, OpsError> {
    let (queues, env) = open(&args.queue).await?;
    let region_env = env.as_ref().and_then(|e| e.region(&args.queue.region));
    let queue_url = pick(
        args.queue_url.as_deref(),
        region_env.and_then(|r| r.queue_url.as_deref()),
        &format!("apply queue URL for region {}", args.queue.region),
        "--queue-url",
    )?;
    let (sqs, dlq_url) = (&queues.sqs, queues.dlq_url.as_str());
    let mut method = "receive-send-delete";
    let mut moved = None;
    if args.reason.is_none() && !args.manual {
        match move_task(sqs, dlq_url, &queue_url, Duration::from_secs(args.timeout)).await {
            Ok(n) => {
                method = "move-task";
                moved = Some(Moved {
                    moved: n,
                    ..Moved::default()
                });
            }
            Err(e) => eprintln!("regis: the SQS move task is not available ({e}); moving messages one by one"),
        }
    }
    let moved = match moved {
        Some(m) => m,
        None => {
            move_by_hand(
                sqs,
                dlq_url,
                &queue_url,
                args.reason.as_deref(),
                args.visibility_timeout,
            )
            .await?
        }
    };
    if args.json {
        print_json(&json!({
            "region": args.queue.region, "from": dlq_url, "to": queue_url, "method": method,
            "reason": args.reason, "moved": moved.moved, "duplicated": moved.duplicated,
            "failed": moved.failed, "skipped": moved.skipped,
        }));
    } else {
        println!(
            "moved {} message(s) from the DLQ of {} to its apply queue ({method}){}{}",
            moved.moved,
            args.queue.region,
            args.reason
                .as_ref()
                .map(|r| format!(", reason {r}, {} left in the DLQ", moved.skipped))
                .unwrap_or_default(),
            if moved.failed > 0 {
                format!("; {} could not be sent and are still in the DLQ", moved.failed)
            } else {
                String::new()
            },
        );
    }
    Ok(if moved.failed > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, OpsError> {
    queue_attribute(sqs, url, QueueAttributeName::QueueArn)
        .await?
        .ok_or_else(|| OpsError::Failed(format!("{url} has no QueueArn")))
}

/// Moves everything with `StartMessageMoveTask` and waits for the task to
/// end; returns how many messages it moved.
async fn move_task(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    timeout: Duration,
) -> Result<u64, OpsError> {
    let source = queue_arn(sqs, dlq_url).await?;
    let destination = queue_arn(sqs, queue_url).await?;
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .send()
        .await
        .map_err(|e| OpsError::aws("StartMessageMoveTask", e))?;
    let handle = started.task_handle().unwrap_or_default().to_owned();
    let bar = progress(None, "moving (SQS move task)");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(10)
            .send()
            .await
            .map_err(|e| OpsError::aws("ListMessageMoveTasks", e))?;
        // Ours by handle; entries that have ended may carry none, and the
        // newest one is then ours.
        let results = tasks.results();
        let ours = results
            .iter()
            .find(|t| t.task_handle() == Some(handle.as_str()))
            .or_else(|| results.iter().max_by_key(|t| t.started_timestamp()));
        if let Some(task) = ours {
            bar.set_position(task.approximate_number_of_messages_moved().max(0) as u64);
            let status = task.status().unwrap_or_default();
            if TASK_ENDED.contains(&status) {
                bar.finish_and_clear();
                if status != "COMPLETED" {
                    return Err(OpsError::Failed(format!(
                        "the move task ended {status}: {}",
                        task.failure_reason().unwrap_or("no reason given")
                    )));
                }
                return Ok(task.approximate_number_of_messages_moved().max(0) as u64);
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

/// Receive, send, delete: only what the send accepted is deleted.
async fn move_by_hand(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    reason: Option<&str>,
    visibility_timeout: u32,
) -> Result<Moved, OpsError> {
    let mut result = Moved::default();
    let mut hidden: Vec<String> = Vec::new();
    let mut empty_rounds = 0;
    let bar = progress(None, "moving");
    while empty_rounds < 2 {
        let messages = receive(sqs, dlq_url, visibility_timeout, 1).await?;
        if messages.is_empty() {
            empty_rounds += 1;
            continue;
        }
        empty_rounds = 0;
        let letters: Vec<Letter> = messages.iter().map(Letter::from_message).collect();
        let (matching, other): (Vec<&Letter>, Vec<&Letter>) =
            letters.iter().partition(|l| reason.is_none_or(|r| l.reason == r));
        result.skipped += other.len() as u64;
        hidden.extend(other.iter().map(|l| l.receipt_handle.clone()));
        for range in plan_sends(&matching) {
            let group = &matching[range];
            let sent = send_group(sqs, queue_url, group).await?;
            result.failed += (group.len() - sent.len()) as u64;
            let deleted = delete_group(sqs, dlq_url, &sent).await;
            result.moved += deleted as u64;
            result.duplicated += (sent.len() - deleted) as u64;
        }
        bar.set_position(result.moved);
    }
    bar.finish_and_clear();
    // Put back what did not match, so the DLQ looks as before.
    for chunk in hidden.chunks(SEND_MESSAGE_BATCH_MAX_ENTRIES) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = sqs
            .change_message_visibility_batch()
            .queue_url(dlq_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            eprintln!(
                "regis: could not make skipped messages visible again (they will be after the visibility timeout): {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            );
        }
    }
    Ok(result)
}

/// Sends a group to the apply queue; returns the letters SQS accepted.
async fn send_group<'a>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    group: &[&'a Letter],
) -> Result<Vec<&'a Letter>, OpsError> {
    let mut entries = Vec::with_capacity(group.len());
    for (i, letter) in group.iter().enumerate() {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(&letter.body)
            .set_message_attributes(Some(letter.forwarded_attributes()).filter(|a| !a.is_empty()))
            .build()
            .map_err(|e| OpsError::Failed(format!("invalid entry: {e}")))?;
        entries.push(entry);
    }
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| OpsError::aws(&format!("SendMessageBatch {queue_url}"), e))?;
    for failed in out.failed() {
        eprintln!(
            "regis: SQS refused a message: {}: {}",
            failed.code(),
            failed.message().unwrap_or_default()
        );
    }
    Ok(out
        .successful()
        .iter()
        .filter_map(|s| s.id().parse::<usize>().ok())
        .filter_map(|i| group.get(i).copied())
        .collect())
}

/// Deletes sent letters from the DLQ; returns how many were deleted. A
/// failed delete leaves the message to be moved again later (a duplicate).
async fn delete_group(sqs: &aws_sdk_sqs::Client, dlq_url: &str, sent: &[&Letter]) -> usize {
    if sent.is_empty() {
        return 0;
    }
    let entries: Vec<_> = sent
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&l.receipt_handle)
                .build()
                .ok()
        })
        .collect();
    match sqs
        .delete_message_batch()
        .queue_url(dlq_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => out.successful().len(),
        Err(e) => {
            eprintln!(
                "regis: DeleteMessageBatch failed (the messages stay and may be moved twice): {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(value: &str, data_type: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build()
            .unwrap()
    }

    fn message(id: &str, reason: Option<&str>, failed_at: Option<u64>) -> Message {
        let mut b = Message::builder()
            .message_id(id)
            .receipt_handle(format!("rh-{id}"))
            .body("{}");
        if let Some(reason) = reason {
            b = b.message_attributes("reason", attr(reason, "String"));
        }
        if let Some(at) = failed_at {
            b = b.message_attributes("failed-at", attr(&at.to_string(), "Number"));
        }
        b.message_attributes("tenant", attr("acme", "String"))
            .message_attributes("message-id", attr(&format!("orig-{id}"), "String"))
            .attributes(MessageSystemAttributeName::SentTimestamp, "500")
            .build()
    }

    #[test]
    fn letters_read_the_dlq_attributes() {
        let letter = Letter::from_message(&message("m1", Some("malformed"), Some(1_000)));
        assert_eq!(letter.reason, "malformed");
        assert_eq!(letter.original_id.as_deref(), Some("orig-m1"));
        assert_eq!(letter.failed_at_ms, Some(1_000));
        let forwarded = letter.forwarded_attributes();
        assert_eq!(forwarded.keys().collect::<Vec<_>>(), ["tenant"]);
        // Moved by the redrive policy: no reason, failure time = sent time.
        let plain = Letter::from_message(&message("m2", None, None));
        assert_eq!((plain.reason.as_str(), plain.failed_at_ms), (NO_REASON, Some(500)));
    }

    #[test]
    fn groups_count_and_span_their_reasons() {
        let letters: Vec<Letter> = [
            ("a", "malformed", 300),
            ("b", "bad-signature", 100),
            ("c", "malformed", 200),
        ]
        .iter()
        .map(|(id, r, at)| Letter::from_message(&message(id, Some(r), Some(*at))))
        .collect();
        let groups = group_by_reason(&letters);
        assert_eq!(
            groups,
            [
                ReasonGroup {
                    reason: "malformed".into(),
                    count: 2,
                    oldest_ms: Some(200),
                    newest_ms: Some(300)
                },
                ReasonGroup {
                    reason: "bad-signature".into(),
                    count: 1,
                    oldest_ms: Some(100),
                    newest_ms: Some(100)
                },
            ]
        );
    }

    #[test]
    fn sends_are_grouped_by_count_and_size() {
        let mut small = Letter::from_message(&message("s", Some("x"), None));
        small.body = "x".repeat(100);
        let mut big = small.clone();
        big.body = "y".repeat(200 * 1024);
        let letters: Vec<&Letter> = std::iter::repeat_n(&small, 12).chain([&big, &big, &small]).collect();
        let groups = plan_sends(&letters);
        assert_eq!(groups, [0..10, 10..13, 13..15]);
    }

    #[test]
    fn undecodable_bodies_are_shown_raw_and_batches_summarised() {
        let mut letter = Letter::from_message(&message("m", Some("malformed"), Some(1)));
        letter.body = "not json".into();
        let view = describe(&letter);
        assert_eq!(view["raw"], "not json");
        assert!(view["decode_error"].as_str().unwrap().contains("malformed"));

        let batch = regis_wire::Batch {
            header: regis_wire::BatchHeader {
                id: "b1".into(),
                origin: "eu-west-1".into(),
                published_at_ms: 7,
                tenant: "acme".into(),
                mode: regis_wire::Mode::Lww,
            },
            commands: vec![
                regis_wire::VersionedCommand::new(
                    regis_wire::Version::new(1, 0, 1),
                    regis_wire::Command::Del { key: b"a".to_vec() },
                ),
                regis_wire::VersionedCommand::new(
                    regis_wire::Version::new(2, 0, 1),
                    regis_wire::Command::Del { key: b"b".to_vec() },
                ),
            ],
        };
        letter.body = regis_wire::encode(&batch, &regis_wire::EncodeOptions::default())
            .unwrap()
            .text;
        let view = describe(&letter);
        assert_eq!(view["batch"]["commands"], 2);
        assert_eq!(view["batch"]["by_command"]["del"], 2);
        assert_eq!(view["batch"]["first_commands"][1]["key"], "b");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(45_000), "45s");
        assert_eq!(human_age(723_000), "12m3s");
        assert_eq!(human_age(2 * 3_600_000 + 300_000), "2h5m");
        assert_eq!(human_age(3 * 86_400_000 + 4 * 3_600_000), "3d4h");
    }
}
