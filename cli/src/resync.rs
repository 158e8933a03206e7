//! `regis resync`: re-publish the full state of a source Redis as versioned
//! commands, to bootstrap a new region or heal drift.
//!
//! Every data key of the source becomes a whole-value replacement (`SET`,
//! `HREPLACE`, `SREPLACE`, `ZREPLACE`, with the key's expiry), plus element
//! writes for elements that changed after it. Because apply is versioned
//! (last writer wins) and idempotent, what the resync sends never
//! overwrites anything newer in the target: a resync racing with live
//! writes loses to them wherever they are newer, and sending it twice
//! changes nothing.
//!
//! # Which versions
//!
//! The versions come from the source's own version bookkeeping (the hash
//! `regis:v:{T}:K` the applier keeps next to each key), so the resync
//! states what the source knows *as of when it was written*:
//!
//! * the replacement carries the key-level version `k` and the elements
//!   whose own version is not newer than `k`;
//! * elements with a newer version `f` are sent as element writes at `f`:
//!   `HSET`/`SADD`/`ZADD` when present in the source, `HDEL`/`SREM`/`ZREM`
//!   when the source holds only their tombstone;
//! * an expiry set after `k` (version `e`) is sent as `PEXPIREAT`/`PERSIST`
//!   at `e`;
//! * a key the source has deleted (bookkeeping without data) is sent as
//!   `DEL` at `k`, so a target that missed the delete catches up.
//!
//! Where the source has no bookkeeping for a key (it was written outside
//! regis, or by a plain-mode applier), there is no version to reuse, and
//! the key is stamped with a fresh hybrid-clock reading taken during the
//! resync (`--rank`, default 0, the lowest tie-break). **Consequence:**
//! such keys win over everything the target holds that was written before
//! the resync read them, even where the target's value was in fact newer;
//! the source is taken as the truth as of the resync. Writes published
//! after that moment still win. With `--all`, every region takes that
//! value. So resync an unversioned source while its writers are stopped,
//! or into a single region (`--to-region`) that should become its copy.
//!
//! # Where to
//!
//! `--to-region R` sends the batches straight to R's apply queue
//! (`SendMessageBatch`), so other regions are not disturbed: the way to
//! bootstrap or heal one region. `--all` publishes them to the topic, so
//! every region whose subscription accepts the tenant gets them.
//!
//! Batches are sent in order, at most `--rate` commands per second, with a
//! progress bar on stderr.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use regis_aws::{BATCH_MAX_ENTRIES as SEND_MESSAGE_BATCH_MAX_ENTRIES, plan_batches as plan_send_batches};
use regis_publisher::{Attribute, AwsSns, OutgoingMessage, SnsClient as _, routing_attributes};
use regis_wire::{
    Batch, BatchHeader, Command, CommandList, EncodeOptions, HybridClock, Mode, Version, VersionedCommand,
};
use serde_json::json;

use crate::local_env::{EnvArgs, LocalEnv, pick, sdk_config};
use crate::output::{OpsError, Outcome, print_json, progress};
use crate::publish::{TopicArgs, arn_region, now_ms};
use crate::verify::{Source, connect};
use regis_applier::apply::bookkeeping::Bookkeeping;
use regis_applier::snapshot::{self, Content, DEFAULT_SCAN_COUNT, ReadKey, data_key_of, is_bookkeeping};

/// A batch is closed when its commands' JSON reaches this size: with zstd
/// the message is then far below the SQS/SNS limit, and without it (data
/// that does not compress) a split brings it under.
pub const TARGET_BATCH_JSON_BYTES: usize = 192 * 1024;

/// Most commands in one batch.
pub const MAX_BATCH_COMMANDS: usize = 2000;

/// Largest message text sent: the SQS and SNS default maximum message size
/// (256 KiB, Amazon SQS and SNS quotas, "Message size"), less room for the
/// message attributes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 - 2048;

/// Attempts per send before giving up.
const SEND_ATTEMPTS: u32 = 6;

