//! The reference model of last-writer-wins: the rules, as plainly as they
//! can be written.
//!
//! [`LwwModel`] records every write it is given (a second write at the same
//! version of the same key is a duplicate) and computes a key's state by
//! applying its writes **in version order**, one at a time, as one Redis
//! would, judging every expiry at the writes' own times (a version's
//! wall-clock milliseconds) and, at the end, at the clock asked about. That
//! is the definition of what every region must hold, whatever the order,
//! duplication and lateness of delivery; the script in [`lww`](super::lww)
//! computes the same state incrementally from its bookkeeping, and the
//! convergence tests compare the two. The places where these rules differ
//! from Redis are marked `Differs from Redis` below and listed in the
//! documentation of [`lww`](super::lww), with the reasons.
//!
//! The model keeps every write, so it is for tests and tools, not for the
//! applier.

use std::collections::{BTreeMap, BTreeSet};

use regis_wire::{Command, DataType, Version, VersionedCommand};

/// The value of one data key.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelValue {
    /// A string.
    String(Vec<u8>),
    /// A hash: field to value.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// A set.
    Set(BTreeSet<Vec<u8>>),
    /// A sorted set: member to score.
    SortedSet(BTreeMap<Vec<u8>, f64>),
}

impl ModelValue {
    fn data_type(&self) -> DataType {
        match self {
            Self::String(_) => DataType::String,
            Self::Hash(_) => DataType::Hash,
            Self::Set(_) => DataType::Set,
            Self::SortedSet(_) => DataType::SortedSet,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::String(_) => false,
            Self::Hash(m) => m.is_empty(),
            Self::Set(s) => s.is_empty(),
            Self::SortedSet(z) => z.is_empty(),
        }
    }

    fn empty(data_type: DataType) -> Self {
        match data_type {
            DataType::String => Self::String(Vec::new()),
            DataType::Hash => Self::Hash(BTreeMap::new()),
            DataType::Set => Self::Set(BTreeSet::new()),
            DataType::SortedSet => Self::SortedSet(BTreeMap::new()),
        }
    }
}

/// A key's content and expiry while its writes are replayed.
#[derive(Debug, Clone, Default)]
struct Replay {
    data: Option<ModelValue>,
    expire_at_ms: Option<u64>,
}

impl Replay {
    /// The key as seen at `time_ms`: an expiry at or before it has ended the
    /// incarnation, and what comes next acts on a fresh key.
    fn at(&mut self, time_ms: u64) {
        if self.expire_at_ms.is_some_and(|x| x <= time_ms) {
            self.data = None;
            self.expire_at_ms = None;
        }
    }

    fn write(&mut self, command: &Command) {
        if command.is_whole_key() {
            self.data = match command {
                Command::Set { value, .. } => Some(ModelValue::String(value.clone())),
                Command::HReplace { fields, .. } => Some(ModelValue::Hash(fields.iter().cloned().collect())),
                Command::SReplace { members, .. } => Some(ModelValue::Set(members.iter().cloned().collect())),
                Command::ZReplace { members, .. } => Some(ModelValue::SortedSet(
                    members.iter().map(|(score, m)| (m.clone(), *score)).collect(),
                )),
                // A delete, the one whole-key write without data.
                Command::Del { .. }
                | Command::HSet { .. }
                | Command::HDel { .. }
                | Command::SAdd { .. }
                | Command::SRem { .. }
                | Command::ZAdd { .. }
                | Command::ZRem { .. }
                | Command::PExpireAt { .. }
                | Command::Persist { .. } => None,
            };
            self.expire_at_ms = match command {
                Command::Set { expire_at_ms, .. }
                | Command::HReplace { expire_at_ms, .. }
                | Command::SReplace { expire_at_ms, .. }
                | Command::ZReplace { expire_at_ms, .. } => *expire_at_ms,
                Command::Del { .. }
                | Command::HSet { .. }
                | Command::HDel { .. }
                | Command::SAdd { .. }
                | Command::SRem { .. }
                | Command::ZAdd { .. }
                | Command::ZRem { .. }
                | Command::PExpireAt { .. }
                | Command::Persist { .. } => None,
            };
        } else {
            match command {
                // Differs from Redis (1): the expiry is set even when the key
                // does not exist; a key created before it passes takes it.
                Command::PExpireAt { at_ms, .. } => self.expire_at_ms = Some(*at_ms),
                Command::Persist { .. } => self.expire_at_ms = None,
                Command::HSet { .. }
                | Command::HDel { .. }
                | Command::SAdd { .. }
                | Command::SRem { .. }
                | Command::ZAdd { .. }
                | Command::ZRem { .. } => self.element_write(command),
                Command::Set { .. }
                | Command::Del { .. }
                | Command::HReplace { .. }
                | Command::SReplace { .. }
                | Command::ZReplace { .. } => unreachable!("whole-key writes are handled above"),
            }
        }
        // Differs from Redis (2): an emptied collection does not exist, but
        // its expiry stays for the elements written after it.
        if self.data.as_ref().is_some_and(ModelValue::is_empty) {
            self.data = None;
        }
    }

