//! `regis-bench`: measures regis against its physical limits and against
//! the one-command-per-message design, in one run, and writes the figures
//! to `bench/results.json`.
//!
//! Sections: apply throughput against `redis-benchmark` on the same server,
//! publisher throughput on one core, end to end through LocalStack with
//! three regions (batched against one command per message, and replication
//! lag), the cost model from the counted traffic, and peak memory of a
//! worker and of a publisher under backpressure. Nothing here asserts a
//! speed: the figures are printed next to their targets.

mod apply;
mod cost;
mod e2e;
mod localenv;
mod measure;
mod memory;
mod publish;
mod report;
mod workload;

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::measure::round;
use crate::report::{Row, Target};
use regis_aws::clock::now_ms;

#[derive(Debug, Parser)]
#[command(name = "regis-bench", about = "Benchmarks regis and writes bench/results.json")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Where to write the results.
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// The `regis` binary whose workers are measured (default: next to this one).
    #[arg(long)]
    regis_bin: Option<PathBuf>,
    /// Sections to run (default: all).
    #[arg(long, value_delimiter = ',', default_value = "apply,publish,e2e,memory")]
    only: Vec<Section>,
    /// A flag for the worker of the memory section, e.g. `--worker-arg=--receivers=1` (repeatable).
    #[arg(long = "worker-arg", allow_hyphen_values = true)]
    worker_args: Vec<String>,
    /// Smaller runs, for trying the suite out (figures are noisier).
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Apply,
    Publish,
    E2e,
    Memory,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Internal: publishes into a stalled sink and prints this process's peak memory.
    #[command(hide = true)]
    PublisherRss {
        #[arg(long)]
        commands: u64,
        #[arg(long)]
        cap_mib: usize,
    },
}

/// Sizes of every run.
struct Plan {
    apply: apply::ApplyPlan,
    publish_commands: usize,
    publish_repeats: usize,
    e2e: e2e::E2ePlan,
    memory_messages: usize,
    backpressure_commands: u64,
    backpressure_cap_mib: usize,
}