/// `regis resync`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["to_region", "all"])),
    long_about = "Re-publish the full state of a source Redis as versioned commands, to bootstrap a new region or \
heal drift. Each key becomes a whole-value replacement (SET/HREPLACE/SREPLACE/ZREPLACE with its expiry) stamped \
with the source's own version bookkeeping, plus element writes for elements changed later, and DEL for keys the \
source has deleted. Because apply is last-writer-wins, a resync never overwrites newer data. Keys without \
bookkeeping get a fresh clock reading: they win over whatever the target held before the resync (see the crate \
docs). --to-region sends to one region's apply queue only; --all publishes to the topic (every region).",
    after_help = "Examples:
  regis resync --from redis://127.0.0.1:6401 --to-region eu-west-1
  regis resync --from redis://10.0.0.5:6379 --to-region eu-west-1 --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/regis-apply --rate 2000
  regis resync --from redis://127.0.0.1:6401 --all --tenant hotel-sg --match 'hotel:*'

Lists and other types regis does not replicate are skipped and counted. Exit 1 if anything could not be sent."
)]
pub struct ResyncArgs {
    /// The source Redis (`redis://` or `rediss://`).
    #[arg(long, value_name = "REDIS_URL")]
    pub from: String,
    /// Send to this region's apply queue only.
    #[arg(long, value_name = "REGION")]
    pub to_region: Option<String>,
    /// The apply queue of --to-region [default: the environment file's].
    #[arg(long, env = "REGIS_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,
    /// Publish to the topic, for every region.
    #[arg(long)]
    pub all: bool,
    /// The tenant stamped on the batches (selects regions with --all).
    #[arg(long, env = "REGIS_TENANT", default_value = "resync")]
    pub tenant: String,
    /// Resync only keys matching this SCAN pattern.
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// At most this many commands per second (0: no limit).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Origin rank of the fresh versions given to keys without bookkeeping.
    #[arg(long = "clock-rank", default_value_t = 0)]
    pub clock_rank: u16,
    /// SCAN COUNT hint.
    #[arg(long, default_value_t = DEFAULT_SCAN_COUNT)]
    pub count: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topic (with --all).
    #[command(flatten)]
    pub topic: TopicArgs,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
}

/// How a key was planned, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// From the source's own versions.
    Versioned,
    /// With fresh clock readings (no bookkeeping).
    Fresh,
    /// A deletion (bookkeeping without data).
    Tombstone,
    /// A type regis does not replicate (list, stream, ...): nothing sent.
    Unsupported,
}

/// The absolute expiry of a key read with `pttl_ms` at `now_ms`, preferring
/// the exact one bookkeeping recorded when it agrees.
fn expiry(pttl_ms: Option<i64>, book: &Bookkeeping, now_ms: u64) -> Option<u64> {
    let pttl = pttl_ms?;
    let read = now_ms.saturating_add(pttl.max(0) as u64);
    match book.expire_at {
        Some(Some(x)) if x.abs_diff(read) <= 5_000 => Some(x),
        _ => Some(read),
    }
}

/// Elements added and removed at one version.
type AddsAndRemoves = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Element writes at their own versions, grouped by version.
#[derive(Default)]
struct ElementWrites {
    by_version: BTreeMap<Version, AddsAndRemoves>,
}

impl ElementWrites {
    fn add(&mut self, v: Version, element: &[u8]) {
        self.by_version.entry(v).or_default().0.push(element.to_vec());
    }
    fn remove(&mut self, v: Version, element: &[u8]) {
        self.by_version.entry(v).or_default().1.push(element.to_vec());
    }
}

