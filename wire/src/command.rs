//! The idempotent command set.
//!
//! Only commands whose second application changes nothing can be expressed:
//! a queue may deliver a batch twice. Expiry is always absolute (epoch
//! milliseconds), so a batch that waited in a queue does not extend a key's
//! life. Whole-value replacements (`HReplace`, `SReplace`, `ZReplace`) write
//! a hash, set or sorted set in one step, the way a service caches a record.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::blob::BlobRef;
use crate::error::CommandError;
use crate::limits::MAX_EXPIRE_AT_MS;
use crate::version::Version;

/// One idempotent Redis write. Keys, values, fields and members are bytes.
///
/// Deliberately not `#[non_exhaustive]`: every match on it inside the
/// workspace names every variant, so a command added here fails to compile
/// wherever it is not yet handled (encoder, decoder, both apply modes, the
/// model, resync), instead of failing at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `SET key value [PXAT expire_at_ms]`: replaces the whole key.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Absolute expiry in epoch milliseconds; `None` keeps no TTL.
        expire_at_ms: Option<u64>,
    },
    /// `DEL key`: removes the whole key, whatever its type.
    Del {
        /// The key.
        key: Vec<u8>,
    },
    /// `HSET key field value [field value ...]`.
    HSet {
        /// The key.
        key: Vec<u8>,
        /// Field/value pairs; at least one.
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `HDEL key field [field ...]`.
    HDel {
        /// The key.
        key: Vec<u8>,
        /// Fields to remove; at least one.
        fields: Vec<Vec<u8>>,
    },
    /// `SADD key member [member ...]`.
    SAdd {
        /// The key.
        key: Vec<u8>,
        /// Members to add; at least one.
        members: Vec<Vec<u8>>,
    },
    /// `SREM key member [member ...]`.
    SRem {
        /// The key.
        key: Vec<u8>,
        /// Members to remove; at least one.
        members: Vec<Vec<u8>>,
    },
    /// `ZADD key score member [score member ...]` (absolute scores only).
    ZAdd {
        /// The key.
        key: Vec<u8>,
        /// Score/member pairs; at least one; scores are finite.
        members: Vec<(f64, Vec<u8>)>,
    },
    /// `ZREM key member [member ...]`.
    ZRem {
        /// The key.
        key: Vec<u8>,
        /// Members to remove; at least one.
        members: Vec<Vec<u8>>,
    },
    /// `PEXPIREAT key at_ms`.
    PExpireAt {
        /// The key.
        key: Vec<u8>,
        /// Absolute expiry in epoch milliseconds.
        at_ms: u64,
    },
    /// `PERSIST key`.
    Persist {
        /// The key.
        key: Vec<u8>,
    },
    /// Replaces a whole hash (an empty one deletes the key).
    HReplace {
        /// The key.
        key: Vec<u8>,
        /// The hash's new content.
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        /// Absolute expiry in epoch milliseconds; `None` keeps no TTL.
        expire_at_ms: Option<u64>,
    },
    /// Replaces a whole set (an empty one deletes the key).
    SReplace {
        /// The key.
        key: Vec<u8>,
        /// The set's new members.
        members: Vec<Vec<u8>>,
        /// Absolute expiry in epoch milliseconds; `None` keeps no TTL.
        expire_at_ms: Option<u64>,
    },
    /// Replaces a whole sorted set (an empty one deletes the key).
    ZReplace {
        /// The key.
        key: Vec<u8>,
        /// The sorted set's new members; scores are finite.
        members: Vec<(f64, Vec<u8>)>,
        /// Absolute expiry in epoch milliseconds; `None` keeps no TTL.
        expire_at_ms: Option<u64>,
    },
}

/// Field/value pairs of a hash.
pub type FieldValues = Vec<(Vec<u8>, Vec<u8>)>;

/// The Redis data type a command writes, if it writes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A string (`SET`).
    String,
    /// A hash.
    Hash,
    /// A set.
    Set,
    /// A sorted set.
    SortedSet,
}

