//! Typed errors. Every way a message can be wrong has its own variant, and
//! [`DecodeError::reason`] gives the short, stable code that travels with a
//! dead-lettered message (the `reason` attribute) and groups `regis dlq list`.

use thiserror::Error;

use crate::version::Version;

/// Longest text of a detail kept in an error: details travel as DLQ message
/// attributes and log fields, and a hostile message must not make them
/// large (an unknown field name or op can be as long as the message).
pub const MAX_DETAIL_BYTES: usize = 512;

/// `text` cut to at most [`MAX_DETAIL_BYTES`] (on a character boundary),
/// with an ellipsis when cut.
pub(crate) fn bounded(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    if text.len() <= MAX_DETAIL_BYTES {
        return text;
    }
    let mut end = MAX_DETAIL_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Bytes shown in an error: lossy UTF-8, at most 64 bytes of them.
pub(crate) fn shown(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;
    let cut = &bytes[..bytes.len().min(SHOWN)];
    let text = String::from_utf8_lossy(cut);
    if bytes.len() > SHOWN {
        format!("{text:?}… ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

/// A command that the types allow but Redis or the wire format does not.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// An element list that must not be empty is empty.
    #[error("{command} needs at least one field or member")]
    Empty {
        /// The command's wire name.
        command: &'static str,
    },
    /// A sorted-set score that is NaN or infinite (JSON cannot carry it).
    #[error("sorted-set score {score} is not finite")]
    NonFiniteScore {
        /// The offending score.
        score: f64,
    },
    /// An absolute expiry outside `1..=MAX_EXPIRE_AT_MS` (see
    /// [`crate::MAX_EXPIRE_AT_MS`]).
    #[error("expiry {at_ms} ms is outside 1..={max} (use DEL to delete now)", max = crate::MAX_EXPIRE_AT_MS)]
    ExpiryOutOfRange {
        /// The offending expiry.
        at_ms: u64,
    },
    /// A version whose milliseconds are beyond [`crate::MAX_VERSION_MILLIS`].
    #[error("version milliseconds {millis} are beyond the wire format's {max}", max = crate::MAX_VERSION_MILLIS)]
    VersionOutOfRange {
        /// The offending milliseconds.
        millis: u64,
    },
}

/// Why a batch could not be encoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A command failed [`crate::Command::validate`].
    #[error("invalid command: {0}")]
    Command(#[from] CommandError),
    /// The compressor failed (it does not, in practice, on in-memory data).
    #[error("compression failed: {0}")]
    Compression(#[from] std::io::Error),
    /// JSON serialization failed.
    #[error("serialization failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which limit a message went over (the fields of [`crate::DecodeLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The message text itself.
    MessageBytes,
    /// The command list after decompression.
    DecompressedBytes,
    /// The number of commands.
    Commands,
    /// Fields or members in one command.
    ElementsPerCommand,
    /// Fields and members in the whole batch.
    ElementsPerBatch,
    /// One key, field or member.
    ElementBytes,
    /// One value (of SET, or of a hash field).
    ValueBytes,
}

impl Limit {
    /// What is counted, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::MessageBytes => "bytes of message text",
            Self::DecompressedBytes => "bytes of decompressed command list",
            Self::Commands => "commands in one batch",
            Self::ElementsPerCommand => "fields or members in one command",
            Self::ElementsPerBatch => "fields and members in one batch",
            Self::ElementBytes => "bytes in one key, field or member",
            Self::ValueBytes => "bytes in one value",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// One limit gone over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{actual} {limit}, at most {max} accepted")]
pub struct OverLimit {
    /// Which limit.
    pub limit: Limit,
    /// The limit.
    pub max: usize,
    /// What there was (or at least was: counting stops at the first one
    /// over).
    pub actual: usize,
}

impl From<OverLimit> for DecodeError {
    fn from(OverLimit { limit, max, actual }: OverLimit) -> Self {
        Self::OverLimit { limit, max, actual }
    }
}

/// Why a message could not be decoded. Every variant is permanent: the same
/// bytes will fail the same way however often they are retried.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or JSON that is not a regis batch.
    #[error("malformed batch: {0}")]
    Malformed(String),
    /// A format version this decoder does not know (for example, newer).
    #[error("unknown format version {0}")]
    UnknownVersion(u64),
    /// A compression this decoder does not know.
    #[error("unknown encoding {0:?}")]
    UnknownEncoding(String),
    /// The zstd stream or its base64 is corrupt.
    #[error("corrupt compressed payload: {0}")]
    Corrupt(String),
    /// A command name this decoder does not know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// Over one of the configured limits.
    #[error("over limit: {actual} {limit}, at most {max} accepted")]
    OverLimit {
        /// Which limit.
        limit: Limit,
        /// The limit.
        max: usize,
        /// What the message had (or at least had: counting stops at the
        /// first one over).
        actual: usize,
    },
    /// A command whose values Redis or the wire format does not accept (an
    /// expiry out of range, a version beyond 48-bit milliseconds, an empty
    /// element list where Redis needs one). Reason `malformed`.
    #[error("command {index}: {error}")]
    Invalid {
        /// The command's position in the batch (from 0).
        index: usize,
        /// What is wrong with it.
        error: CommandError,
    },
    /// Keys are configured but the batch carries no signature.
    #[error("batch is not signed")]
    Unsigned,
    /// The signature names a key id that is not configured.
    #[error("unknown signing key id {0:?}")]
    UnknownKey(String),
    /// The signature does not match the content.
    #[error("bad signature (key id {0:?})")]
    BadSignature(String),
    /// The signature is good, but its key is not bound to the batch's
    /// tenant. Reason `key-not-for-tenant`.
    #[error("signing key {key:?} may not sign for tenant {tenant:?}")]
    KeyNotForTenant {
        /// The key id.
        key: String,
        /// The batch's tenant.
        tenant: String,
    },
}

impl DecodeError {
    /// A [`DecodeError::Malformed`] whose text is bounded.
    pub(crate) fn malformed(text: impl std::fmt::Display) -> Self {
        Self::Malformed(bounded(text))
    }

    /// A short, stable reason code (the DLQ's `reason` attribute).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Invalid { .. } => "malformed",
            Self::UnknownVersion(_) => "unknown-version",
            Self::UnknownEncoding(_) => "unknown-encoding",
            Self::Corrupt(_) => "corrupt-payload",
            Self::UnknownCommand(_) => "unknown-command",
            Self::OverLimit { .. } => "over-limit",
            Self::Unsigned => "unsigned",
            Self::UnknownKey(_) => "unknown-key",
            Self::BadSignature(_) => "bad-signature",
            Self::KeyNotForTenant { .. } => "key-not-for-tenant",
        }
    }
}

/// Why a Redis-style argument list could not become a [`crate::Command`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No arguments at all.
    #[error("empty command")]
    Empty,
    /// A command that is not idempotent, with what to use instead.
    #[error("{command} is not idempotent and cannot be replicated: {why}; use {instead}")]
    NotIdempotent {
        /// The refused command, upper case.
        command: String,
        /// Why applying it twice would be wrong.
        why: &'static str,
        /// What to send instead.
        instead: &'static str,
    },
    /// A command regis does not replicate at all (reads, admin, scripts, ...).
    #[error(
        "{0} is not a replicated write; regis replicates SET, DEL, HSET, HDEL, SADD, SREM, ZADD, ZREM, PEXPIREAT, PERSIST (and EXPIRE/PEXPIRE/EXPIREAT, made absolute)"
    )]
    Unsupported(String),
    /// The key is in the applier's reserved namespace (see
    /// [`crate::is_reserved_key`]).
    #[error(
        "{command}: key {key} is in the reserved namespace regis: (the applier's bookkeeping); only regis:probe: keys may be written there"
    )]
    ReservedKey {
        /// The command, upper case.
        command: String,
        /// The key, as shown in errors (lossy UTF-8, cut).
        key: String,
    },
    /// The arguments do not fit the command.
    #[error("{command}: {message}")]
    BadArguments {
        /// The command, upper case.
        command: String,
        /// What is wrong.
        message: String,
    },
}