/// The commands that restate one source key. `now_ms` is when it was read;
/// `clock` gives the versions of keys without bookkeeping.
pub fn plan_key(key: &[u8], read: &ReadKey, now_ms: u64, clock: &mut HybridClock) -> (Planned, Vec<VersionedCommand>) {
    let book = Bookkeeping::parse(&read.bookkeeping);
    let key_vec = key.to_vec();
    let Some(state) = &read.state else {
        // Deleted (or expired) in the source: restate the deletion.
        let mut out = Vec::new();
        if let Some(k) = book.key {
            out.push(VersionedCommand::new(k, Command::Del { key: key_vec.clone() }));
        }
        if let (Some(e), Some(Some(x))) = (book.expiry, book.expire_at) {
            if book.key.is_none_or(|k| e > k) {
                out.push(VersionedCommand::new(e, Command::PExpireAt { key: key_vec, at_ms: x }));
            }
        }
        return (Planned::Tombstone, out);
    };
    let expire_at_ms = expiry(state.pttl_ms, &book, now_ms);
    if matches!(state.content, Content::List(_) | Content::Other(..)) {
        return (Planned::Unsupported, Vec::new());
    }
    if book.is_empty() || (book.key.is_none() && matches!(state.content, Content::String(_))) {
        let v = clock.tick(now_ms);
        return (
            Planned::Fresh,
            vec![VersionedCommand::new(
                v,
                whole(key_vec, &state.content, |_| true, expire_at_ms),
            )],
        );
    }

    let mut out = Vec::new();
    let k = book.key;
    // Elements the whole-key write covers: no own version, or not newer than it.
    let covered = |e: &[u8]| match (book.elements.get(e), k) {
        (None, _) => true,
        (Some(f), Some(k)) => *f <= k,
        (Some(_), None) => false,
    };
    if let Some(k) = k {
        out.push(VersionedCommand::new(
            k,
            whole(key_vec.clone(), &state.content, covered, expire_at_ms),
        ));
    }
    let present = elements_of(&state.content);
    let mut writes = ElementWrites::default();
    let mut unversioned = Vec::new();
    for element in &present {
        match book.elements.get(element.as_slice()) {
            Some(f) if k.is_none_or(|k| *f > k) => writes.add(*f, element),
            None if k.is_none() => unversioned.push(element.clone()),
            _ => {}
        }
    }
    let present_set: std::collections::HashSet<&[u8]> = present.iter().map(Vec::as_slice).collect();
    for (element, f) in &book.elements {
        if k.is_none_or(|k| *f > k) && !present_set.contains(element.as_slice()) {
            writes.remove(*f, element);
        }
    }
    if !unversioned.is_empty() {
        let v = clock.tick(now_ms);
        for element in &unversioned {
            writes.add(v, element);
        }
    }
    for (v, (adds, removes)) in writes.by_version {
        if !adds.is_empty() {
            out.push(VersionedCommand::new(v, element_add(&key_vec, &state.content, &adds)));
        }
        if !removes.is_empty() {
            out.push(VersionedCommand::new(
                v,
                element_remove(&key_vec, &state.content, removes),
            ));
        }
    }
    // An expiry set after the whole-key write (or on a key only element writes made).
    match book.expiry {
        Some(e) if k.is_none_or(|k| e > k) => {
            let command = match expire_at_ms {
                Some(at_ms) => Command::PExpireAt { key: key_vec, at_ms },
                None => Command::Persist { key: key_vec },
            };
            out.push(VersionedCommand::new(e, command));
        }
        None if k.is_none() => {
            if let Some(at_ms) = expire_at_ms {
                out.push(VersionedCommand::new(
                    clock.tick(now_ms),
                    Command::PExpireAt { key: key_vec, at_ms },
                ));
            }
        }
        _ => {}
    }
    (Planned::Versioned, out)
}

fn elements_of(content: &Content) -> Vec<Vec<u8>> {
    match content {
        Content::Hash(h) => h.iter().map(|(f, _)| f.clone()).collect(),
        Content::Set(s) => s.clone(),
        Content::ZSet(z) => z.iter().map(|(m, _)| m.clone()).collect(),
        _ => Vec::new(),
    }
}

/// The whole-key write of `content`, keeping the elements `keep` accepts.
fn whole(key: Vec<u8>, content: &Content, keep: impl Fn(&[u8]) -> bool, expire_at_ms: Option<u64>) -> Command {
    match content {
        Content::Hash(h) => Command::HReplace {
            key,
            fields: h.iter().filter(|(f, _)| keep(f)).cloned().collect(),
            expire_at_ms,
        },
        Content::Set(s) => Command::SReplace {
            key,
            members: s.iter().filter(|m| keep(m)).cloned().collect(),
            expire_at_ms,
        },
        Content::ZSet(z) => Command::ZReplace {
            key,
            members: z
                .iter()
                .filter(|(m, _)| keep(m))
                .map(|(m, s)| (*s, m.clone()))
                .collect(),
            expire_at_ms,
        },
        Content::String(v) => Command::Set {
            key,
            value: v.clone(),
            expire_at_ms,
        },
        // Not planned (see plan_key); a string of the dump keeps the match total.
        Content::List(_) | Content::Other(..) => Command::Del { key },
    }
}

