//! Convergence in any delivery order: random multi-origin histories, cut
//! into batches, shuffled and duplicated, applied to a real redis-server in
//! last-writer-wins mode, must all end in the same state, byte for byte, and
//! in the state of the reference model.

mod redis_support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis_support::{Dump, batch, diff, dump, now_ms};
use regis_applier::apply::model::LwwModel;
use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::RedisServer;
use regis_wire::{Batch, Command, HybridClock, Mode, VersionedCommand};

/// Proptest cases per run (each applies two delivery orders).
const CASES: u32 = 1000;

const STRING_KEYS: [&[u8]; 2] = [b"s0", b"s\xff"];
const HASH_KEYS: [&[u8]; 2] = [b"h0", b"{h}\x00"];
const SET_KEYS: [&[u8]; 1] = [b"t0"];
const ZSET_KEYS: [&[u8]; 1] = [b"z0"];
const ELEMENTS: [&[u8]; 4] = [b"a", b"b", b"c", b"\xff\x00"];
const VALUES: [&[u8]; 4] = [b"1", b"2", b"\x00\xfe", b""];
const SCORES: [f64; 5] = [0.5, -1.0, 2.0, 1e10, 0.1];

/// A command without its key's concrete bytes resolved: `exp` is an offset
/// index into far-future expiries.
#[derive(Debug, Clone)]
enum Spec {
    Set(usize, usize, Option<u64>),
    Del(u8, usize),
    Expire(u8, usize, Option<u64>),
    HSet(usize, Vec<(usize, usize)>),
    HDel(usize, Vec<usize>),
    HReplace(usize, Vec<(usize, usize)>, Option<u64>),
    SAdd(Vec<usize>),
    SRem(Vec<usize>),
    SReplace(Vec<usize>, Option<u64>),
    ZAdd(Vec<(usize, usize)>),
    ZRem(Vec<usize>),
    ZReplace(Vec<(usize, usize)>, Option<u64>),
}

fn elems() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..ELEMENTS.len(), 1..4)
}
fn hpairs(min: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..ELEMENTS.len(), 0..VALUES.len()), min..4)
}
fn zpairs(min: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..SCORES.len(), 0..ELEMENTS.len()), min..4)
}
fn exp() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(0u64..4)
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (0..STRING_KEYS.len(), 0..VALUES.len(), exp()).prop_map(|(k, v, e)| Spec::Set(k, v, e)),
        (0u8..4, 0..2usize).prop_map(|(f, k)| Spec::Del(f, k)),
        (0u8..4, 0..2usize, exp()).prop_map(|(f, k, e)| Spec::Expire(f, k, e)),
        (0..HASH_KEYS.len(), hpairs(1)).prop_map(|(k, p)| Spec::HSet(k, p)),
        (0..HASH_KEYS.len(), hpairs(1)).prop_map(|(k, p)| Spec::HSet(k, p)),
        (0..HASH_KEYS.len(), elems()).prop_map(|(k, e)| Spec::HDel(k, e)),
        (0..HASH_KEYS.len(), hpairs(0), exp()).prop_map(|(k, p, e)| Spec::HReplace(k, p, e)),
        elems().prop_map(Spec::SAdd),
        elems().prop_map(Spec::SRem),
        (proptest::collection::vec(0..ELEMENTS.len(), 0..4), exp()).prop_map(|(m, e)| Spec::SReplace(m, e)),
        zpairs(1).prop_map(Spec::ZAdd),
        elems().prop_map(Spec::ZRem),
        (zpairs(0), exp()).prop_map(|(p, e)| Spec::ZReplace(p, e)),
    ]
}

/// The key of family `family` (0 string, 1 hash, 2 set, 3 sorted set).
fn family_key(family: u8, index: usize) -> Vec<u8> {
    let keys: &[&[u8]] = match family {
        0 => &STRING_KEYS,
        1 => &HASH_KEYS,
        2 => &SET_KEYS,
        _ => &ZSET_KEYS,
    };
    keys[index % keys.len()].to_vec()
}

