//! `regis verify`: compare the Redis of several regions key by key.
//!
//! Every region is compared against the first: each key of the first
//! (found with `SCAN`) is read in every region, page by page, in pipelined
//! round trips (see [`regis_applier::snapshot`]), and compared on type, value
//! (members and scores included) and TTL, the TTLs within a tolerance since
//! they are read at slightly different moments. A key the first region has
//! and another lacks is *missing* there; then each other region is scanned
//! for keys the first lacks (*extra*). The applier's version bookkeeping
//! (`regis:v:...`) and the expired data it keeps aside (`regis:x:...`) are
//! not data and are skipped, as are keys under `--ignore` prefixes.
//!
//! Exit 1 when anything differs, with counts per region and a few examples.
//! Writes in flight while verify runs show up as differences; run it again,
//! or when the queues are drained, before acting on a small count.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

use crate::local_env::{EnvArgs, LocalEnv};
use crate::output::{OpsError, Outcome, parse_seconds, print_json, progress, show_bytes};
use regis_applier::snapshot::{self, Content, DEFAULT_SCAN_COUNT, KeyState, is_bookkeeping};

/// `regis verify`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Compare the Redis of several regions key by key: type, value (hash fields, set members, \
sorted-set members and scores, list items), and TTL within a tolerance. Every region is compared with the first; \
keys the first has and another lacks are 'missing' there, keys another has and the first lacks are 'extra'. \
The applier's own keys (version bookkeeping regis:v:..., expired data kept aside regis:x:...) are ignored. Exits 1 when anything differs, naming a few \
example keys. Keys are read with SCAN and pipelined round trips per page of keys, so a million keys take seconds.",
    after_help = "Examples:
  regis verify --regions ap-southeast-1,ap-south-1,eu-west-1
  regis verify --redis-urls redis://10.0.0.5:6379,redis://10.1.0.7:6379 --ttl-tolerance 5 --json
  regis verify --redis-urls sg=redis://127.0.0.1:6401,eu=redis://127.0.0.1:6403 --match 'user:*'

Exit codes: 0 identical, 1 differences found, 2 usage error."
)]
pub struct VerifyArgs {
    /// Regions to compare, comma-separated; Redis URLs from the environment file.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "redis_urls",
        required_unless_present = "redis_urls"
    )]
    pub regions: Vec<String>,
    /// Redis URLs to compare, comma-separated, each optionally named (`name=redis://...`).
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub redis_urls: Vec<String>,
    /// TTLs that differ by at most this many seconds count as equal.
    #[arg(long, default_value = "2", value_parser = parse_seconds, value_name = "SECONDS")]
    pub ttl_tolerance: Duration,
    /// Compare only keys matching this SCAN pattern.
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Skip keys starting with this prefix (repeatable). Bookkeeping keys are always skipped.
    #[arg(long, value_name = "PREFIX")]
    pub ignore: Vec<String>,
    /// SCAN COUNT hint: keys per page.
    #[arg(long, default_value_t = DEFAULT_SCAN_COUNT)]
    pub count: usize,
    /// How many example keys to report.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
}

/// A Redis to compare, with the name reports use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Region name, or the name given with `name=url`, or the URL.
    pub name: String,
    /// The Redis URL.
    pub url: String,
}

/// Names the URLs of `--redis-urls` (`name=redis://...` or a bare URL).
pub fn named_urls(urls: &[String]) -> Vec<Source> {
    urls.iter()
        .map(|u| match u.split_once('=') {
            Some((name, url)) if !name.contains("://") => Source {
                name: name.to_owned(),
                url: url.to_owned(),
            },
            _ => Source {
                name: u.clone(),
                url: u.clone(),
            },
        })
        .collect()
}

/// The regions' Redis URLs from the environment file.
pub fn region_urls(regions: &[String], env: Option<&LocalEnv>) -> Result<Vec<Source>, OpsError> {
    regions
        .iter()
        .map(|name| {
            env.and_then(|e| e.region(name))
                .and_then(|r| r.redis_url.clone())
                .map(|url| Source {
                    name: name.clone(),
                    url,
                })
                .ok_or_else(|| {
                    OpsError::Usage(format!(
                        "no Redis URL for region {name}: give --redis-urls, or an environment file that has it"
                    ))
                })
        })
        .collect()
}