fn element_add(key: &[u8], content: &Content, elements: &[Vec<u8>]) -> Command {
    let key = key.to_vec();
    match content {
        Content::Hash(h) => {
            let values: HashMap<&[u8], &[u8]> = h.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
            Command::HSet {
                key,
                fields: elements
                    .iter()
                    .map(|f| (f.clone(), values[f.as_slice()].to_vec()))
                    .collect(),
            }
        }
        Content::ZSet(z) => {
            let scores: HashMap<&[u8], f64> = z.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            Command::ZAdd {
                key,
                members: elements.iter().map(|m| (scores[m.as_slice()], m.clone())).collect(),
            }
        }
        _ => Command::SAdd {
            key,
            members: elements.to_vec(),
        },
    }
}

fn element_remove(key: &[u8], content: &Content, elements: Vec<Vec<u8>>) -> Command {
    let key = key.to_vec();
    match content {
        Content::Hash(_) => Command::HDel { key, fields: elements },
        Content::ZSet(_) => Command::ZRem { key, members: elements },
        _ => Command::SRem { key, members: elements },
    }
}

/// Cuts a stream of commands into encoded batches under the size limits.
pub struct Batcher {
    header: BatchHeader,
    open: Vec<VersionedCommand>,
    open_bytes: usize,
    options: EncodeOptions,
    /// Commands too large for any message, by key.
    pub too_large: Vec<Vec<u8>>,
}

impl Batcher {
    /// Batches stamped with `header` (the id is replaced per batch).
    pub fn new(header: BatchHeader) -> Self {
        Self {
            header,
            open: Vec::new(),
            open_bytes: 0,
            options: EncodeOptions::default(),
            too_large: Vec::new(),
        }
    }

    /// Adds a command; returns the encoded batches that became full.
    pub fn push(&mut self, command: VersionedCommand, rng: &mut impl rand::Rng) -> Vec<(String, usize)> {
        self.open_bytes += CommandList::encoded_len(&command);
        self.open.push(command);
        if self.open_bytes >= TARGET_BATCH_JSON_BYTES || self.open.len() >= MAX_BATCH_COMMANDS {
            self.flush(rng)
        } else {
            Vec::new()
        }
    }

    /// Encodes what is open; returns (message text, command count) per batch.
    pub fn flush(&mut self, rng: &mut impl rand::Rng) -> Vec<(String, usize)> {
        let commands = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        let mut out = Vec::new();
        self.encode(commands, rng, &mut out);
        out
    }

    fn encode(&mut self, commands: Vec<VersionedCommand>, rng: &mut impl rand::Rng, out: &mut Vec<(String, usize)>) {
        if commands.is_empty() {
            return;
        }
        let mut header = self.header.clone();
        header.id = format!("{:032x}", rng.random::<u128>());
        let batch = Batch { header, commands };
        match regis_wire::encode(&batch, &self.options) {
            Ok(encoded) if encoded.text.len() <= MAX_MESSAGE_BYTES => out.push((encoded.text, batch.commands.len())),
            _ if batch.commands.len() == 1 => self.too_large.push(batch.commands[0].command.key().to_vec()),
            _ => {
                let mut first = batch.commands;
                let second = first.split_off(first.len() / 2);
                self.encode(first, rng, out);
                self.encode(second, rng, out);
            }
        }
    }
}

/// Groups message texts into batch calls: at most 10 entries and
/// 256 KiB together (SQS `SendMessageBatch`, SNS `PublishBatch`).
pub fn group_messages(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    plan_send_batches(sizes.iter().copied())
}

/// Where the batches go.
enum Sink {
    Queue {
        sqs: aws_sdk_sqs::Client,
        url: String,
        attributes: HashMap<String, MessageAttributeValue>,
    },
    Topic {
        sns: AwsSns,
        topic_arn: String,
        attributes: std::sync::Arc<[Attribute]>,
    },
}

