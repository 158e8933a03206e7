//! Round trips and decoder robustness of the wire format.

use proptest::prelude::*;
use regis_wire::{
    Batch, BatchHeader, Command, CommandError, Compression, DecodeError, DecodeLimits, EncodeError, EncodeOptions,
    Keyring, Limit, MAX_EXPIRE_AT_MS, MAX_VERSION_MILLIS, Mode, SigningKey, Version, VersionedCommand, decode, encode,
};

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        "[a-z:{}]{0,16}".prop_map(String::into_bytes),
        Just(vec![0xff, 0xfe, 0x00]),
        Just("é✓\u{0}".as_bytes().to_vec()),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        -1e6f64..1e6,
        Just(0.0),
        Just(-0.0)
    ]
}

fn expiry() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1u64..=MAX_EXPIRE_AT_MS)
}

fn command() -> impl Strategy<Value = Command> {
    let pairs = || proptest::collection::vec((bytes(), bytes()), 1..4);
    let members = || proptest::collection::vec(bytes(), 1..4);
    let scored = || proptest::collection::vec((score(), bytes()), 1..4);
    prop_oneof![
        (bytes(), bytes(), expiry()).prop_map(|(key, value, expire_at_ms)| Command::Set {
            key,
            value,
            expire_at_ms
        }),
        bytes().prop_map(|key| Command::Del { key }),
        (bytes(), pairs()).prop_map(|(key, fields)| Command::HSet { key, fields }),
        (bytes(), members()).prop_map(|(key, fields)| Command::HDel { key, fields }),
        (bytes(), members()).prop_map(|(key, members)| Command::SAdd { key, members }),
        (bytes(), members()).prop_map(|(key, members)| Command::SRem { key, members }),
        (bytes(), scored()).prop_map(|(key, members)| Command::ZAdd { key, members }),
        (bytes(), members()).prop_map(|(key, members)| Command::ZRem { key, members }),
        (bytes(), 1u64..=MAX_EXPIRE_AT_MS).prop_map(|(key, at_ms)| Command::PExpireAt { key, at_ms }),
        bytes().prop_map(|key| Command::Persist { key }),
        (bytes(), proptest::collection::vec((bytes(), bytes()), 0..4), expiry()).prop_map(
            |(key, fields, expire_at_ms)| Command::HReplace {
                key,
                fields,
                expire_at_ms
            }
        ),
        (bytes(), proptest::collection::vec(bytes(), 0..4), expiry()).prop_map(|(key, members, expire_at_ms)| {
            Command::SReplace {
                key,
                members,
                expire_at_ms,
            }
        }),
        (bytes(), proptest::collection::vec((score(), bytes()), 0..4), expiry()).prop_map(
            |(key, members, expire_at_ms)| Command::ZReplace {
                key,
                members,
                expire_at_ms
            }
        ),
    ]
}

fn batch() -> impl Strategy<Value = Batch> {
    let versioned = (0..=MAX_VERSION_MILLIS, any::<u32>(), any::<u16>(), command())
        .prop_map(|(m, counter, rank, c)| VersionedCommand::new(Version::new(m, counter, rank), c));
    (
        "[a-f0-9]{1,32}",
        "[a-z0-9-]{1,20}",
        any::<u64>(),
        ".{0,12}",
        prop_oneof![Just(Mode::Plain), Just(Mode::Lww)],
        proptest::collection::vec(versioned, 0..12),
    )
        .prop_map(|(id, origin, published_at_ms, tenant, mode, commands)| Batch {
            header: BatchHeader {
                id,
                origin,
                published_at_ms,
                tenant,
                mode,
            },
            commands,
        })
}

fn key() -> SigningKey {
    SigningKey::new("k1", b"0123456789abcdef0123".to_vec())
}

