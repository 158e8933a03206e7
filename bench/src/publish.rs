//! Publisher throughput on one core, and the publisher's memory under
//! backpressure.
//!
//! SNS is replaced by [`MemorySns`], which only counts, so what is measured
//! is the publisher's own work: versioning, serializing, batching,
//! compressing and handing messages over. The runtime is a current-thread
//! tokio runtime: one core does everything, including the background tasks.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_publisher::{MemorySns, Publisher, PublisherConfig};
use serde::Serialize;

use crate::measure::{peak_rss_mib, rate};
use crate::workload::{Keys, Mix, Workload};

/// The topic named in benchmark messages (never called: the sink is in process).
pub const BENCH_TOPIC_ARN: &str = "arn:aws:sns:us-east-1:000000000000:regis-bench";

/// Publisher figures.
#[derive(Debug, Clone, Serialize)]
pub struct PublishFigures {
    /// Commands published per second, `shutdown` (everything handed to SNS) included.
    pub commands_per_sec: f64,
    /// Commands published.
    pub commands: u64,
    /// SNS messages they made.
    pub messages: u64,
    /// Message body bytes per command (compressed, envelope included).
    pub bytes_per_command_compressed: f64,
    /// Command JSON bytes per command before compression.
    pub bytes_per_command_uncompressed: f64,
    /// SNS requests made.
    pub requests: u64,
}

fn config() -> PublisherConfig {
    let mut config = PublisherConfig::new(BENCH_TOPIC_ARN, "us-east-1", 1);
    config.default_tenant = Some("bench".into());
    config
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Publishes `commands` realistic-mix commands on a current-thread runtime
/// in a thread of its own (so it may be called from within another runtime).
pub fn throughput(commands: usize, now_ms: u64) -> Result<PublishFigures, Box<dyn Error>> {
    std::thread::spawn(move || throughput_here(commands, now_ms).map_err(|e| e.to_string()))
        .join()
        .map_err(|_| "the publisher thread panicked")?
        .map_err(Into::into)
}

fn throughput_here(commands: usize, now_ms: u64) -> Result<PublishFigures, Box<dyn Error>> {
    // Generated before timing: what is measured is the publisher, not the
    // workload generator.
    let workload = Workload::new(Mix::Realistic, Keys::Space(100_000), "pub:", 3, now_ms).take(commands);
    current_thread()?.block_on(async move {
        let sns = Arc::new(MemorySns::counting());
        let publisher = Publisher::new(config(), Arc::clone(&sns))?;
        let start = Instant::now();
        for command in workload {
            publisher.publish(command).await?;
        }
        publisher.shutdown().await?;
        let seconds = start.elapsed().as_secs_f64();
        let stats = publisher.stats();
        let n = stats.commands.max(1) as f64;
        Ok(PublishFigures {
            commands_per_sec: rate(stats.commands, seconds),
            commands: stats.commands,
            messages: stats.messages,
            bytes_per_command_compressed: stats.message_bytes as f64 / n,
            bytes_per_command_uncompressed: stats.uncompressed_bytes as f64 / n,
            requests: sns.requests(),
        })
    })
}

/// What the backpressure child reports on stdout (one JSON line).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BackpressureReport {
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// The publisher's buffer cap, MiB.
    pub buffer_cap_mib: f64,
    /// Bytes buffered when the sink was stalled and `publish` was waiting.
    pub buffered_when_blocked_mib: f64,
    /// Command bytes published in all (uncompressed), MiB.
    pub published_mib: f64,
    /// Commands published in all.
    pub commands: u64,
}

/// The child's work: publishes `commands` commands into a stalled sink with
/// a buffer cap of `cap_mib`, waits until `publish` blocks on the cap, then
/// lets the sink go and publishes the rest. Commands are generated as they
/// are published, so only the publisher holds memory.
pub fn backpressure(commands: u64, cap_mib: usize, now_ms: u64) -> Result<BackpressureReport, Box<dyn Error>> {
    current_thread()?.block_on(async move {
        let sns = Arc::new(MemorySns::counting());
        sns.stall();
        let mut config = config();
        config.max_buffered_bytes = cap_mib * 1024 * 1024;
        let publisher = Publisher::new(config, Arc::clone(&sns))?;
        let producer = {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                let mut workload = Workload::new(Mix::Realistic, Keys::Space(100_000), "rss:", 4, now_ms);
                for _ in 0..commands {
                    publisher.publish(workload.next_command()).await?;
                }
                Ok::<_, regis_publisher::PublishError>(())
            })
        };
        // Wait until the buffer is full and the producer is parked on it.
        let cap = (cap_mib * 1024 * 1024) as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut blocked_at = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let before = publisher.stats();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let after = publisher.stats();
            if after.commands == before.commands && after.buffered_bytes > cap / 2 {
                blocked_at = after.buffered_bytes;
                break;
            }
            if producer.is_finished() || Instant::now() > deadline {
                break;
            }
        }
        if blocked_at == 0 {
            return Err("the publisher never blocked on its buffer cap: publish more commands".into());
        }
        sns.resume();
        producer.await??;
        publisher.shutdown().await?;
        let stats = publisher.stats();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        Ok(BackpressureReport {
            peak_rss_mib: peak_rss_mib(std::process::id()).ok_or("cannot read /proc/self/status")?,
            buffer_cap_mib: cap_mib as f64,
            buffered_when_blocked_mib: mib(blocked_at),
            published_mib: mib(stats.uncompressed_bytes),
            commands: stats.commands,
        })
    })
}

/// Runs [`backpressure`] in a child process (this binary's hidden
/// `publisher-rss` subcommand), so its peak memory is the publisher's alone.
pub fn backpressure_in_child(commands: u64, cap_mib: usize) -> Result<BackpressureReport, Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args([
            "publisher-rss",
            "--commands",
            &commands.to_string(),
            "--cap-mib",
            &cap_mib.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("publisher-rss child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
