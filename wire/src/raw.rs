//! Redis-style argument lists (`SET k v EX 10`) turned into typed commands.
//!
//! This is the path for callers that hold raw commands (the `regis publish`
//! CLI, a service porting code that built argument vectors). Commands that
//! are not idempotent are refused with the reason and the idempotent
//! alternative; relative expiries become absolute against the `now_ms`
//! the caller passes in. Keys in the applier's reserved namespace and
//! values Redis would refuse (an expiry of 0 or past
//! [`crate::MAX_EXPIRE_AT_MS`], a score that is not finite) are refused
//! here, with the reason.

use crate::checks::is_reserved_key;
use crate::command::{Command, FieldValues};
use crate::error::{ParseError, shown};

/// Commands refused because applying them twice would be wrong.
const NOT_IDEMPOTENT: &[(&str, &str, &str)] = &[
    ("INCR", "a redelivered INCR counts twice", "SET with the computed value"),
    (
        "INCRBY",
        "a redelivered INCRBY counts twice",
        "SET with the computed value",
    ),
    (
        "INCRBYFLOAT",
        "a redelivered INCRBYFLOAT counts twice",
        "SET with the computed value",
    ),
    ("DECR", "a redelivered DECR counts twice", "SET with the computed value"),
    (
        "DECRBY",
        "a redelivered DECRBY counts twice",
        "SET with the computed value",
    ),
    (
        "HINCRBY",
        "a redelivered HINCRBY counts twice",
        "HSET with the computed value",
    ),
    (
        "HINCRBYFLOAT",
        "a redelivered HINCRBYFLOAT counts twice",
        "HSET with the computed value",
    ),
    (
        "ZINCRBY",
        "a redelivered ZINCRBY counts twice",
        "ZADD with the computed score",
    ),
    (
        "APPEND",
        "a redelivered APPEND appends twice",
        "SET with the whole new value",
    ),
    (
        "SETRANGE",
        "it depends on the value it overwrites, which differs by delivery order",
        "SET with the whole new value",
    ),
    ("GETSET", "it reads and writes, and the read differs by region", "SET"),
    ("GETDEL", "it reads and deletes, and the read differs by region", "DEL"),
    (
        "LPUSH",
        "a redelivered LPUSH pushes twice",
        "SADD/ZADD, or SET or a whole-value replacement of the list's content",
    ),
    (
        "RPUSH",
        "a redelivered RPUSH pushes twice",
        "SADD/ZADD, or SET or a whole-value replacement of the list's content",
    ),
    (
        "LPUSHX",
        "a redelivered LPUSHX pushes twice",
        "SADD/ZADD or a whole-value replacement",
    ),
    (
        "RPUSHX",
        "a redelivered RPUSHX pushes twice",
        "SADD/ZADD or a whole-value replacement",
    ),
    ("LPOP", "a redelivered LPOP pops twice", "SREM/ZREM of a known member"),
    ("RPOP", "a redelivered RPOP pops twice", "SREM/ZREM of a known member"),
    (
        "LINSERT",
        "a redelivered LINSERT inserts twice",
        "a sorted set with ZADD",
    ),
    (
        "LREM",
        "its result depends on the list's order, which differs by delivery order",
        "SREM/ZREM",
    ),
    (
        "LSET",
        "list positions differ by delivery order",
        "HSET with the index as field",
    ),
    (
        "SPOP",
        "it removes a random member, a different one in each region",
        "SREM of a chosen member",
    ),
    (
        "RENAME",
        "a redelivered RENAME fails or moves the wrong key",
        "SET/replace the new key and DEL the old one",
    ),
];

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

fn bad(command: &str, message: impl Into<String>) -> ParseError {
    ParseError::BadArguments {
        command: command.to_owned(),
        message: message.into(),
    }
}

fn int(command: &str, arg: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| bad(command, format!("{:?} is not an integer", String::from_utf8_lossy(arg))))
}

