//! The commands the benchmarks send: deterministic for a seed.
//!
//! Two mixes. [`Mix::SetOnly`] is what `redis-benchmark -t set` does (one
//! `SET` of a 200-byte value per command), so the apply engine can be set
//! against it. [`Mix::Realistic`] is what a service caching records writes:
//! strings with an absolute expiry, hashes with several fields (field writes
//! and whole-record replacements), sets, sorted sets and some deletes.
//! Values are text records (words from a small vocabulary, an id, a time),
//! because what compression achieves depends on what the values look like:
//! random bytes would understate it, `xxxx…` would overstate it.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regis_wire::Command;

/// Bytes of every string value (and of every hash's values together).
pub const VALUE_BYTES: usize = 200;
/// Fields written by one hash command.
pub const HASH_FIELDS: usize = 4;
/// Members written by one set or sorted-set command.
pub const MEMBERS_PER_COMMAND: usize = 2;
/// How far in the future string and replacement expiries lie.
pub const EXPIRY_MS: u64 = 3_600_000;

const WORDS: &[&str] = &[
    "room",
    "clean",
    "guest",
    "booked",
    "status",
    "floor",
    "suite",
    "checkout",
    "late",
    "breakfast",
    "king",
    "twin",
    "ocean",
    "view",
    "pending",
    "confirmed",
    "cancelled",
    "paid",
    "invoice",
    "loyalty",
    "gold",
    "silver",
    "member",
    "night",
    "rate",
    "flex",
    "standard",
    "deluxe",
    "minibar",
    "laundry",
    "parking",
    "spa",
    "pool",
    "gym",
    "wifi",
    "smoking",
    "non",
    "accessible",
    "quiet",
    "corner",
];

/// Which commands to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Only `SET key <200 bytes>` (no expiry), like `redis-benchmark -t set`.
    SetOnly,
    /// Strings with expiry 35 %, hash field writes 20 %, hash replacements
    /// 10 %, set adds 15 %, sorted-set adds 15 %, deletes 5 %.
    Realistic,
}

/// Which keys the commands write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Random keys among this many per data type: keys are rewritten, as
    /// with `redis-benchmark -r`.
    Space(u64),
    /// Every command writes a key of its own and nothing is deleted (a
    /// delete becomes a string write), so "applied" can be checked by the
    /// key's existence.
    Unique,
}

/// A deterministic stream of commands.
#[derive(Debug)]
pub struct Workload {
    rng: StdRng,
    mix: Mix,
    keys: Keys,
    prefix: String,
    now_ms: u64,
    next: u64,
}

