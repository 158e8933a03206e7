//! The state a region's Redis must reach, and snapshots to compare with it.
//!
//! With last-writer-wins, versions stamped by one publisher increase in
//! publish order, so every region must end exactly in the state of applying
//! the commands in that order, whatever the delivery order and duplicates.
//! [`Model`] computes that state; [`snapshot`] reads a region's keys under a
//! prefix; [`diff`] says how they differ.

use std::collections::{BTreeMap, BTreeSet};

use regis_publisher::Command;

/// A key's value, as compared between the model and Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    ZSet(BTreeMap<Vec<u8>, f64>),
}

/// A key's value and whether it has a TTL (the exact TTL drifts).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    pub has_ttl: bool,
}

/// Keys to entries; the state of one region under one prefix.
pub type State = BTreeMap<Vec<u8>, Entry>;

/// What Redis holds after applying commands in order. A single publisher
/// stamps increasing versions, so in last-writer-wins mode every region must
/// end in exactly this state, whatever the delivery order and duplicates.
/// Expiries in the model are assumed to lie in the future.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub state: State,
}

impl Model {
    pub fn apply(&mut self, command: &Command) {
        let state = &mut self.state;
        match command {
            Command::Set {
                key,
                value,
                expire_at_ms,
            } => {
                state.insert(
                    key.clone(),
                    Entry {
                        value: Value::Str(value.clone()),
                        has_ttl: expire_at_ms.is_some(),
                    },
                );
            }
            Command::Del { key } => {
                state.remove(key);
            }
            Command::HSet { key, fields } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::Hash(BTreeMap::new()),
                    has_ttl: false,
                });
                let Value::Hash(hash) = &mut entry.value else {
                    panic!("model: HSET on a non-hash")
                };
                hash.extend(fields.iter().cloned());
            }
            Command::HDel { key, fields } => {
                if let Some(Entry {
                    value: Value::Hash(hash),
                    ..
                }) = state.get_mut(key)
                {
                    for field in fields {
                        hash.remove(field);
                    }
                    if hash.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::SAdd { key, members } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::Set(BTreeSet::new()),
                    has_ttl: false,
                });
                let Value::Set(set) = &mut entry.value else {
                    panic!("model: SADD on a non-set")
                };
                set.extend(members.iter().cloned());
            }
            Command::SRem { key, members } => {
                if let Some(Entry {
                    value: Value::Set(set), ..
                }) = state.get_mut(key)
                {
                    for member in members {
                        set.remove(member);
                    }
                    if set.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::ZAdd { key, members } => {
                let entry = state.entry(key.clone()).or_insert(Entry {
                    value: Value::ZSet(BTreeMap::new()),
                    has_ttl: false,
                });
                let Value::ZSet(zset) = &mut entry.value else {
                    panic!("model: ZADD on a non-zset")
                };
                for (score, member) in members {
                    zset.insert(member.clone(), *score);
                }
            }
            Command::ZRem { key, members } => {
                if let Some(Entry {
                    value: Value::ZSet(zset),
                    ..
                }) = state.get_mut(key)
                {
                    for member in members {
                        zset.remove(member);
                    }
                    if zset.is_empty() {
                        state.remove(key);
                    }
                }
            }
            Command::PExpireAt { key, .. } => {
                if let Some(entry) = state.get_mut(key) {
                    entry.has_ttl = true;
                }
            }
            Command::Persist { key } => {
                if let Some(entry) = state.get_mut(key) {
                    entry.has_ttl = false;
                }
            }
            Command::HReplace {
                key,
                fields,
                expire_at_ms,
            } => {
                Self::replace(
                    state,
                    key,
                    Value::Hash(fields.iter().cloned().collect()),
                    *expire_at_ms,
                    fields.is_empty(),
                );
            }
            Command::SReplace {
                key,
                members,
                expire_at_ms,
            } => {
                Self::replace(
                    state,
                    key,
                    Value::Set(members.iter().cloned().collect()),
                    *expire_at_ms,
                    members.is_empty(),
                );
            }
            Command::ZReplace {
                key,
                members,
                expire_at_ms,
            } => {
                let zset = members.iter().map(|(score, member)| (member.clone(), *score)).collect();
                Self::replace(state, key, Value::ZSet(zset), *expire_at_ms, members.is_empty());
            }
        }
    }

    fn replace(state: &mut State, key: &[u8], value: Value, expire_at_ms: Option<u64>, empty: bool) {
        if empty {
            state.remove(key);
        } else {
            state.insert(
                key.to_vec(),
                Entry {
                    value,
                    has_ttl: expire_at_ms.is_some(),
                },
            );
        }
    }
}

/// Every key under `prefix` in one Redis, with its value and TTL presence.
/// Version bookkeeping (`regis:v:...`) lies outside any test prefix.
pub async fn snapshot(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> redis::RedisResult<State> {
    let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut state = State::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(conn).await?;
        let value = match kind.as_str() {
            "string" => Value::Str(redis::cmd("GET").arg(&key).query_async(conn).await?),
            "hash" => Value::Hash(redis::cmd("HGETALL").arg(&key).query_async(conn).await?),
            "set" => Value::Set(redis::cmd("SMEMBERS").arg(&key).query_async(conn).await?),
            "zset" => {
                let pairs: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(conn)
                    .await?;
                Value::ZSet(pairs.into_iter().collect())
            }
            // Expired or deleted between SCAN and TYPE.
            "none" => continue,
            other => panic!("unexpected type {other} for key {}", String::from_utf8_lossy(&key)),
        };
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(conn).await?;
        state.insert(
            key,
            Entry {
                value,
                has_ttl: pttl > 0,
            },
        );
    }
    Ok(state)
}

/// A short description of how `actual` differs from `expected`.
pub fn diff(expected: &State, actual: &State) -> Option<String> {
    let mut lines = Vec::new();
    let mut count = 0;
    for (key, want) in expected {
        match actual.get(key) {
            None => {
                count += 1;
                if lines.len() < 8 {
                    lines.push(format!("missing {}", String::from_utf8_lossy(key)));
                }
            }
            Some(have) if have != want => {
                count += 1;
                if lines.len() < 8 {
                    lines.push(format!(
                        "{}: want {want:?}, have {have:?}",
                        String::from_utf8_lossy(key)
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        count += 1;
        if lines.len() < 8 {
            lines.push(format!("unexpected {}", String::from_utf8_lossy(key)));
        }
    }
    (count > 0).then(|| format!("{count} keys differ: {}", lines.join("; ")))
}

/// The state after applying `commands` in order.
pub fn state_after(commands: &[Command]) -> State {
    let mut model = Model::default();
    for command in commands {
        model.apply(command);
    }
    model.state
}
