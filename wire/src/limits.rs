//! What one message may cost the decoder, and the bounds on values.
//!
//! Whoever can publish to the topic or send to a queue reaches the applier,
//! so every dimension of a message that costs memory or Redis time has a
//! limit, checked while decoding, before the thing it limits is allocated.
//! Over a limit is [`crate::DecodeError::OverLimit`] (reason `over-limit`),
//! permanent. The defaults below are what an applier uses unless configured
//! otherwise; a publisher keeps its batches at half of the batch limits
//! (and refuses single commands over the command limits), so an applier
//! with default limits accepts everything a default publisher sends.

use crate::codec::SNS_MAX_MESSAGE_BYTES;
use crate::command::Command;
use crate::error::{Limit, OverLimit};
use crate::version::MAX_VERSION_MILLIS;

/// Default longest message text: SNS's and SQS's largest message size
/// (1 MiB); nothing larger can arrive through the queues.
pub const MAX_MESSAGE_BYTES: usize = SNS_MAX_MESSAGE_BYTES;

/// Default longest command list after decompression (8 MiB). The decoder
/// holds the decompressed list while it decodes it, so this is the largest
/// single buffer a message costs; a few KB of zstd can ask for any size, and
/// anything above this is refused before it is decompressed (when the zstd
/// frame states its size) or as soon as decompression passes it. 8 MiB is
/// several times what a full 1 MiB message of typical commands expands to
/// (about 3 to 1).
pub const MAX_DECOMPRESSED_BYTES: usize = 8 * 1024 * 1024;

/// Default most commands in one batch (100,000). Each decoded command costs
/// `size_of::<VersionedCommand>()` bytes before its contents; the vector
/// of commands is sized from the envelope's `n`, which is checked against
/// this first.
pub const MAX_COMMANDS: usize = 100_000;

/// Default most fields or members in one command (10,000). A command is
/// one atomic step of the apply script (a replacement cannot be split
/// without readers seeing it half done), so this bounds the time one
/// command holds Redis: in last-writer-wins mode each element costs a few
/// Redis calls for its version. Larger sets and hashes can be written with
/// several element writes (`sadd`, `hset`), which the applier may spread
/// over several script calls.
pub const MAX_ELEMENTS_PER_COMMAND: usize = 10_000;

/// Default most fields and members in one batch (100,000). Each decoded
/// element costs a vector entry (24 bytes, 48 for a field with its value)
/// plus its bytes, even when empty: a 4 KB zstd message can expand to
/// millions of empty members (`""` is 3 bytes of JSON), and this limit
/// stops the decoder at the first one over.
pub const MAX_ELEMENTS_PER_BATCH: usize = 100_000;

/// Default longest key, field or member (64 KiB). These are names: the
/// applier stores each one again in its bookkeeping (the key in the name of
/// the bookkeeping hash, each element as a field of it, next to its
/// version), and hashes and compares them in the script.
pub const MAX_ELEMENT_BYTES: usize = 64 * 1024;

/// Default longest value of `set` or of one hash field (4 MiB). One value
/// is one Redis argument, copied into the request buffer of the pipeline
/// that carries it; half the decompressed limit leaves room for the JSON
/// escaping of binary values (base64 is 4/3 of the bytes).
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;

/// The latest absolute expiry (epoch ms) a command may carry: the same
/// `2^48 - 1` as [`MAX_VERSION_MILLIS`], about the year 10889.
///
/// Redis refuses `SET ... PXAT 0` and anything above `i64::MAX`, so such
/// expiries would fail one command after others of the batch were applied.
/// The margin below `i64::MAX` is for the applier: it keeps version
/// bookkeeping until `max(now, expiry) + horizon`, computed in the script's
/// double-precision numbers, which are exact up to `2^53`. With expiries at
/// most `2^48 - 1`, any horizon up to [`MAX_HORIZON_MS`] gives an exact
/// result below `2^53`, far below `i64::MAX`.
pub const MAX_EXPIRE_AT_MS: u64 = MAX_VERSION_MILLIS;

