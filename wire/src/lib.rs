//! The regis wire format.
//!
//! One SNS message is one [`Batch`]: a header (format version, id, origin
//! region, publish time, tenant, apply mode) and a list of
//! [`VersionedCommand`]s, each an idempotent Redis write stamped with the
//! [`Version`] its publisher's [`HybridClock`] gave it. The list may be
//! compressed (zstd, then base64) and the batch signed (HMAC-SHA256).
//!
//! This crate is pure and synchronous: no I/O, no clock, no randomness.
//! Callers pass the time in, so everything here is deterministic. The format
//! itself is specified in `docs/WIRE.md`.
//!
//! An applier calls [`decode`] (with its [`DecodeLimits`]), then on the
//! decoded batch [`check_reserved_keys`], [`check_clock_skew`] and, in
//! last-writer-wins mode, [`check_horizon`]; every error has a stable
//! `reason()` for the dead-letter queue.
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
mod checks;
mod codec;
mod command;
mod de;
mod error;
mod limits;
mod raw;
mod signing;
mod tenants;
mod version;

pub use batch::{Batch, BatchHeader, FORMAT_VERSION, Mode};
pub use checks::{
    PROBE_PREFIX, RESERVED_PREFIX, check_clock_skew, check_horizon, check_reserved_keys, is_reserved_key,
};
pub use codec::{
    CommandList, Compression, ENVELOPE_OVERHEAD_BYTES, EncodeOptions, Encoded, SNS_DEFAULT_MAX_MESSAGE_BYTES,
    SNS_MAX_MESSAGE_BYTES, decode, encode, encode_list, encode_owned_list, peek_format_version,
};
pub use command::{Command, DataType, FieldValues, VersionedCommand};
pub use error::{CommandError, DecodeError, EncodeError, Limit, MAX_DETAIL_BYTES, OverLimit, ParseError, Refusal};
pub use limits::{
    DecodeLimits, MAX_COMMANDS, MAX_DECOMPRESSED_BYTES, MAX_ELEMENT_BYTES, MAX_ELEMENTS_PER_BATCH,
    MAX_ELEMENTS_PER_COMMAND, MAX_EXPIRE_AT_MS, MAX_HORIZON_MS, MAX_MESSAGE_BYTES, MAX_VALUE_BYTES,
};
pub use raw::{parse_command, split_line};
pub use signing::{KeySpecError, KeyTenants, Keyring, MIN_SECRET_BYTES, SigningKey};
pub use tenants::{ANY_REGION, Tenant, TenantDenied, TenantRegistry, TenantSpecError};
pub use version::{ClockError, DEFAULT_MAX_CLOCK_SKEW_MS, HybridClock, MAX_VERSION_MILLIS, SORTABLE_LEN, Version};
