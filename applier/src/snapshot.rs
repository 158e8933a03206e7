//! Reading a Redis key space in pages, for `regis verify` and `regis resync`.
//!
//! Both walk every key with `SCAN` (a large `COUNT`), and read each page in
//! two pipelined round trips: first `TYPE` and `PTTL` of every key of the
//! page (and, for resync, the key's version bookkeeping hash), then the
//! value of every key with the command its type needs. Never one round
//! trip per key: that is what makes a million keys take seconds, not
//! minutes.
//!
//! Values are read into a canonical form ([`Content`]): hashes and sets
//! sorted, sorted sets in Redis's own (score, member) order, so two
//! regions' copies compare with `==` whatever their internal encoding.

use crate::apply::bookkeeping::bookkeeping_key;
pub use crate::apply::bookkeeping::{data_key_of, is_bookkeeping};
use redis::aio::MultiplexedConnection;
use redis::{Pipeline, Value};

/// `COUNT` hint of each `SCAN` call by default: large, so a page is worth
/// its two pipelined round trips.
pub const DEFAULT_SCAN_COUNT: usize = 1000;

/// A key's value, in a form that compares equal exactly when the data is
/// the same.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A string.
    String(Vec<u8>),
    /// A hash, sorted by field.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A set, sorted.
    Set(Vec<Vec<u8>>),
    /// A sorted set in Redis order (score, then member).
    ZSet(Vec<(Vec<u8>, f64)>),
    /// A list, in order.
    List(Vec<Vec<u8>>),
    /// Any other type (stream, module types): its type name and `DUMP`
    /// serialization.
    Other(String, Vec<u8>),
}

impl Content {
    /// The Redis type name.
    pub fn type_name(&self) -> &str {
        match self {
            Self::String(_) => "string",
            Self::Hash(_) => "hash",
            Self::Set(_) => "set",
            Self::ZSet(_) => "zset",
            Self::List(_) => "list",
            Self::Other(name, _) => name,
        }
    }

    /// Number of elements (1 for a string).
    pub fn len(&self) -> usize {
        match self {
            Self::String(_) | Self::Other(..) => 1,
            Self::Hash(h) => h.len(),
            Self::Set(s) | Self::List(s) => s.len(),
            Self::ZSet(z) => z.len(),
        }
    }

    /// True for an empty collection (Redis does not keep those, so only
    /// seen when a key changed while being read).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One key as read.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    /// The value.
    pub content: Content,
    /// Remaining time to live in ms, `None` for no expiry.
    pub pttl_ms: Option<i64>,
}

/// One key of a page: its state (`None` when it does not exist, e.g. it
/// expired between `SCAN` and the read) and its bookkeeping fields when
/// asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadKey {
    /// The key's data.
    pub state: Option<KeyState>,
    /// The fields of `regis:v:{T}:K` (empty when there is no bookkeeping or
    /// it was not read).
    pub bookkeeping: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One `SCAN` call: the next cursor (0 at the end) and a page of keys.
pub async fn scan_page(
    conn: &mut MultiplexedConnection,
    cursor: u64,
    pattern: Option<&str>,
    count: usize,
) -> redis::RedisResult<(u64, Vec<Vec<u8>>)> {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor);
    if let Some(pattern) = pattern {
        cmd.arg("MATCH").arg(pattern);
    }
    cmd.arg("COUNT").arg(count);
    let (next, keys): (String, Vec<Vec<u8>>) = cmd.query_async(conn).await?;
    Ok((next.parse().unwrap_or(0), keys))
}

/// Reads a page of keys in two pipelined round trips.
pub async fn read_keys(
    conn: &mut MultiplexedConnection,
    keys: &[Vec<u8>],
    with_bookkeeping: bool,
) -> redis::RedisResult<Vec<ReadKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let per_key = if with_bookkeeping { 3 } else { 2 };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in keys {
        pipe.cmd("TYPE").arg(key).cmd("PTTL").arg(key);
        if with_bookkeeping {
            pipe.cmd("HGETALL").arg(bookkeeping_key(key));
        }
    }
    let first: Vec<Value> = pipe.query_async(conn).await?;
    let mut types = Vec::with_capacity(keys.len());
    let mut out = Vec::with_capacity(keys.len());
    for chunk in first.chunks(per_key) {
        let type_name = match &chunk[0] {
            Value::SimpleString(s) => s.clone(),
            Value::Okay => "ok".into(),
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            _ => "none".into(),
        };
        let pttl = match chunk.get(1) {
            Some(Value::Int(ms)) if *ms >= 0 => Some(*ms),
            _ => None,
        };
        let bookkeeping = chunk.get(2).map(pairs).unwrap_or_default();
        types.push((type_name, pttl));
        out.push(ReadKey {
            state: None,
            bookkeeping,
        });
    }

    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut asked = Vec::new();
    for (i, (key, (type_name, _))) in keys.iter().zip(&types).enumerate() {
        if push_read(&mut pipe, key, type_name) {
            asked.push(i);
        }
    }
    if asked.is_empty() {
        return Ok(out);
    }
    let values: Vec<Value> = pipe.query_async(conn).await?;
    for (i, value) in asked.into_iter().zip(values) {
        let (type_name, pttl) = &types[i];
        out[i].state = content(type_name, &value).map(|content| KeyState {
            content,
            pttl_ms: *pttl,
        });
    }
    Ok(out)
}

