//! One short hash tag per cluster slot, for naming bookkeeping keys.
//!
//! The last-writer-wins script reads and writes a data key `K` and its
//! version-bookkeeping hash together, atomically. In Redis Cluster a script
//! may only touch keys of one slot, so the bookkeeping key must land in the
//! slot of `K` whatever `K` looks like. Prefixing `K` with a fixed string is
//! not enough (the prefix would change the slot unless `K` has a hash tag),
//! and wrapping `K` itself in braces breaks when `K` contains braces. Instead
//! the bookkeeping key is `regis:v:{T}:K`, where `T` is a short string whose
//! own slot equals the slot of `K`: the braces make `T` the hash tag, so the
//! key lands exactly where `K` is, and `K` is kept verbatim after it, so
//! different keys never share a bookkeeping key.
//!
//! The table of tags is found once, by enumerating strings of one to three
//! alphanumeric characters until every slot has one (a well-known trick; the
//! 62 + 62² + 62³ candidates cover all 16384 slots). It costs a few
//! milliseconds at startup and 64 KiB of memory.

use std::sync::OnceLock;

use super::slot::{SLOT_COUNT, key_slot};

/// Prefix of every bookkeeping key; readers of data keys can skip these.
pub const BOOKKEEPING_PREFIX: &[u8] = b"regis:v:";

/// Prefix of the keys where last-writer-wins keeps expired data aside for a
/// while (see `docs/lww.md`); readers of data keys skip these too.
pub const ASIDE_PREFIX: &[u8] = b"regis:x:";

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A tag of up to three bytes, stored inline: `len` then the bytes.
type Tag = [u8; 4];

fn table() -> &'static [Tag] {
    static TABLE: OnceLock<Box<[Tag]>> = OnceLock::new();
    TABLE.get_or_init(build)
}

fn build() -> Box<[Tag]> {
    let mut table = vec![[0u8; 4]; usize::from(SLOT_COUNT)];
    let mut missing = usize::from(SLOT_COUNT);
    let mut consider = |candidate: &[u8]| {
        let slot = usize::from(key_slot(candidate));
        if table[slot][0] == 0 {
            table[slot][0] = candidate.len() as u8;
            table[slot][1..=candidate.len()].copy_from_slice(candidate);
            missing -= 1;
        }
        missing == 0
    };
    'search: for &a in ALPHABET {
        if consider(&[a]) {
            break 'search;
        }
    }
    'search: for &a in ALPHABET {
        for &b in ALPHABET {
            if consider(&[a, b]) {
                break 'search;
            }
        }
    }
    'search: for &a in ALPHABET {
        for &b in ALPHABET {
            for &c in ALPHABET {
                if consider(&[a, b, c]) {
                    break 'search;
                }
            }
        }
    }
    assert!(
        table.iter().all(|t| t[0] > 0),
        "some slot has no tag of up to three characters"
    );
    table.into_boxed_slice()
}

/// A short string whose cluster slot is `slot` (`slot < 16384`).
pub fn tag_for_slot(slot: u16) -> &'static [u8] {
    let tag = &table()[usize::from(slot)];
    &tag[1..=usize::from(tag[0])]
}

/// Builds the tag table now rather than on first use.
pub fn warm_up() {
    table();
}

/// The bookkeeping key of data key `key`: `regis:v:{T}:` + `key`, in the
/// same cluster slot as `key`.
pub fn bookkeeping_key(key: &[u8]) -> Vec<u8> {
    reserved_key(BOOKKEEPING_PREFIX, key)
}

/// The aside key of data key `key`: `regis:x:{T}:` + `key`, in the same
/// cluster slot as `key`.
pub fn aside_key(key: &[u8]) -> Vec<u8> {
    reserved_key(ASIDE_PREFIX, key)
}

fn reserved_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let tag = tag_for_slot(key_slot(key));
    let mut out = Vec::with_capacity(prefix.len() + tag.len() + 3 + key.len());
    out.extend_from_slice(prefix);
    out.push(b'{');
    out.extend_from_slice(tag);
    out.extend_from_slice(b"}:");
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tag_hashes_to_its_slot() {
        for slot in 0..SLOT_COUNT {
            let tag = tag_for_slot(slot);
            assert!(!tag.is_empty() && tag.len() <= 3);
            assert!(!tag.contains(&b'{') && !tag.contains(&b'}'));
            assert_eq!(key_slot(tag), slot, "tag {:?}", String::from_utf8_lossy(tag));
        }
    }

    #[test]
    fn bookkeeping_key_shares_the_slot_of_any_key() {
        let keys: [&[u8]; 7] = [b"user:1", b"{tenant}:cart", b"a{b", b"}{", b"{}x", b"\xff\xfe\x00", b""];
        for key in keys {
            let m = bookkeeping_key(key);
            assert_eq!(key_slot(&m), key_slot(key), "{key:?}");
            assert!(m.starts_with(BOOKKEEPING_PREFIX));
            assert!(m.ends_with(key));
            let a = aside_key(key);
            assert_eq!(key_slot(&a), key_slot(key), "{key:?}");
            assert!(a.starts_with(ASIDE_PREFIX));
            assert_eq!(a[ASIDE_PREFIX.len()..], m[BOOKKEEPING_PREFIX.len()..]);
        }
    }
}
