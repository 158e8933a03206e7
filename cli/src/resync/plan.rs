//! Planning: the versioned commands that restate one source key, from its
//! data and its version bookkeeping (see the [module documentation](super)
//! for which versions are used and why).

use std::collections::{BTreeMap, HashMap, HashSet};

use regis_applier::apply::bookkeeping::Bookkeeping;
use regis_applier::snapshot::{Content, ReadKey};
use regis_wire::{Command, HybridClock, Version, VersionedCommand};

/// How a key was planned, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    /// From the source's own versions.
    Versioned,
    /// With fresh clock readings (no bookkeeping).
    Fresh,
    /// A deletion (bookkeeping without data).
    Tombstone,
    /// A type regis does not replicate (list, stream, ...): nothing sent.
    Unsupported,
}

/// The absolute expiry of a key read with `pttl_ms` at `now_ms`, preferring
/// the exact one bookkeeping recorded when it agrees.
fn expiry(pttl_ms: Option<i64>, book: &Bookkeeping, now_ms: u64) -> Option<u64> {
    let pttl = pttl_ms?;
    let read = now_ms.saturating_add(pttl.max(0) as u64);
    match book.expire_at {
        Some(Some(x)) if x.abs_diff(read) <= 5_000 => Some(x),
        _ => Some(read),
    }
}

/// Elements added and removed at one version.
type AddsAndRemoves = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Element writes at their own versions, grouped by version.
#[derive(Default)]
struct ElementWrites {
    by_version: BTreeMap<Version, AddsAndRemoves>,
}

impl ElementWrites {
    fn add(&mut self, v: Version, element: &[u8]) {
        self.by_version.entry(v).or_default().0.push(element.to_vec());
    }
    fn remove(&mut self, v: Version, element: &[u8]) {
        self.by_version.entry(v).or_default().1.push(element.to_vec());
    }
}

/// The commands that restate one source key. `now_ms` is when it was read;
/// `clock` gives the versions of keys without bookkeeping.
pub fn plan_key(key: &[u8], read: &ReadKey, now_ms: u64, clock: &mut HybridClock) -> (Planned, Vec<VersionedCommand>) {
    let book = Bookkeeping::parse(&read.bookkeeping);
    let key_vec = key.to_vec();
    let Some(state) = &read.state else {
        // Deleted (or expired) in the source: restate the deletion.
        let mut out = Vec::new();
        if let Some(k) = book.key {
            out.push(VersionedCommand::new(k, Command::Del { key: key_vec.clone() }));
        }
        if let (Some(e), Some(Some(x))) = (book.expiry, book.expire_at) {
            if book.key.is_none_or(|k| e > k) {
                out.push(VersionedCommand::new(e, Command::PExpireAt { key: key_vec, at_ms: x }));
            }
        }
        return (Planned::Tombstone, out);
    };
    let expire_at_ms = expiry(state.pttl_ms, &book, now_ms);
    if matches!(state.content, Content::List(_) | Content::Other(..)) {
        return (Planned::Unsupported, Vec::new());
    }
    if book.is_empty() || (book.key.is_none() && matches!(state.content, Content::String(_))) {
        let v = clock.tick(now_ms);
        return (
            Planned::Fresh,
            vec![VersionedCommand::new(
                v,
                whole(key_vec, &state.content, |_| true, expire_at_ms),
            )],
        );
    }

    let mut out = Vec::new();
    let k = book.key;
    // Elements the whole-key write covers: no own version, or not newer than it.
    let covered = |e: &[u8]| match (book.elements.get(e), k) {
        (None, _) => true,
        (Some(f), Some(k)) => *f <= k,
        (Some(_), None) => false,
    };
    if let Some(k) = k {
        out.push(VersionedCommand::new(
            k,
            whole(key_vec.clone(), &state.content, covered, expire_at_ms),
        ));
    }
    let present = elements_of(&state.content);
    let mut writes = ElementWrites::default();
    let mut unversioned = Vec::new();
    for element in &present {
        match book.elements.get(element.as_slice()) {
            Some(f) if k.is_none_or(|k| *f > k) => writes.add(*f, element),
            None if k.is_none() => unversioned.push(element.clone()),
            _ => {}
        }
    }
    let present_set: HashSet<&[u8]> = present.iter().map(Vec::as_slice).collect();
    for (element, f) in &book.elements {
        if k.is_none_or(|k| *f > k) && !present_set.contains(element.as_slice()) {
            writes.remove(*f, element);
        }
    }
    if !unversioned.is_empty() {
        let v = clock.tick(now_ms);
        for element in &unversioned {
            writes.add(v, element);
        }
    }
    for (v, (adds, removes)) in writes.by_version {
        if !adds.is_empty() {
            out.push(VersionedCommand::new(v, element_add(&key_vec, &state.content, &adds)));
        }
        if !removes.is_empty() {
            out.push(VersionedCommand::new(
                v,
                element_remove(&key_vec, &state.content, removes),
            ));
        }
    }
    // An expiry set after the whole-key write (or on a key only element writes made).
    match book.expiry {
        Some(e) if k.is_none_or(|k| e > k) => {
            let command = match expire_at_ms {
                Some(at_ms) => Command::PExpireAt { key: key_vec, at_ms },
                None => Command::Persist { key: key_vec },
            };
            out.push(VersionedCommand::new(e, command));
        }
        None if k.is_none() => {
            if let Some(at_ms) = expire_at_ms {
                out.push(VersionedCommand::new(
                    clock.tick(now_ms),
                    Command::PExpireAt { key: key_vec, at_ms },
                ));
            }
        }
        _ => {}
    }
    (Planned::Versioned, out)
}