impl Sink {
    /// Sends texts, retrying what failed; errors when something could not
    /// be sent after every attempt.
    async fn send(&self, texts: &[String]) -> Result<(), OpsError> {
        let mut pending: Vec<usize> = (0..texts.len()).collect();
        let mut last_error = String::new();
        for attempt in 0..SEND_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let mut failed = Vec::new();
            let sizes: Vec<usize> = pending.iter().map(|&i| texts[i].len() + 256).collect();
            for range in group_messages(&sizes) {
                let group = &pending[range];
                match self.send_group(texts, group).await {
                    Ok(refused) => {
                        if let Some((_, why)) = refused.first() {
                            last_error = why.clone();
                        }
                        failed.extend(refused.into_iter().map(|(i, _)| i));
                    }
                    Err(e) => {
                        last_error = e;
                        failed.extend_from_slice(group);
                    }
                }
            }
            pending = failed;
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(OpsError::Failed(format!(
                "{} message(s) could not be sent: {last_error}",
                pending.len()
            )))
        }
    }

    /// One batch call; returns the indexes refused, with why.
    async fn send_group(&self, texts: &[String], group: &[usize]) -> Result<Vec<(usize, String)>, String> {
        match self {
            Self::Queue { sqs, url, attributes } => {
                let entries = group
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&texts[i])
                            .set_message_attributes(Some(attributes.clone()))
                            .build()
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = sqs
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
                Ok(out
                    .failed()
                    .iter()
                    .filter_map(|f| {
                        Some((
                            f.id().parse().ok()?,
                            format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                        ))
                    })
                    .collect())
            }
            Self::Topic {
                sns,
                topic_arn,
                attributes,
            } => {
                let messages: Vec<OutgoingMessage> = group
                    .iter()
                    .map(|&i| OutgoingMessage {
                        id: i.to_string(),
                        body: texts[i].clone(),
                        attributes: attributes.clone(),
                    })
                    .collect();
                let refs: Vec<&OutgoingMessage> = messages.iter().collect();
                let outcome = sns.publish_batch(topic_arn, &refs).await.map_err(|e| e.to_string())?;
                Ok(outcome
                    .failed
                    .iter()
                    .filter_map(|f| Some((f.id.parse().ok()?, format!("{}: {}", f.code, f.message))))
                    .collect())
            }
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

async fn sink(args: &ResyncArgs, env: Option<&LocalEnv>, origin: &str) -> Result<Sink, OpsError> {
    if let Some(region) = &args.to_region {
        let url = pick(
            args.queue_url.as_deref(),
            env.and_then(|e| e.region(region)).and_then(|r| r.queue_url.as_deref()),
            &format!("apply queue URL for region {region}"),
            "--queue-url",
        )?;
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(region, env).await);
        let attributes = HashMap::from([
            ("tenant".to_owned(), string_attribute(&args.tenant)),
            ("origin".to_owned(), string_attribute(origin)),
        ]);
        return Ok(Sink::Queue { sqs, url, attributes });
    }
    let topic_arn = pick(
        args.topic.topic_arn.as_deref(),
        env.and_then(|e| e.topic_arn.as_deref()),
        "topic ARN",
        "--topic-arn",
    )?;
    let region = args
        .topic
        .topic_region
        .clone()
        .or_else(|| env.and_then(|e| e.topic_region.clone()))
        .or_else(|| arn_region(&topic_arn).map(str::to_owned))
        .ok_or_else(|| OpsError::Usage("no topic region: give --topic-region".into()))?;
    let regions = env.and_then(|e| e.tenants.get(&args.tenant)).map_or_else(
        || vec![regis_wire::ANY_REGION.to_owned()],
        regis_wire::Tenant::region_attribute,
    );
    let attributes: std::sync::Arc<[Attribute]> = routing_attributes(&args.tenant, origin, regions).into();
    Ok(Sink::Topic {
        sns: AwsSns::from_sdk_config(&sdk_config(&region, env).await),
        topic_arn,
        attributes,
    })
}

/// What a resync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Data keys restated with their own versions.
    pub versioned: u64,
    /// Data keys stamped with fresh versions.
    pub fresh: u64,
    /// Deletions restated.
    pub tombstones: u64,
    /// Keys of types regis does not replicate.
    pub unsupported: u64,
    /// Commands sent.
    pub commands: u64,
    /// Messages sent.
    pub messages: u64,
    /// Keys whose command is too large for any message.
    pub too_large: u64,
}

/// Paces sends to `rate` commands per second.
struct Pace {
    rate: u64,
    started: Instant,
    sent: u64,
}

