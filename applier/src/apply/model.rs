//! The reference model of last-writer-wins, in plain Rust.
//!
//! It implements the rules documented in [`lww`](super::lww) over in-memory
//! maps, one command at a time, with the same outcome codes as the script.
//! The convergence tests apply the same histories to Redis (through the
//! script) and to this model, in many delivery orders, and require the same
//! final state; `regis verify`-style tools can use [`LwwModel::dump`]'s
//! shape to compare regions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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

    fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        match self {
            Self::String(_) => {}
            Self::Hash(m) => m.retain(|k, _| keep(k)),
            Self::Set(s) => s.retain(|k| keep(k)),
            Self::SortedSet(z) => z.retain(|k, _| keep(k)),
        }
    }
}

/// What applying one command did (the script's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, wholly or in part.
    Applied,
    /// Lost to a newer or equal version everywhere it could apply.
    Older,
    /// Skipped: the key holds another data type.
    TypeConflict,
}

/// The state of one key: data and bookkeeping.
#[derive(Debug, Clone, Default)]
struct KeyState {
    data: Option<ModelValue>,
    k: Option<Version>,
    e: Option<Version>,
    x: Option<u64>,
    f: BTreeMap<Vec<u8>, Version>,
}

impl KeyState {
    /// Applies the expiry register to the data: an expiry at or before `now`
    /// removes the key, as Redis does for a time in the past.
    fn sync_expiry(&mut self, now_ms: u64) {
        if self.x.is_some_and(|x| x <= now_ms) {
            self.data = None;
        }
        if self.data.as_ref().is_some_and(ModelValue::is_empty) {
            self.data = None;
        }
    }
}

/// Last-writer-wins over in-memory maps.
#[derive(Debug, Clone, Default)]
pub struct LwwModel {
    keys: BTreeMap<Vec<u8>, KeyState>,
}

/// Element writes as (element, change), in command order.
enum Change<'a> {
    HSet(&'a [u8]),
    Remove,
    Add,
    Score(f64),
}

impl LwwModel {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one command; `now_ms` is the clock expiries are judged by.
    pub fn apply(&mut self, vc: &VersionedCommand, now_ms: u64) -> Outcome {
        let command = &vc.command;
        let v = vc.version;
        let st = self.keys.entry(command.key().to_vec()).or_default();
        if st.k.is_some_and(|k| v <= k) {
            return Outcome::Older;
        }
        if command.is_whole_key() {
            let want = command.data_type();
            let changing = matches!((&st.data, want), (Some(d), Some(w)) if d.data_type() != w);
            let newer: BTreeSet<Vec<u8>> = if changing {
                BTreeSet::new()
            } else {
                st.f.iter().filter(|(_, f)| **f > v).map(|(e, _)| e.clone()).collect()
            };
            st.f.retain(|e, _| newer.contains(e));
            if changing {
                st.data = None;
            }
            if st.e.is_none_or(|e| v > e) {
                st.e = Some(v);
                st.x = match command {
                    Command::Set { expire_at_ms, .. }
                    | Command::HReplace { expire_at_ms, .. }
                    | Command::SReplace { expire_at_ms, .. }
                    | Command::ZReplace { expire_at_ms, .. } => *expire_at_ms,
                    _ => None,
                };
            }
            st.k = Some(v);
            if let Command::Set { value, .. } = command {
                st.data = Some(ModelValue::String(value.clone()));
            } else {
                if newer.is_empty() {
                    st.data = None;
                } else if let Some(data) = &mut st.data {
                    if data.data_type() == DataType::String {
                        st.data = None;
                    } else {
                        data.retain(|e| newer.contains(e));
                    }
                }
                if let Some(want) = want {
                    let data = st.data.get_or_insert_with(|| ModelValue::empty(want));
                    match (command, data) {
                        (Command::HReplace { fields, .. }, ModelValue::Hash(m)) => {
                            for (f, val) in fields.iter().filter(|(f, _)| !newer.contains(f)) {
                                m.insert(f.clone(), val.clone());
                            }
                        }
                        (Command::SReplace { members, .. }, ModelValue::Set(s)) => {
                            s.extend(members.iter().filter(|m| !newer.contains(*m)).cloned());
                        }
                        (Command::ZReplace { members, .. }, ModelValue::SortedSet(z)) => {
                            for (score, m) in members.iter().filter(|(_, m)| !newer.contains(m)) {
                                z.insert(m.clone(), *score);
                            }
                        }
                        _ => unreachable!("replacement content matches its type"),
                    }
                }
            }
            st.sync_expiry(now_ms);
            return Outcome::Applied;
        }
        match command {
            Command::PExpireAt { .. } | Command::Persist { .. } => {
                if st.e.is_some_and(|e| v <= e) {
                    return Outcome::Older;
                }
                st.e = Some(v);
                st.x = match command {
                    Command::PExpireAt { at_ms, .. } => Some(*at_ms),
                    _ => None,
                };
                st.sync_expiry(now_ms);
                Outcome::Applied
            }
            _ => {
                let want = command.data_type().expect("element writes have a type");
                if st.data.as_ref().is_some_and(|d| d.data_type() != want) {
                    return Outcome::TypeConflict;
                }
                let changes: Vec<(&[u8], Change<'_>)> = match command {
                    Command::HSet { fields, .. } => fields.iter().map(|(f, val)| (&f[..], Change::HSet(val))).collect(),
                    Command::HDel { fields: l, .. }
                    | Command::SRem { members: l, .. }
                    | Command::ZRem { members: l, .. } => l.iter().map(|e| (&e[..], Change::Remove)).collect(),
                    Command::SAdd { members, .. } => members.iter().map(|m| (&m[..], Change::Add)).collect(),
                    Command::ZAdd { members, .. } => members.iter().map(|(s, m)| (&m[..], Change::Score(*s))).collect(),
                    _ => Vec::new(),
                };
                let mut decided: HashMap<&[u8], bool> = HashMap::new();
                let before = st.f.clone();
                let existed = st.data.is_some();
                let mut applied = false;
                for (element, change) in changes {
                    let ok = *decided
                        .entry(element)
                        .or_insert_with(|| before.get(element).is_none_or(|f| v > *f));
                    if !ok {
                        continue;
                    }
                    applied = true;
                    st.f.insert(element.to_vec(), v);
                    let data = st.data.get_or_insert_with(|| ModelValue::empty(want));
                    match (change, data) {
                        (Change::HSet(val), ModelValue::Hash(m)) => {
                            m.insert(element.to_vec(), val.to_vec());
                        }
                        (Change::Remove, ModelValue::Hash(m)) => {
                            m.remove(element);
                        }
                        (Change::Remove, ModelValue::Set(s)) => {
                            s.remove(element);
                        }
                        (Change::Remove, ModelValue::SortedSet(z)) => {
                            z.remove(element);
                        }
                        (Change::Add, ModelValue::Set(s)) => {
                            s.insert(element.to_vec());
                        }
                        (Change::Score(score), ModelValue::SortedSet(z)) => {
                            z.insert(element.to_vec(), score);
                        }
                        _ => unreachable!("element change matches its type"),
                    }
                }
                if !applied {
                    return Outcome::Older;
                }
                if existed {
                    // The key's TTL is already the register's; only emptiness matters.
                    if st.data.as_ref().is_some_and(ModelValue::is_empty) {
                        st.data = None;
                    }
                } else {
                    st.sync_expiry(now_ms);
                }
                Outcome::Applied
            }
        }
    }

