//! Cutting the planned commands into encoded batches, each one message
//! under the SQS/SNS size limit.
//!
//! Unlike the publisher's batching (which estimates the compressed size
//! from the ratio seen so far, tracks a receipt per command and lingers),
//! a resync closes a batch at a fixed amount of command JSON, far below
//! the limit once compressed, and splits the rare batch that still encodes
//! too large.

use regis_wire::{Batch, BatchHeader, CommandList, EncodeOptions, VersionedCommand};

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

#[cfg(test)]
mod tests {
    use rand::Rng as _;
    use regis_wire::{Command, Mode, Version};

    use super::*;

    fn v(ms: u64) -> Version {
        Version::new(ms, 0, 1)
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
}