impl Pace {
    async fn before(&mut self, commands: u64) {
        if self.rate > 0 {
            let due = self.started + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        self.sent += commands;
    }
}

/// `regis resync`.
pub async fn run(args: ResyncArgs) -> Result<Outcome, OpsError> {
    let env = args.env.load()?;
    let origin = args.topic.origin.clone().unwrap_or_else(|| "regis-resync".to_owned());
    let sink = sink(&args, env.as_ref(), &origin).await?;
    let source = Source {
        name: "source".into(),
        url: args.from.clone(),
    };
    let mut conn = connect(&source).await?;
    let total: Option<u64> = redis::cmd("DBSIZE").query_async(&mut conn).await.ok();
    let bar = progress(total, "resyncing keys");
    let mut batcher = Batcher::new(BatchHeader {
        id: String::new(),
        origin,
        published_at_ms: now_ms(),
        tenant: args.tenant.clone(),
        mode: Mode::Lww,
    });
    let mut clock = HybridClock::new(args.clock_rank);
    let mut rng = rand::rng();
    let mut summary = Summary::default();
    let mut pace = Pace {
        rate: args.rate,
        started: Instant::now(),
        sent: 0,
    };
    let mut cursor = 0;
    loop {
        let (next, keys) = snapshot::scan_page(&mut conn, cursor, args.pattern.as_deref(), args.count.max(1))
            .await
            .map_err(|e| OpsError::redis("SCAN on the source", &e))?;
        bar.inc(keys.len() as u64);
        let (books, data): (Vec<Vec<u8>>, Vec<Vec<u8>>) = keys.into_iter().partition(|k| is_bookkeeping(k));
        let now = now_ms();
        let mut planned: Vec<(Planned, Vec<VersionedCommand>)> = Vec::new();
        let reads = snapshot::read_keys(&mut conn, &data, true)
            .await
            .map_err(|e| OpsError::redis("reading the source", &e))?;
        for (key, read) in data.iter().zip(&reads) {
            // Gone since the SCAN: its bookkeeping, if any, is found on its own.
            if read.state.is_some() {
                planned.push(plan_key(key, read, now, &mut clock));
            }
        }
        for (key, read) in tombstones(&mut conn, &books).await? {
            planned.push(plan_key(&key, &read, now, &mut clock));
        }
        let mut texts = Vec::new();
        for (kind, commands) in planned {
            match kind {
                Planned::Versioned => summary.versioned += 1,
                Planned::Fresh => summary.fresh += 1,
                Planned::Tombstone if !commands.is_empty() => summary.tombstones += 1,
                Planned::Tombstone => {}
                Planned::Unsupported => summary.unsupported += 1,
            }
            for command in commands {
                texts.extend(batcher.push(command, &mut rng));
            }
        }
        cursor = next;
        if cursor == 0 {
            texts.extend(batcher.flush(&mut rng));
        }
        send(&sink, texts, &mut pace, &mut summary).await?;
        if cursor == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    summary.too_large = batcher.too_large.len() as u64;
    for key in batcher.too_large.iter().take(5) {
        eprintln!(
            "regis: {} is too large for one message and was not sent",
            crate::output::show_bytes(key)
        );
    }
    if args.json {
        print_json(&json!({
            "keys_versioned": summary.versioned, "keys_fresh": summary.fresh, "tombstones": summary.tombstones,
            "unsupported": summary.unsupported, "too_large": summary.too_large,
            "commands": summary.commands, "messages": summary.messages,
            "to": args.to_region.clone().unwrap_or_else(|| "all".into()),
        }));
    } else {
        println!(
            "resynced {} keys with their own versions, {} with fresh versions, {} deletions: {} commands in {} messages to {}",
            summary.versioned,
            summary.fresh,
            summary.tombstones,
            summary.commands,
            summary.messages,
            args.to_region.as_deref().unwrap_or("all regions")
        );
        if summary.unsupported > 0 {
            println!(
                "skipped {} keys of types regis does not replicate (lists, streams, ...)",
                summary.unsupported
            );
        }
    }
    Ok(if summary.too_large > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

async fn send(
    sink: &Sink,
    texts: Vec<(String, usize)>,
    pace: &mut Pace,
    summary: &mut Summary,
) -> Result<(), OpsError> {
    // Sent in slices of one batch call, paced by their command count.
    let mut rest = texts.as_slice();
    while !rest.is_empty() {
        let take = rest.len().min(SEND_MESSAGE_BATCH_MAX_ENTRIES);
        let (now, later) = rest.split_at(take);
        let commands: usize = now.iter().map(|(_, n)| n).sum();
        pace.before(commands as u64).await;
        let bodies: Vec<String> = now.iter().map(|(t, _)| t.clone()).collect();
        sink.send(&bodies).await?;
        summary.commands += commands as u64;
        summary.messages += now.len() as u64;
        rest = later;
    }
    Ok(())
}

/// Bookkeeping keys whose data key is gone: the source's deletions.
async fn tombstones(
    conn: &mut redis::aio::MultiplexedConnection,
    books: &[Vec<u8>],
) -> Result<Vec<(Vec<u8>, ReadKey)>, OpsError> {
    let pairs: Vec<(&Vec<u8>, &[u8])> = books.iter().filter_map(|m| Some((m, data_key_of(m)?))).collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (m, k) in &pairs {
        pipe.cmd("EXISTS").arg(*k).cmd("HGETALL").arg(*m);
    }
    let replies: Vec<redis::Value> = pipe
        .query_async(conn)
        .await
        .map_err(|e| OpsError::redis("reading the source", &e))?;
    let mut out = Vec::new();
    for ((_, key), chunk) in pairs.iter().zip(replies.chunks(2)) {
        if matches!(chunk[0], redis::Value::Int(0)) {
            let fields: Vec<(Vec<u8>, Vec<u8>)> =
                redis::FromRedisValue::from_redis_value(chunk[1].clone()).unwrap_or_default();
            out.push((
                key.to_vec(),
                ReadKey {
                    state: None,
                    bookkeeping: fields,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;

    use super::*;
    use regis_applier::snapshot::KeyState;

    fn v(ms: u64) -> Version {
        Version::new(ms, 0, 1)
    }

    fn book(entries: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn hash(fields: &[(&str, &str)]) -> Content {
        Content::Hash(
            fields
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn bookkeeping_is_parsed() {
        let parsed = Bookkeeping::parse(&book(&[
            ("k", &v(10).sortable()),
            ("e", &v(12).sortable()),
            ("x", "5000"),
            ("fa", &v(15).sortable()),
            ("fbad", "garbage"),
        ]));
        assert_eq!(parsed.key, Some(v(10)));
        assert_eq!(parsed.expiry, Some(v(12)));
        assert_eq!(parsed.expire_at, Some(Some(5000)));
        assert_eq!(parsed.elements.len(), 1);
        assert_eq!(Bookkeeping::parse(&book(&[("x", "")])).expire_at, Some(None));
    }

    #[test]
    fn a_key_without_bookkeeping_gets_one_fresh_version() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::String(b"v".to_vec()),
                pttl_ms: Some(1_000),
            }),
            bookkeeping: vec![],
        };
        let mut clock = HybridClock::new(0);
        let (kind, commands) = plan_key(b"k", &read, 50_000, &mut clock);
        assert_eq!(kind, Planned::Fresh);
        assert_eq!(
            commands,
            [VersionedCommand::new(
                Version::new(50_000, 0, 0),
                Command::Set {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    expire_at_ms: Some(51_000)
                }
            )]
        );
    }

    #[test]
    fn a_versioned_hash_is_a_replacement_plus_newer_element_writes() {
        // HREPLACE at 10, then HSET b at 20, HDEL c at 30, PEXPIREAT at 40.
        let read = ReadKey {
            state: Some(KeyState {
                content: hash(&[("a", "1"), ("b", "2")]),
                pttl_ms: Some(9_000),
            }),
            bookkeeping: book(&[
                ("k", &v(10).sortable()),
                ("e", &v(40).sortable()),
                ("x", "60000"),
                ("fb", &v(20).sortable()),
                ("fc", &v(30).sortable()),
            ]),
        };
        let mut clock = HybridClock::new(0);
        let (kind, commands) = plan_key(b"h", &read, 51_000, &mut clock);
        assert_eq!(kind, Planned::Versioned);
        assert_eq!(
            commands,
            [
                VersionedCommand::new(
                    v(10),
                    Command::HReplace {
                        key: b"h".to_vec(),
                        fields: vec![(b"a".to_vec(), b"1".to_vec())],
                        expire_at_ms: Some(60_000)
                    }
                ),
                VersionedCommand::new(
                    v(20),
                    Command::HSet {
                        key: b"h".to_vec(),
                        fields: vec![(b"b".to_vec(), b"2".to_vec())]
                    }
                ),
                VersionedCommand::new(
                    v(30),
                    Command::HDel {
                        key: b"h".to_vec(),
                        fields: vec![b"c".to_vec()]
                    }
                ),
                VersionedCommand::new(
                    v(40),
                    Command::PExpireAt {
                        key: b"h".to_vec(),
                        at_ms: 60_000
                    }
                ),
            ]
        );
        assert_eq!(clock.last(), Version::new(0, 0, 0), "no fresh version was needed");
    }

    #[test]
    fn a_set_made_by_element_writes_keeps_their_versions() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::Set(vec![b"m1".to_vec(), b"m2".to_vec()]),
                pttl_ms: None,
            }),
            bookkeeping: book(&[
                ("fm1", &v(5).sortable()),
                ("fm2", &v(5).sortable()),
                ("fm3", &v(7).sortable()),
            ]),
        };
        let (_, commands) = plan_key(b"s", &read, 100, &mut HybridClock::new(0));
        assert_eq!(
            commands,
            [
                VersionedCommand::new(
                    v(5),
                    Command::SAdd {
                        key: b"s".to_vec(),
                        members: vec![b"m1".to_vec(), b"m2".to_vec()]
                    }
                ),
                VersionedCommand::new(
                    v(7),
                    Command::SRem {
                        key: b"s".to_vec(),
                        members: vec![b"m3".to_vec()]
                    }
                ),
            ]
        );
    }

    #[test]
    fn sorted_sets_keep_scores_and_deleted_keys_restate_the_delete() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::ZSet(vec![(b"m".to_vec(), 2.5)]),
                pttl_ms: None,
            }),
            bookkeeping: book(&[("k", &v(3).sortable())]),
        };
        let (_, commands) = plan_key(b"z", &read, 100, &mut HybridClock::new(0));
        assert_eq!(
            commands,
            [VersionedCommand::new(
                v(3),
                Command::ZReplace {
                    key: b"z".to_vec(),
                    members: vec![(2.5, b"m".to_vec())],
                    expire_at_ms: None
                }
            )]
        );

        let gone = ReadKey {
            state: None,
            bookkeeping: book(&[("k", &v(8).sortable()), ("e", &v(9).sortable()), ("x", "50")]),
        };
        let (kind, commands) = plan_key(b"d", &gone, 100, &mut HybridClock::new(0));
        assert_eq!(kind, Planned::Tombstone);
        assert_eq!(
            commands,
            [
                VersionedCommand::new(v(8), Command::Del { key: b"d".to_vec() }),
                VersionedCommand::new(
                    v(9),
                    Command::PExpireAt {
                        key: b"d".to_vec(),
                        at_ms: 50
                    }
                ),
            ]
        );
        let list = ReadKey {
            state: Some(KeyState {
                content: Content::List(vec![b"x".to_vec()]),
                pttl_ms: None,
            }),
            bookkeeping: vec![],
        };
        assert_eq!(
            plan_key(b"l", &list, 1, &mut HybridClock::new(0)),
            (Planned::Unsupported, vec![])
        );
    }