/// The longest tombstone horizon (ms) for which `max(now, expiry) +
/// horizon` stays exact in double precision for every expiry the decoder
/// accepts and every clock before the year 10889: `2^53 - 2^48`, about
/// 270,000 years. An applier should refuse a configured horizon above it.
pub const MAX_HORIZON_MS: u64 = (1 << 53) - (1 << 48);

/// Limits the decoder enforces before it allocates. `Default` gives the
/// constants of this module; an applier may configure its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest message text accepted ([`MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Longest command list accepted after decompression
    /// ([`MAX_DECOMPRESSED_BYTES`]).
    pub max_decompressed_bytes: usize,
    /// Most commands accepted in one batch ([`MAX_COMMANDS`]).
    pub max_commands: usize,
    /// Most fields or members in one command ([`MAX_ELEMENTS_PER_COMMAND`]).
    pub max_elements_per_command: usize,
    /// Most fields and members in one batch ([`MAX_ELEMENTS_PER_BATCH`]).
    pub max_elements_per_batch: usize,
    /// Longest key, field or member ([`MAX_ELEMENT_BYTES`]).
    pub max_element_bytes: usize,
    /// Longest value of `set` or of a hash field ([`MAX_VALUE_BYTES`]).
    pub max_value_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
            max_commands: MAX_COMMANDS,
            max_elements_per_command: MAX_ELEMENTS_PER_COMMAND,
            max_elements_per_batch: MAX_ELEMENTS_PER_BATCH,
            max_element_bytes: MAX_ELEMENT_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
        }
    }
}

/// Bytes of one decoded field with its value (or member with its score):
/// two vectors.
const ELEMENT_SLOT_BYTES: usize = 2 * size_of::<Vec<u8>>();

impl DecodeLimits {
    /// The value of one limit.
    pub fn get(&self, limit: Limit) -> usize {
        match limit {
            Limit::MessageBytes => self.max_message_bytes,
            Limit::DecompressedBytes => self.max_decompressed_bytes,
            Limit::Commands => self.max_commands,
            Limit::ElementsPerCommand => self.max_elements_per_command,
            Limit::ElementsPerBatch => self.max_elements_per_batch,
            Limit::ElementBytes => self.max_element_bytes,
            Limit::ValueBytes => self.max_value_bytes,
        }
    }

    /// An upper bound of the heap the decoder allocates at any one time for
    /// one message with these limits (the message text itself, which the
    /// caller holds, and zstd's own decompression context of about 100 KiB,
    /// allocated by C, not included). About 44 MiB with the defaults.
    ///
    /// It adds: the header strings and the base64-decoded payload (at most
    /// the message, twice); the decompressed list and two copies of its
    /// contents at most (the decoded bytes, and the parser's buffer for the
    /// one string it is unescaping); the vector of commands; and the element
    /// vectors, twice (vectors grow by doubling).
    pub fn peak_bytes(&self) -> usize {
        let commands = self
            .max_commands
            .saturating_mul(size_of::<crate::command::VersionedCommand>());
        let elements = self
            .max_elements_per_batch
            .saturating_mul(ELEMENT_SLOT_BYTES)
            .saturating_mul(2);
        self.max_message_bytes
            .saturating_mul(2)
            .saturating_add(self.max_decompressed_bytes.saturating_mul(3))
            .saturating_add(commands)
            .saturating_add(elements)
    }

    /// Checks one command against the per-command limits: what the decoder
    /// would refuse in it. The publisher calls this before accepting a
    /// command (the total size and the batch limits are the batcher's).
    pub fn check_command(&self, command: &Command) -> Result<(), OverLimit> {
        let (longest_name, longest_value) = command.longest_name_and_value();
        self.check(Limit::ElementBytes, command.key().len())?;
        self.check(Limit::ElementBytes, longest_name)?;
        self.check(Limit::ValueBytes, longest_value)?;
        self.check(Limit::ElementsPerCommand, command.elements())
    }

    /// `Err` when `actual` is over `limit`.
    pub fn check(&self, limit: Limit, actual: usize) -> Result<(), OverLimit> {
        let max = self.get(limit);
        if actual > max {
            Err(OverLimit { limit, max, actual })
        } else {
            Ok(())
        }
    }
}