    fn element_write(&mut self, command: &Command) {
        let want = command.data_type().expect("element writes have a type");
        // Differs from Redis (3): another type is a type conflict, skipped.
        if self.data.as_ref().is_some_and(|d| d.data_type() != want) {
            return;
        }
        let data = self.data.get_or_insert_with(|| ModelValue::empty(want));
        match (command, data) {
            (Command::HSet { fields, .. }, ModelValue::Hash(m)) => {
                m.extend(fields.iter().cloned());
            }
            (Command::HDel { fields, .. }, ModelValue::Hash(m)) => {
                for f in fields {
                    m.remove(f);
                }
            }
            (Command::SAdd { members, .. }, ModelValue::Set(s)) => {
                s.extend(members.iter().cloned());
            }
            (Command::SRem { members, .. }, ModelValue::Set(s)) => {
                for m in members {
                    s.remove(m);
                }
            }
            (Command::ZAdd { members, .. }, ModelValue::SortedSet(z)) => {
                for (score, m) in members {
                    z.insert(m.clone(), *score);
                }
            }
            (Command::ZRem { members, .. }, ModelValue::SortedSet(z)) => {
                for m in members {
                    z.remove(m);
                }
            }
            _ => unreachable!("element writes match their type"),
        }
    }
}

/// Last-writer-wins as a replay of every write in version order.
#[derive(Debug, Clone, Default)]
pub struct LwwModel {
    writes: BTreeMap<Vec<u8>, BTreeMap<Version, Command>>,
}