    #[test]
    fn batches_stay_under_the_message_limit_and_split_when_needed() {
        let header = BatchHeader {
            id: String::new(),
            origin: "o".into(),
            published_at_ms: 1,
            tenant: "t".into(),
            mode: Mode::Lww,
        };
        let mut batcher = Batcher::new(header);
        let mut rng = rand::rng();
        let mut texts = Vec::new();
        // Incompressible values: the split path is taken.
        for i in 0..200u64 {
            let value: Vec<u8> = (0..2_000).map(|_| rng.random::<u8>()).collect();
            let c = VersionedCommand::new(
                v(i),
                Command::Set {
                    key: format!("k{i}").into_bytes(),
                    value,
                    expire_at_ms: None,
                },
            );
            texts.extend(batcher.push(c, &mut rng));
        }
        texts.extend(batcher.flush(&mut rng));
        assert!(texts.iter().all(|(t, _)| t.len() <= MAX_MESSAGE_BYTES));
        assert_eq!(texts.iter().map(|(_, n)| n).sum::<usize>(), 200);
        let decoded: usize = texts
            .iter()
            .map(|(t, _)| {
                regis_wire::decode(t, &regis_wire::DecodeLimits::default(), &regis_wire::Keyring::default())
                    .unwrap()
                    .commands
                    .len()
            })
            .sum();
        assert_eq!(decoded, 200);
        assert!(batcher.too_large.is_empty());
    }

    #[test]
    fn message_groups_respect_count_and_bytes() {
        assert_eq!(group_messages(&[10; 25]), [0..10, 10..20, 20..25]);
        assert_eq!(group_messages(&[200 * 1024, 100 * 1024, 10]), [0..1, 1..3]);
    }
}
