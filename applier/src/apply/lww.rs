//! Last-writer-wins mode: versioned apply in a Lua script.
//!
//! Every command carries the [`Version`](regis_wire::Version) its publisher
//! stamped on it; a command takes effect only where it is newer than what the
//! region already holds, so any delivery order, with any duplicates, ends in
//! the same state. Check and write happen inside one script call, so nothing
//! can come between them. One `EVALSHA` applies many commands.
//!
//! # Bookkeeping
//!
//! Each data key `K` has a hash `M` = `regis:v:{T}:K` in the same cluster
//! slot (see [`tags`](super::tags)) holding:
//!
//! * `k`: the version of the newest whole-key write (SET, DEL, replacement);
//! * `e`: the version of the newest write that set the expiry, and `x` that
//!   expiry (epoch ms, or empty for none);
//! * `f<element>`: the version of the newest write to one hash field, set
//!   member or sorted-set member (`f` followed by the element's bytes).
//!
//! Versions are stored as [`Version::sortable`](regis_wire::Version::sortable)
//! strings (fixed-width lowercase hex), so the script compares them as plain
//! strings. (Lua compares strings with `strcoll`; for equal-length strings
//! of `0-9a-f` collation order and byte order agree in the C and common
//! UTF-8 locales, and the tests exercise versions that differ at the `9`/`a`
//! boundary.)
//!
//! # Rules
//!
//! * Equal version means already applied: a duplicate is a no-op.
//! * A whole-key write at `v` applies iff `v > k`. Its content replaces every
//!   element whose own version is `<= v`; elements written after `v` keep
//!   their current state (present or deleted) and are not overwritten by the
//!   replacement. Element versions `<= v` are dropped from `M`, and `k = v`.
//!   Its expiry applies iff `v > e` (then `e = v`, `x` = its expiry or none);
//!   otherwise the stored `x` is re-applied to the new content. A whole-key
//!   write of another data type than the key holds first removes the key and
//!   all its element versions.
//! * An element write (HSET field, HDEL field, SADD/SREM member, ZADD/ZREM
//!   member) at `w` applies to one element iff `w > k` and `w > f(element)`;
//!   then `f(element) = w`. Deletions leave their version behind as a
//!   tombstone. Within one command, elements are decided against the state
//!   before the command, and a repeated element behaves as in Redis (the last
//!   value or score wins). A key that is created by an element write gets
//!   the stored expiry `x`.
//! * An element write to a key holding another Redis type is skipped and
//!   counted as a type conflict. Convergence is guaranteed for keys that keep
//!   one data type family; whole-key writes may change the type.
//! * PEXPIREAT/PERSIST at `w` apply iff `w > k` and `w > e`; then `e = w`,
//!   `x` = the new expiry or none, applied to the key if it exists.
//! * The expiry is one register per key: the key's TTL is always `x`. An
//!   expiry that has passed removes the key (Redis does that at once for a
//!   time in the past).
//!
//! The final state of an element is thus that of the newest write touching
//! it (a whole-key write touches every element), and the final expiry that of
//! the newest whole-key or expiry write: both are independent of delivery
//! order. [`model`](super::model) implements the same rules in Rust; the
//! property test compares the two.
//!
//! # Bookkeeping lifetime
//!
//! After every write that applied: if `K` exists with expiry `x`, `M` expires
//! at `x + horizon`; if `K` exists without expiry, `M` persists; if `K` does
//! not exist (deleted, or only tombstones), `M` expires at
//! `max(now, x) + horizon`. The horizon (default four days, the queue's
//! retention) makes tombstones outlive any message still in flight, and
//! nothing is left behind forever. `now` is the applier's clock, passed in.
//!
//! # Memory
//!
//! Measured with `MEMORY USAGE` on Redis 7.0 (jemalloc, listpack encodings);
//! see `docs/lww.md` for the figures and how they were taken.

use redis::{Cmd, Script, Value};
use regis_wire::{Command, VersionedCommand};

use super::bookkeeping::bookkeeping_key;
use super::error::ApplyError;
use super::plain::score;

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
    cmd.arg(sha).arg(count * 2);
    for vc in commands.clone() {
        let key = vc.command.key();
        cmd.arg(key).arg(bookkeeping_key(key));
    }
    cmd.arg(now_ms).arg(horizon_ms);
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
        // Unknown to this engine: the script refuses it, and the batch fails
        // permanently.
        other => other.name(),
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
        _ => {}
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
        let cmd = call("sha", commands.iter(), 1000, 50);
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
            b"4".to_vec(),
            b"a".to_vec(),
            bookkeeping_key(b"a"),
            b"z".to_vec(),
            bookkeeping_key(b"z"),
            b"1000".to_vec(),
            b"50".to_vec(),
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
    fn codes_are_checked() {
        let ok = codes(&Value::BulkString(b"012".to_vec()), 3).unwrap();
        assert_eq!(ok, vec![Code::Applied, Code::Older, Code::TypeConflict]);
        assert!(codes(&Value::BulkString(b"01".to_vec()), 3).is_err());
        assert!(codes(&Value::BulkString(b"9".to_vec()), 1).is_err());
        assert!(codes(&Value::Int(1), 1).is_err());
    }
}
