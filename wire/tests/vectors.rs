//! The golden vectors of `tests/vectors/` (written by `generate.py`, an
//! encoder made from docs/WIRE.md alone): every accepted message decodes to
//! its batch, the Rust encoder writes the exact text where the vector says
//! so, and every refused message is refused with its reason.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use regis_wire::{
    Batch, BatchHeader, Command, Compression, DecodeLimits, EncodeOptions, Keyring, Mode, SigningKey, Version,
    VersionedCommand, check_clock_skew, check_horizon, check_reserved_keys, decode, encode,
};
use serde_json::{Value, json};

fn vectors(dir: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn unhex(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(v: &Value) -> SigningKey {
    let secret = base64::engine::general_purpose::STANDARD
        .decode(v["secret_base64"].as_str().unwrap())
        .unwrap();
    SigningKey::new(v["id"].as_str().unwrap(), secret)
}

fn keyring(vector: &Value) -> Keyring {
    Keyring::new(
        vector["keys"]
            .as_array()
            .map(|keys| keys.iter().map(key).collect())
            .unwrap_or_default(),
    )
}

/// A decoded batch in the vectors' form: bytes as hex, members named.
fn form(batch: &Batch) -> Value {
    let commands: Vec<Value> = batch
        .commands
        .iter()
        .map(|c| {
            let v = c.version;
            let version = json!([v.millis, v.counter, v.rank]);
            let names = |items: &[Vec<u8>]| items.iter().map(|i| hex(i)).collect::<Vec<_>>();
            let pairs = |items: &[(Vec<u8>, Vec<u8>)]| items.iter().map(|(f, v)| json!([hex(f), hex(v)])).collect::<Vec<_>>();
            let scored = |items: &[(f64, Vec<u8>)]| items.iter().map(|(s, m)| json!([s, hex(m)])).collect::<Vec<_>>();
            let op = c.command.name();
            let k = hex(c.command.key());
            match &c.command {
                Command::Set {
                    value, expire_at_ms, ..
                } => json!({"op": op, "key": k, "value": hex(value), "expire_at_ms": expire_at_ms, "version": version}),
                Command::Del { .. } | Command::Persist { .. } => json!({"op": op, "key": k, "version": version}),
                Command::HSet { fields, .. } => json!({"op": op, "key": k, "fields": pairs(fields), "version": version}),
                Command::HReplace {
                    fields, expire_at_ms, ..
                } => json!({"op": op, "key": k, "fields": pairs(fields), "expire_at_ms": expire_at_ms, "version": version}),
                Command::HDel { fields, .. } => json!({"op": op, "key": k, "fields": names(fields), "version": version}),
                Command::SAdd { members, .. } | Command::SRem { members, .. } | Command::ZRem { members, .. } => {
                    json!({"op": op, "key": k, "members": names(members), "version": version})
                }
                Command::SReplace {
                    members, expire_at_ms, ..
                } => json!({"op": op, "key": k, "members": names(members), "expire_at_ms": expire_at_ms, "version": version}),
                Command::ZAdd { members, .. } => json!({"op": op, "key": k, "members": scored(members), "version": version}),
                Command::ZReplace {
                    members, expire_at_ms, ..
                } => json!({"op": op, "key": k, "members": scored(members), "expire_at_ms": expire_at_ms, "version": version}),
                Command::PExpireAt { at_ms, .. } => json!({"op": op, "key": k, "at_ms": at_ms, "version": version}),
            }
        })
        .collect();
    let h = &batch.header;
    json!({
        "id": h.id, "origin": h.origin, "tenant": h.tenant, "published_at_ms": h.published_at_ms,
        "mode": h.mode.as_str(), "commands": commands,
    })
}

/// The batch a vector describes (the inverse of [`form`]).
fn batch(form: &Value) -> Batch {
    let names = |v: &Value| v.as_array().unwrap().iter().map(unhex).collect::<Vec<_>>();
    let pairs = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| (unhex(&p[0]), unhex(&p[1])))
            .collect::<Vec<_>>()
    };
    let scored = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), unhex(&p[1])))
            .collect::<Vec<_>>()
    };
    let commands = form["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key = unhex(&c["key"]);
            let expire_at_ms = c["expire_at_ms"].as_u64();
            let command = match c["op"].as_str().unwrap() {
                "set" => Command::Set {
                    key,
                    value: unhex(&c["value"]),
                    expire_at_ms,
                },
                "del" => Command::Del { key },
                "persist" => Command::Persist { key },
                "hset" => Command::HSet {
                    key,
                    fields: pairs(&c["fields"]),
                },
                "hreplace" => Command::HReplace {
                    key,
                    fields: pairs(&c["fields"]),
                    expire_at_ms,
                },
                "hdel" => Command::HDel {
                    key,
                    fields: names(&c["fields"]),
                },
                "sadd" => Command::SAdd {
                    key,
                    members: names(&c["members"]),
                },
                "srem" => Command::SRem {
                    key,
                    members: names(&c["members"]),
                },
                "zrem" => Command::ZRem {
                    key,
                    members: names(&c["members"]),
                },
                "sreplace" => Command::SReplace {
                    key,
                    members: names(&c["members"]),
                    expire_at_ms,
                },
                "zadd" => Command::ZAdd {
                    key,
                    members: scored(&c["members"]),
                },
                "zreplace" => Command::ZReplace {
                    key,
                    members: scored(&c["members"]),
                    expire_at_ms,
                },
                "pexpireat" => Command::PExpireAt {
                    key,
                    at_ms: c["at_ms"].as_u64().unwrap(),
                },
                other => panic!("unknown op {other}"),
            };
            let v = &c["version"];
            let version = Version::new(
                v[0].as_u64().unwrap(),
                v[1].as_u64().unwrap() as u32,
                v[2].as_u64().unwrap() as u16,
            );
            VersionedCommand::new(version, command)
        })
        .collect();
    Batch {
        header: BatchHeader {
            id: form["id"].as_str().unwrap().into(),
            origin: form["origin"].as_str().unwrap().into(),
            published_at_ms: form["published_at_ms"].as_u64().unwrap(),
            tenant: form["tenant"].as_str().unwrap().into(),
            mode: form["mode"].as_str().unwrap().parse::<Mode>().unwrap(),
        },
        commands,
    }
}

