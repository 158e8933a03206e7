//! Commands per second versioned, serialized, batched, compressed and handed
//! to an in-process SNS, on one core.
//!
//! `cargo run --release -p regis-publisher --example throughput [commands]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use regis_publisher::{Command, MemorySns, Publisher, PublisherConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let sns = Arc::new(MemorySns::counting());
        let mut config = PublisherConfig::new("arn:aws:sns:ap-southeast-1:000000000000:bench", "ap-southeast-1", 1);
        config.default_tenant = Some("bench".into());
        config.linger = Duration::from_millis(5);
        let publisher = Publisher::builder(config, Arc::clone(&sns)).seed(1).start()?;
        let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("user:{i:05}").into_bytes()).collect();
        let start = Instant::now();
        for i in 0..n {
            let command = Command::Set {
                key: keys[i % keys.len()].clone(),
                value: format!("value-{i}").into_bytes(),
                expire_at_ms: None,
            };
            publisher.publish(command).await?;
        }
        publisher.shutdown().await?;
        let elapsed = start.elapsed();
        let stats = publisher.stats();
        println!(
            "{n} commands in {:.2} s: {:.0} commands/s; {} messages, {:.1} MiB JSON -> {:.1} MiB sent, {} requests",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            stats.messages,
            stats.uncompressed_bytes as f64 / 1048576.0,
            stats.message_bytes as f64 / 1048576.0,
            sns.requests()
        );
        Ok(())
    })
}
