//! Encoded test batches, built one way for every test.
//!
//! Handler, record, worker, DLQ and end-to-end tests all need "a batch of
//! these commands, as the message text SQS would deliver". These builders
//! stamp a plain header (origin `ap-southeast-1`, tenant `acme`) and encode
//! with the default options (unsigned, compressed when it pays).

use regis_wire::{Batch, BatchHeader, Command, EncodeOptions, Mode, Version, VersionedCommand};

/// Origin region of test batches.
pub const ORIGIN: &str = "ap-southeast-1";
/// Tenant of test batches.
pub const TENANT: &str = "acme";

/// A batch `id` of `mode` published at `published_at_ms` holding `commands`.
pub fn batch(id: &str, mode: Mode, published_at_ms: u64, commands: Vec<VersionedCommand>) -> Batch {
    Batch {
        header: BatchHeader {
            id: id.into(),
            origin: ORIGIN.into(),
            published_at_ms,
            tenant: TENANT.into(),
            mode,
        },
        commands,
    }
}

/// `n` commands `SET {prefix}{i} v`, versions at `at_ms` with counters
/// `0..n` and origin rank 1.
pub fn sets(prefix: &str, at_ms: u64, n: usize) -> Vec<VersionedCommand> {
    (0..n)
        .map(|i| {
            VersionedCommand::new(
                Version::new(at_ms, i as u32, 1),
                Command::Set {
                    key: format!("{prefix}{i}").into_bytes(),
                    value: b"v".to_vec(),
                    expire_at_ms: None,
                },
            )
        })
        .collect()
}

/// The message text of `batch` (default encode options).
pub fn text(batch: &Batch) -> String {
    regis_wire::encode(batch, &EncodeOptions::default())
        .expect("a test batch encodes")
        .text
}

/// The text of batch `id` of `mode` holding `n` sets of keys `{id}:{i}`,
/// published and versioned at `at_ms`.
pub fn set_batch_text(id: &str, mode: Mode, at_ms: u64, n: usize) -> String {
    text(&batch(id, mode, at_ms, sets(&format!("{id}:"), at_ms, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_batch_decodes_to_what_was_built() {
        let text = set_batch_text("b1", Mode::Lww, 1_700_000_000_000, 3);
        let decoded = regis_wire::decode(&text, &Default::default(), &Default::default()).unwrap();
        assert_eq!(decoded.header.id, "b1");
        assert_eq!(decoded.commands.len(), 3);
        assert_eq!(decoded.commands[2].command.key(), b"b1:2");
    }
}
