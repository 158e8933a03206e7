//! Plain mode: each command as the Redis command(s) it stands for.
//!
//! No versions, no bookkeeping: the fastest mode, for data with a single
//! writer that tolerates reordering. Every wire command becomes exactly one
//! pipeline entry whose reply is kept, so replies map back to commands one
//! to one. Replacements are `MULTI; DEL k; HSET/SADD/ZADD ...; [PEXPIREAT];
//! EXEC` inside the pipeline: readers never see the key half-written, and
//! the `EXEC` reply (an array, or `EXECABORT`) is the command's reply.

use redis::{Pipeline, Value};
use regis_wire::Command;

use super::error::ApplyError;

/// Formats a score so Redis parses back exactly the same `f64`: Rust's
/// formatting of floats is shortest-round-trip, and the `Debug` form uses an
/// exponent for very large or small magnitudes (`1e300`), which Redis's
/// `strtod` reads.
pub(crate) fn score(value: f64) -> String {
    format!("{value:?}")
}

/// Appends `command` to `pipe` as exactly one reply-producing entry.
pub(crate) fn push(pipe: &mut Pipeline, command: &Command) {
    match command {
        Command::Set {
            key,
            value,
            expire_at_ms,
        } => {
            let cmd = pipe.cmd("SET").arg(key).arg(value);
            if let Some(at) = expire_at_ms {
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
        Command::PExpireAt { key, at_ms } => {
            pipe.cmd("PEXPIREAT").arg(key).arg(at_ms);
        }
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
                replace(pipe, key, *expire_at_ms, |pipe| {
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
                replace(pipe, key, *expire_at_ms, |pipe| {
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
                replace(pipe, key, *expire_at_ms, |pipe| {
                    let cmd = pipe.cmd("ZADD").arg(key);
                    for (s, member) in members {
                        cmd.arg(score(*s)).arg(member);
                    }
                });
            }
        }
        // A command this engine does not know yet: let Redis refuse it, so
        // the batch fails permanently with the command's name in the reason.
        other => {
            pipe.cmd("REGIS-UNSUPPORTED").arg(other.name());
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
            push(&mut pipe, &command);
            assert_eq!(names(&pipe), expected, "{command:?}");
        }
    }
}
