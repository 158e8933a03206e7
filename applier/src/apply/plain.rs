//! Plain mode: each command as the Redis command(s) it stands for.
//!
//! No versions, no bookkeeping: the fastest mode, for data with a single
//! writer that tolerates reordering. Every wire command becomes exactly one
//! pipeline entry whose reply is kept, so replies map back to commands one
//! to one. Replacements are `MULTI; DEL k; HSET/SADD/ZADD ...; [PEXPIREAT];
//! EXEC` inside the pipeline: readers never see the key half-written, and
//! the `EXEC` reply (an array, or `EXECABORT`) is the command's reply.
//!
//! # Expiries applied late
//!
//! Plain mode applies every command as Redis would at apply time, so a
//! region that applies a write after its expiry has passed deletes the key
//! at once, and an extension written before that expiry then finds no key:
//! the region loses a key the others kept. Where the extension is in hand
//! (the same group of commands, typically the same batch), the applier
//! uses what the origin ended with: see [`extended_expiries`].

use std::collections::HashMap;

use redis::{Pipeline, Value};
use regis_wire::{Command, VersionedCommand};

use super::error::ApplyError;

/// Formats a score so Redis parses back exactly the same `f64`: Rust's
/// formatting of floats is shortest-round-trip, and the `Debug` form uses an
/// exponent for very large or small magnitudes (`1e300`), which Redis's
/// `strtod` reads.
pub(crate) fn score(value: f64) -> String {
    format!("{value:?}")
}

/// The expiry a command sets, if it sets one: `Some(None)` for none.
fn expiry_set(command: &Command) -> Option<Option<u64>> {
    match command {
        Command::Set { expire_at_ms, .. }
        | Command::HReplace { expire_at_ms, .. }
        | Command::SReplace { expire_at_ms, .. }
        | Command::ZReplace { expire_at_ms, .. } => Some(*expire_at_ms),
        Command::PExpireAt { at_ms, .. } => Some(Some(*at_ms)),
        Command::Persist { .. } => Some(None),
        Command::Del { .. }
        | Command::HSet { .. }
        | Command::HDel { .. }
        | Command::SAdd { .. }
        | Command::SRem { .. }
        | Command::ZAdd { .. }
        | Command::ZRem { .. } => None,
    }
}

/// For each command of a group (in apply order), the expiry to apply
/// instead of its own, if any.
///
/// A command whose expiry has passed at `now_ms` would delete its key at
/// once. If a later command of the group on the same key is a
/// PEXPIREAT/PERSIST stamped (by its version) before that expiry, the key
/// was extended before it expired where it was written: the command takes
/// the expiry the chain of such extensions ends with instead, so the key
/// survives with the extended TTL (or none). A whole-key write or an
/// extension stamped at or after the expiry ends the chain: the key did
/// expire there, and the command is applied as it is.
pub(crate) fn extended_expiries<'a>(
    commands: impl Iterator<Item = &'a VersionedCommand>,
    now_ms: u64,
) -> Vec<Option<Option<u64>>> {
    let commands: Vec<&VersionedCommand> = commands.collect();
    let mut by_key: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, vc) in commands.iter().enumerate() {
        by_key.entry(vc.command.key()).or_default().push(i);
    }
    let mut out = vec![None; commands.len()];
    for positions in by_key.values() {
        for (n, &i) in positions.iter().enumerate() {
            let Some(Some(mut at)) = expiry_set(&commands[i].command) else {
                continue;
            };
            let mut last = commands[i].version;
            let mut extended: Option<Option<u64>> = None;
            for &j in &positions[n + 1..] {
                if at > now_ms {
                    break;
                }
                let next = commands[j];
                if next.version <= last {
                    continue;
                }
                if next.command.is_whole_key() {
                    break;
                }
                let Some(x) = expiry_set(&next.command) else {
                    continue;
                };
                if next.version.millis >= at {
                    break;
                }
                extended = Some(x);
                last = next.version;
                match x {
                    Some(x) => at = x,
                    None => break,
                }
            }
            out[i] = extended;
        }
    }
    out
}

