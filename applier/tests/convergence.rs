//! Convergence whatever the delivery: random multi-origin histories of
//! element writes, whole-key writes (with type changes) and expiry writes
//! (expiries already passed, passing during the history, or far ahead;
//! PERSIST; replacements carrying an expiry), cut into batches and applied
//! to a real server (Redis and Valkey) in last-writer-wins mode three ways:
//!
//! * **on time**: in publish order, each batch with the applier's clock at
//!   its own time, so expiries pass while the history is applied;
//! * **late**: the same history stamped a day earlier (relative to the
//!   server's real clock, which Redis expires keys by), delivered in another
//!   order with duplicates by an applier whose clock is a day past it, as a
//!   region catching up on a backlog;
//! * **shuffled**: on time, in a random order with duplicates, several
//!   batches per call.
//!
//! Every run must end in the state of the reference model (the writes
//! replayed in version order) and in the on-time run's state, byte for byte
//! and to the millisecond of every expiry, judged at the same moment
//! relative to the history.

mod redis_support;

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::aio::MultiplexedConnection;
use redis_support::{Dump, batch, diff_within, dump, now_ms};
use regis_applier::apply::model::LwwModel;
use regis_applier::apply::{Engine, RedisOptions};
use regis_testkit::{RedisServer, ServerEngine};
use regis_wire::{Batch, Command, HybridClock, Mode, VersionedCommand};

/// Proptest cases per run (each applies the history three times).
const CASES: u32 = 1000;

/// Where the histories' versions start relative to the server's clock: an
/// hour ahead for the on-time runs (Redis must not expire anything by its own
/// clock while the applier's clock walks through the history), a day behind
/// for the late run.
const ON_TIME_AHEAD_MS: u64 = 3_600_000;
const LATE_BEHIND_MS: u64 = 24 * 3_600_000;
/// The moment, relative to a history's start, at which runs are compared:
/// after every "near" expiry and long before every far one.
const COMPARE_AT_MS: u64 = 2_000;
/// Near expiries lie within this many ms of the history's start: before,
/// during and just after its writes (which span up to a few hundred ms).
const NEAR_MS: u64 = 400;
/// Far expiries: a month after the history's start.
const FAR_MS: u64 = 30 * 24 * 3_600_000;

const STRING_KEYS: [&[u8]; 2] = [b"s0", b"s\xff"];
const HASH_KEYS: [&[u8]; 2] = [b"h0", b"{h}\x00"];
const SET_KEYS: [&[u8]; 1] = [b"t0"];
const ZSET_KEYS: [&[u8]; 1] = [b"z0"];
const ELEMENTS: [&[u8]; 4] = [b"a", b"b", b"c", b"\xff\x00"];
const VALUES: [&[u8]; 4] = [b"1", b"2", b"\x00\xfe", b""];
const SCORES: [f64; 5] = [0.5, -1.0, 2.0, 1e10, 0.1];

/// An expiry relative to the history's start.
#[derive(Debug, Clone, Copy)]
enum Exp {
    /// `NEAR_MS`-bounded offset: passes before, during or after the writes.
    Near(u64),
    /// A month ahead (plus a few seconds, to tell them apart).
    Far(u64),
}