fn sample() -> Batch {
    Batch {
        header: BatchHeader {
            id: "b1".into(),
            origin: "eu-west-1".into(),
            published_at_ms: 1_700_000_000_000,
            tenant: "acme".into(),
            mode: Mode::Lww,
        },
        commands: (0..50)
            .map(|i| {
                VersionedCommand::new(
                    Version::new(1_700_000_000_000, i, 1),
                    Command::HSet {
                        key: format!("hotel:{i}").into_bytes(),
                        fields: vec![(b"name".to_vec(), vec![0xff; 40])],
                    },
                )
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn round_trips_in_every_encoding(batch in batch(), compress in any::<bool>(), sign in any::<bool>()) {
        let options = EncodeOptions {
            compression: if compress { Compression::Zstd(1) } else { Compression::None },
            signing_key: sign.then(key),
        };
        let encoded = encode(&batch, &options).unwrap();
        prop_assert_eq!(encoded.compressed, compress);
        let keys = if sign { Keyring::new(vec![key()]) } else { Keyring::default() };
        let back = decode(&encoded.text, &DecodeLimits::default(), &keys).unwrap();
        prop_assert_eq!(back, batch);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = decode(&text, &DecodeLimits::default(), &Keyring::default());
    }

    #[test]
    fn decoding_mutated_messages_never_panics(batch in batch(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let text = encode(&batch, &EncodeOptions::default()).unwrap().text;
        let mut raw = text.into_bytes();
        let i = at.index(raw.len());
        raw[i] = byte;
        if let Ok(text) = String::from_utf8(raw) {
            let _ = decode(&text, &DecodeLimits::default(), &Keyring::new(vec![key()]));
        }
    }
}

#[test]
fn auto_compression_compresses_when_it_helps() {
    let batch = sample();
    let encoded = encode(&batch, &EncodeOptions::default()).unwrap();
    assert!(encoded.compressed);
    assert!(
        encoded.text.len() * 3 < encoded.uncompressed_bytes,
        "{} vs {}",
        encoded.text.len(),
        encoded.uncompressed_bytes
    );
    let tiny = Batch {
        commands: batch.commands[..1].to_vec(),
        ..batch
    };
    assert!(!encode(&tiny, &EncodeOptions::default()).unwrap().compressed);
}

#[test]
fn malformed_messages_are_typed() {
    let limits = DecodeLimits::default();
    let none = Keyring::default();
    for text in [
        "",
        "not json",
        "[]",
        "{}",
        "{\"regis\":\"1\"}",
        "{\"regis\":1}",
        "{\"regis\":1,\"id\":\"x\"}",
    ] {
        assert!(
            matches!(decode(text, &limits, &none), Err(DecodeError::Malformed(_))),
            "{text}"
        );
    }
    let good = encode(
        &sample(),
        &EncodeOptions {
            compression: Compression::None,
            signing_key: None,
        },
    )
    .unwrap()
    .text;
    let wrong_count = good.replace("\"n\":50", "\"n\":49");
    assert!(matches!(
        decode(&wrong_count, &limits, &none),
        Err(DecodeError::Malformed(_))
    ));
    let bad_mode = good.replace("\"mode\":\"lww\"", "\"mode\":\"fast\"");
    assert!(matches!(
        decode(&bad_mode, &limits, &none),
        Err(DecodeError::Malformed(_))
    ));
    let missing_field = good.replacen("\"f\":", "\"m\":", 1);
    assert!(matches!(
        decode(&missing_field, &limits, &none),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn unknown_future_version_is_its_own_error() {
    let text = encode(&sample(), &EncodeOptions::default())
        .unwrap()
        .text
        .replace("{\"regis\":1", "{\"regis\":7");
    assert_eq!(
        decode(&text, &DecodeLimits::default(), &Keyring::default()),
        Err(DecodeError::UnknownVersion(7))
    );
    // A future version may change everything else; the version is still read.
    assert_eq!(
        decode(
            "{\"regis\":2,\"whatever\":[1,2]}",
            &DecodeLimits::default(),
            &Keyring::default()
        ),
        Err(DecodeError::UnknownVersion(2))
    );
}

#[test]
fn unknown_command_and_encoding_are_named() {
    let good = encode(
        &sample(),
        &EncodeOptions {
            compression: Compression::None,
            signing_key: None,
        },
    )
    .unwrap()
    .text;
    let incr = good.replacen("\"op\":\"hset\"", "\"op\":\"incr\"", 1);
    assert_eq!(
        decode(&incr, &DecodeLimits::default(), &Keyring::default()),
        Err(DecodeError::UnknownCommand("incr".into()))
    );
    let brotli = good.replace("\"enc\":\"json\"", "\"enc\":\"brotli\"");
    assert_eq!(
        decode(&brotli, &DecodeLimits::default(), &Keyring::default()),
        Err(DecodeError::UnknownEncoding("brotli".into()))
    );
}

#[test]
fn corrupt_compressed_payload_is_typed() {
    let text = encode(
        &sample(),
        &EncodeOptions {
            compression: Compression::Zstd(1),
            signing_key: None,
        },
    )
    .unwrap()
    .text;
    let start = text.find("\"cmds\":\"").unwrap() + 8;
    let mut bad = text.clone();
    bad.replace_range(start..start + 8, "AAAAAAAA");
    assert!(matches!(
        decode(&bad, &DecodeLimits::default(), &Keyring::default()),
        Err(DecodeError::Corrupt(_))
    ));
    let mut bad64 = text;
    bad64.replace_range(start..start + 2, "!!");
    assert!(matches!(
        decode(&bad64, &DecodeLimits::default(), &Keyring::default()),
        Err(DecodeError::Corrupt(_))
    ));
}

#[test]
fn limits_are_enforced_before_allocation() {
    let batch = sample();
    let text = encode(
        &batch,
        &EncodeOptions {
            compression: Compression::Zstd(3),
            signing_key: None,
        },
    )
    .unwrap()
    .text;
    let keys = Keyring::default();
    let small_message = DecodeLimits {
        max_message_bytes: text.len() - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&text, &small_message, &keys),
        Err(DecodeError::OverLimit {
            limit: Limit::MessageBytes,
            ..
        })
    ));
    let small_inflate = DecodeLimits {
        max_decompressed_bytes: 1000,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&text, &small_inflate, &keys),
        Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            ..
        })
    ));
    let few = DecodeLimits {
        max_commands: 10,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&text, &few, &keys),
        Err(DecodeError::OverLimit {
            limit: Limit::Commands,
            ..
        })
    ));
    // A message that lies about its count is stopped at its count.
    let lying = text.replace("\"n\":50", "\"n\":5");
    assert!(matches!(decode(&lying, &few, &keys), Err(DecodeError::Malformed(m)) if m.contains("has more")));
}