fn elements_of(content: &Content) -> Vec<Vec<u8>> {
    match content {
        Content::Hash(h) => h.iter().map(|(f, _)| f.clone()).collect(),
        Content::Set(s) => s.clone(),
        Content::ZSet(z) => z.iter().map(|(m, _)| m.clone()).collect(),
        _ => Vec::new(),
    }
}

/// The whole-key write of `content`, keeping the elements `keep` accepts.
fn whole(key: Vec<u8>, content: &Content, keep: impl Fn(&[u8]) -> bool, expire_at_ms: Option<u64>) -> Command {
    match content {
        Content::Hash(h) => Command::HReplace {
            key,
            fields: h.iter().filter(|(f, _)| keep(f)).cloned().collect(),
            expire_at_ms,
        },
        Content::Set(s) => Command::SReplace {
            key,
            members: s.iter().filter(|m| keep(m)).cloned().collect(),
            expire_at_ms,
        },
        Content::ZSet(z) => Command::ZReplace {
            key,
            members: z
                .iter()
                .filter(|(m, _)| keep(m))
                .map(|(m, s)| (*s, m.clone()))
                .collect(),
            expire_at_ms,
        },
        Content::String(v) => Command::Set {
            key,
            value: v.clone(),
            expire_at_ms,
        },
        // Not planned (see plan_key); a string of the dump keeps the match total.
        Content::List(_) | Content::Other(..) => Command::Del { key },
    }
}

fn element_add(key: &[u8], content: &Content, elements: &[Vec<u8>]) -> Command {
    let key = key.to_vec();
    match content {
        Content::Hash(h) => {
            let values: HashMap<&[u8], &[u8]> = h.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
            Command::HSet {
                key,
                fields: elements
                    .iter()
                    .map(|f| (f.clone(), values[f.as_slice()].to_vec()))
                    .collect(),
            }
        }
        Content::ZSet(z) => {
            let scores: HashMap<&[u8], f64> = z.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            Command::ZAdd {
                key,
                members: elements.iter().map(|m| (scores[m.as_slice()], m.clone())).collect(),
            }
        }
        _ => Command::SAdd {
            key,
            members: elements.to_vec(),
        },
    }
}

