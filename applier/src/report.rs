//! Reporting to Sentry.
//!
//! `main` (of the Lambda, or of `regis`) calls [`init`] only when a DSN is
//! configured; without it no client is bound and capturing is a no-op, so
//! record handling can call [`permanent_failure`] unconditionally. The
//! client also installs the panic integration, so a panic is reported too.

use std::time::Duration;

use crate::records::Record;

/// Starts Sentry with `dsn`; keep the guard alive for the life of the
/// process (dropping it flushes). Default integrations include panics.
pub fn init(dsn: &str, environment: Option<String>) -> sentry::ClientInitGuard {
    let mut options = sentry::ClientOptions::default();
    options.release = sentry::release_name!();
    options.environment = environment.map(Into::into);
    sentry::init((dsn, options))
}

/// Reports a permanent failure of `record`, tagged with its reason, and
/// returns whether a client took it (so the caller knows to flush).
pub fn permanent_failure(record: &Record, batch_id: Option<&str>, reason: &str, detail: &str) -> bool {
    let hub = sentry::Hub::current();
    if hub.client().is_none() {
        return false;
    }
    hub.with_scope(
        |scope| {
            scope.set_tag("reason", reason);
            scope.set_tag("source_queue", &record.source_queue);
            scope.set_extra("message_id", record.message_id.as_str().into());
            scope.set_extra("batch_id", batch_id.unwrap_or_default().into());
            scope.set_extra("detail", detail.into());
            scope.set_extra("receive_count", record.receive_count.into());
            scope.set_fingerprint(Some(&["regis-permanent-failure", reason]));
        },
        || sentry::capture_message(&format!("permanent failure ({reason}): {detail}"), sentry::Level::Error),
    );
    true
}

/// Waits up to `timeout` for the bound client (if any) to send what it has
/// queued, without blocking the async runtime.
pub async fn flush(timeout: Duration) {
    if let Some(client) = sentry::Hub::current().client() {
        // The transport's flush blocks the calling thread.
        let _ = tokio::task::spawn_blocking(move || client.flush(Some(timeout))).await;
    }
}