fn resolve(spec: &Spec, far: u64) -> Command {
    let at = |e: &Option<u64>| e.map(|i| far + i * 1_000_000);
    let el = |i: &usize| ELEMENTS[*i].to_vec();
    let hp = |p: &Vec<(usize, usize)>| p.iter().map(|(f, v)| (el(f), VALUES[*v].to_vec())).collect();
    let zp = |p: &Vec<(usize, usize)>| p.iter().map(|(s, m)| (SCORES[*s], el(m))).collect();
    match spec {
        Spec::Set(k, v, e) => Command::Set {
            key: STRING_KEYS[*k].to_vec(),
            value: VALUES[*v].to_vec(),
            expire_at_ms: at(e),
        },
        Spec::Del(f, k) => Command::Del {
            key: family_key(*f, *k),
        },
        Spec::Expire(f, k, e) => match at(e) {
            Some(at_ms) => Command::PExpireAt {
                key: family_key(*f, *k),
                at_ms,
            },
            None => Command::Persist {
                key: family_key(*f, *k),
            },
        },
        Spec::HSet(k, p) => Command::HSet {
            key: HASH_KEYS[*k].to_vec(),
            fields: hp(p),
        },
        Spec::HDel(k, e) => Command::HDel {
            key: HASH_KEYS[*k].to_vec(),
            fields: e.iter().map(el).collect(),
        },
        Spec::HReplace(k, p, e) => Command::HReplace {
            key: HASH_KEYS[*k].to_vec(),
            fields: hp(p),
            expire_at_ms: at(e),
        },
        Spec::SAdd(m) => Command::SAdd {
            key: SET_KEYS[0].to_vec(),
            members: m.iter().map(el).collect(),
        },
        Spec::SRem(m) => Command::SRem {
            key: SET_KEYS[0].to_vec(),
            members: m.iter().map(el).collect(),
        },
        Spec::SReplace(m, e) => Command::SReplace {
            key: SET_KEYS[0].to_vec(),
            members: m.iter().map(el).collect(),
            expire_at_ms: at(e),
        },
        Spec::ZAdd(p) => Command::ZAdd {
            key: ZSET_KEYS[0].to_vec(),
            members: zp(p),
        },
        Spec::ZRem(m) => Command::ZRem {
            key: ZSET_KEYS[0].to_vec(),
            members: m.iter().map(el).collect(),
        },
        Spec::ZReplace(p, e) => Command::ZReplace {
            key: ZSET_KEYS[0].to_vec(),
            members: zp(p),
            expire_at_ms: at(e),
        },
    }
}

/// One delivery: the order of the batches (sort keys), duplicates (which
/// batch, and where it is inserted), and how many batches go per `apply`.
#[derive(Debug, Clone)]
struct Delivery {
    order: Vec<u32>,
    dups: Vec<(usize, usize)>,
    per_call: usize,
}

#[derive(Debug, Clone)]
struct Case {
    origins: usize,
    /// (origin, wall-clock step in ms, command)
    ops: Vec<(usize, u64, Spec)>,
    cuts: Vec<usize>,
    deliveries: Vec<Delivery>,
}

fn case() -> impl Strategy<Value = Case> {
    let delivery = (
        proptest::collection::vec(any::<u32>(), 64),
        proptest::collection::vec((0..64usize, 0..64usize), 0..4),
        1..5usize,
    )
        .prop_map(|(order, dups, per_call)| Delivery { order, dups, per_call });
    (
        2..=3usize,
        proptest::collection::vec((0..3usize, prop_oneof![3 => Just(0u64), 2 => 1..3u64], spec()), 1..40),
        proptest::collection::vec(1..5usize, 16),
        proptest::collection::vec(delivery, 2),
    )
        .prop_map(|(origins, ops, cuts, deliveries)| Case {
            origins,
            ops,
            cuts,
            deliveries,
        })
}

