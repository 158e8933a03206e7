//! What can go wrong when applying to Redis, and whether trying again helps.

use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerError, ServerErrorKind};

/// Why a batch (or the engine) could not be applied.
///
/// The distinction that matters to the caller is [`ApplyError::is_retryable`]:
/// a retryable error means "Redis could not take it now" (the record goes back
/// to the queue and is delivered again), a permanent one means "Redis refused
/// this batch for what it contains" (the record goes to the dead-letter queue).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The batch was written for the other apply mode; applying it would mix
    /// versioned and unversioned data.
    #[error("batch is for mode {batch}, this applier runs mode {engine}")]
    ModeMismatch {
        /// The batch's mode.
        batch: regis_wire::Mode,
        /// The engine's mode.
        engine: regis_wire::Mode,
    },
    /// The Redis URL or options cannot work (bad URL, unsupported scheme).
    #[error("invalid Redis configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
        /// The client's error, when it found the problem.
        #[source]
        source: Option<Arc<RedisError>>,
    },
    /// Redis is unreachable, the connection dropped, or a request timed out.
    #[error("Redis unavailable: {0}")]
    Unavailable(#[source] Arc<RedisError>),
    /// Redis is there but cannot take writes right now: loading a dump
    /// (`LOADING`), busy in a script (`BUSY`), in a failover (`READONLY`,
    /// `MASTERDOWN`), cluster not ready (`CLUSTERDOWN`, `TRYAGAIN`), slots
    /// still moving (`MOVED`/`ASK` beyond the client's own redirections),
    /// out of memory (`OOM`), or the script cache was lost twice in a row
    /// (`NOSCRIPT`).
    #[error("Redis busy ({code}): {detail}")]
    Busy {
        /// The Redis error code (`LOADING`, `READONLY`, ...).
        code: String,
        /// The server's message.
        detail: String,
    },
    /// Authentication failed. The batch is fine; the applier's credentials
    /// are not, so the record is retried (and reaches the DLQ only if this
    /// lasts beyond the queue's receive count).
    #[error("Redis authentication failed: {detail}")]
    Auth {
        /// The server's or client's message.
        detail: String,
        /// The client's error, when the failure came as one.
        #[source]
        source: Option<Arc<RedisError>>,
    },
    /// Redis refused a command of the batch for its content (for example
    /// `WRONGTYPE` in plain mode): the same batch would fail again.
    #[error("Redis rejected {command} ({code}): {detail}")]
    Rejected {
        /// The wire name of the refused command (`"hset"`, ...), or `"script"`.
        command: &'static str,
        /// The Redis error code (`WRONGTYPE`, `ERR`, ...).
        code: String,
        /// The server's message.
        detail: String,
    },
    /// Redis answered with something the engine does not expect; a bug or an
    /// incompatible server, not something a retry fixes.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
    /// The client could not read Redis's reply (a protocol or type error).
    #[error("unreadable reply from Redis: {0}")]
    Unreadable(#[source] Arc<RedisError>),
}

impl ApplyError {
    /// True when the same batch may succeed later (Redis down, busy, failing
    /// over); false when it would fail the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Busy { .. } | Self::Auth { .. })
    }

    /// A stable, short code for metrics, logs and the DLQ's `reason` attribute.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ModeMismatch { .. } => "mode-mismatch",
            Self::Config { .. } => "redis-config",
            Self::Unavailable(_) => "redis-unavailable",
            Self::Busy { .. } => "redis-busy",
            Self::Auth { .. } => "redis-auth",
            Self::Rejected { .. } => "redis-rejected",
            Self::UnexpectedReply(_) | Self::Unreadable(_) => "redis-unexpected-reply",
        }
    }

    /// Classifies an error of a whole request (connection, timeout, or a
    /// server error for the request as a whole).
    pub(crate) fn from_redis(err: RedisError, command: &'static str) -> Self {
        match err.kind() {
            ErrorKind::AuthenticationFailed => Self::Auth {
                detail: err.to_string(),
                source: Some(Arc::new(err)),
            },
            ErrorKind::InvalidClientConfig => Self::config(err),
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => Self::Unreadable(Arc::new(err)),
            ErrorKind::Server(_) | ErrorKind::Extension => {
                let code = err.code().unwrap_or("ERR").to_owned();
                let detail = err.detail().unwrap_or_default().to_owned();
                Self::from_code(code, detail, command)
            }
            // Io, lost cluster connections, timeouts, refusals and whatever
            // else the client reports: Redis could not take the request now.
            _ => Self::Unavailable(Arc::new(err)),
        }
    }

    /// A configuration the client refused.
    pub(crate) fn config(err: RedisError) -> Self {
        Self::Config {
            detail: err.to_string(),
            source: Some(Arc::new(err)),
        }
    }

    /// Classifies an error reply to one command of a pipeline.
    pub(crate) fn from_server(err: &ServerError, command: &'static str) -> Self {
        Self::from_code(
            err.code().to_owned(),
            err.details().unwrap_or_default().to_owned(),
            command,
        )
    }

    fn from_code(code: String, detail: String, command: &'static str) -> Self {
        if is_transient_code(&code) {
            Self::Busy { code, detail }
        } else if code == "NOAUTH" || code == "WRONGPASS" {
            Self::Auth {
                detail: format!("{code} {detail}"),
                source: None,
            }
        } else {
            Self::Rejected { command, code, detail }
        }
    }
}

/// Error codes that describe the server's state rather than the request.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "LOADING"
            | "BUSY"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
            | "MASTERDOWN"
            | "READONLY"
            | "MOVED"
            | "ASK"
            | "NOSCRIPT"
            | "OOM"
    )
}

/// True for the `NOSCRIPT` reply to `EVALSHA` (the script cache was emptied,
/// by a restart, a failover or `SCRIPT FLUSH`).
pub(crate) fn is_noscript(err: &ServerError) -> bool {
    err.kind() == Some(ServerErrorKind::NoScript) || err.code() == "NOSCRIPT"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
    }

    #[test]
    fn server_states_are_retryable_and_content_errors_are_not() {
        for code in [
            "LOADING",
            "BUSY",
            "TRYAGAIN",
            "CLUSTERDOWN",
            "MASTERDOWN",
            "READONLY",
            "NOSCRIPT",
            "OOM",
        ] {
            let err = ApplyError::from_redis(server(code, "x"), "set");
            assert!(err.is_retryable(), "{code}: {err:?}");
            assert_eq!(err.reason(), "redis-busy");
        }
        let err = ApplyError::from_redis(server("WRONGTYPE", "Operation against a key"), "hset");
        assert!(!err.is_retryable());
        assert_eq!(err.reason(), "redis-rejected");
        assert!(err.to_string().contains("hset"), "{err}");
    }

    #[test]
    fn io_errors_are_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = ApplyError::from_redis(RedisError::from(io), "set");
        assert!(err.is_retryable());
        assert_eq!(err.reason(), "redis-unavailable");
        let source = std::error::Error::source(&err).expect("the client's error is kept");
        assert!(source.to_string().contains("refused"), "{source}");
    }

    #[test]
    fn mode_mismatch_is_permanent() {
        let err = ApplyError::ModeMismatch {
            batch: regis_wire::Mode::Plain,
            engine: regis_wire::Mode::Lww,
        };
        assert!(!err.is_retryable());
        assert_eq!(err.reason(), "mode-mismatch");
    }
}