/// How one key differs in one region from the first.
#[derive(Debug, Clone, PartialEq)]
pub enum Difference {
    /// The region lacks the key.
    Missing,
    /// The region has a key the first lacks.
    Extra,
    /// Another type.
    Type(String, String),
    /// Same type, other content.
    Value(String),
    /// TTLs further apart than the tolerance (ms, `None` for no expiry).
    Ttl(Option<i64>, Option<i64>),
}

impl Difference {
    /// The counter this difference goes to.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Extra => "extra",
            _ => "different",
        }
    }

    fn describe(&self) -> String {
        let ttl = |t: &Option<i64>| t.map_or_else(|| "none".to_owned(), |ms| format!("{ms} ms"));
        match self {
            Self::Missing => "missing".into(),
            Self::Extra => "extra (not in the first region)".into(),
            Self::Type(a, b) => format!("type {a} vs {b}"),
            Self::Value(what) => what.clone(),
            Self::Ttl(a, b) => format!("ttl {} vs {}", ttl(a), ttl(b)),
        }
    }
}

/// Compares a key of another region with the first region's. TTLs (read
/// at slightly different moments) are equal within `tolerance`, and a key
/// the first region was about to expire (within `tolerance`) may have
/// expired by the time another region is read: not a difference. A key
/// that lives on in one region and not in another (say, a session extended
/// everywhere but in a region that applied its writes late and lost it) is.
pub fn compare(first: &KeyState, other: Option<&KeyState>, tolerance: Duration) -> Option<Difference> {
    let tolerance_ms = tolerance.as_millis() as u64;
    let expiring = |state: &KeyState| state.pttl_ms.is_some_and(|t| t.unsigned_abs() <= tolerance_ms);
    let Some(other) = other else {
        return (!expiring(first)).then_some(Difference::Missing);
    };
    let (a, b) = (&first.content, &other.content);
    if a.type_name() != b.type_name() {
        return Some(Difference::Type(a.type_name().into(), b.type_name().into()));
    }
    if a != b {
        let what = match (a, b) {
            (Content::String(x), Content::String(y)) => {
                format!("string value differs ({} vs {} bytes)", x.len(), y.len())
            }
            _ => format!(
                "{} content differs ({} vs {} elements)",
                a.type_name(),
                a.len(),
                b.len()
            ),
        };
        return Some(Difference::Value(what));
    }
    let close = match (first.pttl_ms, other.pttl_ms) {
        (None, None) => true,
        (Some(x), Some(y)) => x.abs_diff(y) <= tolerance_ms,
        _ => false,
    };
    (!close).then_some(Difference::Ttl(first.pttl_ms, other.pttl_ms))
}

/// Counts for one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionCounts {
    /// Keys of the first region this one lacks.
    pub missing: u64,
    /// Keys this one has and the first lacks.
    pub extra: u64,
    /// Keys both have that differ.
    pub different: u64,
}

/// What verify found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Region names, the first being the reference.
    pub names: Vec<String>,
    /// Keys of the first region compared.
    pub keys: u64,
    /// Keys of other regions looked at for extras.
    pub other_keys: u64,
    /// Counts per region (index 0 stays zero).
    pub counts: Vec<RegionCounts>,
    /// A few examples: region index, key, difference.
    pub examples: Vec<(usize, Vec<u8>, Difference)>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// True when every region agrees with the first.
    pub fn is_clean(&self) -> bool {
        self.counts.iter().all(|c| *c == RegionCounts::default())
    }

    fn note(&mut self, region: usize, key: &[u8], difference: Difference, max_examples: usize) {
        let counts = &mut self.counts[region];
        match difference.kind() {
            "missing" => counts.missing += 1,
            "extra" => counts.extra += 1,
            _ => counts.different += 1,
        }
        if self.examples.len() < max_examples {
            self.examples.push((region, key.to_vec(), difference));
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let regions: Vec<Value> = self
            .names
            .iter()
            .zip(&self.counts)
            .skip(1)
            .map(|(name, c)| json!({"region": name, "missing": c.missing, "extra": c.extra, "different": c.different}))
            .collect();
        let examples: Vec<Value> = self
            .examples
            .iter()
            .map(|(r, key, d)| json!({"region": self.names[*r], "key": show_bytes(key), "kind": d.kind(), "detail": d.describe()}))
            .collect();
        let secs = self.elapsed.as_secs_f64();
        json!({
            "reference": self.names.first(),
            "keys": self.keys,
            "other_keys": self.other_keys,
            "identical": self.is_clean(),
            "regions": regions,
            "examples": examples,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "keys_per_second": if secs > 0.0 { (self.keys as f64 / secs).round() } else { 0.0 },
        })
    }
}

