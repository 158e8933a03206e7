//! Batches: planning their size while they fill, and sealing them into SNS
//! messages that are never over the limit.
//!
//! Commands are serialized once, into a [`CommandList`], when they are
//! published. With compression the message size is only known when the
//! batch is sealed, so the planner estimates it from the compression ratio
//! of the batches sealed before; if a sealed message is still too large,
//! the batch is split in two and each half encoded again (recursively).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regis_wire::{
    BatchHeader, CommandList, Compression, DecodeLimits, ENVELOPE_OVERHEAD_BYTES, EncodeError, EncodeOptions, Keyring,
    Limit, Mode, SigningKey, Tenant, TenantDenied, VersionedCommand, encode_owned_list,
};

use crate::error::{DeliveryError, FailureCause, PublishError};
use crate::receipt::{BatchSlot, Tracker};
use crate::sns::{Attribute, OutgoingMessage, routing_attributes};
use crate::stats::{Counters, add};
use regis_aws::clock::Clock;

/// Most commands in one batch with the default limits: half of the
/// decoder's default ([`regis_wire::MAX_COMMANDS`]), so appliers with
/// default limits accept every batch. In general half of
/// [`crate::PublisherConfig::limits`]`.max_commands`.
pub const MAX_BATCH_COMMANDS: usize = regis_wire::MAX_COMMANDS / 2;

/// Most bytes of command JSON in one batch before compression: half of the
/// decoder's default [`regis_wire::MAX_DECOMPRESSED_BYTES`], for the same
/// reason (in general half of the configured limit).
pub const MAX_BATCH_JSON_BYTES: usize = regis_wire::MAX_DECOMPRESSED_BYTES / 2;

/// Most fields and members in one batch: half of the decoder's default
/// [`regis_wire::MAX_ELEMENTS_PER_BATCH`] (in general half of the
/// configured limit).
pub const MAX_BATCH_ELEMENTS: usize = regis_wire::MAX_ELEMENTS_PER_BATCH / 2;

/// Length of a batch id: 128 random bits in hex.
const BATCH_ID_LEN: usize = 32;

/// Margin on the estimated compression ratio when planning.
const RATIO_MARGIN: f64 = 1.1;

/// Batches with less JSON than this say little about the compression ratio.
const MIN_RATIO_SAMPLE_BYTES: usize = 4096;

/// Length of `s` as a JSON string literal (quotes and escapes included).
fn json_str_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len() * 6 + 2, |j| j.len())
}

/// What the publisher knows about a tenant for building its messages.
#[derive(Debug)]
pub(crate) struct TenantInfo {
    pub(crate) name: Arc<str>,
    pub(crate) attributes: Arc<[Attribute]>,
    /// Bytes the attributes count toward the message size.
    pub(crate) attribute_bytes: usize,
    /// Upper bound of a message's size apart from its command payload:
    /// envelope, header strings, signature and attributes.
    pub(crate) fixed_bytes: usize,
    /// `None`: an unknown tenant let through (any key).
    rule: Option<Tenant>,
}

impl TenantInfo {
    pub(crate) fn new(name: &str, rule: Option<&Tenant>, origin: &str, signing_key: Option<&SigningKey>) -> Self {
        let regions = rule.map_or_else(|| Tenant::unrestricted().region_attribute(), Tenant::region_attribute);
        let attributes = routing_attributes(name, origin, regions);
        let attribute_bytes = attributes.iter().map(Attribute::size).sum::<usize>();
        let fixed_bytes = ENVELOPE_OVERHEAD_BYTES
            + BATCH_ID_LEN
            + 2
            + json_str_len(origin)
            + json_str_len(name)
            + signing_key.map_or(0, |k| json_str_len(&k.id))
            + attribute_bytes;
        Self {
            name: name.into(),
            attributes: attributes.into(),
            attribute_bytes,
            fixed_bytes,
            rule: rule.cloned(),
        }
    }

    /// Refuses keys outside the tenant's prefixes, as the appliers would.
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), PublishError> {
        match &self.rule {
            Some(rule) if !rule.allows_key(key) => Err(PublishError::TenantDenied(TenantDenied::Key {
                tenant: self.name.to_string(),
                index: 0,
                key: key.to_vec(),
            })),
            _ => Ok(()),
        }
    }
}

/// Decides when an open batch is full.
#[derive(Debug)]
pub(crate) struct Planner {
    max_message_bytes: usize,
    compression: Compression,
    /// Largest JSON a batch may hold.
    json_cap: usize,
    /// Most commands a batch may hold.
    max_commands: usize,
    /// Most fields and members a batch may hold.
    max_elements: usize,
    /// Estimated payload bytes per JSON byte (an `f64`'s bits).
    ratio: AtomicU64,
}