fn push_read(pipe: &mut Pipeline, key: &[u8], type_name: &str) -> bool {
    match type_name {
        "none" => return false,
        "string" => pipe.cmd("GET").arg(key),
        "hash" => pipe.cmd("HGETALL").arg(key),
        "set" => pipe.cmd("SMEMBERS").arg(key),
        "zset" => pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
        "list" => pipe.cmd("LRANGE").arg(key).arg(0).arg(-1),
        _ => pipe.cmd("DUMP").arg(key),
    };
    true
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        _ => None,
    }
}

fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(a) | Value::Set(a) => a.iter().collect(),
        Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// A flat `[k1, v1, k2, v2, ...]` reply (or a RESP3 map) as pairs.
fn pairs(value: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    let flat = items(value);
    flat.chunks_exact(2)
        .filter_map(|c| Some((bytes(c[0])?, bytes(c[1])?)))
        .collect()
}

fn score(value: &Value) -> Option<f64> {
    match value {
        Value::Double(d) => Some(*d),
        other => std::str::from_utf8(&bytes(other)?).ok()?.parse().ok(),
    }
}

/// Turns a value reply into [`Content`]; `None` when the key is gone (or
/// changed type between the two round trips, which a second look sorts out).
fn content(type_name: &str, value: &Value) -> Option<Content> {
    if matches!(value, Value::Nil | Value::ServerError(_)) {
        return None;
    }
    let content = match type_name {
        "string" => Content::String(bytes(value)?),
        "hash" => {
            let mut h = pairs(value);
            h.sort();
            Content::Hash(h)
        }
        "set" => {
            let mut s: Vec<Vec<u8>> = items(value).into_iter().filter_map(bytes).collect();
            s.sort();
            Content::Set(s)
        }
        "zset" => {
            let flat = items(value);
            let z = if flat.iter().all(|v| matches!(v, Value::Array(_))) {
                // RESP3: [[member, score], ...]
                flat.iter()
                    .filter_map(|pair| {
                        let p = items(pair);
                        Some((bytes(p.first()?)?, score(p.get(1)?)?))
                    })
                    .collect()
            } else {
                flat.chunks_exact(2)
                    .filter_map(|c| Some((bytes(c[0])?, score(c[1])?)))
                    .collect()
            };
            Content::ZSet(z)
        }
        "list" => Content::List(items(value).into_iter().filter_map(bytes).collect()),
        other => Content::Other(other.to_owned(), bytes(value)?),
    };
    if content.is_empty() { None } else { Some(content) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn bookkeeping_keys_name_their_data_key() {
        let m = bookkeeping_key(b"user:{odd}:1");
        assert!(is_bookkeeping(&m));
        assert_eq!(data_key_of(&m), Some(&b"user:{odd}:1"[..]));
        assert!(!is_bookkeeping(b"user:1"));
        assert!(is_bookkeeping(b"regis:x:{a}:user:1"));
        assert_eq!(data_key_of(b"regis:v:nobrace"), None);
    }

    #[test]
    fn replies_become_canonical_content() {
        let hash = Value::Array(vec![bulk("b"), bulk("2"), bulk("a"), bulk("1")]);
        assert_eq!(
            content("hash", &hash),
            Some(Content::Hash(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]))
        );
        let set = Value::Set(vec![bulk("y"), bulk("x")]);
        assert_eq!(
            content("set", &set),
            Some(Content::Set(vec![b"x".to_vec(), b"y".to_vec()]))
        );
        let zset2 = Value::Array(vec![bulk("m"), bulk("1.5")]);
        let zset3 = Value::Array(vec![Value::Array(vec![bulk("m"), Value::Double(1.5)])]);
        assert_eq!(content("zset", &zset2), Some(Content::ZSet(vec![(b"m".to_vec(), 1.5)])));
        assert_eq!(content("zset", &zset3), Some(Content::ZSet(vec![(b"m".to_vec(), 1.5)])));
        assert_eq!(content("string", &Value::Nil), None);
        assert_eq!(content("hash", &Value::Array(vec![])), None);
        assert_eq!(
            content("stream", &bulk("\u{1}dump")),
            Some(Content::Other("stream".into(), b"\x01dump".to_vec()))
        );
    }
}
