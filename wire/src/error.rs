//! Typed errors. Every way a message can be wrong has its own variant, and
//! [`DecodeError::reason`] gives the short, stable code that travels with a
//! dead-lettered message (the `reason` attribute) and groups `regis dlq list`.

use thiserror::Error;

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

/// Which limit a message went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The message text itself.
    MessageBytes,
    /// The command list after decompression.
    DecompressedBytes,
    /// The number of commands.
    Commands,
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
    #[error("over limit ({limit:?}): {actual} > {max}")]
    OverLimit {
        /// Which limit.
        limit: Limit,
        /// The limit.
        max: usize,
        /// What the message had (or at least had).
        actual: usize,
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
}

impl DecodeError {
    /// A short, stable reason code (the DLQ's `reason` attribute).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownVersion(_) => "unknown-version",
            Self::UnknownEncoding(_) => "unknown-encoding",
            Self::Corrupt(_) => "corrupt-payload",
            Self::UnknownCommand(_) => "unknown-command",
            Self::OverLimit { .. } => "over-limit",
            Self::Unsigned => "unsigned",
            Self::UnknownKey(_) => "unknown-key",
            Self::BadSignature(_) => "bad-signature",
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
    /// The arguments do not fit the command.
    #[error("{command}: {message}")]
    BadArguments {
        /// The command, upper case.
        command: String,
        /// What is wrong.
        message: String,
    },
}