#[test]
fn accepted_vectors_decode_to_their_batch_and_encode_to_their_text() {
    let all = vectors("");
    assert!(all.len() >= 7, "{} vectors", all.len());
    let mut exact = 0;
    for (path, vector) in all {
        let name = path.display();
        let text = vector["message"].as_str().unwrap();
        let decoded =
            decode(text, &DecodeLimits::default(), &keyring(&vector)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(form(&decoded), vector["batch"], "{name}: decoded form");
        let expected = batch(&vector["batch"]);
        assert_eq!(decoded, expected, "{name}");
        if let Some(encode_with) = vector.get("encode") {
            let options = EncodeOptions {
                compression: Compression::None,
                signing_key: encode_with["signing_key"]
                    .is_object()
                    .then(|| key(&encode_with["signing_key"])),
            };
            assert_eq!(encode(&expected, &options).unwrap().text, text, "{name}: encoded text");
            exact += 1;
        } else {
            // Not byte for byte (zstd output depends on the library), but a
            // round trip gives the batch back.
            let again = encode(
                &expected,
                &EncodeOptions {
                    compression: Compression::Zstd(3),
                    signing_key: None,
                },
            )
            .unwrap();
            assert_eq!(
                decode(&again.text, &DecodeLimits::default(), &Keyring::default()).unwrap(),
                expected,
                "{name}"
            );
        }
    }
    assert!(exact >= 4, "{exact} exact vectors");
}

#[test]
fn refused_vectors_are_refused_with_their_reason() {
    let all = vectors("refused");
    assert!(all.len() >= 20, "{} vectors", all.len());
    for (path, vector) in all {
        let name = path.display();
        let mut limits = DecodeLimits::default();
        if let Some(overrides) = vector["limits"].as_object() {
            for (field, value) in overrides {
                let value = value.as_u64().unwrap() as usize;
                match field.as_str() {
                    "max_message_bytes" => limits.max_message_bytes = value,
                    "max_decompressed_bytes" => limits.max_decompressed_bytes = value,
                    "max_commands" => limits.max_commands = value,
                    "max_elements_per_command" => limits.max_elements_per_command = value,
                    "max_elements_per_batch" => limits.max_elements_per_batch = value,
                    "max_element_bytes" => limits.max_element_bytes = value,
                    "max_value_bytes" => limits.max_value_bytes = value,
                    other => panic!("{name}: unknown limit {other}"),
                }
            }
        }
        let expected = vector["reason"].as_str().unwrap();
        let text = vector["message"].as_str().unwrap();
        let reason = match decode(text, &limits, &keyring(&vector)) {
            Err(e) => e.reason(),
            Ok(batch) => {
                let checks = &vector["checks"];
                assert!(checks.is_object(), "{name}: decoded, and no checks to refuse it");
                let now = checks["now_ms"].as_u64().unwrap();
                check_reserved_keys(&batch.commands)
                    .and_then(|()| {
                        check_clock_skew(&batch.commands, now, checks["max_clock_skew_ms"].as_u64().unwrap())
                    })
                    .and_then(|()| check_horizon(&batch.commands, now, checks["horizon_ms"].as_u64().unwrap()))
                    .map_err(|r| r.reason())
                    .expect_err("refused by a check")
            }
        };
        assert_eq!(reason, expected, "{name}");
    }
}