/// Appends `command` to `pipe` as exactly one reply-producing entry, with
/// `expiry` (from [`extended_expiries`]) in place of its own expiry when
/// given.
pub(crate) fn push(pipe: &mut Pipeline, command: &Command, expiry: Option<Option<u64>>) {
    match command {
        Command::Set {
            key,
            value,
            expire_at_ms,
        } => {
            let cmd = pipe.cmd("SET").arg(key).arg(value);
            if let Some(at) = expiry.unwrap_or(*expire_at_ms) {
                cmd.arg("PXAT").arg(at);
            }
        }
        Command::Del { key } => {
            pipe.cmd("DEL").arg(key);
        }
        Command::HSet { key, fields } => {
            let cmd = pipe.cmd("HSET").arg(key);
            for (field, value) in fields {
                cmd.arg(field).arg(value);
            }
        }
        Command::HDel { key, fields } => {
            pipe.cmd("HDEL").arg(key).arg(fields);
        }
        Command::SAdd { key, members } => {
            pipe.cmd("SADD").arg(key).arg(members);
        }
        Command::SRem { key, members } => {
            pipe.cmd("SREM").arg(key).arg(members);
        }
        Command::ZAdd { key, members } => {
            let cmd = pipe.cmd("ZADD").arg(key);
            for (s, member) in members {
                cmd.arg(score(*s)).arg(member);
            }
        }
        Command::ZRem { key, members } => {
            pipe.cmd("ZREM").arg(key).arg(members);
        }
        Command::PExpireAt { key, at_ms } => match expiry.unwrap_or(Some(*at_ms)) {
            Some(at) => {
                pipe.cmd("PEXPIREAT").arg(key).arg(at);
            }
            None => {
                pipe.cmd("PERSIST").arg(key);
            }
        },
        Command::Persist { key } => {
            pipe.cmd("PERSIST").arg(key);
        }
        Command::HReplace {
            key,
            fields,
            expire_at_ms,
        } => {
            if fields.is_empty() {
                pipe.cmd("DEL").arg(key);
            } else {
                replace(pipe, key, expiry.unwrap_or(*expire_at_ms), |pipe| {
                    let cmd = pipe.cmd("HSET").arg(key);
                    for (field, value) in fields {
                        cmd.arg(field).arg(value);
                    }
                });
            }
        }
        Command::SReplace {
            key,
            members,
            expire_at_ms,
        } => {
            if members.is_empty() {
                pipe.cmd("DEL").arg(key);
            } else {
                replace(pipe, key, expiry.unwrap_or(*expire_at_ms), |pipe| {
                    pipe.cmd("SADD").arg(key).arg(members);
                });
            }
        }
        Command::ZReplace {
            key,
            members,
            expire_at_ms,
        } => {
            if members.is_empty() {
                pipe.cmd("DEL").arg(key);
            } else {
                replace(pipe, key, expiry.unwrap_or(*expire_at_ms), |pipe| {
                    let cmd = pipe.cmd("ZADD").arg(key);
                    for (s, member) in members {
                        cmd.arg(score(*s)).arg(member);
                    }
                });
            }
        }
    }
}

/// `MULTI; DEL key; <content>; [PEXPIREAT key at]; EXEC`, with only the
/// `EXEC` reply kept.
fn replace(pipe: &mut Pipeline, key: &[u8], expire_at_ms: Option<u64>, content: impl FnOnce(&mut Pipeline)) {
    pipe.cmd("MULTI").ignore();
    pipe.cmd("DEL").arg(key).ignore();
    content(pipe);
    pipe.ignore();
    if let Some(at) = expire_at_ms {
        pipe.cmd("PEXPIREAT").arg(key).arg(at).ignore();
    }
    pipe.cmd("EXEC");
}