#[test]
fn a_zstd_bomb_is_stopped_at_the_limit() {
    let mut huge = sample();
    huge.commands = vec![VersionedCommand::new(
        Version::new(1, 0, 1),
        Command::Set {
            key: b"k".to_vec(),
            value: vec![b'a'; 8 * 1024 * 1024],
            expire_at_ms: None,
        },
    )];
    let text = encode(
        &huge,
        &EncodeOptions {
            compression: Compression::Zstd(19),
            signing_key: None,
        },
    )
    .unwrap()
    .text;
    assert!(text.len() < 4096, "the bomb is small: {}", text.len());
    let limits = DecodeLimits {
        max_decompressed_bytes: 1024 * 1024,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&text, &limits, &Keyring::default()),
        Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            ..
        })
    ));
}

#[test]
fn signatures_are_required_checked_and_rotatable() {
    let batch = sample();
    let old = SigningKey::new("old", b"old-secret-0123456789".to_vec());
    let new = SigningKey::new("new", b"new-secret-0123456789".to_vec());
    let both = Keyring::new(vec![old.clone(), new.clone()]);
    let limits = DecodeLimits::default();
    for key in [&old, &new] {
        let text = encode(
            &batch,
            &EncodeOptions {
                signing_key: Some(key.clone()),
                ..EncodeOptions::default()
            },
        )
        .unwrap()
        .text;
        assert_eq!(decode(&text, &limits, &both).unwrap(), batch);
    }
    let unsigned = encode(&batch, &EncodeOptions::default()).unwrap().text;
    assert_eq!(decode(&unsigned, &limits, &both), Err(DecodeError::Unsigned));
    let only_new = Keyring::new(vec![new.clone()]);
    let by_old = encode(
        &batch,
        &EncodeOptions {
            signing_key: Some(old),
            ..EncodeOptions::default()
        },
    )
    .unwrap()
    .text;
    assert_eq!(
        decode(&by_old, &limits, &only_new),
        Err(DecodeError::UnknownKey("old".into()))
    );
    let by_new = encode(
        &batch,
        &EncodeOptions {
            signing_key: Some(new),
            ..EncodeOptions::default()
        },
    )
    .unwrap()
    .text;
    for (from, to) in [
        ("\"tenant\":\"acme\"", "\"tenant\":\"evil\""),
        ("\"ts\":1700000000000", "\"ts\":1700000000001"),
    ] {
        let tampered = by_new.replace(from, to);
        assert_eq!(
            decode(&tampered, &limits, &only_new),
            Err(DecodeError::BadSignature("new".into())),
            "{to}"
        );
    }
}

