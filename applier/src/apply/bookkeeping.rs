//! The layout of the version bookkeeping, owned in one place.
//!
//! The last-writer-wins script (`lww.lua`, beside this file) keeps, for each
//! data key `K`, a hash `regis:v:{T}:K` in `K`'s cluster slot (see
//! [`super::tags`] for `T`). This module is the Rust side of that layout:
//! the key names, the field names, and the parser of the hash that
//! `regis resync` and `regis verify` read. The Lua script writes exactly
//! these fields; the reference model ([`super::model`]) states the rules
//! they implement; `docs/lww.md` explains both.
//!
//! | field | value |
//! | --- | --- |
//! | `k` | the newest whole-key write's version (`SET`, `DEL`, replacements) |
//! | `e` | the newest expiry write's version (`PEXPIREAT`, `PERSIST`, expiries carried by whole-key writes) |
//! | `x` | the expiry that write set, epoch ms, or empty for none |
//! | `c1`, `c2`, .. | the older expiry writes since `k`, oldest first, `version:expiry` (the chain; `docs/lww.md`) |
//! | `z` | the dead cut: data written before it has expired |
//! | `y` | the frozen cut of chain entries dropped beyond the chain's bound |
//! | `f` + element | the newest write of that hash field, set or sorted-set member (a tombstone when the element is absent) |
//!
//! Expired data that a late extension may still revive is kept aside in
//! `regis:x:{T}:K` ([`aside_key`]), in the same slot, for a bounded window.
//!
//! Versions are stored in their sortable text form
//! ([`regis_wire::Version::sortable`]).

use std::collections::HashMap;

use regis_wire::Version;

use super::slot::key_slot;
use super::tags::tag_for_slot;

/// Prefix of every bookkeeping key; readers of data keys skip these.
pub const BOOKKEEPING_PREFIX: &[u8] = b"regis:v:";

/// Prefix of the keys where last-writer-wins keeps expired data aside for a
/// while, so a late extension stamped before the expiry can revive it (see
/// `docs/lww.md`); readers of data keys skip these too.
pub const ASIDE_PREFIX: &[u8] = b"regis:x:";

/// Field of the newest whole-key write's version.
pub const FIELD_KEY_VERSION: &[u8] = b"k";
/// Field of the newest expiry write's version.
pub const FIELD_EXPIRY_VERSION: &[u8] = b"e";
/// Field of the expiry (epoch ms) that write set; empty for none.
pub const FIELD_EXPIRY: &[u8] = b"x";
/// Prefix of the per-element version fields.
pub const FIELD_ELEMENT_PREFIX: u8 = b'f';

/// The bookkeeping key of data key `key`: `regis:v:{T}:` + `key`, in the
/// same cluster slot as `key`.
pub fn bookkeeping_key(key: &[u8]) -> Vec<u8> {
    own_key(BOOKKEEPING_PREFIX, key)
}

/// The aside key of data key `key`: `regis:x:{T}:` + `key`, in the same
/// cluster slot as `key`.
pub fn aside_key(key: &[u8]) -> Vec<u8> {
    own_key(ASIDE_PREFIX, key)
}

fn own_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let tag = tag_for_slot(key_slot(key));
    let mut out = Vec::with_capacity(prefix.len() + tag.len() + 3 + key.len());
    out.extend_from_slice(prefix);
    out.push(b'{');
    out.extend_from_slice(tag);
    out.extend_from_slice(b"}:");
    out.extend_from_slice(key);
    out
}

/// True for the applier's own keys, which are not data: version
/// bookkeeping (`regis:v:...`) and expired data kept aside (`regis:x:...`).
pub fn is_bookkeeping(key: &[u8]) -> bool {
    key.starts_with(BOOKKEEPING_PREFIX) || key.starts_with(ASIDE_PREFIX)
}

/// The data key a bookkeeping key describes (`regis:v:{T}:K` gives `K`).
pub fn data_key_of(bookkeeping: &[u8]) -> Option<&[u8]> {
    let rest = bookkeeping.strip_prefix(BOOKKEEPING_PREFIX)?;
    let rest = rest.strip_prefix(b"{")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    rest[close + 1..].strip_prefix(b":")
}

/// A key's version bookkeeping, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bookkeeping {
    /// Newest whole-key write.
    pub key: Option<Version>,
    /// Newest expiry write.
    pub expiry: Option<Version>,
    /// The expiry it set: `Some(None)` for none.
    pub expire_at: Option<Option<u64>>,
    /// Per element (hash field, set or sorted-set member).
    pub elements: HashMap<Vec<u8>, Version>,
}

impl Bookkeeping {
    /// Parses the fields of `regis:v:{T}:K` (as `HGETALL` returns them).
    /// Fields it does not know are ignored, so a newer layout's additions
    /// do not break an older reader.
    pub fn parse(fields: &[(Vec<u8>, Vec<u8>)]) -> Self {
        let version = |v: &[u8]| std::str::from_utf8(v).ok().and_then(Version::from_sortable);
        let mut out = Self::default();
        for (name, value) in fields {
            match name.as_slice() {
                FIELD_KEY_VERSION => out.key = version(value),
                FIELD_EXPIRY_VERSION => out.expiry = version(value),
                FIELD_EXPIRY => {
                    out.expire_at = Some(std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()));
                }
                [FIELD_ELEMENT_PREFIX, element @ ..] => {
                    if let Some(v) = version(value) {
                        out.elements.insert(element.to_vec(), v);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// True when there is nothing to go by.
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.expiry.is_none() && self.elements.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_key_shares_the_slot_of_any_key() {
        let keys: [&[u8]; 7] = [b"user:1", b"{tenant}:cart", b"a{b", b"}{", b"{}x", b"\xff\xfe\x00", b""];
        for key in keys {
            let m = bookkeeping_key(key);
            assert_eq!(key_slot(&m), key_slot(key), "{key:?}");
            assert!(is_bookkeeping(&m));
            assert_eq!(data_key_of(&m), Some(key));
            let a = aside_key(key);
            assert_eq!(key_slot(&a), key_slot(key), "{key:?}");
            assert!(is_bookkeeping(&a));
            assert_eq!(a[ASIDE_PREFIX.len()..], m[BOOKKEEPING_PREFIX.len()..]);
        }
        assert_eq!(data_key_of(b"regis:v:nobrace"), None);
        assert!(!is_bookkeeping(b"user:1"));
    }

    #[test]
    fn parses_every_field_and_ignores_unknown_ones() {
        let v1 = Version::new(1_700_000_000_000, 1, 1);
        let v2 = Version::new(1_700_000_000_500, 0, 2);
        let fields = vec![
            (b"k".to_vec(), v1.sortable().into_bytes()),
            (b"e".to_vec(), v2.sortable().into_bytes()),
            (b"x".to_vec(), b"1700000100000".to_vec()),
            (b"fname".to_vec(), v2.sortable().into_bytes()),
            (b"zfuture".to_vec(), b"?".to_vec()),
        ];
        let book = Bookkeeping::parse(&fields);
        assert_eq!(book.key, Some(v1));
        assert_eq!(book.expiry, Some(v2));
        assert_eq!(book.expire_at, Some(Some(1_700_000_100_000)));
        assert_eq!(book.elements.get(b"name".as_slice()), Some(&v2));
        assert!(!book.is_empty());
        let none = Bookkeeping::parse(&[(b"x".to_vec(), Vec::new())]);
        assert_eq!(none.expire_at, Some(None));
        assert!(none.is_empty());
    }
}