/// Turns a case into versioned commands (in causal order) and batches.
fn build(case: &Case, far: u64) -> (Vec<VersionedCommand>, Vec<Batch>) {
    let mut clocks: Vec<HybridClock> = (0..case.origins).map(|o| HybridClock::new(o as u16 + 1)).collect();
    let mut wall = 1_700_000_000_000u64;
    let mut per_origin: Vec<Vec<VersionedCommand>> = vec![Vec::new(); case.origins];
    let mut all = Vec::new();
    for (origin, step, spec) in &case.ops {
        let origin = origin % case.origins;
        wall += step;
        let vc = VersionedCommand::new(clocks[origin].tick(wall), resolve(spec, far));
        per_origin[origin].push(vc.clone());
        all.push(vc);
    }
    let mut batches = Vec::new();
    let mut cut = case.cuts.iter().cycle();
    for (origin, commands) in per_origin.into_iter().enumerate() {
        let mut rest = &commands[..];
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            batches.push(batch(
                Mode::Lww,
                &format!("o{origin}-{}", batches.len()),
                rest[..n].to_vec(),
            ));
            rest = &rest[n..];
        }
    }
    (all, batches)
}

/// The batches in delivery order, with duplicates.
fn deliver<'a>(batches: &'a [Batch], d: &Delivery) -> Vec<&'a Batch> {
    let mut idx: Vec<usize> = (0..batches.len()).collect();
    idx.sort_by_key(|&i| (d.order[i % d.order.len()], i));
    let mut out: Vec<&Batch> = idx.iter().map(|&i| &batches[i]).collect();
    for &(which, pos) in &d.dups {
        let b = &batches[which % batches.len()];
        out.insert(pos % (out.len() + 1), b);
    }
    out
}

#[test]
fn any_delivery_order_converges_to_the_model() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = now_ms();
    // Expiries far in the future, so nothing expires during the run and PTTL
    // comparisons are meaningful.
    let far = now + 30 * 24 * 3600 * 1000;
    // Two engines on the same server: small script calls (many per pipeline,
    // commands of several batches mixed) and the default size.
    let (small, default) = rt.block_on(async {
        let small = RedisOptions {
            max_commands_per_script: 3,
            ..RedisOptions::default()
        };
        (
            Engine::connect(&server.url(), Mode::Lww, small).await.unwrap(),
            Engine::connect(&server.url(), Mode::Lww, RedisOptions::default())
                .await
                .unwrap(),
        )
    });
    let client = server.client();
    let conn = rt.block_on(client.get_multiplexed_async_connection()).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        let (history, batches) = build(&case, far);
        let mut model = LwwModel::new();
        for vc in &history {
            model.apply(vc, now);
        }
        let expected = model.dump();
        let mut first: Option<Dump> = None;
        for (n, delivery) in case.deliveries.iter().enumerate() {
            let order = deliver(&batches, delivery);
            // The model itself must not depend on the order either.
            let mut shuffled = LwwModel::new();
            for vc in order.iter().flat_map(|b| &b.commands) {
                shuffled.apply(vc, now);
            }
            if let Some(d) = diff(&shuffled.dump(), &expected) {
                return Err(TestCaseError::fail(format!("model depends on order: {d}")));
            }
            let engine = if n % 2 == 0 { &small } else { &default };
            let mut conn = conn.clone();
            let actual = rt.block_on(async {
                redis::cmd("FLUSHALL").exec_async(&mut conn).await.unwrap();
                for call in order.chunks(delivery.per_call) {
                    for (i, r) in engine.apply(call, now).await.into_iter().enumerate() {
                        let r = r.map_err(|e| TestCaseError::fail(format!("batch {}: {e}", call[i].header.id)))?;
                        prop_assert_eq!(r.commands, call[i].commands.len());
                    }
                }
                Ok::<_, TestCaseError>(dump(&mut conn).await)
            })?;
            if let Some(d) = diff(&actual, &expected) {
                return Err(TestCaseError::fail(format!("delivery {n} differs from the model: {d}")));
            }
            if let Some(previous) = &first {
                if let Some(d) = diff(&actual, previous) {
                    return Err(TestCaseError::fail(format!("deliveries differ: {d}")));
                }
            } else {
                first = Some(actual);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