/// Connects to a Redis URL.
pub async fn connect(source: &Source) -> Result<MultiplexedConnection, OpsError> {
    let client = redis::Client::open(source.url.as_str())
        .map_err(|e| OpsError::invalid(format!("{}: bad Redis URL", source.name), e))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| OpsError::redis(&format!("cannot connect to {}", source.name), &e))
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// SCAN pattern.
    pub pattern: Option<String>,
    /// Prefixes to skip.
    pub ignore: Vec<Vec<u8>>,
    /// SCAN COUNT.
    pub count: usize,
    /// TTL tolerance.
    pub ttl_tolerance: Duration,
    /// Examples to keep.
    pub examples: usize,
}

impl Options {
    fn skip(&self, key: &[u8]) -> bool {
        is_bookkeeping(key) || self.ignore.iter().any(|p| key.starts_with(p))
    }
}

/// Compares every source with the first.
pub async fn verify(sources: &[Source], options: &Options) -> Result<Report, OpsError> {
    let started = Instant::now();
    let mut conns = try_join_all(sources.iter().map(connect)).await?;
    let mut report = Report {
        names: sources.iter().map(|s| s.name.clone()).collect(),
        counts: vec![RegionCounts::default(); sources.len()],
        ..Report::default()
    };
    let bar = progress(None, "comparing keys");
    let pattern = options.pattern.as_deref();

    // The first region's keys, read everywhere.
    let mut cursor = 0;
    loop {
        let (next, keys) = snapshot::scan_page(&mut conns[0], cursor, pattern, options.count)
            .await
            .map_err(|e| OpsError::redis(&format!("SCAN on {}", sources[0].name), &e))?;
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !options.skip(k)).collect();
        let reads = try_join_all(conns.iter_mut().zip(sources).map(|(conn, source)| {
            let keys = &keys;
            async move {
                snapshot::read_keys(conn, keys, false)
                    .await
                    .map_err(|e| OpsError::redis(&format!("reading {}", source.name), &e))
            }
        }))
        .await?;
        for (i, key) in keys.iter().enumerate() {
            // Gone from the first region since the SCAN (expired, deleted): nothing to compare.
            let Some(first) = &reads[0][i].state else { continue };
            report.keys += 1;
            for (region, read) in reads.iter().enumerate().skip(1) {
                if let Some(d) = compare(first, read[i].state.as_ref(), options.ttl_tolerance) {
                    report.note(region, key, d, options.examples);
                }
            }
        }
        bar.set_position(report.keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }

    // Keys the other regions have and the first lacks.
    for region in 1..sources.len() {
        let mut cursor = 0;
        loop {
            let (next, keys) = snapshot::scan_page(&mut conns[region], cursor, pattern, options.count)
                .await
                .map_err(|e| OpsError::redis(&format!("SCAN on {}", sources[region].name), &e))?;
            let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !options.skip(k)).collect();
            report.other_keys += keys.len() as u64;
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("EXISTS").arg(key);
                }
                let exists: Vec<i64> = pipe
                    .query_async(&mut conns[0])
                    .await
                    .map_err(|e| OpsError::redis(&format!("reading {}", sources[0].name), &e))?;
                for (key, n) in keys.iter().zip(exists) {
                    if n == 0 {
                        report.note(region, key, Difference::Extra, options.examples);
                    }
                }
            }
            bar.inc(keys.len() as u64);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// `regis verify`.
