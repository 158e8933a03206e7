//! `regis-demo`: a sample hotel-booking service writing through the regis
//! publisher into the local three-region environment (`make up`), then a
//! report of what each region received.
//!
//! The workload: a hotel catalogue (hashes of several fields, amenity sets,
//! per-city rate sorted sets), guest sessions with TTLs, rounds of
//! availability and rate updates, promotions that expire, check-outs that
//! delete sessions. Hotels in Singapore belong to the tenant `hotel-sg`,
//! which the topology restricts to two regions; the rest are unrestricted.
//!
//! Environment: `REGIS_ENV_FILE` (default `.regis/env.json`),
//! `REGIS_DEMO_HOTELS` (default 300), `REGIS_DEMO_TIMEOUT_SECS` (default 120).
//! Exits 0 when every region converged to exactly what it may hold, 1 when
//! not, 2 when the demo could not run.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use regis_aws::clock::now_ms;
use regis_demo::env::Env;
use regis_demo::model::{Model, State, diff, snapshot};
use regis_publisher::{Command, Publisher};

/// The unrestricted tenant of the demo.
const GLOBAL_TENANT: &str = "hotel-global";
/// The tenant the topology restricts (data residency).
const SG_TENANT: &str = "hotel-sg";

const CITIES: &[&str] = &["London", "Mumbai", "Paris", "Bangkok", "Dublin", "Delhi", "Tokyo"];
const AMENITIES: &[&str] = &["wifi", "pool", "spa", "gym", "bar", "parking", "breakfast", "shuttle"];
const STATUSES: &[&str] = &["open", "full", "renovating", "open"];

/// Commands of one tenant, in publish order, with the state they lead to.
#[derive(Default)]
struct Stream {
    commands: Vec<Command>,
    model: Model,
}

impl Stream {
    fn push(&mut self, command: Command) {
        self.model.apply(&command);
        self.commands.push(command);
    }
}

struct Workload {
    global: Stream,
    sg: Stream,
    hotels: usize,
    sessions: usize,
}

fn b(s: impl AsRef<str>) -> Vec<u8> {
    s.as_ref().as_bytes().to_vec()
}

/// The whole workload, generated up front so its final state is known.
fn workload(publisher: &Publisher, prefix: &str, hotels: usize, seed: u64) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = Workload {
        global: Stream::default(),
        sg: Stream::default(),
        hotels,
        sessions: hotels,
    };
    // One hotel in four is in Singapore (tenant hotel-sg).
    let city_of = |id: usize| {
        if id % 4 == 0 {
            "Singapore"
        } else {
            CITIES[id % CITIES.len()]
        }
    };
    let hotel = |id: usize| format!("{prefix}hotel:{id}");
    let rates = |city: &str| format!("{prefix}rates:{city}");

    // The catalogue.
    for id in 0..hotels {
        let city = city_of(id);
        let stream = if city == "Singapore" { &mut w.sg } else { &mut w.global };
        let rate = 60 + rng.random_range(0..400u32);
        stream.push(Command::HSet {
            key: b(hotel(id)),
            fields: vec![
                (b("name"), b(format!("Hotel {id}"))),
                (b("city"), b(city)),
                (b("stars"), b(rng.random_range(2..=5u32).to_string())),
                (b("rate"), b(rate.to_string())),
                (b("status"), b("open")),
                (b("rooms"), b(rng.random_range(20..400u32).to_string())),
            ],
        });
        let amenities = (0..rng.random_range(3..=5))
            .map(|_| b(AMENITIES[rng.random_range(0..AMENITIES.len())]))
            .collect();
        stream.push(Command::SAdd {
            key: b(format!("{}:amenities", hotel(id))),
            members: amenities,
        });
        stream.push(Command::ZAdd {
            key: b(rates(city)),
            members: vec![(f64::from(rate), b(hotel(id)))],
        });
    }

    // Guest sessions, half an hour each.
    for n in 0..w.sessions {
        let token = format!("tok-{:016x}", rng.random::<u64>());
        let session = publisher.set_ex(format!("{prefix}session:{n}"), token, Duration::from_secs(1800));
        w.global.push(session);
    }

    // Rounds of availability and rate updates, promotions, amenity changes.
    for _ in 0..hotels * 2 {
        let id = rng.random_range(0..hotels);
        let city = city_of(id);
        let stream = if city == "Singapore" { &mut w.sg } else { &mut w.global };
        match rng.random_range(0..6u32) {
            0 | 1 => {
                let rate = 60 + rng.random_range(0..400u32);
                stream.push(Command::HSet {
                    key: b(hotel(id)),
                    fields: vec![
                        (b("rate"), b(rate.to_string())),
                        (b("status"), b(STATUSES[rng.random_range(0..STATUSES.len())])),
                    ],
                });
                stream.push(Command::ZAdd {
                    key: b(rates(city)),
                    members: vec![(f64::from(rate), b(hotel(id)))],
                });
            }
            2 => stream.push(publisher.set_ex(
                format!("{}:promo", hotel(id)),
                format!("{}% off", 5 * rng.random_range(1..6u32)),
                Duration::from_secs(3600),
            )),
            3 => stream.push(Command::SRem {
                key: b(format!("{}:amenities", hotel(id))),
                members: vec![b(AMENITIES[rng.random_range(0..AMENITIES.len())])],
            }),
            4 => stream.push(Command::SAdd {
                key: b(format!("{}:amenities", hotel(id))),
                members: vec![b(AMENITIES[rng.random_range(0..AMENITIES.len())])],
            }),
            _ => stream.push(Command::HDel {
                key: b(hotel(id)),
                fields: vec![b("rooms")],
            }),
        }
    }

    // Check-outs: a third of the sessions end; a few promotions are withdrawn.
    for n in (0..w.sessions).step_by(3) {
        w.global.push(Command::Del {
            key: b(format!("{prefix}session:{n}")),
        });
    }
    for id in (0..hotels).step_by(7) {
        let stream = if city_of(id) == "Singapore" {
            &mut w.sg
        } else {
            &mut w.global
        };
        stream.push(Command::Del {
            key: b(format!("{}:promo", hotel(id))),
        });
    }
    w
}

