//! What decoding one message costs in memory, measured with a counting
//! allocator: the worst messages the default limits accept stay under
//! [`DecodeLimits::peak_bytes`], and messages over a limit are refused
//! before their elements are allocated.
//!
//! The allocator (`peakmem-alloc`) counts the heap of the whole process, a
//! `realloc` as its growth; the tests of this binary take turns (a lock),
//! so only the test harness's own few allocations run beside a measurement.

use std::sync::Mutex;

use base64::Engine as _;
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use regis_wire::{
    Batch, DecodeError, DecodeLimits, Keyring, Limit, MAX_DECOMPRESSED_BYTES, MAX_ELEMENT_BYTES,
    MAX_ELEMENTS_PER_BATCH, MAX_ELEMENTS_PER_COMMAND, MAX_VALUE_BYTES, decode,
};

#[global_allocator]
static HEAP: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// One measurement at a time.
static TURN: Mutex<()> = Mutex::new(());

/// The peak heap `f` used beyond what was live before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    HEAP.reset_peak_memory();
    let out = f();
    (out, HEAP.get_peak_memory())
}

const MIB: usize = 1024 * 1024;

fn zstd_message(n: usize, json: &str) -> String {
    let packed = zstd::bulk::compress(json.as_bytes(), 19).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(packed);
    format!(
        "{{\"regis\":1,\"id\":\"b\",\"origin\":\"o\",\"tenant\":\"t\",\"ts\":1,\"mode\":\"lww\",\"enc\":\"zstd\",\"n\":{n},\"cmds\":\"{b64}\"}}"
    )
}

/// `n` commands made by `command(i)`.
fn list(n: usize, command: impl Fn(usize) -> String) -> String {
    let items: Vec<String> = (0..n).map(command).collect();
    format!("[{}]", items.join(","))
}

fn decode_measured(text: &str) -> (Result<Batch, DecodeError>, usize) {
    let limits = DecodeLimits::default();
    peak_of(|| decode(text, &limits, &Keyring::default()))
}

/// Members `""` repeated: 3 bytes of JSON each.
fn empty_members(count: usize) -> String {
    let mut m = String::with_capacity(count * 3);
    m.push('[');
    for i in 0..count {
        if i > 0 {
            m.push(',');
        }
        m.push_str("\"\"");
    }
    m.push(']');
    m
}

