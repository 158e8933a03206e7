//! `regis lag`: how long writes take to reach each region.
//!
//! Two sources, shown side by side:
//!
//! * a probe: a `SET regis:probe:<random>` (value: the publish time, short
//!   TTL) published through the normal path (publisher, topic, queues,
//!   appliers), then each region's Redis is polled until the key appears.
//!   The time from the publish call to its appearance is that region's lag
//!   now, end to end.
//! * the appliers' own figures: the `ReplicationLagMs` values (apply time
//!   minus publish time, per batch) of the CloudWatch embedded-metric lines
//!   that `regis worker` prints, read from `.regis/logs/worker-<region>.log`
//!   when present (the local environment writes them there), summarised as
//!   p50/p99/max over a recent window.
//!
//! The probe is tenant `regis-probe` by default, which the environment
//! file does not restrict, so it goes to every region; a region whose
//! subscription only takes listed tenants never sees it (use `--tenant`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::Rng as _;
use regis_publisher::Command;
use serde_json::{Value, json};

use crate::local_env::{EnvArgs, LocalEnv};
use crate::output::{OpsError, Outcome, parse_seconds, print_json};
use crate::publish::{TopicArgs, connect as connect_publisher, now_ms};
use crate::verify::{Source, connect, named_urls, region_urls};

/// Prefix of probe keys.
pub const PROBE_PREFIX: &str = "regis:probe:";

/// Pause between two looks for the probe in a region.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `regis lag`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    long_about = "Measure replication lag per region. Publishes a probe key (SET regis:probe:<random>, short TTL) \
through the normal path and polls each region's Redis until it appears, reporting the time per region; and reads \
the appliers' ReplicationLagMs figures from .regis/logs/worker-<region>.log, when present, for p50/p99 of recent \
batches. Exits 1 if a region did not show the probe within --timeout.",
    after_help = "Examples:
  regis lag
  regis lag --regions ap-southeast-1,eu-west-1 --json
  regis lag --no-probe --window 60
  regis lag --topic-arn arn:aws:sns:ap-southeast-1:123456789012:regis --redis-urls sg=rediss://...,eu=rediss://..."
)]
pub struct LagArgs {
    /// Regions to measure [default: every region of the environment file].
    #[arg(long, value_delimiter = ',', conflicts_with = "redis_urls")]
    pub regions: Vec<String>,
    /// Redis URLs to poll, `name=url`, comma-separated (instead of the environment file's).
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub redis_urls: Vec<String>,
    /// Tenant of the probe (it must be allowed in every region measured).
    #[arg(long, default_value = "regis-probe")]
    pub tenant: String,
    /// How long to wait for the probe in each region, seconds.
    #[arg(long, default_value = "30", value_parser = parse_seconds, value_name = "SECONDS")]
    pub timeout: Duration,
    /// TTL of the probe key, seconds.
    #[arg(long, default_value_t = 300)]
    pub probe_ttl: u64,
    /// Do not publish a probe; only read the appliers' figures.
    #[arg(long)]
    pub no_probe: bool,
    /// Where the workers' logs are.
    #[arg(long, default_value = ".regis/logs", value_name = "DIR")]
    pub log_dir: PathBuf,
    /// Consider applier figures of the last this many minutes.
    #[arg(long, default_value_t = 15)]
    pub window: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The topic the probe is published to.
    #[command(flatten)]
    pub topic: TopicArgs,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
}

/// Summary of applier lag figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagStats {
    /// Batches counted.
    pub count: usize,
    /// Median, ms.
    pub p50: u64,
    /// 99th percentile, ms.
    pub p99: u64,
    /// Largest, ms.
    pub max: u64,
}