    /// The data keys that exist, with their value and expiry (epoch ms).
    pub fn dump(&self) -> BTreeMap<Vec<u8>, (ModelValue, Option<u64>)> {
        self.keys
            .iter()
            .filter_map(|(key, st)| st.data.as_ref().map(|d| (key.clone(), (d.clone(), st.x))))
            .collect()
    }

    /// The bookkeeping of `key`, if the model has seen it.
    pub fn versions(&self, key: &[u8]) -> Option<Versions<'_>> {
        self.keys.get(key).map(|st| Versions {
            key: st.k,
            expiry: st.e,
            expire_at_ms: st.x,
            elements: &st.f,
        })
    }
}

/// The bookkeeping of one key, as [`LwwModel::versions`] returns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Versions<'a> {
    /// `k`: the newest whole-key write.
    pub key: Option<Version>,
    /// `e`: the newest write that set the expiry.
    pub expiry: Option<Version>,
    /// `x`: the expiry it set.
    pub expire_at_ms: Option<u64>,
    /// `f<element>`: the newest write to each element (tombstones included).
    pub elements: &'a BTreeMap<Vec<u8>, Version>,
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

    #[test]
    fn late_older_set_after_newer_del_stays_deleted() {
        let mut m = LwwModel::new();
        assert_eq!(
            m.apply(&vc(20, 1, Command::Del { key: b"k".to_vec() }), 0),
            Outcome::Applied
        );
        let set = Command::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            expire_at_ms: None,
        };
        assert_eq!(m.apply(&vc(10, 1, set), 0), Outcome::Older);
        assert!(m.dump().is_empty());
    }

    #[test]
    fn older_field_write_does_not_undo_newer_one() {
        let mut m = LwwModel::new();
        m.apply(&vc(20, 1, hset("h", "b", "2")), 0);
        m.apply(&vc(10, 1, hset("h", "a", "1")), 0);
        m.apply(&vc(5, 1, hset("h", "b", "old")), 0);
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]
            .into_iter()
            .collect();
        assert_eq!(m.dump()[&b"h"[..]].0, ModelValue::Hash(expected));
    }

    #[test]
    fn replacement_keeps_newer_elements_and_drops_older_ones() {
        let mut m = LwwModel::new();
        m.apply(&vc(10, 1, hset("h", "old", "1")), 0);
        m.apply(&vc(30, 1, hset("h", "new", "3")), 0);
        m.apply(
            &vc(
                31,
                1,
                Command::HDel {
                    key: b"h".to_vec(),
                    fields: vec![b"gone".to_vec()],
                },
            ),
            0,
        );
        let fields = vec![
            (b"r".to_vec(), b"2".to_vec()),
            (b"gone".to_vec(), b"x".to_vec()),
            (b"new".to_vec(), b"x".to_vec()),
        ];
        m.apply(
            &vc(
                20,
                1,
                Command::HReplace {
                    key: b"h".to_vec(),
                    fields,
                    expire_at_ms: None,
                },
            ),
            0,
        );
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [(b"new".to_vec(), b"3".to_vec()), (b"r".to_vec(), b"2".to_vec())]
            .into_iter()
            .collect();
        assert_eq!(m.dump()[&b"h"[..]].0, ModelValue::Hash(expected));
        let versions = m.versions(b"h").unwrap();
        assert_eq!(versions.key, Some(Version::new(20, 0, 1)));
        assert_eq!(
            versions.elements.keys().cloned().collect::<Vec<_>>(),
            vec![b"gone".to_vec(), b"new".to_vec()]
        );
    }

    #[test]
    fn type_conflicts_are_reported() {
        let mut m = LwwModel::new();
        m.apply(
            &vc(
                10,
                1,
                Command::Set {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    expire_at_ms: None,
                },
            ),
            0,
        );
        assert_eq!(m.apply(&vc(11, 1, hset("k", "f", "v")), 0), Outcome::TypeConflict);
    }
}