#[test]
fn the_worst_messages_the_defaults_accept_stay_under_the_documented_peak() {
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let limits = DecodeLimits::default();
    let bound = limits.peak_bytes();
    assert!(bound < 44 * MIB, "documented bound {bound}");
    let per_command = MAX_ELEMENTS_PER_COMMAND;
    let commands = MAX_ELEMENTS_PER_BATCH / per_command;
    let cases: Vec<(&str, String)> = vec![
        (
            "the most empty members",
            zstd_message(
                commands,
                &list(commands, |i| {
                    format!(
                        r#"{{"op":"sadd","k":"s{i}","m":{},"ver":[1,0,1]}}"#,
                        empty_members(per_command)
                    )
                }),
            ),
        ),
        (
            "the most empty fields with values",
            zstd_message(
                commands,
                &list(commands, |i| {
                    let pairs = vec!["[\"\",\"\"]"; per_command].join(",");
                    format!(r#"{{"op":"hset","k":"h{i}","f":[{pairs}],"ver":[1,0,1]}}"#)
                }),
            ),
        ),
        (
            "the most commands",
            zstd_message(
                regis_wire::MAX_COMMANDS,
                &list(regis_wire::MAX_COMMANDS, |_| {
                    r#"{"op":"del","k":"","ver":[0,0,0]}"#.into()
                }),
            ),
        ),
        (
            "the most bytes in values",
            zstd_message(
                2,
                &list(2, |i| {
                    format!(
                        r#"{{"op":"set","k":"k{i}","v":"{}","ver":[1,0,1]}}"#,
                        "a".repeat(MAX_DECOMPRESSED_BYTES / 2 - 64)
                    )
                }),
            ),
        ),
        (
            "the largest escaped value",
            zstd_message(
                1,
                &list(1, |_| {
                    format!(
                        r#"{{"op":"set","k":"k","v":"{}","ver":[1,0,1]}}"#,
                        "\\n".repeat(MAX_DECOMPRESSED_BYTES / 2 - 64)
                    )
                }),
            ),
        ),
        (
            "the most elements with bytes",
            zstd_message(
                commands,
                &list(commands, |c| {
                    let pairs: Vec<String> = (0..per_command)
                        .map(|i| format!(r#"["f{c}-{i:05}","{}"]"#, "v".repeat(60)))
                        .collect();
                    format!(r#"{{"op":"hset","k":"h{c}","f":[{}],"ver":[1,0,1]}}"#, pairs.join(","))
                }),
            ),
        ),
    ];
    for (name, text) in cases {
        let (result, peak) = decode_measured(&text);
        let batch = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} bytes of message, {} commands, peak {:.1} MiB (bound {:.1} MiB)",
            text.len(),
            batch.commands.len(),
            peak as f64 / MIB as f64,
            bound as f64 / MIB as f64
        );
        assert!(peak <= bound, "{name}: peak {peak} over the documented {bound}");
        // The measured worst case is well under the bound; 30 MiB is what
        // docs/WIRE.md states.
        assert!(peak <= 30 * MIB, "{name}: peak {peak}");
    }
}

#[test]
fn a_small_message_expanding_to_millions_of_members_is_refused_before_they_exist() {
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // The issue's example: 11 million empty members, 33 MB of JSON, a few
    // KB of zstd. Its frame states its size, which is over the limit.
    let huge = format!(
        r#"[{{"op":"sadd","k":"s","m":{},"ver":[1,0,1]}}]"#,
        empty_members(11_000_000)
    );
    let text = zstd_message(1, &huge);
    assert!(text.len() < 8 * 1024, "{} bytes", text.len());
    let (result, peak) = decode_measured(&text);
    assert!(matches!(
        result,
        Err(DecodeError::OverLimit {
            limit: Limit::DecompressedBytes,
            ..
        })
    ));
    assert!(peak < 64 * 1024, "refused after allocating {peak} bytes");
    drop(huge);

    // Under the size limit, millions of members stop at the element limit:
    // the decompressed list is the only large allocation.
    let members = (MAX_DECOMPRESSED_BYTES - 100) / 3;
    let bomb = format!(
        r#"[{{"op":"sadd","k":"s","m":{},"ver":[1,0,1]}}]"#,
        empty_members(members)
    );
    let json_len = bomb.len();
    let text = zstd_message(1, &bomb);
    drop(bomb);
    assert!(text.len() < 8 * 1024, "{} bytes", text.len());
    let (result, peak) = decode_measured(&text);
    assert_eq!(
        result,
        Err(DecodeError::OverLimit {
            limit: Limit::ElementsPerCommand,
            max: MAX_ELEMENTS_PER_COMMAND,
            actual: MAX_ELEMENTS_PER_COMMAND + 1
        })
    );
    let accepted_cost = members * size_of::<Vec<u8>>();
    eprintln!(
        "{members} members: peak {peak} bytes, of which {json_len} the decompressed list; accepting them would take {accepted_cost}"
    );
    assert!(peak < json_len + MIB, "peak {peak}");

    // Spread over commands, the batch limit stops them.
    let commands = MAX_ELEMENTS_PER_BATCH / MAX_ELEMENTS_PER_COMMAND + 5;
    let spread = list(commands, |i| {
        format!(
            r#"{{"op":"sadd","k":"s{i}","m":{},"ver":[1,0,1]}}"#,
            empty_members(MAX_ELEMENTS_PER_COMMAND)
        )
    });
    let (result, peak) = decode_measured(&zstd_message(commands, &spread));
    assert_eq!(
        result,
        Err(DecodeError::OverLimit {
            limit: Limit::ElementsPerBatch,
            max: MAX_ELEMENTS_PER_BATCH,
            actual: MAX_ELEMENTS_PER_BATCH + 1
        })
    );
    assert!(peak < spread.len() + 8 * MIB, "peak {peak}");
}

#[test]
fn long_elements_and_values_are_refused_before_they_are_copied() {
    let _turn = TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let element = "e".repeat(MAX_ELEMENT_BYTES + 1);
    let value = "v".repeat(MAX_VALUE_BYTES + 1);
    let binary = base64::engine::general_purpose::STANDARD.encode(vec![0xffu8; MAX_ELEMENT_BYTES + 3]);
    let cases = [
        (
            format!(r#"[{{"op":"del","k":"{element}","ver":[1,0,1]}}]"#),
            Limit::ElementBytes,
        ),
        (
            format!(r#"[{{"op":"sadd","k":"s","m":["{element}"],"ver":[1,0,1]}}]"#),
            Limit::ElementBytes,
        ),
        (
            format!(r#"[{{"op":"zadd","k":"z","m":[[1,"{element}"]],"ver":[1,0,1]}}]"#),
            Limit::ElementBytes,
        ),
        (
            format!(r#"[{{"op":"hset","k":"h","f":[["{element}","v"]],"ver":[1,0,1]}}]"#),
            Limit::ElementBytes,
        ),
        (
            format!(r#"[{{"op":"hdel","k":"h","f":[{{"b64":"{binary}"}}],"ver":[1,0,1]}}]"#),
            Limit::ElementBytes,
        ),
        (
            format!(r#"[{{"op":"set","k":"k","v":"{value}","ver":[1,0,1]}}]"#),
            Limit::ValueBytes,
        ),
        (
            format!(r#"[{{"op":"hset","k":"h","f":[["f","{value}"]],"ver":[1,0,1]}}]"#),
            Limit::ValueBytes,
        ),
    ];
    for (json, limit) in cases {
        let text = zstd_message(1, &json);
        let (result, peak) = decode_measured(&text);
        match result {
            Err(DecodeError::OverLimit { limit: l, .. }) => assert_eq!(l, limit),
            other => panic!("{limit:?}: {other:?}"),
        }
        // The list and the packed payload, but no copy of the string.
        assert!(
            peak < json.len() + text.len() + 64 * 1024,
            "{limit:?}: peak {peak} for {}",
            json.len()
        );
    }
}