/// Publishes a stream in bursts, the way a service's requests arrive.
async fn publish(publisher: &Publisher, tenant: &str, commands: &[Command]) -> Result<(), String> {
    for burst in commands.chunks(40) {
        for command in burst {
            publisher
                .publish_for(tenant, command.clone())
                .await
                .map_err(|e| format!("publish for {tenant}: {e}"))?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// What one region's worker reported (EMF lines in its log) since `offset`.
#[derive(Default)]
struct Applied {
    batches: u64,
    commands: u64,
    lag_ms: Vec<u64>,
    permanent_failures: u64,
    retryable_failures: u64,
}

fn log_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_emf(path: &Path, offset: u64) -> Option<Applied> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let mut applied = Applied::default();
    for line in text.lines().filter(|l| l.starts_with('{') && l.contains("\"_aws\"")) {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let count = |name: &str| doc.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        applied.batches += count("Batches");
        applied.commands += count("CommandsApplied");
        applied.permanent_failures += count("PermanentFailures");
        applied.retryable_failures += count("RetryableFailures");
        if let Some(lags) = doc.get("ReplicationLagMs").and_then(serde_json::Value::as_array) {
            applied.lag_ms.extend(lags.iter().filter_map(serde_json::Value::as_u64));
        }
    }
    Some(applied)
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

struct RegionResult {
    name: String,
    expected: usize,
    actual: usize,
    converged_after: Option<Duration>,
    problem: Option<String>,
}

async fn run() -> Result<bool, String> {
    let env = Env::load()?;
    let hotels: usize = std::env::var("REGIS_DEMO_HOTELS")
        .ok()
        .map(|v| v.parse().map_err(|e| format!("REGIS_DEMO_HOTELS={v}: {e}")))
        .transpose()?
        .unwrap_or(300);
    let timeout = Duration::from_secs(
        std::env::var("REGIS_DEMO_TIMEOUT_SECS")
            .ok()
            .map(|v| v.parse().map_err(|e| format!("REGIS_DEMO_TIMEOUT_SECS={v}: {e}")))
            .transpose()?
            .unwrap_or(120),
    );

    let publisher = env.publisher(GLOBAL_TENANT).await.map_err(|e| e.to_string())?;
    let run_id = format!("{:x}", now_ms());
    let prefix = format!("demo:{run_id}:");
    let w = workload(&publisher, &prefix, hotels, 0xd3_30);
    let sg_regions = env.regions_of(SG_TENANT);

    // Where the workers' logs are now, to read only this run's metrics.
    let logs = Env::logs_dir();
    let log_of = |region: &str| logs.join(format!("worker-{region}.log"));
    let offsets: BTreeMap<String, u64> = env
        .region_names()
        .into_iter()
        .map(|r| (r.clone(), log_size(&log_of(&r))))
        .collect();

    let total = w.global.commands.len() + w.sg.commands.len();
    println!(
        "regis demo: {total} commands ({} hotels, {} sessions) from {}, key prefix {prefix}",
        w.hotels, w.sessions, env.topic_region
    );
    println!(
        "  {SG_TENANT}: {} commands, may reach {}",
        w.sg.commands.len(),
        sg_regions.join(", ")
    );
    let started = Instant::now();
    let (global, sg) = tokio::join!(
        publish(&publisher, GLOBAL_TENANT, &w.global.commands),
        publish(&publisher, SG_TENANT, &w.sg.commands)
    );
    global?;
    sg?;
    publisher.flush().await.map_err(|e| format!("flush: {e}"))?;
    let published = started.elapsed();
    let stats = publisher.stats();
    println!(
        "  published in {:.1}s: {} messages ({:.1} commands per message, {} KiB on the wire), {} retries, {} failed",
        published.as_secs_f64(),
        stats.messages_published,
        stats.commands as f64 / stats.messages_published.max(1) as f64,
        stats.message_bytes / 1024,
        stats.retries,
        stats.failed_messages
    );

    // What each region must hold: everything unrestricted, plus hotel-sg's
    // data where it is allowed, and nothing else.
    let expected_of = |region: &str| -> State {
        let mut state = w.global.model.state.clone();
        if sg_regions.iter().any(|r| r == region) {
            state.extend(w.sg.model.state.clone());
        }
        state
    };
    // Poll every region until it holds exactly that, or time runs out;
    // "converged" is counted from the end of publishing.
    let mut regions = Vec::new();
    for region in env.region_names() {
        let conn = env.redis(&region).await.map_err(|e| format!("{region}'s Redis: {e}"))?;
        let expected = expected_of(&region);
        regions.push((region, conn, expected));
    }
    let mut results: Vec<Option<RegionResult>> = regions.iter().map(|_| None).collect();
    let publish_end = Instant::now();
    loop {
        let timed_out = publish_end.elapsed() > timeout;
        for ((region, conn, expected), result) in regions.iter_mut().zip(results.iter_mut()) {
            if result.as_ref().is_some_and(|r| r.converged_after.is_some()) {
                continue;
            }
            let actual = snapshot(conn, &prefix).await.map_err(|e| format!("{region}: {e}"))?;
            let problem = diff(expected, &actual);
            *result = Some(RegionResult {
                name: region.clone(),
                expected: expected.len(),
                actual: actual.len(),
                converged_after: problem.is_none().then(|| publish_end.elapsed()),
                problem,
            });
        }
        if timed_out
            || results
                .iter()
                .all(|r| r.as_ref().is_some_and(|r| r.converged_after.is_some()))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let results: Vec<RegionResult> = results.into_iter().flatten().collect();
    // Let the workers print the metrics of their last cycle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!();
    println!(
        "{:<16} {:>6} {:>8} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8}",
        "region", "keys", "expected", "converged", "batches", "cmds/batch", "lag p50", "lag p99", "failures"
    );
    for r in &results {
        let applied = read_emf(&log_of(&r.name), offsets[&r.name]);
        let (batches, per_batch, p50, p99, failures) = match &applied {
            Some(a) => {
                let mut lags = a.lag_ms.clone();
                lags.sort_unstable();
                let ms = |v: Option<u64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "-".into());
                (
                    a.batches.to_string(),
                    format!("{:.1}", a.commands as f64 / a.batches.max(1) as f64),
                    ms(percentile(&lags, 50.0)),
                    ms(percentile(&lags, 99.0)),
                    format!("{}p/{}r", a.permanent_failures, a.retryable_failures),
                )
            }
            None => ("n/a".into(), "n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()),
        };
        let converged = match r.converged_after {
            Some(after) => format!("{:.1}s", after.as_secs_f64()),
            None => "NO".into(),
        };
        println!(
            "{:<16} {:>6} {:>8} {:>10} {:>8} {:>10} {:>8} {:>8} {:>8}",
            r.name, r.actual, r.expected, converged, batches, per_batch, p50, p99, failures
        );
    }
    publisher.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;

    let failed: Vec<&RegionResult> = results.iter().filter(|r| r.converged_after.is_none()).collect();
    println!();
    for r in &failed {
        println!("{}: {}", r.name, r.problem.as_deref().unwrap_or("?"));
    }
    let excluded: Vec<String> = env
        .region_names()
        .into_iter()
        .filter(|r| !sg_regions.contains(r))
        .collect();
    if failed.is_empty() {
        println!(
            "CONVERGED: all {} regions hold exactly what they may ({SG_TENANT} data absent from {})",
            results.len(),
            if excluded.is_empty() {
                "none".to_owned()
            } else {
                excluded.join(", ")
            }
        );
        Ok(true)
    } else {
        let names: Vec<&str> = failed.iter().map(|r| r.name.as_str()).collect();
        println!("NOT CONVERGED after {timeout:?}: {}", names.join(", "));
        Ok(false)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("regis-demo: {e}");
            ExitCode::from(2)
        }
    }
}
