//! `regis`: the operator's tool. Parses the command line, sets up logging
//! (stderr; stdout carries command output and metric lines) and dispatches
//! to the subcommand's module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regis_cli::worker::{self, WorkerArgs};

#[derive(Debug, Parser)]
#[command(
    name = "regis",
    version,
    about = "Replicate Redis writes across regions through SNS and SQS",
    after_help = regis_cli::output::TOP_LEVEL_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a region's queue to its Redis: the applier as a long-polling SQS worker.
    Worker(WorkerArgs),
    /// Publish commands from the shell (arguments, a file or stdin) through the publisher.
    Publish(regis_cli::publish::PublishArgs),
    /// Inspect a region's dead-letter queue and redrive it: list, show, redrive.
    Dlq(regis_cli::dlq::DlqArgs),
    /// Compare the Redis of several regions key by key; exit 1 on divergence.
    Verify(regis_cli::verify::VerifyArgs),
    /// Re-publish a source Redis's full state as versioned commands (never overwrites newer data).
    Resync(regis_cli::resync::ResyncArgs),
    /// Replication lag per region: a probe key through the normal path, and the appliers' figures.
    Lag(regis_cli::lag::LagArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    regis_applier::telemetry::init(
        regis_applier::telemetry::LogFormat::Text,
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("regis: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Publish(args) => return regis_cli::output::finish(runtime.block_on(regis_cli::publish::run(args))),
        Command::Dlq(args) => return regis_cli::output::finish(runtime.block_on(regis_cli::dlq::run(args))),
        Command::Verify(args) => return regis_cli::output::finish(runtime.block_on(regis_cli::verify::run(args))),
        Command::Resync(args) => return regis_cli::output::finish(runtime.block_on(regis_cli::resync::run(args))),
        Command::Lag(args) => return regis_cli::output::finish(runtime.block_on(regis_cli::lag::run(args))),
        Command::Worker(args) => {
            // Started before serving so its panic hook covers the worker;
            // the guard flushes on drop.
            let _sentry = args
                .sentry_dsn
                .as_deref()
                .map(|dsn| regis_applier::report::init(dsn, Some(args.region.clone())));
            runtime.block_on(worker::run(args)).map(drop).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regis: {e}");
            ExitCode::FAILURE
        }
    }
}