/// Interprets the reply to one command pushed by [`push`].
pub(crate) fn check_reply(reply: &Value, command: &Command) -> Result<(), ApplyError> {
    match reply {
        Value::ServerError(err) => Err(ApplyError::from_server(err, command.name())),
        // The reply of EXEC: one entry per queued command.
        Value::Array(items) if command.is_whole_key() => {
            for item in items {
                if let Value::ServerError(err) = item {
                    return Err(ApplyError::from_server(err, command.name()));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_through_their_text() {
        for value in [
            0.1,
            1.0 / 3.0,
            1e300,
            -2.5e-300,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            -7.0,
        ] {
            let text = score(value);
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), value.to_bits(), "{text}");
        }
    }

    fn names(pipe: &Pipeline) -> Vec<String> {
        pipe.cmd_iter()
            .map(|cmd| match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    fn at(ms: u64, command: Command) -> VersionedCommand {
        VersionedCommand::new(regis_wire::Version::new(ms, 0, 1), command)
    }

    fn pexpireat(key: &str, at_ms: u64) -> Command {
        Command::PExpireAt { key: key.into(), at_ms }
    }

    #[test]
    fn an_expiry_passed_at_apply_time_takes_the_extension_in_hand() {
        let now = 10_000;
        let set = |key: &str, x: u64| Command::Set {
            key: key.into(),
            value: b"v".to_vec(),
            expire_at_ms: Some(x),
        };
        let group = [
            // Written with a TTL ending at 1000, extended at 500 to 2000, then
            // at 1500 to 60000: the origin ended with 60000.
            at(100, set("k", 1_000)),
            at(
                200,
                Command::HSet {
                    key: b"other".to_vec(),
                    fields: vec![(b"f".to_vec(), b"v".to_vec())],
                },
            ),
            at(500, pexpireat("k", 2_000)),
            at(1_500, pexpireat("k", 60_000)),
            // Expired at 1000 before this extension was stamped: nothing to extend.
            at(100, set("late", 1_000)),
            at(1_000, pexpireat("late", 60_000)),
            // Extended to no expiry.
            at(100, set("p", 1_000)),
            at(900, Command::Persist { key: b"p".to_vec() }),
            // A whole-key write ends the chain.
            at(100, set("w", 1_000)),
            at(150, Command::Del { key: b"w".to_vec() }),
            at(200, pexpireat("w", 60_000)),
            // Not yet expired: applied as it is.
            at(100, set("live", 50_000)),
            at(200, pexpireat("live", 60_000)),
        ];
        let expiries = extended_expiries(group.iter(), now);
        assert_eq!(
            expiries,
            vec![
                Some(Some(60_000)),
                None,
                Some(Some(60_000)),
                None,
                None,
                None,
                Some(None),
                None,
                None,
                None,
                None,
                None,
                None,
            ]
        );
        let mut pipe = redis::pipe();
        for (vc, expiry) in group.iter().zip(&expiries) {
            push(&mut pipe, &vc.command, *expiry);
        }
        let args: Vec<Vec<String>> = pipe
            .cmd_iter()
            .map(|cmd| {
                cmd.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => String::new(),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(args[0], ["SET", "k", "v", "PXAT", "60000"]);
        assert_eq!(args[2], ["PEXPIREAT", "k", "60000"]);
        assert_eq!(args[4], ["SET", "late", "v", "PXAT", "1000"]);
        assert_eq!(args[6], ["SET", "p", "v"]);
    }

    #[test]
    fn replacements_are_transactions_and_empty_ones_are_deletes() {
        let key = b"k".to_vec();
        let cases = [
            (
                Command::Set {
                    key: key.clone(),
                    value: b"v".to_vec(),
                    expire_at_ms: Some(5),
                },
                vec!["SET"],
            ),
            (
                Command::HReplace {
                    key: key.clone(),
                    fields: vec![(b"f".to_vec(), b"v".to_vec())],
                    expire_at_ms: Some(9),
                },
                vec!["MULTI", "DEL", "HSET", "PEXPIREAT", "EXEC"],
            ),
            (
                Command::SReplace {
                    key: key.clone(),
                    members: vec![],
                    expire_at_ms: Some(9),
                },
                vec!["DEL"],
            ),
            (
                Command::ZReplace {
                    key,
                    members: vec![(1.5, b"m".to_vec())],
                    expire_at_ms: None,
                },
                vec!["MULTI", "DEL", "ZADD", "EXEC"],
            ),
        ];
        for (command, expected) in cases {
            let mut pipe = redis::pipe();
            push(&mut pipe, &command, None);
            assert_eq!(names(&pipe), expected, "{command:?}");
        }
    }
}