fn absolute(command: &str, now_ms: u64, relative_ms: i64) -> Result<u64, ParseError> {
    if relative_ms <= 0 {
        return Err(bad(command, "expiry must be positive (use DEL to delete now)"));
    }
    now_ms
        .checked_add(relative_ms as u64)
        .ok_or_else(|| bad(command, "expiry is too far in the future"))
}

fn pairs(command: &str, args: &[Vec<u8>]) -> Result<FieldValues, ParseError> {
    if args.is_empty() || args.len() % 2 != 0 {
        return Err(bad(command, "expects field value [field value ...]"));
    }
    Ok(args.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect())
}

fn at_least_one(command: &str, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, ParseError> {
    if args.is_empty() {
        return Err(bad(command, "expects at least one field or member"));
    }
    Ok(args.to_vec())
}

fn score(command: &str, arg: &[u8]) -> Result<f64, ParseError> {
    let text = std::str::from_utf8(arg).map_err(|_| bad(command, "score is not a number"))?;
    let score: f64 = text
        .parse()
        .map_err(|_| bad(command, format!("{text:?} is not a number")))?;
    if !score.is_finite() {
        return Err(bad(command, "score must be finite"));
    }
    Ok(score)
}

/// Parses one Redis-style command. `now_ms` is the publish time that
/// relative expiries (`EX`, `PX`, `EXPIRE`, `PEXPIRE`) are added to.
pub fn parse_command(args: &[Vec<u8>], now_ms: u64) -> Result<Command, ParseError> {
    let (name, rest) = args.split_first().ok_or(ParseError::Empty)?;
    let name = upper(name);
    let cmd = name.as_str();
    if let Some((_, why, instead)) = NOT_IDEMPOTENT.iter().find(|(n, _, _)| *n == cmd) {
        return Err(ParseError::NotIdempotent {
            command: name.clone(),
            why,
            instead,
        });
    }
    let key = || rest.first().cloned().ok_or_else(|| bad(cmd, "missing key"));
    let tail = rest.get(1..).unwrap_or(&[]);
    let command = match cmd {
        "SET" => {
            let value = tail.first().cloned().ok_or_else(|| bad(cmd, "missing value"))?;
            let mut expire_at_ms = None;
            let mut opts = tail[1..].iter();
            while let Some(opt) = opts.next() {
                let opt = upper(opt);
                let mut arg = || opts.next().ok_or_else(|| bad(cmd, format!("{opt} needs a value")));
                expire_at_ms = Some(match opt.as_str() {
                    "EX" => absolute(cmd, now_ms, int(cmd, arg()?)?.saturating_mul(1000))?,
                    "PX" => absolute(cmd, now_ms, int(cmd, arg()?)?)?,
                    "EXAT" => u64::try_from(int(cmd, arg()?)?.saturating_mul(1000))
                        .map_err(|_| bad(cmd, "EXAT must be positive"))?,
                    "PXAT" => u64::try_from(int(cmd, arg()?)?).map_err(|_| bad(cmd, "PXAT must be positive"))?,
                    "NX" | "XX" | "GET" | "KEEPTTL" => {
                        return Err(ParseError::NotIdempotent {
                            command: format!("SET … {opt}"),
                            why: "its effect depends on the key's current state, which differs by delivery order",
                            instead: "a plain SET (last writer wins decides)",
                        });
                    }
                    other => return Err(bad(cmd, format!("unknown option {other}"))),
                });
            }
            Command::Set {
                key: key()?,
                value,
                expire_at_ms,
            }
        }
        "DEL" | "UNLINK" => {
            if rest.len() != 1 {
                return Err(bad(cmd, "takes exactly one key (send one DEL per key)"));
            }
            Command::Del { key: key()? }
        }
        "HSET" | "HMSET" => Command::HSet {
            key: key()?,
            fields: pairs(cmd, tail)?,
        },
        "HDEL" => Command::HDel {
            key: key()?,
            fields: at_least_one(cmd, tail)?,
        },
        "SADD" => Command::SAdd {
            key: key()?,
            members: at_least_one(cmd, tail)?,
        },
        "SREM" => Command::SRem {
            key: key()?,
            members: at_least_one(cmd, tail)?,
        },
        "ZREM" => Command::ZRem {
            key: key()?,
            members: at_least_one(cmd, tail)?,
        },
        "ZADD" => {
            if tail
                .first()
                .is_some_and(|a| matches!(upper(a).as_str(), "NX" | "XX" | "GT" | "LT" | "CH" | "INCR"))
            {
                return Err(ParseError::NotIdempotent {
                    command: "ZADD with NX/XX/GT/LT/CH/INCR".into(),
                    why: "its effect depends on the current score, which differs by delivery order",
                    instead: "ZADD score member with absolute scores",
                });
            }
            if tail.is_empty() || tail.len() % 2 != 0 {
                return Err(bad(cmd, "expects score member [score member ...]"));
            }
            let members = tail
                .chunks(2)
                .map(|c| Ok((score(cmd, &c[0])?, c[1].clone())))
                .collect::<Result<_, ParseError>>()?;
            Command::ZAdd { key: key()?, members }
        }
        "PEXPIREAT" | "EXPIREAT" | "EXPIRE" | "PEXPIRE" => {
            if tail.len() != 1 {
                return Err(bad(cmd, "expects key and time (no NX/XX/GT/LT)"));
            }
            let n = int(cmd, &tail[0])?;
            let at_ms = match cmd {
                "PEXPIREAT" => u64::try_from(n).map_err(|_| bad(cmd, "time must be positive"))?,
                "EXPIREAT" => u64::try_from(n.saturating_mul(1000)).map_err(|_| bad(cmd, "time must be positive"))?,
                "EXPIRE" => absolute(cmd, now_ms, n.saturating_mul(1000))?,
                _ => absolute(cmd, now_ms, n)?,
            };
            Command::PExpireAt { key: key()?, at_ms }
        }
        "PERSIST" => {
            if rest.len() != 1 {
                return Err(bad(cmd, "takes exactly one key"));
            }
            Command::Persist { key: key()? }
        }
        _ => return Err(ParseError::Unsupported(name)),
    };
    if rest.is_empty() {
        return Err(bad(cmd, "missing key"));
    }
    if is_reserved_key(command.key()) {
        return Err(ParseError::ReservedKey {
            command: name,
            key: shown(command.key()),
        });
    }
    command.validate().map_err(|e| bad(cmd, e.to_string()))?;
    Ok(command)
}

/// Splits one line of shell-like text into arguments: whitespace separates,
/// double or single quotes group, and inside double quotes `\"`, `\\`,
/// `\n`, `\t` and `\xHH` escapes give any byte (as in `redis-cli`).
pub fn split_line(line: &str) -> Result<Vec<Vec<u8>>, ParseError> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    let unterminated = || bad("line", "unterminated quote");
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut arg = Vec::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                let c = chars.next().ok_or_else(unterminated)?;
                if c == first {
                    break;
                }
                if c == '\\' && first == '"' {
                    let e = chars.next().ok_or_else(unterminated)?;
                    match e {
                        'n' => arg.push(b'\n'),
                        't' => arg.push(b'\t'),
                        'r' => arg.push(b'\r'),
                        'x' => {
                            let hex: String = [chars.next(), chars.next()].into_iter().flatten().collect();
                            let byte = u8::from_str_radix(&hex, 16)
                                .map_err(|_| bad("line", format!("bad escape \\x{hex}")))?;
                            arg.push(byte);
                        }
                        other => arg.extend_from_slice(other.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                } else {
                    arg.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(bad("line", "a closing quote must be followed by a space"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                chars.next();
            }
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        split_line(line).unwrap()
    }

    #[test]
    fn relative_expiry_becomes_absolute() {
        let cmd = parse_command(&args("SET k v EX 10"), 1_000).unwrap();
        assert_eq!(
            cmd,
            Command::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expire_at_ms: Some(11_000)
            }
        );
        let cmd = parse_command(&args("pexpire k 250"), 1_000).unwrap();
        assert_eq!(
            cmd,
            Command::PExpireAt {
                key: b"k".to_vec(),
                at_ms: 1_250
            }
        );
        let cmd = parse_command(&args("EXPIREAT k 5"), 1_000).unwrap();
        assert_eq!(
            cmd,
            Command::PExpireAt {
                key: b"k".to_vec(),
                at_ms: 5_000
            }
        );
    }

    #[test]
    fn non_idempotent_commands_say_why_and_what_instead() {
        for line in [
            "INCR counter",
            "append k v",
            "LPUSH q a",
            "SET k v NX",
            "ZADD z INCR 1 m",
            "spop s",
        ] {
            let err = parse_command(&args(line), 0).unwrap_err();
            let ParseError::NotIdempotent { .. } = err else {
                panic!("{line}: {err}")
            };
            let text = err.to_string();
            assert!(text.contains("not idempotent") && text.contains("use "), "{text}");
        }
        assert!(matches!(
            parse_command(&args("GET k"), 0),
            Err(ParseError::Unsupported(_))
        ));
        assert!(matches!(
            parse_command(&args("FLUSHALL"), 0),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn parses_every_supported_write() {
        let ok = [
            "SET k v",
            "SET k v PXAT 99",
            "DEL k",
            "HSET h f v g w",
            "HDEL h f",
            "SADD s a b",
            "SREM s a",
            "ZADD z 1.5 a -2 b",
            "ZREM z a",
            "PEXPIREAT k 5",
            "PERSIST k",
        ];
        for line in ok {
            parse_command(&args(line), 0).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        for bad in [
            "SET k",
            "HSET h f",
            "ZADD z x a",
            "ZADD z inf a",
            "DEL a b",
            "SADD s",
            "EXPIRE k -1",
            "SET",
        ] {
            assert!(parse_command(&args(bad), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_keys_are_refused_but_probes_are_not() {
        for line in [
            "SET regis:v:{ab}:victim x",
            "DEL regis:v:{ab}:victim",
            "HSET regis:x f v",
            "PERSIST regis:",
        ] {
            let err = parse_command(&args(line), 0).unwrap_err();
            assert!(matches!(err, ParseError::ReservedKey { .. }), "{line}: {err}");
            assert!(err.to_string().contains("reserved namespace"), "{err}");
        }
        parse_command(&args("SET regis:probe:0123 1 PX 60000"), 1).unwrap();
        parse_command(&args("SET REGIS:v:x 1"), 1).unwrap();
    }

    #[test]
    fn expiries_redis_would_refuse_are_refused() {
        for line in [
            "PEXPIREAT k 0",
            "EXPIREAT k 0",
            "SET k v PXAT 0",
            "SET k v EXAT 0",
            "PEXPIREAT k 281474976710656",
            "EXPIREAT k 9223372036854775",
            "SET k v EXAT 9223372036854775807",
            "SET k v PXAT 9223372036854775807",
            "PEXPIRE k 9223372036854775807",
            "SET k v EX 9223372036854775",
        ] {
            let err = parse_command(&args(line), 1_700_000_000_000).unwrap_err();
            assert!(matches!(err, ParseError::BadArguments { .. }), "{line}: {err}");
        }
        parse_command(&args("PEXPIREAT k 281474976710655"), 0).unwrap();
        parse_command(&args("PEXPIREAT k 1"), 0).unwrap();
    }

    #[test]
    fn splits_quoted_and_escaped_bytes() {
        assert_eq!(
            args(r#"SET "a key" 'x y' "\xff\n""#),
            vec![b"SET".to_vec(), b"a key".to_vec(), b"x y".to_vec(), vec![0xff, b'\n']]
        );
        assert!(split_line("SET \"open").is_err());
    }
}