impl Command {
    /// The key this command writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Set { key, .. }
            | Self::Del { key }
            | Self::HSet { key, .. }
            | Self::HDel { key, .. }
            | Self::SAdd { key, .. }
            | Self::SRem { key, .. }
            | Self::ZAdd { key, .. }
            | Self::ZRem { key, .. }
            | Self::PExpireAt { key, .. }
            | Self::Persist { key }
            | Self::HReplace { key, .. }
            | Self::SReplace { key, .. }
            | Self::ZReplace { key, .. } => key,
        }
    }

    /// The wire name of the command (`"set"`, `"hreplace"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Set { .. } => "set",
            Self::Del { .. } => "del",
            Self::HSet { .. } => "hset",
            Self::HDel { .. } => "hdel",
            Self::SAdd { .. } => "sadd",
            Self::SRem { .. } => "srem",
            Self::ZAdd { .. } => "zadd",
            Self::ZRem { .. } => "zrem",
            Self::PExpireAt { .. } => "pexpireat",
            Self::Persist { .. } => "persist",
            Self::HReplace { .. } => "hreplace",
            Self::SReplace { .. } => "sreplace",
            Self::ZReplace { .. } => "zreplace",
        }
    }

    /// True for commands that define the whole key (SET, DEL, replacements);
    /// false for field/member writes and expiry changes.
    pub fn is_whole_key(&self) -> bool {
        matches!(
            self,
            Self::Set { .. } | Self::Del { .. } | Self::HReplace { .. } | Self::SReplace { .. } | Self::ZReplace { .. }
        )
    }

    /// The data type the command writes (`None` for DEL, PEXPIREAT, PERSIST).
    pub fn data_type(&self) -> Option<DataType> {
        match self {
            Self::Set { .. } => Some(DataType::String),
            Self::HSet { .. } | Self::HDel { .. } | Self::HReplace { .. } => Some(DataType::Hash),
            Self::SAdd { .. } | Self::SRem { .. } | Self::SReplace { .. } => Some(DataType::Set),
            Self::ZAdd { .. } | Self::ZRem { .. } | Self::ZReplace { .. } => Some(DataType::SortedSet),
            Self::Del { .. } | Self::PExpireAt { .. } | Self::Persist { .. } => None,
        }
    }

    /// How many fields or members the command carries (0 for `set`, `del`,
    /// `pexpireat`, `persist`): what [`crate::DecodeLimits`] counts.
    pub fn elements(&self) -> usize {
        match self {
            Self::HSet { fields, .. } | Self::HReplace { fields, .. } => fields.len(),
            Self::HDel { fields, .. } => fields.len(),
            Self::SAdd { members, .. }
            | Self::SRem { members, .. }
            | Self::ZRem { members, .. }
            | Self::SReplace { members, .. } => members.len(),
            Self::ZAdd { members, .. } | Self::ZReplace { members, .. } => members.len(),
            Self::Set { .. } | Self::Del { .. } | Self::PExpireAt { .. } | Self::Persist { .. } => 0,
        }
    }

    /// The length of the longest field or member and of the longest value
    /// (of `set`, or of a hash field); 0 where there is none.
    pub fn longest_name_and_value(&self) -> (usize, usize) {
        fn longest<'a>(items: impl Iterator<Item = &'a Vec<u8>>) -> usize {
            items.map(Vec::len).max().unwrap_or(0)
        }
        match self {
            Self::Set { value, .. } => (0, value.len()),
            Self::HSet { fields, .. } | Self::HReplace { fields, .. } => (
                longest(fields.iter().map(|(f, _)| f)),
                longest(fields.iter().map(|(_, v)| v)),
            ),
            Self::HDel { fields, .. } => (longest(fields.iter()), 0),
            Self::SAdd { members, .. }
            | Self::SRem { members, .. }
            | Self::ZRem { members, .. }
            | Self::SReplace { members, .. } => (longest(members.iter()), 0),
            Self::ZAdd { members, .. } | Self::ZReplace { members, .. } => (longest(members.iter().map(|(_, m)| m)), 0),
            Self::Del { .. } | Self::PExpireAt { .. } | Self::Persist { .. } => (0, 0),
        }
    }

    /// The absolute expiry the command sets, if any.
    pub fn expiry(&self) -> Option<u64> {
        match self {
            Self::Set { expire_at_ms, .. }
            | Self::HReplace { expire_at_ms, .. }
            | Self::SReplace { expire_at_ms, .. }
            | Self::ZReplace { expire_at_ms, .. } => *expire_at_ms,
            Self::PExpireAt { at_ms, .. } => Some(*at_ms),
            Self::Del { .. }
            | Self::HSet { .. }
            | Self::HDel { .. }
            | Self::SAdd { .. }
            | Self::SRem { .. }
            | Self::ZAdd { .. }
            | Self::ZRem { .. }
            | Self::Persist { .. } => None,
        }
    }

    /// Checks what the types cannot, so that Redis accepts every command
    /// that passes and no batch fails halfway: element lists that Redis
    /// requires to be non-empty are non-empty, scores are finite (JSON has
    /// no infinities, and NaN is no score), and expiries are within
    /// `1..=`[`MAX_EXPIRE_AT_MS`].
    pub fn validate(&self) -> Result<(), CommandError> {
        let empty = match self {
            Self::HSet { fields, .. } => fields.is_empty(),
            Self::HDel { fields, .. } => fields.is_empty(),
            Self::SAdd { members, .. } | Self::SRem { members, .. } | Self::ZRem { members, .. } => members.is_empty(),
            Self::ZAdd { members, .. } => members.is_empty(),
            _ => false,
        };
        if empty {
            return Err(CommandError::Empty { command: self.name() });
        }
        if let Self::ZAdd { members, .. } | Self::ZReplace { members, .. } = self {
            if let Some((score, _)) = members.iter().find(|(s, _)| !s.is_finite()) {
                return Err(CommandError::NonFiniteScore { score: *score });
            }
        }
        match self.expiry() {
            Some(at_ms) if !(1..=MAX_EXPIRE_AT_MS).contains(&at_ms) => Err(CommandError::ExpiryOutOfRange { at_ms }),
            _ => Ok(()),
        }
    }
}

