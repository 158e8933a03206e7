//! The batch envelope: one SNS message, one batch.

use crate::command::VersionedCommand;

/// The wire format version this crate writes, and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// How a batch must be applied. A batch says which mode it was written for,
/// and an applier refuses a batch of the other mode, so versioned and plain
/// data cannot be mixed by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Apply as-is, no versions: single-writer data that tolerates reordering.
    Plain,
    /// Last-writer-wins by version: correct under duplicates, reordering and
    /// several writers.
    #[default]
    Lww,
}

impl Mode {
    /// The wire name (`"plain"` or `"lww"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Lww => "lww",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Self::Plain),
            "lww" => Ok(Self::Lww),
            other => Err(format!("unknown mode {other:?} (expected plain or lww)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about a batch except its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// Unique id of the batch (duplicates share it).
    pub id: String,
    /// The region the batch was published from.
    pub origin: String,
    /// Publish time, epoch milliseconds (replication lag is measured from it).
    pub published_at_ms: u64,
    /// The tenant whose data this is.
    pub tenant: String,
    /// How the batch must be applied.
    pub mode: Mode,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Id, origin, time, tenant, mode.
    pub header: BatchHeader,
    /// The commands, in publish order.
    pub commands: Vec<VersionedCommand>,
}
