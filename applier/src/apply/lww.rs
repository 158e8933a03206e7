//! Last-writer-wins mode: versioned apply in a Lua script.
//!
//! Every command carries the [`Version`](regis_wire::Version) its publisher
//! stamped on it. The final state of a key is a function of the versions of
//! the writes it received and of the versions' times (wall-clock
//! milliseconds), never of when the applier ran or of the order in which
//! writes arrived: any delivery order, with any duplicates, at any lateness
//! up to the tombstone horizon, ends in the same state. Check and write
//! happen inside one script call, so nothing can come between them. One
//! `EVALSHA` applies many commands.
//!
//! # Rules
//!
//! The state of a key is that of applying all its writes **in version
//! order**, one at a time, as Redis would, with every expiry judged at the
//! writes' own times. [`model`](super::model) is the reference: it does
//! exactly that, and the property test compares it with this script.
//!
//! * Equal version means the same write: a duplicate is a no-op.
//! * A whole-key write (SET, DEL, replacement) replaces the key's content
//!   and sets its expiry to its own (none for DEL and for a write without
//!   one). An element write (HSET field, HDEL field, SADD/SREM member,
//!   ZADD/ZREM member) changes its elements; a collection left empty does
//!   not exist. PEXPIREAT/PERSIST set the expiry.
//! * **An expiry is a point in time that versions are compared with.** A
//!   write whose version time is before the key's expiry `x` acts on the
//!   incarnation that expires at `x`; a write whose version time is at or
//!   after `x` acts on a fresh key, as it did where it was written:
//!   everything written before `x` is gone, and the fresh key has no expiry
//!   until a later write sets one. An expiry at or before the time of the
//!   write that sets it ends the key right after that write (Redis deletes
//!   a key given an expiry in the past). The newest expiry ends the key when
//!   the applier's clock reaches it, as Redis's own expiry does.
//! * Writes are judged by their versions only: a write stamped before an
//!   expiry extends, replaces or joins the incarnation that the expiry
//!   ends, even when it reaches the region after that time.
//!
//! Where the rules differ from Redis, and why:
//!
//! 1. PEXPIREAT/PERSIST on a key that does not exist at its version time
//!    still sets the key's expiry: a key created after it, before that
//!    expiry, takes it (Redis ignores an expiry write to a missing key).
//!    Whether the key existed at a past version depends on writes that may
//!    not have arrived yet, and on element removals whose order the
//!    bookkeeping does not keep.
//! 2. Removing a collection's last element does not clear the expiry: an
//!    element written later, before that expiry, takes it (Redis deletes the
//!    key and its TTL). Same reason: the bookkeeping keeps the newest
//!    version of each element, not when the collection was empty.
//! 3. An element write to a key holding another Redis type is skipped and
//!    counted as a type conflict (Redis answers WRONGTYPE). Convergence is
//!    guaranteed for keys whose element writes keep one data type family;
//!    whole-key writes may change the type.
//! 4. The clock expiries are judged by is the later of the applier's clock,
//!    Redis's own (`TIME`: Redis expires keys by it) and the version time of
//!    the write being applied (a write is never judged earlier than it was
//!    stamped).
//!
//! # Bookkeeping
//!
//! Each data key `K` has a hash `M` = `regis:v:{T}:K` in the same cluster
//! slot (see [`tags`](super::tags)) holding:
//!
//! * `k`: the version of the newest whole-key write;
//! * `e`, `x`: the newest expiry-setting write (whole-key or
//!   PEXPIREAT/PERSIST: the register) and its expiry (epoch ms, or empty);
//! * `c1`, `c2`, ..: the rest of the chain, oldest first, as
//!   `version:expiry`, one field each (so `M` keeps Redis's compact
//!   encoding). The chain is the expiry-setting writes since `k` (`k`
//!   first), ending with the register `e`. Whether an expiry fired depends
//!   on the time of the *next* expiry write (an extension stamped before it
//!   cancels it), so a late extension needs its neighbours;
//! * `z`: the dead cut, when some data is expired: data written before it
//!   (a version `w < z`) is gone. The cut of expiry `x` set at version `p`
//!   is the version `(x, 0, 0)` when `x` is after `p`'s time, else `p`
//!   followed by `g` (right after `p`). `z` is the latest cut of an expiry
//!   that fired: one whose time came before the next chain entry was stamped,
//!   or before the clock for the newest;
//! * `y`: the frozen cut of chain entries dropped beyond the bound below;
//! * `f<element>`: the version of the newest write to one hash field, set
//!   member or sorted-set member (`f` followed by the element's bytes),
//!   tombstones included.
//!
//! Versions are stored as [`Version::sortable`](regis_wire::Version::sortable)
//! strings (fixed-width lowercase hex), so the script compares them as plain
//! strings. (Lua compares strings with `strcoll`; for strings of `0-9a-g` in
//! which a cut's trailing `g` is only compared past an equal prefix,
//! collation order and byte order agree in the C and common UTF-8 locales,
//! and the tests exercise versions that differ at the `9`/`a` boundary.)
//!
//! # Expired data kept aside
//!
//! Data written before the dead cut is not in `K`. When an extension could
//! still move the cut back (the cut is not final), the applier keeps that
//! data in the aside key `A` = `regis:x:{T}:K` (same slot, same type as the
//! key; invisible to readers of `K`), which expires [`ASIDE_WINDOW`] after
//! the applier last put something there (at most the tombstone horizon).
//! A region that applies a history late thus writes a key whose first TTL
//! has passed aside, and the extension written before that TTL, arriving
//! later, brings it back with the extended TTL, as in an on-time region.
//!
//! Limits, each a bounded cost chosen on purpose:
//!
//! * Data that Redis itself expired (it was applied before its expiry, and
//!   the expiry passed in Redis) is gone: an extension stamped before that
//!   expiry that reaches the region only after it has passed there finds
//!   nothing to revive. Only regions that applied the data late kept it.
//!   Closing this would need a copy of every key with a TTL.
//! * Aside data lives [`ASIDE_WINDOW`] after it was put aside: an extension
//!   that arrives later than that revives nothing.
//! * The chain keeps the [`CHAIN_MAX`] newest expiry writes since `k`. An
//!   older expiry write arriving when the chain is full is ignored, and the
//!   firing of a dropped entry is frozen into `y`.
//!
//! # Bookkeeping lifetime
//!
//! After every write that changed something: if `K` exists with expiry `x`,
//! `M` expires at `x + horizon`; if `K` exists without expiry, `M`
//! persists; if `K` does not exist (deleted, expired, or only tombstones),
//! `M` expires at `max(now, x) + horizon` (`x` the register's expiry when it
//! is later than now). The horizon (default four days, the queue's
//! retention) makes tombstones outlive any message still in flight, and
//! nothing is left behind forever. `now` is the clock described above.
//!
//! # Memory
//!
//! Measured with `MEMORY USAGE` on Redis 7.0 (jemalloc, listpack encodings);
//! see `docs/lww.md` for the figures and how they were taken.

