//! `regis-lambda`: the regional applier as an AWS Lambda function.
//!
//! Triggered by the region's SQS queue through an event source mapping with
//! `ReportBatchItemFailures`. `main` only assembles: it reads the
//! configuration from the environment once (the "Applier configuration"
//! table in `docs/ARCHITECTURE.md`), sets up logging and Sentry, loads the
//! signing keys from Secrets Manager (`REGIS_SIGNING_SECRET_IDS`), builds the
//! [`Applier`] once per execution environment and hands each invocation to
//! [`handler::handle_event`].
//!
//! Packaging for Lambda (Graviton, `provided.al2023`):
//!
//! ```text
//! pip install cargo-lambda    # brings zig for cross-building
//! cargo lambda build --release --arm64 --output-format zip -p regis-lambda
//! # -> target/lambda/regis-lambda/bootstrap.zip
//! ```

mod handler;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use regis_applier::telemetry::{self, LogFormat};
use regis_applier::{Applier, ApplierConfig, report};
use regis_aws::SqsQueue;
use regis_aws::clock::now_ms;
use regis_aws::sdk::{self, Endpoint};
use tracing::Instrument as _;

fn main() -> Result<(), Error> {
    let config = ApplierConfig::from_lookup(|name| std::env::var(name).ok())?;
    telemetry::init(LogFormat::Json, std::env::var("RUST_LOG").ok().as_deref());
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

async fn serve(mut config: ApplierConfig) -> Result<(), Error> {
    let sdk = sdk::config(&config.region, &Endpoint::aws()).await;
    if !config.signing_secret_ids.is_empty() {
        config
            .load_signing_secrets(&regis_aws::secrets::secrets_manager(&sdk))
            .await?;
    }
    let queues = Arc::new(SqsQueue::new(&sdk));
    let applier = Applier::connect(&config, queues).await?;
    let applier = &applier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id, records = event.payload.records.len());
        let response: Result<SqsBatchResponse, Error> = handler::handle_event(applier.processor(), applier.region(), &event.payload, now_ms())
            .instrument(span)
            .await
            .map_err(Into::into);
        response
    }))
    .await
}
