//! `regis-lambda`: the regional applier as an AWS Lambda function.
//!
//! Triggered by the region's SQS queue through an event source mapping with
//! `ReportBatchItemFailures`. Configuration is read once, from the
//! environment variables of the "Applier configuration" table in
//! `docs/ARCHITECTURE.md`; the SQS client and the Redis engine are built
//! once per execution environment and reused by every invocation.
//!
//! Packaging for Lambda (Graviton, `provided.al2023`):
//!
//! ```text
//! pip install cargo-lambda    # brings zig for cross-building
//! cargo lambda build --release --arm64 --output-format zip -p regis-lambda
//! # -> target/lambda/regis-lambda/bootstrap.zip
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use regis_lambda::apply::{Engine, RedisOptions};
use regis_lambda::config::ApplierConfig;
use regis_lambda::dlq::SqsDeadLetters;
use regis_lambda::handler::handle_event;
use regis_lambda::records::Processor;
use regis_lambda::report;
use tracing::Instrument as _;

fn main() -> Result<(), Error> {
    let config = ApplierConfig::from_lookup(|name| std::env::var(name).ok())?;
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,aws=warn,hyper=warn".into()),
        )
        .with_current_span(true)
        .with_span_list(true)
        .without_time() // CloudWatch Logs stamps every line
        .init();
    // Sentry is started before the runtime so its panic hook covers
    // everything; without a DSN nothing is sent.
    let _sentry = config
        .sentry_dsn
        .as_deref()
        .map(|dsn| report::init(dsn, Some(config.region.clone())));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(config))
}

async fn serve(config: ApplierConfig) -> Result<(), Error> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(config.region.clone()))
        .load()
        .await;
    let dead_letters = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), config.dlq_url.clone());
    let options = RedisOptions {
        cluster: config.cluster,
        tombstone_horizon: config.tombstone_horizon,
        ..Default::default()
    };
    let engine = Engine::connect(&config.redis_url, config.mode, options).await?;
    let processor = Processor::new(engine, dead_letters, config.limits, config.keyring.clone());
    let processor = &processor;
    let region = config.region.as_str();

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id, records = event.payload.records.len());
        let response: Result<SqsBatchResponse, Error> =
            handle_event(processor, region, &event.payload, now_ms()).instrument(span).await.map_err(Into::into);
        response
    }))
    .await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