impl LwwModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one write. Returns false for a duplicate (a write of the same
    /// key at the same version is the same write).
    pub fn apply(&mut self, vc: &VersionedCommand) -> bool {
        let writes = self.writes.entry(vc.command.key().to_vec()).or_default();
        if writes.contains_key(&vc.version) {
            return false;
        }
        writes.insert(vc.version, vc.command.clone());
        true
    }

    /// The state of `key` at `now_ms`: value and expiry (epoch ms), or
    /// `None` when it does not exist.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<(ModelValue, Option<u64>)> {
        let mut key_state = Replay::default();
        for (version, command) in self.writes.get(key)? {
            // Whatever expired before this write was stamped is gone for it.
            // (An expiry at or before the time of the write that set it is
            // thus gone for every later write, stamped no earlier, and at
            // `now_ms`, which is never earlier than the writes.)
            key_state.at(version.millis);
            key_state.write(command);
        }
        key_state.at(now_ms);
        key_state.data.map(|d| (d, key_state.expire_at_ms))
    }

    /// The data keys that exist at `now_ms`, with their value and expiry.
    pub fn dump(&self, now_ms: u64) -> BTreeMap<Vec<u8>, (ModelValue, Option<u64>)> {
        self.writes
            .keys()
            .filter_map(|key| self.get(key, now_ms).map(|state| (key.clone(), state)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(ms: u64, rank: u16, command: Command) -> VersionedCommand {
        VersionedCommand::new(Version::new(ms, 0, rank), command)
    }

    fn hset(key: &str, field: &str, value: &str) -> Command {
        Command::HSet {
            key: key.into(),
            fields: vec![(field.into(), value.into())],
        }
    }

    fn sadd(key: &str, member: &str) -> Command {
        Command::SAdd {
            key: key.into(),
            members: vec![member.into()],
        }
    }

    fn set_px(key: &str, value: &str, at: Option<u64>) -> Command {
        Command::Set {
            key: key.into(),
            value: value.into(),
            expire_at_ms: at,
        }
    }

    fn pexpireat(key: &str, at_ms: u64) -> Command {
        Command::PExpireAt { key: key.into(), at_ms }
    }

    fn model(writes: &[VersionedCommand]) -> LwwModel {
        let mut m = LwwModel::new();
        for w in writes {
            m.apply(w);
        }
        m
    }

    fn members(list: &[&str]) -> ModelValue {
        ModelValue::Set(list.iter().map(|m| m.as_bytes().to_vec()).collect())
    }

    #[test]
    fn late_older_set_after_newer_del_stays_deleted() {
        let m = model(&[
            vc(20, 1, Command::Del { key: b"k".to_vec() }),
            vc(10, 1, set_px("k", "v", None)),
        ]);
        assert!(m.dump(100).is_empty());
    }

    #[test]
    fn duplicates_are_recognised() {
        let mut m = LwwModel::new();
        assert!(m.apply(&vc(10, 1, hset("h", "a", "1"))));
        assert!(!m.apply(&vc(10, 1, hset("h", "a", "1"))));
    }

    #[test]
    fn older_field_write_does_not_undo_newer_one() {
        let m = model(&[
            vc(20, 1, hset("h", "b", "2")),
            vc(10, 1, hset("h", "a", "1")),
            vc(5, 1, hset("h", "b", "old")),
        ]);
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]
            .into_iter()
            .collect();
        assert_eq!(m.get(b"h", 100), Some((ModelValue::Hash(expected), None)));
    }

    #[test]
    fn replacement_keeps_newer_elements_and_drops_older_ones() {
        let fields = vec![
            (b"r".to_vec(), b"2".to_vec()),
            (b"gone".to_vec(), b"x".to_vec()),
            (b"new".to_vec(), b"x".to_vec()),
        ];
        let m = model(&[
            vc(10, 1, hset("h", "old", "1")),
            vc(30, 1, hset("h", "new", "3")),
            vc(
                31,
                1,
                Command::HDel {
                    key: b"h".to_vec(),
                    fields: vec![b"gone".to_vec()],
                },
            ),
            vc(
                20,
                1,
                Command::HReplace {
                    key: b"h".to_vec(),
                    fields,
                    expire_at_ms: None,
                },
            ),
        ]);
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [(b"new".to_vec(), b"3".to_vec()), (b"r".to_vec(), b"2".to_vec())]
            .into_iter()
            .collect();
        assert_eq!(m.get(b"h", 100).unwrap().0, ModelValue::Hash(expected));
    }

    #[test]
    fn an_extension_stamped_before_the_expiry_keeps_the_key() {
        // Written with a TTL ending at 100, extended at 90 to 500.
        let m = model(&[vc(50, 1, set_px("k", "v", Some(100))), vc(90, 1, pexpireat("k", 500))]);
        assert_eq!(m.get(b"k", 200), Some((ModelValue::String(b"v".to_vec()), Some(500))));
        assert_eq!(m.get(b"k", 500), None);
    }

    #[test]
    fn an_extension_stamped_at_or_after_the_expiry_acts_on_a_fresh_key() {
        let m = model(&[vc(50, 1, set_px("k", "v", Some(100))), vc(100, 1, pexpireat("k", 500))]);
        assert_eq!(m.get(b"k", 200), None);
        // A later element write makes a fresh key that takes the newest expiry.
        let m = model(&[
            vc(50, 1, sadd("s", "old")),
            vc(51, 1, pexpireat("s", 100)),
            vc(150, 1, pexpireat("s", 500)),
            vc(160, 1, sadd("s", "new")),
        ]);
        assert_eq!(m.get(b"s", 200), Some((members(&["new"]), Some(500))));
    }

    #[test]
    fn an_element_write_after_the_expiry_makes_a_fresh_key_without_ttl() {
        let m = model(&[
            vc(50, 1, sadd("s", "a")),
            vc(60, 1, pexpireat("s", 100)),
            vc(120, 1, sadd("s", "b")),
        ]);
        assert_eq!(m.get(b"s", 110), Some((members(&["b"]), None)));
        // Written before the expiry: part of the incarnation that expires.
        let m = model(&[
            vc(50, 1, sadd("s", "a")),
            vc(60, 1, pexpireat("s", 100)),
            vc(99, 1, sadd("s", "b")),
        ]);
        assert_eq!(m.get(b"s", 99), Some((members(&["a", "b"]), Some(100))));
        assert_eq!(m.get(b"s", 100), None);
    }

    #[test]
    fn an_expiry_in_the_past_ends_the_key_right_after_its_write() {
        let m = model(&[
            vc(50, 1, sadd("s", "a")),
            VersionedCommand::new(Version::new(60, 0, 1), pexpireat("s", 10)),
            VersionedCommand::new(Version::new(60, 1, 1), sadd("s", "b")),
        ]);
        assert_eq!(m.get(b"s", 1_000), Some((members(&["b"]), None)));
    }

    #[test]
    fn a_shortened_expiry_that_passed_is_not_undone_by_a_later_extension() {
        let m = model(&[
            vc(0, 1, set_px("k", "v", Some(1_000))),
            vc(10, 1, pexpireat("k", 20)),
            vc(30, 1, pexpireat("k", 2_000)),
        ]);
        assert_eq!(m.get(b"k", 40), None);
    }

    #[test]
    fn an_expiry_set_on_a_missing_key_is_taken_by_the_key_created_next() {
        let m = model(&[vc(10, 1, pexpireat("s", 500)), vc(20, 1, sadd("s", "a"))]);
        assert_eq!(m.get(b"s", 30), Some((members(&["a"]), Some(500))));
    }

    #[test]
    fn type_conflicts_are_skipped() {
        let m = model(&[vc(10, 1, set_px("k", "v", None)), vc(11, 1, hset("k", "f", "v"))]);
        assert_eq!(m.get(b"k", 20), Some((ModelValue::String(b"v".to_vec()), None)));
    }
}
