//! The regis wire format.
//!
//! One SNS message is one [`Batch`]: a header (format version, id, origin
//! region, publish time, tenant, apply mode) and a list of
//! [`VersionedCommand`]s, each an idempotent Redis write stamped with the
//! [`Version`] its publisher's [`HybridClock`] gave it. The list may be
//! compressed (zstd, then base64) and the batch signed (HMAC-SHA256).
//!
//! This crate is pure and synchronous: no I/O, no clock, no randomness.
//! Callers pass the time in, so everything here is deterministic.
//!
//! ```
//! use regis_wire::{Batch, BatchHeader, Command, DecodeLimits, EncodeOptions, HybridClock, Keyring, Mode, VersionedCommand};
//!
//! let mut clock = HybridClock::new(1);
//! let set = Command::Set { key: b"user:1".to_vec(), value: vec![0xff, 0], expire_at_ms: Some(1_700_000_060_000) };
//! let batch = Batch {
//!     header: BatchHeader { id: "b1".into(), origin: "eu-west-1".into(), published_at_ms: 1_700_000_000_000, tenant: "acme".into(), mode: Mode::Lww },
//!     commands: vec![VersionedCommand::new(clock.tick(1_700_000_000_000), set)],
//! };
//! let text = regis_wire::encode(&batch, &EncodeOptions::default()).unwrap().text;
//! let back = regis_wire::decode(&text, &DecodeLimits::default(), &Keyring::default()).unwrap();
//! assert_eq!(back, batch);
//! ```
#![warn(missing_docs)]

mod batch;
mod blob;
mod codec;
mod command;
mod error;
mod raw;
mod signing;
mod version;

pub use batch::{Batch, BatchHeader, FORMAT_VERSION, Mode};
pub use codec::{
    CommandList, Compression, DecodeLimits, ENVELOPE_OVERHEAD_BYTES, EncodeOptions, Encoded,
    SNS_DEFAULT_MAX_MESSAGE_BYTES, SNS_MAX_MESSAGE_BYTES, decode, encode, encode_list, encode_owned_list,
    peek_format_version,
};
pub use command::{Command, DataType, FieldValues, VersionedCommand};
pub use error::{CommandError, DecodeError, EncodeError, Limit, ParseError};
pub use raw::{parse_command, split_line};
pub use signing::{KeySpecError, Keyring, SigningKey};
pub use version::{HybridClock, SORTABLE_LEN, Version};