use redis::{Cmd, Script, Value};
use regis_wire::{Command, VersionedCommand};

use std::time::Duration;

use super::bookkeeping::{aside_key, bookkeeping_key};
use super::error::ApplyError;
use super::plain::score;

/// How long expired data stays aside for a late extension to revive, after
/// the applier last put something aside for that key (capped at the
/// tombstone horizon). An hour covers a region catching up on a backlog,
/// where a write and its extension arrive minutes apart at most.
pub const ASIDE_WINDOW: Duration = Duration::from_secs(3600);

/// Most expiry writes kept per key since its newest whole-key write (the
/// script's `CHAIN_MAX`).
pub const CHAIN_MAX: usize = 16;

/// The script's source.
pub(crate) const SOURCE: &str = include_str!("lww.lua");

/// The script, with its SHA1 computed once.
pub(crate) fn script() -> Script {
    Script::new(SOURCE)
}

/// What the script did with one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// Applied, wholly or in part.
    Applied,
    /// Lost to a newer or equal version everywhere it could apply.
    Older,
    /// Skipped: the key holds another data type.
    TypeConflict,
}

/// Builds one `EVALSHA` applying `commands` in order.
pub(crate) fn call<'a>(
    sha: &str,
    commands: impl Iterator<Item = &'a VersionedCommand> + Clone,
    now_ms: u64,
    horizon_ms: u64,
) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    let count = commands.clone().count();
    cmd.arg(sha).arg(count * 3);
    for vc in commands.clone() {
        let key = vc.command.key();
        cmd.arg(key).arg(bookkeeping_key(key)).arg(aside_key(key));
    }
    let window_ms = u64::try_from(ASIDE_WINDOW.as_millis())
        .unwrap_or(u64::MAX)
        .min(horizon_ms);
    cmd.arg(now_ms).arg(horizon_ms).arg(window_ms);
    for vc in commands {
        push_args(&mut cmd, vc);
    }
    cmd
}

fn expiry(cmd: &mut Cmd, at: Option<u64>) {
    match at {
        Some(at) => cmd.arg(at),
        None => cmd.arg(""),
    };
}