/// The nearest-rank percentile `p` (0..=100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `ReplicationLagMs` values of the EMF lines in a log, of documents
/// stamped at or after `since_ms`, summarised; other lines are skipped.
pub fn lag_stats(log: &str, since_ms: u64) -> Option<LagStats> {
    let mut values: Vec<u64> = Vec::new();
    for line in log.lines() {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains("ReplicationLagMs") {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let stamped = doc["_aws"]["Timestamp"].as_u64().unwrap_or(0);
        if stamped < since_ms {
            continue;
        }
        if let Some(lags) = doc["ReplicationLagMs"].as_array() {
            values.extend(lags.iter().filter_map(Value::as_u64));
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(LagStats {
        count: values.len(),
        p50: percentile(&values, 50.0),
        p99: percentile(&values, 99.0),
        max: *values.last().unwrap_or(&0),
    })
}

fn log_stats(dir: &Path, region: &str, since_ms: u64) -> Option<LagStats> {
    let text = std::fs::read_to_string(dir.join(format!("worker-{region}.log"))).ok()?;
    lag_stats(&text, since_ms)
}

/// Polls a Redis until `key` exists; returns when, or `None` at the deadline.
async fn wait_for(
    source: &Source,
    key: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Option<Duration>, OpsError> {
    let mut conn = connect(source).await?;
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| OpsError::redis(&format!("polling {}", source.name), &e))?;
        let elapsed = started.elapsed();
        if exists == 1 {
            return Ok(Some(elapsed));
        }
        if elapsed > timeout {
            return Ok(None);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn sources(args: &LagArgs, env: Option<&LocalEnv>) -> Result<Vec<Source>, OpsError> {
    if !args.redis_urls.is_empty() {
        return Ok(named_urls(&args.redis_urls));
    }
    let regions: Vec<String> = if args.regions.is_empty() {
        env.map(|e| {
            e.regions
                .iter()
                .filter(|r| r.redis_url.is_some())
                .map(|r| r.name.clone())
                .collect()
        })
        .unwrap_or_default()
    } else {
        args.regions.clone()
    };
    if regions.is_empty() {
        return Err(OpsError::Usage(
            "no regions: give --regions or --redis-urls, or an environment file".into(),
        ));
    }
    region_urls(&regions, env)
}

/// `regis lag`.
pub async fn run(args: LagArgs) -> Result<Outcome, OpsError> {
    let env = args.env.load()?;
    let sources = sources(&args, env.as_ref())?;
    let mut probe: Vec<Option<Option<Duration>>> = vec![None; sources.len()];
    let mut acked = None;
    if !args.no_probe {
        let publisher = connect_publisher(&args.topic, env.as_ref()).await?;
        let id: u64 = rand::rng().random();
        let key = format!("{PROBE_PREFIX}{id:016x}");
        let published = now_ms();
        let command = Command::Set {
            key: key.clone().into_bytes(),
            value: published.to_string().into_bytes(),
            expire_at_ms: Some(published + args.probe_ttl * 1000),
        };
        let started = Instant::now();
        let receipt = publisher
            .publish_for(&args.tenant, command)
            .await
            .map_err(|e| OpsError::invalid("", e))?;
        let waits = join_all(sources.iter().map(|s| wait_for(s, &key, started, args.timeout)));
        let (seen, ack) = tokio::join!(waits, async {
            let r = receipt.wait().await;
            (r, started.elapsed())
        });
        ack.0.map_err(|e| OpsError::service("the probe was not published", e))?;
        acked = Some(ack.1);
        for (slot, result) in probe.iter_mut().zip(seen) {
            *slot = Some(result?);
        }
        let _ = publisher.shutdown().await;
    }
    let since = now_ms().saturating_sub(args.window * 60_000);
    let stats: Vec<Option<LagStats>> = sources
        .iter()
        .map(|s| log_stats(&args.log_dir, &s.name, since))
        .collect();
    let missing: Vec<&str> = sources
        .iter()
        .zip(&probe)
        .filter(|(_, p)| matches!(p, Some(None)))
        .map(|(s, _)| s.name.as_str())
        .collect();

    if args.json {
        let regions: Vec<Value> = sources
            .iter()
            .zip(&probe)
            .zip(&stats)
            .map(|((s, p), st)| {
                json!({
                    "region": s.name,
                    "probe_seen": p.map(|p| p.is_some()),
                    "probe_lag_ms": p.flatten().map(|d| d.as_millis() as u64),
                    "applier": st.map(|st| json!({"batches": st.count, "p50_ms": st.p50, "p99_ms": st.p99, "max_ms": st.max})),
                })
            })
            .collect();
        print_json(&json!({
            "probe_acknowledged_ms": acked.map(|d| d.as_millis() as u64),
            "window_minutes": args.window,
            "regions": regions,
        }));
    } else {
        if let Some(ack) = acked {
            println!("probe acknowledged by SNS after {} ms", ack.as_millis());
        }
        println!(
            "{:<20} {:>10} {:>28}",
            "region",
            "probe",
            format!("applier (last {} min)", args.window)
        );
        for ((s, p), st) in sources.iter().zip(&probe).zip(&stats) {
            let probe = match p {
                None => "-".to_owned(),
                Some(None) => "not seen".to_owned(),
                Some(Some(d)) => format!("{} ms", d.as_millis()),
            };
            let applier = st.map_or_else(
                || "-".to_owned(),
                |st| format!("p50 {} p99 {} ms ({} batches)", st.p50, st.p99, st.count),
            );
            println!("{:<20} {:>10} {:>28}", s.name, probe, applier);
        }
    }
    if !missing.is_empty() {
        eprintln!(
            "regis: the probe did not reach {} within {:?}",
            missing.join(", "),
            args.timeout
        );
        return Ok(Outcome::Found);
    }
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn emf_lines_of_the_window_are_summarised_and_the_rest_skipped() {
        let log = [
            r#"2025-01-01T00:00:00Z INFO worker started"#,
            r#"{"_aws":{"Timestamp":1000,"CloudWatchMetrics":[]},"Region":"eu-west-1","ReplicationLagMs":[500,600]}"#,
            r#"{"_aws":{"Timestamp":5000,"CloudWatchMetrics":[]},"Region":"eu-west-1","ReplicationLagMs":[10,30,20]}"#,
            r#"{"_aws":{"Timestamp":6000,"CloudWatchMetrics":[]},"Region":"eu-west-1","CommandsApplied":3}"#,
            r#"{"ReplicationLagMs": not json"#,
        ]
        .join("\n");
        assert_eq!(
            lag_stats(&log, 2000),
            Some(LagStats {
                count: 3,
                p50: 20,
                p99: 30,
                max: 30
            })
        );
        assert_eq!(lag_stats(&log, 0).unwrap().count, 5);
        assert_eq!(lag_stats(&log, 9000), None);
    }
}