#[test]
fn reason_codes_are_stable() {
    let codes: Vec<&str> = [
        DecodeError::Malformed(String::new()),
        DecodeError::UnknownVersion(2),
        DecodeError::UnknownEncoding(String::new()),
        DecodeError::Corrupt(String::new()),
        DecodeError::UnknownCommand(String::new()),
        DecodeError::OverLimit {
            limit: Limit::Commands,
            max: 1,
            actual: 2,
        },
        DecodeError::Unsigned,
        DecodeError::UnknownKey(String::new()),
        DecodeError::BadSignature(String::new()),
    ]
    .iter()
    .map(DecodeError::reason)
    .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "unknown-version",
            "unknown-encoding",
            "corrupt-payload",
            "unknown-command",
            "over-limit",
            "unsigned",
            "unknown-key",
            "bad-signature"
        ]
    );
}

/// A message around a hand-written command list (`"enc":"json"`).
fn message(n: usize, cmds: &str) -> String {
    format!(
        "{{\"regis\":1,\"id\":\"b\",\"origin\":\"o\",\"tenant\":\"t\",\"ts\":1,\"mode\":\"lww\",\"enc\":\"json\",\"n\":{n},\"cmds\":{cmds}}}"
    )
}

/// A zstd message around `json`, compressed as `compress` does it.
fn zstd_message(n: usize, packed: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(packed);
    format!(
        "{{\"regis\":1,\"id\":\"b\",\"origin\":\"o\",\"tenant\":\"t\",\"ts\":1,\"mode\":\"lww\",\"enc\":\"zstd\",\"n\":{n},\"cmds\":\"{b64}\"}}"
    )
}

fn decode_default(text: &str) -> Result<Batch, DecodeError> {
    decode(text, &DecodeLimits::default(), &Keyring::default())
}

#[test]
fn envelope_member_order_does_not_matter() {
    let key = SigningKey::new("k1", b"0123456789abcdef0123".to_vec());
    let options = EncodeOptions {
        compression: Compression::Zstd(1),
        signing_key: Some(key.clone()),
    };
    let batch = sample();
    let text = encode(&batch, &options).unwrap().text;
    let envelope: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut members: Vec<(String, serde_json::Value)> = envelope.into_iter().collect();
    let keys = Keyring::new(vec![key]);
    let mut orders = 0;
    // Reversed, rotated, and sorted by name: each a different order.
    for shuffle in 0..members.len() + 2 {
        match shuffle {
            0 => members.reverse(),
            1 => members.sort_by(|a, b| a.0.cmp(&b.0)),
            _ => members.rotate_left(1),
        }
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
            .collect();
        let reordered = format!("{{{}}}", body.join(","));
        assert_ne!(reordered, text);
        assert_eq!(
            decode(&reordered, &DecodeLimits::default(), &keys).unwrap(),
            batch,
            "{reordered}"
        );
        orders += 1;
    }
    assert!(orders > 5);
}

#[test]
fn command_member_order_does_not_matter() {
    let forms = [
        r#"[{"op":"hset","k":"h","f":[["a","1"]],"ver":[5,0,1]}]"#,
        r#"[{"ver":[5,0,1],"f":[["a","1"]],"k":"h","op":"hset"}]"#,
        r#"[{"f":[["a","1"]],"op":"hset","ver":[5,0,1],"k":"h"}]"#,
    ];
    let decoded: Vec<Batch> = forms.iter().map(|f| decode_default(&message(1, f)).unwrap()).collect();
    assert!(decoded.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        decoded[0].commands[0].command,
        Command::HSet {
            key: b"h".to_vec(),
            fields: vec![(b"a".to_vec(), b"1".to_vec())]
        }
    );
    // An unknown op is named whatever comes first.
    for cmds in [
        r#"[{"future":1,"op":"incr","k":"c","ver":[5,0,1]}]"#,
        r#"[{"op":"incr","future":1,"k":"c","ver":[5,0,1]}]"#,
    ] {
        assert_eq!(
            decode_default(&message(1, cmds)),
            Err(DecodeError::UnknownCommand("incr".into())),
            "{cmds}"
        );
    }
}