fn push_args(cmd: &mut Cmd, vc: &VersionedCommand) {
    let version = vc.version.sortable();
    let op = match &vc.command {
        Command::Set { .. } => "S",
        Command::Del { .. } => "D",
        Command::HReplace { .. } => "H",
        Command::SReplace { .. } => "T",
        Command::ZReplace { .. } => "Z",
        Command::HSet { .. } => "h",
        Command::HDel { .. } => "d",
        Command::SAdd { .. } => "a",
        Command::SRem { .. } => "r",
        Command::ZAdd { .. } => "z",
        Command::ZRem { .. } => "y",
        Command::PExpireAt { .. } => "p",
        Command::Persist { .. } => "q",
    };
    cmd.arg(op).arg(version);
    match &vc.command {
        Command::Set {
            value, expire_at_ms, ..
        } => {
            cmd.arg(value);
            expiry(cmd, *expire_at_ms);
        }
        Command::Del { .. } | Command::Persist { .. } => {}
        Command::HReplace {
            fields, expire_at_ms, ..
        } => {
            expiry(cmd, *expire_at_ms);
            pairs(cmd, fields);
        }
        Command::SReplace {
            members, expire_at_ms, ..
        } => {
            expiry(cmd, *expire_at_ms);
            cmd.arg(members.len()).arg(members);
        }
        Command::ZReplace {
            members, expire_at_ms, ..
        } => {
            expiry(cmd, *expire_at_ms);
            scored(cmd, members);
        }
        Command::HSet { fields, .. } => pairs(cmd, fields),
        Command::HDel { fields: list, .. }
        | Command::SAdd { members: list, .. }
        | Command::SRem { members: list, .. }
        | Command::ZRem { members: list, .. } => {
            cmd.arg(list.len()).arg(list);
        }
        Command::ZAdd { members, .. } => scored(cmd, members),
        Command::PExpireAt { at_ms, .. } => {
            cmd.arg(at_ms);
        }
    }
}

fn pairs(cmd: &mut Cmd, fields: &[(Vec<u8>, Vec<u8>)]) {
    cmd.arg(fields.len());
    for (field, value) in fields {
        cmd.arg(field).arg(value);
    }
}

fn scored(cmd: &mut Cmd, members: &[(f64, Vec<u8>)]) {
    cmd.arg(members.len());
    for (s, member) in members {
        cmd.arg(score(*s)).arg(member);
    }
}

/// Reads the script's reply: one code character per command.
pub(crate) fn codes(reply: &Value, expected: usize) -> Result<Vec<Code>, ApplyError> {
    let bytes: &[u8] = match reply {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.as_bytes(),
        other => return Err(ApplyError::UnexpectedReply(format!("script returned {other:?}"))),
    };
    if bytes.len() != expected {
        return Err(ApplyError::UnexpectedReply(format!(
            "script returned {} codes for {expected} commands",
            bytes.len()
        )));
    }
    bytes
        .iter()
        .map(|b| match b {
            b'0' => Ok(Code::Applied),
            b'1' => Ok(Code::Older),
            b'2' => Ok(Code::TypeConflict),
            other => Err(ApplyError::UnexpectedReply(format!("script returned code {other}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use regis_wire::Version;

    #[test]
    fn call_lists_keys_then_arguments() {
        let commands = [
            VersionedCommand::new(
                Version::new(10, 1, 2),
                Command::Set {
                    key: b"a".to_vec(),
                    value: b"x".to_vec(),
                    expire_at_ms: None,
                },
            ),
            VersionedCommand::new(
                Version::new(11, 0, 2),
                Command::ZAdd {
                    key: b"z".to_vec(),
                    members: vec![(0.5, b"m".to_vec())],
                },
            ),
        ];
        let cmd = call("sha", commands.iter(), 1000, 7_200_000);
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let expected: Vec<Vec<u8>> = vec![
            b"EVALSHA".to_vec(),
            b"sha".to_vec(),
            b"6".to_vec(),
            b"a".to_vec(),
            bookkeeping_key(b"a"),
            aside_key(b"a"),
            b"z".to_vec(),
            bookkeeping_key(b"z"),
            aside_key(b"z"),
            b"1000".to_vec(),
            b"7200000".to_vec(),
            b"3600000".to_vec(),
            b"S".to_vec(),
            Version::new(10, 1, 2).sortable().into_bytes(),
            b"x".to_vec(),
            b"".to_vec(),
            b"z".to_vec(),
            Version::new(11, 0, 2).sortable().into_bytes(),
            b"1".to_vec(),
            b"0.5".to_vec(),
            b"m".to_vec(),
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn the_script_keeps_the_documented_chain_bound() {
        assert!(
            SOURCE.contains(&format!("local CHAIN_MAX = {CHAIN_MAX} ")),
            "lww.lua's CHAIN_MAX"
        );
    }

    #[test]
    fn codes_are_checked() {
        let ok = codes(&Value::BulkString(b"012".to_vec()), 3).unwrap();
        assert_eq!(ok, vec![Code::Applied, Code::Older, Code::TypeConflict]);
        assert!(codes(&Value::BulkString(b"01".to_vec()), 3).is_err());
        assert!(codes(&Value::BulkString(b"9".to_vec()), 1).is_err());
        assert!(codes(&Value::Int(1), 1).is_err());
    }
}