/// A command with its key, elements and expiry still symbolic.
#[derive(Debug, Clone)]
enum Spec {
    Set(usize, usize, Option<Exp>),
    /// A whole-key write of another type to a string key (0 hash, 1 set,
    /// 2 sorted set): the key changes type.
    Retype(usize, u8, Vec<(usize, usize)>, Option<Exp>),
    Del(u8, usize),
    Expire(u8, usize, Option<Exp>),
    HSet(usize, Vec<(usize, usize)>),
    HDel(usize, Vec<usize>),
    HReplace(usize, Vec<(usize, usize)>, Option<Exp>),
    SAdd(Vec<usize>),
    SRem(Vec<usize>),
    SReplace(Vec<usize>, Option<Exp>),
    ZAdd(Vec<(usize, usize)>),
    ZRem(Vec<usize>),
    ZReplace(Vec<(usize, usize)>, Option<Exp>),
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
fn exp() -> impl Strategy<Value = Option<Exp>> {
    prop_oneof![
        1 => Just(None),
        3 => (0..NEAR_MS).prop_map(|o| Some(Exp::Near(o))),
        1 => (0u64..4).prop_map(|i| Some(Exp::Far(i))),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        2 => (0..STRING_KEYS.len(), 0..VALUES.len(), exp()).prop_map(|(k, v, e)| Spec::Set(k, v, e)),
        1 => (0..STRING_KEYS.len(), 0u8..3, hpairs(0), exp()).prop_map(|(k, t, p, e)| Spec::Retype(k, t, p, e)),
        1 => (0u8..4, 0..2usize).prop_map(|(f, k)| Spec::Del(f, k)),
        4 => (0u8..4, 0..2usize, exp()).prop_map(|(f, k, e)| Spec::Expire(f, k, e)),
        2 => (0..HASH_KEYS.len(), hpairs(1)).prop_map(|(k, p)| Spec::HSet(k, p)),
        1 => (0..HASH_KEYS.len(), elems()).prop_map(|(k, e)| Spec::HDel(k, e)),
        1 => (0..HASH_KEYS.len(), hpairs(0), exp()).prop_map(|(k, p, e)| Spec::HReplace(k, p, e)),
        2 => elems().prop_map(Spec::SAdd),
        1 => elems().prop_map(Spec::SRem),
        1 => (proptest::collection::vec(0..ELEMENTS.len(), 0..4), exp()).prop_map(|(m, e)| Spec::SReplace(m, e)),
        2 => zpairs(1).prop_map(Spec::ZAdd),
        1 => elems().prop_map(Spec::ZRem),
        1 => (zpairs(0), exp()).prop_map(|(p, e)| Spec::ZReplace(p, e)),
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

fn resolve(spec: &Spec, base: u64) -> Command {
    let at = |e: &Option<Exp>| {
        e.map(|e| match e {
            Exp::Near(o) => base + o,
            Exp::Far(i) => base + FAR_MS + i * 1_000,
        })
    };
    let el = |i: &usize| ELEMENTS[*i].to_vec();
    let hp = |p: &Vec<(usize, usize)>| p.iter().map(|(f, v)| (el(f), VALUES[*v].to_vec())).collect();
    let zp = |p: &Vec<(usize, usize)>| p.iter().map(|(s, m)| (SCORES[*s % SCORES.len()], el(m))).collect();
    match spec {
        Spec::Set(k, v, e) => Command::Set {
            key: STRING_KEYS[*k].to_vec(),
            value: VALUES[*v].to_vec(),
            expire_at_ms: at(e),
        },
        Spec::Retype(k, t, p, e) => {
            let key = STRING_KEYS[*k].to_vec();
            match t {
                0 => Command::HReplace {
                    key,
                    fields: hp(p),
                    expire_at_ms: at(e),
                },
                1 => Command::SReplace {
                    key,
                    members: p.iter().map(|(m, _)| el(m)).collect(),
                    expire_at_ms: at(e),
                },
                _ => Command::ZReplace {
                    key,
                    members: p.iter().map(|(m, s)| (SCORES[*s % SCORES.len()], el(m))).collect(),
                    expire_at_ms: at(e),
                },
            }
        }
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

/// One out-of-order delivery: the order of the batches (sort keys),
/// duplicates (which batch, and where it is inserted), and how many batches
/// go per `apply`.
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
    /// The late run's delivery, then the shuffled run's.
    deliveries: Vec<Delivery>,
}

fn case() -> impl Strategy<Value = Case> {
    let delivery = (
        proptest::collection::vec(any::<u32>(), 64),
        proptest::collection::vec((0..64usize, 0..64usize), 0..4),
        1..5usize,
    )
        .prop_map(|(order, dups, per_call)| Delivery { order, dups, per_call });
    let step = prop_oneof![3 => Just(0u64), 3 => 1..4u64, 1 => 4..40u64];
    (
        2..=3usize,
        proptest::collection::vec((0..3usize, step, spec()), 1..40),
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

/// Turns a case into versioned commands and batches (each origin's commands
/// in its publish order, cut into batches), the history starting at `base`.
fn build(case: &Case, base: u64) -> (Vec<VersionedCommand>, Vec<Batch>) {
    let mut clocks: Vec<HybridClock> = (0..case.origins).map(|o| HybridClock::new(o as u16 + 1)).collect();
    let mut wall = base;
    let mut per_origin: Vec<Vec<VersionedCommand>> = vec![Vec::new(); case.origins];
    let mut all = Vec::new();
    for (origin, step, spec) in &case.ops {
        let origin = origin % case.origins;
        wall += step;
        let vc = VersionedCommand::new(clocks[origin].tick(wall), resolve(spec, base));
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

/// When a batch was published: the time of its newest command.
fn published(b: &Batch) -> u64 {
    b.commands.iter().map(|c| c.version.millis).max().unwrap_or(0)
}

/// The batches in publish order.
fn on_time(batches: &[Batch]) -> Vec<&Batch> {
    let mut out: Vec<&Batch> = batches.iter().collect();
    out.sort_by_key(|b| (published(b), b.commands[0].version));
    out
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

/// How a run's applier reads the time for a call.
#[derive(Clone, Copy)]
enum Clock {
    /// The time of the newest batch delivered so far (never going back).
    Delivered,
    /// A fixed reading.
    At(u64),
}

/// Applies `calls` after a FLUSHALL and reads the node back.
async fn run(
    engine: &Engine,
    conn: &mut MultiplexedConnection,
    calls: &[&[&Batch]],
    clock: Clock,
) -> Result<Dump, TestCaseError> {
    redis::cmd("FLUSHALL").exec_async(conn).await.unwrap();
    let mut delivered = 0;
    for call in calls {
        delivered = call.iter().map(|b| published(b)).fold(delivered, u64::max);
        let now = match clock {
            Clock::Delivered => delivered,
            Clock::At(now) => now,
        };
        for (i, r) in engine.apply(call, now).await.into_iter().enumerate() {
            let r = r.map_err(|e| TestCaseError::fail(format!("batch {}: {e}", call[i].header.id)))?;
            prop_assert_eq!(r.commands, call[i].commands.len());
        }
    }
    Ok(dump(conn).await)
}

/// A dump as an observer sees it at `base + COMPARE_AT_MS`, with expiries
/// relative to `base`: keys whose expiry has passed by then are gone (Redis
/// removes them by itself when its clock gets there).
fn relative(d: &Dump, base: u64) -> Dump {
    d.iter()
        .filter(|(_, (_, x))| x.is_none_or(|x| x > base + COMPARE_AT_MS))
        .map(|(k, (v, x))| (k.clone(), (v.clone(), x.map(|x| x - base))))
        .collect()
}

fn on_time_late_and_shuffled_deliveries_converge_to_the_model(on: ServerEngine) {
    let server = RedisServer::start_engine(on);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        let real = now_ms();
        let on_time_base = real + ON_TIME_AHEAD_MS;
        let late_base = real - LATE_BEHIND_MS;
        let mut conn = conn.clone();

        // On time: publish order, one batch per call, the clock at each batch.
        let (history, batches) = build(&case, on_time_base);
        let mut model = LwwModel::new();
        for vc in &history {
            model.apply(vc);
        }
        let expected = relative(&model.dump(on_time_base + COMPARE_AT_MS), on_time_base);
        let ordered = on_time(&batches);
        let calls: Vec<&[&Batch]> = ordered.chunks(1).collect();
        let on_time_state = relative(
            &rt.block_on(run(&default, &mut conn, &calls, Clock::Delivered))?,
            on_time_base,
        );
        if let Some(d) = diff_within(&on_time_state, &expected, 0) {
            return Err(TestCaseError::fail(format!("on time differs from the model: {d}")));
        }

        // Shuffled, on time: several batches per call, duplicates.
        let shuffle = &case.deliveries[1];
        let order = deliver(&batches, shuffle);
        let calls: Vec<&[&Batch]> = order.chunks(shuffle.per_call).collect();
        let engine = if shuffle.per_call % 2 == 0 { &small } else { &default };
        let shuffled = relative(
            &rt.block_on(run(engine, &mut conn, &calls, Clock::Delivered))?,
            on_time_base,
        );
        if let Some(d) = diff_within(&shuffled, &on_time_state, 0) {
            return Err(TestCaseError::fail(format!("shuffled differs from on time: {d}")));
        }

        // Late: the same history a day ago, caught up in another order.
        let (late_history, late_batches) = build(&case, late_base);
        let mut late_model = LwwModel::new();
        for vc in &late_history {
            late_model.apply(vc);
        }
        let late_expected = relative(&late_model.dump(real), late_base);
        let catch_up = &case.deliveries[0];
        let order = deliver(&late_batches, catch_up);
        let calls: Vec<&[&Batch]> = order.chunks(catch_up.per_call).collect();
        let late = relative(
            &rt.block_on(run(&small, &mut conn, &calls, Clock::At(real)))?,
            late_base,
        );
        if let Some(d) = diff_within(&late, &late_expected, 0) {
            return Err(TestCaseError::fail(format!("late differs from the model: {d}")));
        }
        if let Some(d) = diff_within(&late, &on_time_state, 0) {
            return Err(TestCaseError::fail(format!("late differs from on time: {d}")));
        }
        Ok(())
    });
    eprintln!("{CASES} cases on {on} in {:?}", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
}

regis_testkit::on_each_engine!(sync: on_time_late_and_shuffled_deliveries_converge_to_the_model);
