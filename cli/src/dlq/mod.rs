//! `regis dlq list|show|redrive`: what sits in a region's dead-letter queue,
//! why, and moving it back to the apply queue after a fix.
//!
//! `list` and `show` only look ([`read`]): the queue is left as it was.
//! `redrive` moves everything with SQS's move task, or moves messages by
//! hand (all, or those with one reason), deleting from the DLQ only what
//! the apply queue accepted ([`redrive`]). What is read is modelled,
//! grouped and printed by [`letter`]. Every queue call goes through the
//! shared [`QueueClient`], so the logic is unit-tested on an in-memory
//! queue.

pub mod letter;
pub mod read;
pub mod redrive;

use std::sync::Arc;
use std::time::Duration;

use regis_aws::{QueueClient, SqsQueue};
use serde_json::json;

use self::letter::{Listing, print_letter, print_list};
use self::read::peek_all;
use self::redrive::Redrive;
use crate::local_env::{EnvArgs, LocalEnv, pick, sdk_config};
use crate::output::{OpsError, Outcome, print_json};
use crate::publish::now_ms;
use regis_applier::config::DEFAULT_TOMBSTONE_HORIZON_SECONDS;

/// `regis dlq`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Inspect a region's dead-letter queue and move its messages back to the apply queue. \
`list` groups what is there by reason, `show` decodes one message, `redrive` moves messages back after a fix \
(all of them, or only those with one reason). list and show never change the queue.",
    after_help = "Examples:
  regis dlq list --region eu-west-1
  regis dlq show --region eu-west-1 4f1c2a9e-0b7d-4c3e-9a51-2f6d8e0c1b7a
  regis dlq redrive --region eu-west-1 --reason bad-signature
  regis dlq list --region eu-west-1 --subscription"
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
    /// Work on the region's subscription dead-letter queue instead: what SNS
    /// could not deliver to the region's queue (a KMS or policy error, a
    /// deleted queue). It lives in the topic's region; its messages are
    /// batches exactly as published, redriven to the region's apply queue.
    #[arg(long)]
    pub subscription: bool,
    /// With --subscription: the queue's region [default: the environment file's topic region].
    #[arg(long, value_name = "REGION")]
    pub dlq_region: Option<String>,
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
    /// The appliers' tombstone horizon, seconds: older batches are flagged.
    #[arg(long = "tombstone-horizon", env = "REGIS_TOMBSTONE_HORIZON_SECONDS", value_name = "SECONDS", default_value_t = DEFAULT_TOMBSTONE_HORIZON_SECONDS)]
    pub tombstone_horizon_seconds: u64,
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
    /// The appliers' tombstone horizon, seconds: older batches are left in
    /// the DLQ (an applier would refuse them as beyond-horizon).
    #[arg(long = "tombstone-horizon", env = "REGIS_TOMBSTONE_HORIZON_SECONDS", value_name = "SECONDS", default_value_t = DEFAULT_TOMBSTONE_HORIZON_SECONDS)]
    pub tombstone_horizon_seconds: u64,
    /// Move batches older than the tombstone horizon too. They may bring
    /// deleted data back in this region only: for an applier whose horizon
    /// was raised, or data known to have no deletes.
    #[arg(long)]
    pub include_beyond_horizon: bool,
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

/// A region's DLQ (or subscription DLQ), the client that reaches it, and
/// the client of the region's own queues.
struct Dlq {
    queue: Arc<dyn QueueClient>,
    url: String,
    region_queues: Arc<dyn QueueClient>,
}