/// Why an applier refuses a batch that decoded well: the checks of
/// [`crate::check_reserved_keys`], [`crate::check_clock_skew`] and
/// [`crate::check_horizon`]. Every refusal is permanent; [`Refusal::reason`]
/// is the DLQ's `reason` attribute and the text (bounded) its `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A command writes a key in the applier's own namespace.
    #[error("command {index} ({op}) writes key {} in the reserved namespace regis: (only regis:probe: keys may be written there)", shown(.key))]
    ReservedKey {
        /// The command's position in the batch (from 0).
        index: usize,
        /// The command's wire name.
        op: &'static str,
        /// The key.
        key: Vec<u8>,
    },
    /// A command's version is further ahead of the applier's clock than
    /// the bound.
    #[error(
        "command {index} has version {version}, {ahead_ms} ms ahead of this applier's clock (at most {max_ahead_ms} ms accepted)"
    )]
    ClockSkew {
        /// The command's position in the batch (from 0).
        index: usize,
        /// Its version.
        version: Version,
        /// How far ahead of the applier's clock it is.
        ahead_ms: u64,
        /// The bound.
        max_ahead_ms: u64,
    },
    /// A command's version is older than the tombstone horizon: the
    /// tombstones that would make it lose may be gone.
    #[error("command {index} has version {version}, {age_ms} ms old, beyond the tombstone horizon of {horizon_ms} ms")]
    BeyondHorizon {
        /// The command's position in the batch (from 0).
        index: usize,
        /// Its version.
        version: Version,
        /// How old it is by the applier's clock.
        age_ms: u64,
        /// The horizon.
        horizon_ms: u64,
    },
}

impl Refusal {
    /// A short, stable reason code (the DLQ's `reason` attribute):
    /// `reserved-key`, `clock-skew` or `beyond-horizon`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ReservedKey { .. } => "reserved-key",
            Self::ClockSkew { .. } => "clock-skew",
            Self::BeyondHorizon { .. } => "beyond-horizon",
        }
    }

    /// The position in the batch of the command that was refused.
    pub fn index(&self) -> usize {
        match self {
            Self::ReservedKey { index, .. } | Self::ClockSkew { index, .. } | Self::BeyondHorizon { index, .. } => {
                *index
            }
        }
    }
}