impl Planner {
    pub(crate) fn new(
        max_message_bytes: usize,
        compression: Compression,
        max_buffered_bytes: usize,
        limits: &DecodeLimits,
    ) -> Self {
        // Half of what the appliers accept, so a batch is never refused.
        let half = |limit: Limit| (limits.get(limit) / 2).max(1);
        Self {
            max_message_bytes,
            compression,
            // A batch holding more than half the buffer would make
            // publishers wait for its linger instead of for SNS.
            json_cap: half(Limit::DecompressedBytes).min((max_buffered_bytes / 2).max(1)),
            max_commands: half(Limit::Commands),
            max_elements: half(Limit::ElementsPerBatch),
            ratio: AtomicU64::new(1.0f64.to_bits()),
        }
    }

    fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }

    /// Estimated message size for `json` bytes of commands.
    pub(crate) fn planned_size(&self, fixed_bytes: usize, json: usize) -> usize {
        let compressed = || ((json as f64) * self.ratio() * RATIO_MARGIN).ceil() as usize;
        let payload = match self.compression {
            Compression::Zstd(_) => compressed(),
            // `Auto` keeps the JSON when compressing does not make it smaller.
            Compression::Auto { min_bytes, .. } if json >= min_bytes => compressed().min(json),
            _ => json,
        };
        fixed_bytes + payload
    }

    /// Whether a command of `adding` bytes of JSON and `elements` fields or
    /// members still fits in the open batch.
    pub(crate) fn fits(&self, batch: &OpenBatch, adding: usize, elements: usize) -> bool {
        let json = batch.list.json_len() + adding;
        batch.commands.len() < self.max_commands
            && batch.elements + elements <= self.max_elements
            && json <= self.json_cap
            && self.planned_size(batch.tenant.fixed_bytes, json) <= self.max_message_bytes
    }

    /// Whether the open batch is full by count (it is then closed at once).
    pub(crate) fn is_full(&self, batch: &OpenBatch) -> bool {
        batch.commands.len() >= self.max_commands || batch.elements >= self.max_elements
    }

    /// Learns from a sealed message: `size` bytes for `json` bytes of JSON.
    /// Worse compression is believed at once, better only gradually.
    fn observe(&self, fixed_bytes: usize, size: usize, json: usize) {
        if json < MIN_RATIO_SAMPLE_BYTES || !matches!(self.compression, Compression::Zstd(_) | Compression::Auto { .. })
        {
            return;
        }
        let observed = (size.saturating_sub(fixed_bytes) as f64 / json as f64).clamp(0.001, 2.0);
        let old = self.ratio();
        let new = if observed > old {
            observed
        } else {
            0.7 * old + 0.3 * observed
        };
        self.ratio.store(new.to_bits(), Ordering::Relaxed);
    }

    /// Whether a command that is too large uncompressed fits alone in a
    /// message once compressed (a trial encode; rare).
    pub(crate) fn fits_alone(
        &self,
        tenant: &TenantInfo,
        command: &VersionedCommand,
        options: &EncodeOptions,
        origin: &str,
    ) -> Result<bool, EncodeError> {
        if matches!(self.compression, Compression::None) {
            return Ok(false);
        }
        let mut list = CommandList::new();
        list.push(command)?;
        let header = BatchHeader {
            id: "0".repeat(BATCH_ID_LEN),
            origin: origin.to_owned(),
            published_at_ms: u64::MAX,
            tenant: tenant.name.to_string(),
            // The longer mode name, as an upper bound.
            mode: Mode::Plain,
        };
        let options = EncodeOptions {
            compression: Compression::Zstd(compression_level(self.compression)),
            ..options.clone()
        };
        let encoded = encode_owned_list(&header, list, &options)?;
        Ok(encoded.text.len() + tenant.attribute_bytes <= self.max_message_bytes)
    }
}

fn compression_level(compression: Compression) -> i32 {
    match compression {
        Compression::Zstd(level) | Compression::Auto { level, .. } => level,
        _ => 1,
    }
}

/// A batch that is still accepting commands.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    pub(crate) tenant: Arc<TenantInfo>,
    pub(crate) list: CommandList,
    pub(crate) commands: Vec<VersionedCommand>,
    pub(crate) slot: Arc<BatchSlot>,
    pub(crate) opened_at: tokio::time::Instant,
    /// Buffer bytes its commands hold.
    pub(crate) permits: usize,
    /// Fields and members of its commands.
    pub(crate) elements: usize,
}

impl OpenBatch {
    pub(crate) fn new(tenant: Arc<TenantInfo>, slot: Arc<BatchSlot>) -> Self {
        Self {
            tenant,
            list: CommandList::new(),
            commands: Vec::new(),
            slot,
            opened_at: tokio::time::Instant::now(),
            permits: 0,
            elements: 0,
        }
    }

    pub(crate) fn close(self, semaphore: &Arc<tokio::sync::Semaphore>) -> ClosedBatch {
        let tracker = Tracker::new(self.slot, self.commands.len(), self.permits, Arc::clone(semaphore));
        ClosedBatch {
            tenant: self.tenant,
            list: self.list,
            commands: self.commands,
            tracker,
        }
    }
}

/// A batch that accepts no more commands, on its way to the sender.
#[derive(Debug)]
pub(crate) struct ClosedBatch {
    tenant: Arc<TenantInfo>,
    list: CommandList,
    commands: Vec<VersionedCommand>,
    tracker: Tracker,
}

