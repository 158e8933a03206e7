//! Logging setup, one way for every regis binary.
//!
//! The Lambda logs JSON lines without timestamps on stdout (CloudWatch Logs
//! stamps every line, and ships stdout and stderr alike), beside the
//! embedded-metric lines; the worker and the operator's tool log text on
//! stderr, keeping stdout for metric lines and command output.

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line with the current span, no timestamp (Lambda).
    Json,
    /// Human-readable text with timestamps (the worker, the CLI).
    Text,
}

/// The filter used when `RUST_LOG` is not set: informative about regis,
/// quiet about the AWS SDK and its HTTP stack.
pub const DEFAULT_FILTER: &str = "info,aws=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn";

/// Installs the global subscriber, filtered by `filter` (the value of
/// `RUST_LOG`, read by the caller's `main`) or [`DEFAULT_FILTER`]. Does
/// nothing if one is installed already.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter = filter
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .with_writer(std::io::stdout)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .without_time()
            .try_init(),
        LogFormat::Text => builder.with_writer(std::io::stderr).try_init(),
    };
}