impl Plan {
    fn new(quick: bool, now_ms: u64) -> Self {
        let scale = if quick { 10 } else { 1 };
        Self {
            apply: apply::ApplyPlan {
                set_commands: 200_000 / scale,
                mix_commands: 100_000 / scale,
                keyspace: 100_000,
                batch_commands: 1_000,
                batches_per_call: 10,
                repeats: if quick { 1 } else { 3 },
                now_ms,
            },
            publish_commands: 300_000 / scale,
            publish_repeats: if quick { 1 } else { 3 },
            e2e: e2e::E2ePlan {
                batched_commands: 20_000 / scale,
                single_commands: if quick { 40 } else { 150 },
                lag_rate: 100,
                lag_seconds: if quick { 3 } else { 10 },
                lag_linger_ms: 50,
                now_ms,
            },
            memory_messages: if quick { 10 } else { 20 },
            backpressure_commands: 1_000_000 / scale as u64,
            backpressure_cap_mib: if quick { 8 } else { 64 },
        }
    }
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn regis_bin(cli: &Cli) -> Result<PathBuf, Box<dyn Error>> {
    let bin = match &cli.regis_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("regis"),
    };
    if !bin.is_file() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p regis-cli` (or pass --regis-bin)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn section(name: &str) {
    eprintln!("\n== {name}");
}

async fn run(cli: &Cli) -> Result<(), Box<dyn Error>> {
    let now = now_ms();
    let plan = Plan::new(cli.quick, now);
    let wants = |s: Section| cli.only.contains(&s);
    let bin = if wants(Section::E2e) || wants(Section::Memory) {
        Some(regis_bin(cli)?)
    } else {
        None
    };
    let mut details = Map::new();
    let mut value = std::collections::HashMap::<&'static str, f64>::new();

    if wants(Section::Apply) {
        section(
            "apply throughput (one local redis-server, then one valkey-server for SET-only, each against redis-benchmark -P 100 -c 1 -t set -d 200)",
        );
        let figures = apply::run(&plan.apply).await?;
        eprintln!("{figures:#?}");
        value.insert("apply_plain_ratio", figures.plain_ratio);
        value.insert("apply_lww_ratio", figures.lww_ratio);
        value.insert("apply_lww_ratio_valkey", figures.lww_ratio_valkey);
        value.insert("apply_plain_ratio_valkey", figures.plain_ratio_valkey);
        value.insert("valkey_benchmark_set_per_sec", figures.valkey_benchmark_set_per_sec);
        value.insert("apply_lww_set_valkey_per_sec", figures.lww_set_valkey_per_sec);
        value.insert("redis_benchmark_set_per_sec", figures.redis_benchmark_set_per_sec);
        value.insert("apply_plain_set_per_sec", figures.plain_set_per_sec);
        value.insert("apply_lww_set_per_sec", figures.lww_set_per_sec);
        value.insert("apply_plain_mix_per_sec", figures.plain_mix_per_sec);
        value.insert("apply_lww_mix_per_sec", figures.lww_mix_per_sec);
        let mut v = to_value(&figures);
        v["plan"] = json!({
            "set_commands": plan.apply.set_commands, "mix_commands": plan.apply.mix_commands,
            "keyspace": plan.apply.keyspace, "commands_per_batch": plan.apply.batch_commands,
            "batches_per_apply_call": plan.apply.batches_per_call, "repeats_best_of": plan.apply.repeats,
        });
        details.insert("apply".into(), v);
    }

    if wants(Section::Publish) {
        section("publisher throughput (current-thread runtime, counting in-process SNS)");
        let mut best: Option<publish::PublishFigures> = None;
        for _ in 0..plan.publish_repeats {
            let figures = publish::throughput(plan.publish_commands, now)?;
            eprintln!("{figures:?}");
            if best
                .as_ref()
                .is_none_or(|b| figures.commands_per_sec > b.commands_per_sec)
            {
                best = Some(figures);
            }
        }
        let best = best.ok_or("no publisher run")?;
        value.insert("publisher_commands_per_sec", best.commands_per_sec);
        value.insert("bytes_per_command_compressed", best.bytes_per_command_compressed);
        value.insert("bytes_per_command_uncompressed", best.bytes_per_command_uncompressed);
        details.insert("publisher".into(), to_value(&best));
    }

    let mut e2e_traffic = None;
    if wants(Section::E2e) {
        section("end to end through LocalStack, three regions");
        let bin = bin.as_deref().ok_or("no regis binary")?;
        let mut topology = localenv::Topology::create(&["ap-southeast-1", "ap-south-1", "eu-west-1"]).await?;
        let outcome = match topology.start_workers(bin, "lww") {
            Ok(()) => e2e::run(&topology, &plan.e2e).await,
            Err(e) => Err(e),
        };
        topology.remove().await;
        let (figures, traffic) = outcome?;
        eprintln!("{figures:#?}");
        value.insert("e2e_batched_vs_single_ratio", figures.batched_vs_single_ratio);
        value.insert("e2e_batched_commands_per_sec", figures.batched_per_sec);
        value.insert("e2e_single_commands_per_sec", figures.single_per_sec);
        value.insert("e2e_lag_p50_ms", figures.lag_p50_ms);
        value.insert("e2e_lag_p99_ms", figures.lag_p99_ms);
        details.insert("e2e".into(), to_value(&figures));
        e2e_traffic = Some(traffic);
    }

    if let Some(traffic) = &e2e_traffic {
        section("cost model (us-east-1 list prices)");
        // The measured apply time per record of each run's own messages, on
        // a redis-server of its own, ten records per call as the Lambda
        // event source mapping would hand them over.
        let server = regis_testkit::RedisServer::start();
        let engine = regis_applier::apply::Engine::connect(
            &server.url(),
            regis_wire::Mode::Lww,
            regis_applier::apply::RedisOptions::default(),
        )
        .await?;
        let batched_ms = apply::record_ms(&engine, &traffic.batched.bodies, cost::LAMBDA_BATCH_SIZE, now).await?;
        let single_ms = apply::record_ms(&engine, &traffic.single.bodies, cost::LAMBDA_BATCH_SIZE, now).await?;
        let regis = cost::model(&traffic.batched.traffic(plan.e2e.batched_commands as u64, 3, batched_ms));
        let baseline = cost::model(&traffic.single.traffic(plan.e2e.single_commands as u64, 3, single_ms));
        eprintln!("regis: {regis:#?}\none command per message: {baseline:#?}");
        value.insert("cost_per_million_usd", regis.usd_per_million_per_region);
        value.insert("baseline_cost_per_million_usd", baseline.usd_per_million_per_region);
        details.insert(
            "cost".into(),
            json!({
                "unit": "US dollars per million commands replicated into one region",
                "prices": {
                    "as_of": cost::PRICES_AS_OF, "region": "us-east-1", "free_tiers": "not counted",
                    "sns_publish_usd_per_million": cost::SNS_PUBLISH_USD_PER_MILLION,
                    "sns_to_sqs_delivery_usd_per_million": cost::SNS_TO_SQS_DELIVERY_USD_PER_MILLION,
                    "sqs_usd_per_million": cost::SQS_USD_PER_MILLION,
                    "lambda_usd_per_million_invocations": cost::LAMBDA_USD_PER_MILLION_INVOCATIONS,
                    "lambda_usd_per_gb_second": cost::LAMBDA_USD_PER_GB_SECOND,
                    "inter_region_usd_per_gb": cost::INTER_REGION_USD_PER_GB,
                },
                "lambda": { "batch_size": cost::LAMBDA_BATCH_SIZE, "memory_gb": cost::LAMBDA_MEMORY_GB },
                "apply_ms_per_record": { "regis": round(batched_ms, 3), "baseline": round(single_ms, 3) },
                "regis": to_value(&regis),
                "baseline": to_value(&baseline),
            }),
        );
    }

    if wants(Section::Memory) {
        section("memory: a worker applying 1 MiB batches, a publisher under backpressure");
        let bin = bin.as_deref().ok_or("no regis binary")?;
        let worker = memory::worker(bin, &cli.worker_args, plan.memory_messages, now).await?;
        eprintln!("{worker:#?}");
        let publisher = publish::backpressure_in_child(plan.backpressure_commands, plan.backpressure_cap_mib)?;
        eprintln!("{publisher:#?}");
        value.insert("worker_peak_rss_mib", worker.peak_rss_mib);
        value.insert("publisher_peak_rss_mib", publisher.peak_rss_mib);
        details.insert(
            "memory".into(),
            json!({ "worker": to_value(&worker), "publisher": to_value(&publisher) }),
        );
    }

    let row = |key: &'static str, label: &'static str, target: Option<Target>| Row {
        key,
        label,
        value: value.get(key).copied(),
        target,
    };
    let rows = vec![
        row("redis_benchmark_set_per_sec", "redis-benchmark SET, commands/s", None),
        row("apply_plain_set_per_sec", "apply plain, SET-only, commands/s", None),
        row(
            "apply_lww_set_per_sec",
            "apply last-writer-wins, SET-only, commands/s",
            None,
        ),
        row(
            "apply_plain_ratio",
            "apply plain / redis-benchmark",
            Some(Target::AtLeast(0.8)),
        ),
        row(
            "apply_lww_ratio",
            "apply last-writer-wins / redis-benchmark",
            Some(Target::AtLeast(0.5)),
        ),
        row(
            "valkey_benchmark_set_per_sec",
            "redis-benchmark SET on Valkey, commands/s",
            None,
        ),
        row(
            "apply_lww_set_valkey_per_sec",
            "apply last-writer-wins, SET-only, on Valkey, commands/s",
            None,
        ),
        row(
            "apply_plain_ratio_valkey",
            "apply plain / redis-benchmark, on Valkey",
            Some(Target::AtLeast(0.8)),
        ),
        row(
            "apply_lww_ratio_valkey",
            "apply last-writer-wins / redis-benchmark, on Valkey",
            Some(Target::AtLeast(0.5)),
        ),
        row(
            "apply_plain_mix_per_sec",
            "apply plain, realistic mix, commands/s",
            None,
        ),
        row(
            "apply_lww_mix_per_sec",
            "apply last-writer-wins, realistic mix, commands/s",
            None,
        ),
        row(
            "publisher_commands_per_sec",
            "publisher, one core, commands/s",
            Some(Target::AtLeast(1_000_000.0)),
        ),
        row(
            "bytes_per_command_compressed",
            "bytes per command on the wire, compressed",
            None,
        ),
        row(
            "bytes_per_command_uncompressed",
            "bytes per command, uncompressed",
            None,
        ),
        row(
            "e2e_batched_commands_per_sec",
            "end to end, batched, commands/s (3 regions)",
            None,
        ),
        row(
            "e2e_single_commands_per_sec",
            "end to end, one command per message, commands/s",
            None,
        ),
        row(
            "e2e_batched_vs_single_ratio",
            "end to end, batched / one per message",
            Some(Target::AtLeast(200.0)),
        ),
        row("e2e_lag_p50_ms", "replication lag p50, ms", None),
        row("e2e_lag_p99_ms", "replication lag p99, ms", None),
        row(
            "cost_per_million_usd",
            "regis, $ per million commands per region",
            Some(Target::AtMost(0.01)),
        ),
        row(
            "baseline_cost_per_million_usd",
            "one command per message, $ per million per region",
            None,
        ),
        row(
            "worker_peak_rss_mib",
            "worker peak RSS, 1 MiB batches, MiB",
            Some(Target::AtMost(64.0)),
        ),
        row(
            "publisher_peak_rss_mib",
            "publisher peak RSS under backpressure, MiB",
            None,
        ),
    ];

    let mut header = Map::new();
    header.insert("date".into(), json!(report::utc_date(now / 1000)));
    header.insert("git_commit".into(), json!(git_commit()));
    header.insert(
        "cores".into(),
        json!(std::thread::available_parallelism().map_or(0, std::num::NonZero::get)),
    );
    header.insert("quick".into(), json!(cli.quick));
    let doc = report::document(header, &rows, details);
    if let Some(dir) = cli.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.out, serde_json::to_string_pretty(&doc)? + "\n")?;

    println!("{}", report::text_table(&rows));
    println!(
        "\nwrote {}\n\nMarkdown:\n\n{}",
        cli.out.display(),
        report::markdown_table(&rows)
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::PublisherRss { commands, cap_mib }) = cli.command {
        return match publish::backpressure(commands, cap_mib, now_ms()) {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("regis-bench publisher-rss: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("regis-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regis-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