/// One encoded message, ready for SNS.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) message: OutgoingMessage,
    /// Bytes it counts toward the message size limit.
    pub(crate) size: usize,
    /// How many commands it carries. The commands themselves are dropped
    /// once encoded: an acknowledged message needs nothing more, and a
    /// failed one names its keys by decoding its own body.
    pub(crate) commands: usize,
    pub(crate) tracker: Tracker,
}

impl Part {
    /// The error its receipts report.
    pub(crate) fn delivery_error(&self, attempts: u32, cause: FailureCause) -> DeliveryError {
        DeliveryError {
            batch_id: self.message.id.as_str().into(),
            tenant: self.tracker.tenant(),
            commands: self.commands,
            keys: regis_wire::decode(&self.message.body, &DecodeLimits::default(), &Keyring::default())
                .map(|b| b.commands.into_iter().map(|c| c.command.key().to_vec()).collect())
                .unwrap_or_else(|_| Arc::from(Vec::new())),
            attempts,
            cause,
        }
    }
}

/// Turns closed batches into messages. Owned by the sender task.
pub(crate) struct Sealer {
    pub(crate) origin: String,
    pub(crate) mode: Mode,
    pub(crate) options: EncodeOptions,
    pub(crate) max_message_bytes: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: StdRng,
    pub(crate) planner: Arc<Planner>,
    pub(crate) counters: Arc<Counters>,
}

impl Sealer {
    pub(crate) fn new_rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn new_id(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>())
    }

    /// Encodes a batch into one message, or several if it is too large.
    pub(crate) fn seal(&mut self, batch: ClosedBatch, out: &mut Vec<Part>) {
        let ClosedBatch {
            tenant,
            list,
            commands,
            tracker,
        } = batch;
        if commands.is_empty() {
            tracker.succeed();
            return;
        }
        self.seal_part(&tenant, list, commands, tracker, out);
    }

    fn seal_part(
        &mut self,
        tenant: &Arc<TenantInfo>,
        list: CommandList,
        mut commands: Vec<VersionedCommand>,
        tracker: Tracker,
        out: &mut Vec<Part>,
    ) {
        let header = BatchHeader {
            id: self.new_id(),
            origin: self.origin.clone(),
            published_at_ms: self.clock.now_ms(),
            tenant: tenant.name.to_string(),
            mode: self.mode,
        };
        let encoded = match encode_owned_list(&header, list, &self.options) {
            Ok(encoded) => encoded,
            Err(e) => return self.fail(tenant, header.id, &commands, tracker, e.to_string()),
        };
        let size = encoded.text.len() + tenant.attribute_bytes;
        self.planner
            .observe(tenant.fixed_bytes, size, encoded.uncompressed_bytes);
        if size <= self.max_message_bytes {
            add(&self.counters.messages, 1);
            add(&self.counters.uncompressed_bytes, encoded.uncompressed_bytes);
            add(&self.counters.message_bytes, encoded.text.len());
            let message = OutgoingMessage {
                id: header.id,
                body: encoded.text,
                attributes: Arc::clone(&tenant.attributes),
            };
            out.push(Part {
                message,
                size,
                commands: commands.len(),
                tracker,
            });
            return;
        }
        if commands.len() == 1 {
            // `publish` refuses commands that cannot fit alone; this is a
            // safety net, never an oversized message.
            let why = format!(
                "a single command encodes to {size} bytes, over the {} limit",
                self.max_message_bytes
            );
            return self.fail(tenant, header.id, &commands, tracker, why);
        }
        add(&self.counters.splits, 1);
        let right = commands.split_off(commands.len() / 2);
        let (left_list, right_list) = match (relist(&commands), relist(&right)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => {
                commands.extend(right);
                return self.fail(tenant, header.id, &commands, tracker, e.to_string());
            }
        };
        let (left_tracker, right_tracker) = tracker.split(commands.len(), left_list.json_len() - 1);
        self.seal_part(tenant, left_list, commands, left_tracker, out);
        self.seal_part(tenant, right_list, right, right_tracker, out);
    }

    fn fail(&self, tenant: &TenantInfo, id: String, commands: &[VersionedCommand], tracker: Tracker, why: String) {
        add(&self.counters.failed_messages, 1);
        add(&self.counters.failed_commands, commands.len());
        tracing::error!(batch_id = %id, tenant = %tenant.name, commands = commands.len(), "cannot encode batch: {why}");
        tracker.fail(DeliveryError {
            batch_id: id.into(),
            tenant: Arc::clone(&tenant.name),
            commands: commands.len(),
            keys: commands.iter().map(|c| c.command.key().to_vec()).collect(),
            attempts: 0,
            cause: FailureCause::Encode(why),
        });
    }
}

fn relist(commands: &[VersionedCommand]) -> Result<CommandList, EncodeError> {
    let mut list = CommandList::new();
    for command in commands {
        list.push(command)?;
    }
    Ok(list)
}