#[test]
fn command_objects_are_checked_against_their_op() {
    for cmds in [
        r#"[{"op":"hset","k":"h","f":["a"],"ver":[5,0,1]}]"#,
        r#"[{"op":"hdel","k":"h","f":[["a","1"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"zadd","k":"z","m":["a"],"ver":[5,0,1]}]"#,
        r#"[{"op":"sadd","k":"s","m":[[1,"a"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"sadd","k":"s","m":["a",[1,"b"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"zadd","k":"z","m":[[1,"a","x"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"zadd","k":"z","m":[["1","a"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"set","k":"a","ver":[5,0,1]}]"#,
        r#"[{"op":"set","k":"a","v":"1","v":"2","ver":[5,0,1]}]"#,
        r#"[{"op":"del","k":"a","at":5,"ver":[5,0,1]}]"#,
        r#"[{"op":"del","k":"a","ver":[5,0,1],"x":1}]"#,
        r#"[{"op":"pexpireat","k":"a","ver":[5,0,1]}]"#,
        r#"[{"op":"del","ver":[5,0,1]}]"#,
        r#"[{"op":"del","k":"a"}]"#,
        r#"[{"k":"a","ver":[5,0,1]}]"#,
        r#"[{"op":"del","k":"a","ver":[5,4294967296,1]}]"#,
        r#"[{"op":"del","k":"a","ver":[-5,0,1]}]"#,
        r#"[{"op":"set","k":"a","v":"b","at":-1,"ver":[5,0,1]}]"#,
        r#"[{"op":"zadd","k":"z","m":[[1e400,"a"]],"ver":[5,0,1]}]"#,
        r#"[{"op":"sadd","k":"s","m":[],"ver":[5,0,1]}]"#,
        r#"[{"op":"del","k":"a","ver":[5,0,1]}"#,
        r#"[{"op":"del","k":"a","ver":[5,0,1]}] x"#,
    ] {
        assert!(
            matches!(decode_default(&message(1, cmds)), Err(e) if e.reason() == "malformed"),
            "{cmds}"
        );
    }
    // Replacements may be empty (they delete the key).
    let empty = decode_default(&message(1, r#"[{"op":"zreplace","k":"z","m":[],"ver":[5,0,1]}]"#)).unwrap();
    assert_eq!(
        empty.commands[0].command,
        Command::ZReplace {
            key: b"z".to_vec(),
            members: vec![],
            expire_at_ms: None
        }
    );
}

#[test]
fn values_redis_would_refuse_are_malformed_at_decode() {
    let cases = [
        (
            r#"[{"op":"set","k":"a","v":"b","at":0,"ver":[5,0,1]}]"#,
            CommandError::ExpiryOutOfRange { at_ms: 0 },
        ),
        (
            r#"[{"op":"pexpireat","k":"a","at":0,"ver":[5,0,1]}]"#,
            CommandError::ExpiryOutOfRange { at_ms: 0 },
        ),
        (
            r#"[{"op":"pexpireat","k":"a","at":281474976710656,"ver":[5,0,1]}]"#,
            CommandError::ExpiryOutOfRange { at_ms: 1 << 48 },
        ),
        (
            r#"[{"op":"hreplace","k":"a","f":[],"at":18446744073709551615,"ver":[5,0,1]}]"#,
            CommandError::ExpiryOutOfRange { at_ms: u64::MAX },
        ),
        (
            r#"[{"op":"del","k":"a","ver":[281474976710656,0,1]}]"#,
            CommandError::VersionOutOfRange { millis: 1 << 48 },
        ),
        (
            r#"[{"op":"del","k":"a","ver":[18446744073709551615,0,1]}]"#,
            CommandError::VersionOutOfRange { millis: u64::MAX },
        ),
    ];
    for (cmds, error) in cases {
        let text = message(2, &cmds.replacen('[', r#"[{"op":"del","k":"ok","ver":[1,0,1]},"#, 1));
        let err = decode_default(&text).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid {
                index: 1,
                error: error.clone()
            },
            "{cmds}"
        );
        assert_eq!(err.reason(), "malformed");
    }
    // The largest values accepted.
    let max = format!(
        r#"[{{"op":"pexpireat","k":"a","at":{MAX_EXPIRE_AT_MS},"ver":[{MAX_VERSION_MILLIS},4294967295,65535]}}]"#
    );
    let batch = decode_default(&message(1, &max)).unwrap();
    assert_eq!(
        batch.commands[0].version,
        Version::new(MAX_VERSION_MILLIS, u32::MAX, u16::MAX)
    );
}

#[test]
fn values_redis_would_refuse_are_not_encoded() {
    let mut batch = sample();
    batch.commands.truncate(1);
    let cases = [
        (
            Command::Set {
                key: b"k".to_vec(),
                value: vec![],
                expire_at_ms: Some(0),
            },
            Version::new(1, 0, 1),
            CommandError::ExpiryOutOfRange { at_ms: 0 },
        ),
        (
            Command::PExpireAt {
                key: b"k".to_vec(),
                at_ms: MAX_EXPIRE_AT_MS + 1,
            },
            Version::new(1, 0, 1),
            CommandError::ExpiryOutOfRange {
                at_ms: MAX_EXPIRE_AT_MS + 1,
            },
        ),
        (
            Command::ZAdd {
                key: b"z".to_vec(),
                members: vec![(f64::INFINITY, b"m".to_vec())],
            },
            Version::new(1, 0, 1),
            CommandError::NonFiniteScore { score: f64::INFINITY },
        ),
        (
            Command::Del { key: b"k".to_vec() },
            Version::new(MAX_VERSION_MILLIS + 1, 0, 1),
            CommandError::VersionOutOfRange {
                millis: MAX_VERSION_MILLIS + 1,
            },
        ),
    ];
    for (command, version, expected) in cases {
        batch.commands[0] = VersionedCommand::new(version, command);
        match encode(&batch, &EncodeOptions::default()) {
            Err(EncodeError::Command(error)) => assert_eq!(error, expected),
            other => panic!("{other:?}"),
        }
    }
    let nan = Command::ZAdd {
        key: b"z".to_vec(),
        members: vec![(f64::NAN, b"m".to_vec())],
    };
    assert!(matches!(nan.validate(), Err(CommandError::NonFiniteScore { .. })));
}

#[test]
fn zstd_frames_stating_a_size_over_the_limit_are_refused_before_decompressing() {
    let limits = DecodeLimits {
        max_decompressed_bytes: 1000,
        ..DecodeLimits::default()
    };
    let json = format!(r#"[{{"op":"set","k":"k","v":"{}","ver":[1,0,1]}}]"#, "a".repeat(2000));
    let packed = zstd::bulk::compress(json.as_bytes(), 3).unwrap();
    assert_eq!(
        decode(&zstd_message(1, &packed), &limits, &Keyring::default()),
        Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            max: 1000,
            actual: json.len()
        })
    );
    let fits = DecodeLimits::default();
    assert_eq!(
        decode(&zstd_message(1, &packed), &fits, &Keyring::default())
            .unwrap()
            .commands
            .len(),
        1
    );
}

#[test]
fn zstd_streams_without_a_stated_size_are_read_up_to_the_limit() {
    let json = format!(r#"[{{"op":"set","k":"k","v":"{}","ver":[1,0,1]}}]"#, "a".repeat(2000));
    let packed = zstd::stream::encode_all(json.as_bytes(), 3).unwrap();
    assert!(
        matches!(zstd::zstd_safe::get_frame_content_size(&packed), Ok(None)),
        "a streamed frame"
    );
    let batch = decode_default(&zstd_message(1, &packed)).unwrap();
    assert_eq!(
        batch.commands[0].command,
        Command::Set {
            key: b"k".to_vec(),
            value: vec![b'a'; 2000],
            expire_at_ms: None
        }
    );
    let limits = DecodeLimits {
        max_decompressed_bytes: 1000,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&zstd_message(1, &packed), &limits, &Keyring::default()),
        Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            max: 1000,
            actual: 1001
        })
    );
}