impl Workload {
    /// A stream for `mix` over `keys`, every key starting with `prefix`;
    /// expiries are `EXPIRY_MS` after `now_ms`.
    pub fn new(mix: Mix, keys: Keys, prefix: &str, seed: u64, now_ms: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            mix,
            keys,
            prefix: prefix.to_owned(),
            now_ms,
            next: 0,
        }
    }

    /// The next `n` commands.
    pub fn take(&mut self, n: usize) -> Vec<Command> {
        (0..n).map(|_| self.next_command()).collect()
    }

    /// The key the `i`-th command of a [`Keys::Unique`] stream writes
    /// (commands count from 0).
    pub fn unique_key(prefix: &str, kind: &str, i: u64) -> Vec<u8> {
        format!("{prefix}{kind}:{i}").into_bytes()
    }

    /// The next command.
    pub fn next_command(&mut self) -> Command {
        let i = self.next;
        self.next += 1;
        let expire_at_ms = Some(self.now_ms + EXPIRY_MS);
        let roll = match self.mix {
            Mix::SetOnly => {
                let key = self.key("str", i);
                return Command::Set {
                    key,
                    value: self.text(VALUE_BYTES),
                    expire_at_ms: None,
                };
            }
            Mix::Realistic => self.rng.random_range(0..100u32),
        };
        match roll {
            0..35 => Command::Set {
                key: self.key("str", i),
                value: self.text(VALUE_BYTES),
                expire_at_ms,
            },
            35..55 => Command::HSet {
                key: self.key("hash", i),
                fields: self.fields(),
            },
            55..65 => Command::HReplace {
                key: self.key("hash", i),
                fields: self.fields(),
                expire_at_ms,
            },
            65..80 => Command::SAdd {
                key: self.key("set", i),
                members: (0..MEMBERS_PER_COMMAND).map(|_| self.member()).collect(),
            },
            80..95 => Command::ZAdd {
                key: self.key("zset", i),
                members: (0..MEMBERS_PER_COMMAND)
                    .map(|_| (f64::from(self.rng.random_range(0..1_000_000u32)), self.member()))
                    .collect(),
            },
            _ => match self.keys {
                Keys::Unique => Command::Set {
                    key: self.key("str", i),
                    value: self.text(VALUE_BYTES),
                    expire_at_ms,
                },
                Keys::Space(_) => {
                    let kind = ["str", "hash", "set", "zset"][self.rng.random_range(0..4usize)];
                    Command::Del { key: self.key(kind, i) }
                }
            },
        }
    }

    fn key(&mut self, kind: &str, i: u64) -> Vec<u8> {
        let n = match self.keys {
            Keys::Space(space) => self.rng.random_range(0..space.max(1)),
            Keys::Unique => i,
        };
        Self::unique_key(&self.prefix, kind, n)
    }

    fn fields(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        ["status", "guest", "rate", "updated"]
            .iter()
            .take(HASH_FIELDS)
            .map(|name| (name.as_bytes().to_vec(), self.text(VALUE_BYTES / HASH_FIELDS)))
            .collect()
    }

    fn member(&mut self) -> Vec<u8> {
        format!("guest:{:08}", self.rng.random_range(0..100_000_000u32)).into_bytes()
    }

    /// Exactly `len` bytes of record-like text.
    fn text(&mut self, len: usize) -> Vec<u8> {
        let mut out = format!(
            "id={};at={};",
            self.rng.random_range(0..10_000_000u32),
            self.now_ms + u64::from(self.rng.random_range(0..60_000u32))
        )
        .into_bytes();
        while out.len() < len {
            out.extend_from_slice(WORDS[self.rng.random_range(0..WORDS.len())].as_bytes());
            out.push(b' ');
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_commands() {
        let a = Workload::new(Mix::Realistic, Keys::Space(100), "p:", 7, 1_000).take(50);
        let b = Workload::new(Mix::Realistic, Keys::Space(100), "p:", 7, 1_000).take(50);
        let c = Workload::new(Mix::Realistic, Keys::Space(100), "p:", 8, 1_000).take(50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn set_only_writes_200_byte_values_without_expiry() {
        for command in Workload::new(Mix::SetOnly, Keys::Space(10), "p:", 1, 0).take(20) {
            match command {
                Command::Set {
                    key,
                    value,
                    expire_at_ms,
                } => {
                    assert!(key.starts_with(b"p:str:"));
                    assert_eq!(value.len(), VALUE_BYTES);
                    assert_eq!(expire_at_ms, None);
                }
                other => panic!("not a SET: {other:?}"),
            }
        }
    }

    #[test]
    fn realistic_mix_has_every_kind_in_roughly_its_share() {
        let commands = Workload::new(Mix::Realistic, Keys::Space(1000), "p:", 3, 0).take(10_000);
        let share = |name: &str| commands.iter().filter(|c| c.name() == name).count() as f64 / 100.0;
        for (name, percent) in [
            ("set", 35.0),
            ("hset", 20.0),
            ("hreplace", 10.0),
            ("sadd", 15.0),
            ("zadd", 15.0),
            ("del", 5.0),
        ] {
            let got = share(name);
            assert!(
                (got - percent).abs() < 2.0,
                "{name}: {got}% instead of about {percent}%"
            );
        }
        for command in &commands {
            command.validate().unwrap();
            if let Command::HSet { fields, .. } = command {
                assert_eq!(fields.len(), HASH_FIELDS);
                assert_eq!(fields.iter().map(|(_, v)| v.len()).sum::<usize>(), VALUE_BYTES);
            }
        }
    }

    #[test]
    fn unique_keys_never_repeat_and_nothing_is_deleted() {
        let commands = Workload::new(Mix::Realistic, Keys::Unique, "u:", 5, 0).take(2_000);
        let keys: std::collections::HashSet<&[u8]> = commands.iter().map(Command::key).collect();
        assert_eq!(keys.len(), commands.len());
        assert!(commands.iter().all(|c| c.name() != "del"));
        assert_eq!(
            commands[17].key(),
            Workload::unique_key("u:", commands_kind(&commands[17]), 17)
        );
    }

    fn commands_kind(command: &Command) -> &'static str {
        match command.name() {
            "set" => "str",
            "hset" | "hreplace" => "hash",
            "sadd" => "set",
            "zadd" => "zset",
            other => panic!("unexpected {other}"),
        }
    }
}