pub async fn run(args: VerifyArgs) -> Result<Outcome, OpsError> {
    let env = args.env.load()?;
    let sources = if args.redis_urls.is_empty() {
        region_urls(&args.regions, env.as_ref())?
    } else {
        named_urls(&args.redis_urls)
    };
    if sources.len() < 2 {
        return Err(OpsError::Usage(
            "give at least two regions (or Redis URLs) to compare".into(),
        ));
    }
    let options = Options {
        pattern: args.pattern.clone(),
        ignore: args.ignore.iter().map(|p| p.as_bytes().to_vec()).collect(),
        count: args.count.max(1),
        ttl_tolerance: args.ttl_tolerance,
        examples: args.examples,
    };
    let report = verify(&sources, &options).await?;
    if args.json {
        print_json(&report.to_json());
    } else {
        let secs = report.elapsed.as_secs_f64().max(1e-9);
        println!(
            "compared {} keys of {} with {} in {:.1}s ({:.0} keys/s)",
            report.keys,
            report.names[0],
            report.names[1..].join(", "),
            secs,
            report.keys as f64 / secs
        );
        for (name, c) in report.names.iter().zip(&report.counts).skip(1) {
            println!(
                "  {name}: {} missing, {} extra, {} different",
                c.missing, c.extra, c.different
            );
        }
        for (region, key, d) in &report.examples {
            println!(
                "  e.g. {} in {}: {}",
                show_bytes(key),
                report.names[*region],
                d.describe()
            );
        }
        println!("{}", if report.is_clean() { "identical" } else { "DIVERGED" });
    }
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Found
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(content: Content, pttl_ms: Option<i64>) -> KeyState {
        KeyState { content, pttl_ms }
    }

    #[test]
    fn keys_compare_on_type_value_and_ttl_within_tolerance() {
        let tol = Duration::from_secs(2);
        let a = state(Content::String(b"v".to_vec()), Some(10_000));
        assert_eq!(compare(&a, Some(&a.clone()), tol), None);
        assert_eq!(
            compare(&a, Some(&state(Content::String(b"v".to_vec()), Some(8_500))), tol),
            None
        );
        assert_eq!(
            compare(&a, Some(&state(Content::String(b"v".to_vec()), Some(7_000))), tol),
            Some(Difference::Ttl(Some(10_000), Some(7_000)))
        );
        assert_eq!(
            compare(&a, Some(&state(Content::String(b"v".to_vec()), None)), tol),
            Some(Difference::Ttl(Some(10_000), None))
        );
        assert_eq!(compare(&a, None, tol), Some(Difference::Missing));
        // About to expire in the first region: gone elsewhere is no difference.
        let expiring = state(Content::String(b"v".to_vec()), Some(1_500));
        assert_eq!(compare(&expiring, None, tol), None);
        assert_eq!(
            compare(&state(Content::String(b"v".to_vec()), None), None, tol),
            Some(Difference::Missing)
        );
        // A sliding TTL extended in one region and not in the other.
        assert_eq!(
            compare(
                &state(Content::String(b"v".to_vec()), Some(600_000)),
                Some(&state(Content::String(b"v".to_vec()), Some(4_000))),
                tol
            ),
            Some(Difference::Ttl(Some(600_000), Some(4_000)))
        );
        assert!(matches!(
            compare(&a, Some(&state(Content::String(b"w".to_vec()), Some(10_000))), tol),
            Some(Difference::Value(_))
        ));
        assert_eq!(
            compare(&a, Some(&state(Content::Set(vec![b"v".to_vec()]), Some(10_000))), tol),
            Some(Difference::Type("string".into(), "set".into()))
        );
        let z1 = state(Content::ZSet(vec![(b"m".to_vec(), 1.0)]), None);
        let z2 = state(Content::ZSet(vec![(b"m".to_vec(), 2.0)]), None);
        assert!(matches!(compare(&z1, Some(&z2), tol), Some(Difference::Value(_))));
    }

    #[test]
    fn urls_can_be_named() {
        let sources = named_urls(&["sg=redis://127.0.0.1:1".into(), "redis://h:2/0?x=y".into()]);
        assert_eq!(
            sources[0],
            Source {
                name: "sg".into(),
                url: "redis://127.0.0.1:1".into()
            }
        );
        assert_eq!(
            sources[1],
            Source {
                name: "redis://h:2/0?x=y".into(),
                url: "redis://h:2/0?x=y".into()
            }
        );
    }

    #[test]
    fn reports_count_per_region_and_keep_a_few_examples() {
        let mut report = Report {
            names: vec!["a".into(), "b".into()],
            counts: vec![RegionCounts::default(); 2],
            ..Report::default()
        };
        assert!(report.is_clean());
        report.note(1, b"k1", Difference::Missing, 1);
        report.note(1, b"k2", Difference::Extra, 1);
        report.note(1, b"k3", Difference::Ttl(None, Some(5)), 1);
        assert_eq!(
            report.counts[1],
            RegionCounts {
                missing: 1,
                extra: 1,
                different: 1
            }
        );
        assert_eq!(report.examples.len(), 1);
        let json = report.to_json();
        assert_eq!(json["identical"], false);
        assert_eq!(json["regions"][0]["region"], "b");
        assert_eq!(json["examples"][0]["key"], "k1");
    }
}