/// A command with the version its publisher stamped on it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedCommand {
    /// When (in hybrid-clock terms) the command was written.
    pub version: Version,
    /// The write itself.
    pub command: Command,
}

impl VersionedCommand {
    /// Pairs a command with its version.
    pub fn new(version: Version, command: Command) -> Self {
        Self { version, command }
    }

    /// [`Command::validate`], and the version is
    /// [representable](Version::is_representable).
    pub fn validate(&self) -> Result<(), CommandError> {
        self.version.check()?;
        self.command.validate()
    }
}

// --- JSON form -------------------------------------------------------------
//
// `{"op":"hset","k":..,"f":[[field,value],..],"ver":[ms,counter,rank]}`.
// Short names keep uncompressed batches small; blobs are strings or
// `{"b64":..}` (see `blob`). Field names per op:
//   set: k v at?   del: k   hset/hreplace: k f at?   hdel: k f
//   sadd/srem/sreplace: k m at?   zadd/zrem/zreplace: k m at?
//   pexpireat: k at   persist: k

struct Blobs<'a>(&'a [Vec<u8>]);
impl Serialize for Blobs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| BlobRef(b)))
    }
}
struct Pairs<'a>(&'a [(Vec<u8>, Vec<u8>)]);
impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(a, b)| (BlobRef(a), BlobRef(b))))
    }
}
struct Scored<'a>(&'a [(f64, Vec<u8>)]);
impl Serialize for Scored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(score, m)| (score, BlobRef(m))))
    }
}

impl Serialize for VersionedCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let cmd = &self.command;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("op", cmd.name())?;
        map.serialize_entry("k", &BlobRef(cmd.key()))?;
        let mut expiry = None;
        match cmd {
            Command::Set {
                value, expire_at_ms, ..
            } => {
                map.serialize_entry("v", &BlobRef(value))?;
                expiry = *expire_at_ms;
            }
            Command::Del { .. } | Command::Persist { .. } => {}
            Command::HSet { fields, .. } => map.serialize_entry("f", &Pairs(fields))?,
            Command::HDel { fields, .. } => map.serialize_entry("f", &Blobs(fields))?,
            Command::SAdd { members, .. } | Command::SRem { members, .. } | Command::ZRem { members, .. } => {
                map.serialize_entry("m", &Blobs(members))?
            }
            Command::ZAdd { members, .. } => map.serialize_entry("m", &Scored(members))?,
            Command::PExpireAt { at_ms, .. } => expiry = Some(*at_ms),
            Command::HReplace {
                fields, expire_at_ms, ..
            } => {
                map.serialize_entry("f", &Pairs(fields))?;
                expiry = *expire_at_ms;
            }
            Command::SReplace {
                members, expire_at_ms, ..
            } => {
                map.serialize_entry("m", &Blobs(members))?;
                expiry = *expire_at_ms;
            }
            Command::ZReplace {
                members, expire_at_ms, ..
            } => {
                map.serialize_entry("m", &Scored(members))?;
                expiry = *expire_at_ms;
            }
        }
        if let Some(at) = expiry {
            map.serialize_entry("at", &at)?;
        }
        map.serialize_entry("ver", &self.version)?;
        map.end()
    }
}