async fn open(args: &QueueArgs) -> Result<(Dlq, Option<LocalEnv>), OpsError> {
    let env = args.env.load()?;
    let region_env = env.as_ref().and_then(|e| e.region(&args.region));
    let region_queues: Arc<dyn QueueClient> = Arc::new(SqsQueue::new(&sdk_config(&args.region, env.as_ref()).await));
    if !args.subscription {
        let url = pick(
            args.dlq_url.as_deref(),
            region_env.and_then(|r| r.dlq_url.as_deref()),
            &format!("DLQ URL for region {}", args.region),
            "--dlq-url",
        )?;
        let queue = Arc::clone(&region_queues);
        return Ok((
            Dlq {
                queue,
                url,
                region_queues,
            },
            env,
        ));
    }
    let url = pick(
        args.dlq_url.as_deref(),
        region_env.and_then(|r| r.sub_dlq_url.as_deref()),
        &format!("subscription DLQ URL for region {}", args.region),
        "--dlq-url",
    )?;
    let dlq_region = pick(
        args.dlq_region.as_deref(),
        env.as_ref().and_then(|e| e.topic_region.as_deref()),
        "the subscription DLQ's region (the topic's)",
        "--dlq-region",
    )?;
    let queue: Arc<dyn QueueClient> = Arc::new(SqsQueue::new(&sdk_config(&dlq_region, env.as_ref()).await));
    Ok((
        Dlq {
            queue,
            url,
            region_queues,
        },
        env,
    ))
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
    let (dlq, _) = open(&args.queue).await?;
    let (letters, complete) = peek_all(dlq.queue.as_ref(), &dlq.url, args.max_receives, None).await?;
    let listing = Listing {
        region: &args.queue.region,
        dlq_url: &dlq.url,
        letters: &letters,
        complete,
        horizon_ms: args.tombstone_horizon_seconds.saturating_mul(1000),
    };
    print_list(&listing, args.json, now_ms());
    Ok(Outcome::Clean)
}

async fn show(args: ShowArgs) -> Result<Outcome, OpsError> {
    let (dlq, _) = open(&args.queue).await?;
    let id = args.message_id.as_str();
    let (letters, _) = peek_all(dlq.queue.as_ref(), &dlq.url, args.max_receives, Some(id)).await?;
    let Some(letter) = letters.iter().find(|l| l.is(id)) else {
        return Err(OpsError::Failed(format!(
            "message {id} is not in the DLQ of {}",
            args.queue.region
        )));
    };
    print_letter(letter, args.json, now_ms());
    Ok(Outcome::Clean)
}

async fn redrive(args: RedriveArgs) -> Result<Outcome, OpsError> {
    let (dlq, env) = open(&args.queue).await?;
    let region_env = env.as_ref().and_then(|e| e.region(&args.queue.region));
    let queue_url = pick(
        args.queue_url.as_deref(),
        region_env.and_then(|r| r.queue_url.as_deref()),
        &format!("apply queue URL for region {}", args.queue.region),
        "--queue-url",
    )?;
    let how = Redrive {
        dlq_url: &dlq.url,
        queue_url: &queue_url,
        reason: args.reason.as_deref(),
        manual: args.manual,
        visibility_timeout: args.visibility_timeout,
        timeout: Duration::from_secs(args.timeout),
        horizon_ms: (!args.include_beyond_horizon).then(|| args.tombstone_horizon_seconds.saturating_mul(1000)),
        now_ms: now_ms(),
    };
    let (method, moved) = redrive::redrive(dlq.queue.as_ref(), dlq.region_queues.as_ref(), &how).await?;
    let method = method.as_str();
    if args.json {
        print_json(&json!({
            "region": args.queue.region, "from": dlq.url, "to": queue_url, "method": method,
            "reason": args.reason, "moved": moved.moved, "duplicated": moved.duplicated,
            "failed": moved.failed, "skipped": moved.skipped, "beyond_horizon": moved.beyond_horizon,
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
        if moved.beyond_horizon > 0 {
            println!(
                "left {} batch(es) older than the tombstone horizon in the DLQ: their tombstones may be gone, so \
                 applying them could bring deleted data back in this region (an applier refuses them as \
                 beyond-horizon); --include-beyond-horizon moves them anyway",
                moved.beyond_horizon
            );
        }
    }
    Ok(if moved.failed > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