fn element_remove(key: &[u8], content: &Content, elements: Vec<Vec<u8>>) -> Command {
    let key = key.to_vec();
    match content {
        Content::Hash(_) => Command::HDel { key, fields: elements },
        Content::ZSet(_) => Command::ZRem { key, members: elements },
        _ => Command::SRem { key, members: elements },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regis_applier::snapshot::KeyState;

    fn v(ms: u64) -> Version {
        Version::new(ms, 0, 1)
    }

    fn book(entries: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn hash(fields: &[(&str, &str)]) -> Content {
        Content::Hash(
            fields
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn a_key_without_bookkeeping_gets_one_fresh_version() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::String(b"v".to_vec()),
                pttl_ms: Some(1_000),
            }),
            bookkeeping: vec![],
        };
        let mut clock = HybridClock::new(0);
        let (kind, commands) = plan_key(b"k", &read, 50_000, &mut clock);
        assert_eq!(kind, Planned::Fresh);
        assert_eq!(
            commands,
            [VersionedCommand::new(
                Version::new(50_000, 0, 0),
                Command::Set {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    expire_at_ms: Some(51_000)
                }
            )]
        );
    }

    #[test]
    fn a_versioned_hash_is_a_replacement_plus_newer_element_writes() {
        // HREPLACE at 10, then HSET b at 20, HDEL c at 30, PEXPIREAT at 40.
        let read = ReadKey {
            state: Some(KeyState {
                content: hash(&[("a", "1"), ("b", "2")]),
                pttl_ms: Some(9_000),
            }),
            bookkeeping: book(&[
                ("k", &v(10).sortable()),
                ("e", &v(40).sortable()),
                ("x", "60000"),
                ("fb", &v(20).sortable()),
                ("fc", &v(30).sortable()),
            ]),
        };
        let mut clock = HybridClock::new(0);
        let (kind, commands) = plan_key(b"h", &read, 51_000, &mut clock);
        assert_eq!(kind, Planned::Versioned);
        assert_eq!(
            commands,
            [
                VersionedCommand::new(
                    v(10),
                    Command::HReplace {
                        key: b"h".to_vec(),
                        fields: vec![(b"a".to_vec(), b"1".to_vec())],
                        expire_at_ms: Some(60_000)
                    }
                ),
                VersionedCommand::new(
                    v(20),
                    Command::HSet {
                        key: b"h".to_vec(),
                        fields: vec![(b"b".to_vec(), b"2".to_vec())]
                    }
                ),
                VersionedCommand::new(
                    v(30),
                    Command::HDel {
                        key: b"h".to_vec(),
                        fields: vec![b"c".to_vec()]
                    }
                ),
                VersionedCommand::new(
                    v(40),
                    Command::PExpireAt {
                        key: b"h".to_vec(),
                        at_ms: 60_000
                    }
                ),
            ]
        );
        assert_eq!(clock.last(), Version::new(0, 0, 0), "no fresh version was needed");
    }

    #[test]
    fn a_set_made_by_element_writes_keeps_their_versions() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::Set(vec![b"m1".to_vec(), b"m2".to_vec()]),
                pttl_ms: None,
            }),
            bookkeeping: book(&[
                ("fm1", &v(5).sortable()),
                ("fm2", &v(5).sortable()),
                ("fm3", &v(7).sortable()),
            ]),
        };
        let (_, commands) = plan_key(b"s", &read, 100, &mut HybridClock::new(0));
        assert_eq!(
            commands,
            [
                VersionedCommand::new(
                    v(5),
                    Command::SAdd {
                        key: b"s".to_vec(),
                        members: vec![b"m1".to_vec(), b"m2".to_vec()]
                    }
                ),
                VersionedCommand::new(
                    v(7),
                    Command::SRem {
                        key: b"s".to_vec(),
                        members: vec![b"m3".to_vec()]
                    }
                ),
            ]
        );
    }

    #[test]
    fn sorted_sets_keep_scores_and_deleted_keys_restate_the_delete() {
        let read = ReadKey {
            state: Some(KeyState {
                content: Content::ZSet(vec![(b"m".to_vec(), 2.5)]),
                pttl_ms: None,
            }),
            bookkeeping: book(&[("k", &v(3).sortable())]),
        };
        let (_, commands) = plan_key(b"z", &read, 100, &mut HybridClock::new(0));
        assert_eq!(
            commands,
            [VersionedCommand::new(
                v(3),
                Command::ZReplace {
                    key: b"z".to_vec(),
                    members: vec![(2.5, b"m".to_vec())],
                    expire_at_ms: None
                }
            )]
        );

        let gone = ReadKey {
            state: None,
            bookkeeping: book(&[("k", &v(8).sortable()), ("e", &v(9).sortable()), ("x", "50")]),
        };
        let (kind, commands) = plan_key(b"d", &gone, 100, &mut HybridClock::new(0));
        assert_eq!(kind, Planned::Tombstone);
        assert_eq!(
            commands,
            [
                VersionedCommand::new(v(8), Command::Del { key: b"d".to_vec() }),
                VersionedCommand::new(
                    v(9),
                    Command::PExpireAt {
                        key: b"d".to_vec(),
                        at_ms: 50
                    }
                ),
            ]
        );
        let list = ReadKey {
            state: Some(KeyState {
                content: Content::List(vec![b"x".to_vec()]),
                pttl_ms: None,
            }),
            bookkeeping: vec![],
        };
        assert_eq!(
            plan_key(b"l", &list, 1, &mut HybridClock::new(0)),
            (Planned::Unsupported, vec![])
        );
    }
}