#[test]
fn details_stay_short_whatever_the_message() {
    let long = "x".repeat(100_000);
    let texts = [
        message(1, &format!(r#"[{{"op":"{long}","k":"a","ver":[1,0,1]}}]"#)),
        message(1, &format!(r#"[{{"op":"del","{long}":1,"k":"a","ver":[1,0,1]}}]"#)),
        format!(r#"{{"regis":1,"{long}":1}}"#),
        message(1, "[]").replace("\"enc\":\"json\"", &format!("\"enc\":\"{long}\"")),
        message(0, &format!(r#"[],"sig":{{"kid":"{long}","mac":"AA=="}}"#)),
    ];
    let keys = Keyring::new(vec![SigningKey::new("k1", b"0123456789abcdef0123".to_vec())]);
    for (i, text) in texts.iter().enumerate() {
        // The last one is refused for its signature's key id.
        let keys = if i + 1 == texts.len() {
            keys.clone()
        } else {
            Keyring::default()
        };
        let err = decode(text, &DecodeLimits::default(), &keys).unwrap_err();
        let reasons = [
            "unknown-command",
            "malformed",
            "malformed",
            "unknown-encoding",
            "unknown-key",
        ];
        assert_eq!(err.reason(), reasons[i]);
        assert!(
            err.to_string().len() < 700,
            "{} bytes: {}",
            err.to_string().len(),
            err.reason()
        );
    }
}
