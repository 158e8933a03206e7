//! What the operator subcommands share about their output: exit codes,
//! errors that know their exit code, `--json` printing and progress bars.
//!
//! Exit codes are a contract with scripts:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done, nothing wrong found |
//! | 1 | a divergence or failure was found (verify found differences, a redrive or publish failed, a region never showed the probe) |
//! | 2 | usage or configuration error (bad flags, missing URL, refused command); nothing was done |

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use regis_aws::deployment::DeploymentError;

/// Exit code: done, nothing wrong found.
pub const EXIT_OK: u8 = 0;
/// Exit code: a divergence or failure was found.
pub const EXIT_FOUND: u8 = 1;
/// Exit code: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// The end of the top-level `--help`: examples and the exit codes.
pub const TOP_LEVEL_HELP: &str = "\
Examples:
  regis worker --region eu-west-1 --queue-url URL --dlq-url URL --redis-url redis://127.0.0.1:6403
  regis publish --tenant acme SET user:1 alice EX 60
  regis dlq list --region eu-west-1
  regis verify --regions ap-southeast-1,ap-south-1,eu-west-1
  regis resync --from redis://127.0.0.1:6401 --to-region eu-west-1
  regis lag

Regions, queues, Redis URLs and the topic come from flags (or REGIS_* variables), else from the local
environment file (--env-file, REGIS_ENV_FILE, default .regis/env.json, written by `make up`).

Exit codes:
  0  done, nothing wrong found
  1  a divergence or failure was found (verify differences, failed publish or redrive, lag probe not seen)
  2  usage or configuration error (bad flags, missing URL or region, refused command); nothing was done";

/// How a subcommand ended when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong found (exit 0).
    Clean,
    /// Something wrong found and reported (exit 1).
    Found,
}

/// The error that caused an [`OpsError`], kept whole (its own sources
/// included) for whoever walks the chain.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Why a subcommand stopped. Variants with a cause keep it whole as their
/// [`source`](std::error::Error::source) (so it can be downcast to its
/// type); their text is the context followed by the cause's text.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OpsError {
    /// Bad flags, a missing setting, a refused command: nothing was done,
    /// and running again without a fix fails the same way (exit 2).
    Usage(String),
    /// Input refused because of `source` (an unreadable or broken file, a
    /// bad URL, a command the wire crate refuses): exit 2, like
    /// [`OpsError::Usage`].
    Invalid {
        /// What was being read or checked (may be empty).
        context: String,
        /// Why it was refused.
        source: Cause,
    },
    /// Something failed on the way (exit 1); running again may succeed.
    Failed(String),
    /// A service or server call failed with `source` (exit 1, like
    /// [`OpsError::Failed`]); running again may succeed.
    Service {
        /// What was being done (may be empty).
        context: String,
        /// The call's error.
        source: Cause,
    },
}

impl std::fmt::Display for OpsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Usage(message) | Self::Failed(message) => f.write_str(message),
            Self::Invalid { context, source } | Self::Service { context, source } if context.is_empty() => {
                write!(f, "{source}")
            }
            Self::Invalid { context, source } | Self::Service { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for OpsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Usage(_) | Self::Failed(_) => None,
            // The cause itself, not the `Arc` around it.
            Self::Invalid { source, .. } | Self::Service { source, .. } => Some(&**source),
        }
    }
}

impl OpsError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Invalid { .. } => EXIT_USAGE,
            Self::Failed(_) | Self::Service { .. } => EXIT_FOUND,
        }
    }

    /// Whether running again unchanged may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Failed(_) | Self::Service { .. } => true,
            Self::Usage(_) | Self::Invalid { .. } => false,
        }
    }

    /// Input refused because of `source` (exit 2).
    pub fn invalid(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Invalid {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A failed call to a service or server (exit 1).
    pub fn service(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Service {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// A failure talking to Redis.
    pub fn redis(what: &str, error: &redis::RedisError) -> Self {
        Self::service(what, error.clone())
    }
}

impl From<DeploymentError> for OpsError {
    /// An environment file that cannot be used: a usage error.
    fn from(error: DeploymentError) -> Self {
        Self::invalid("", error)
    }
}

/// The process exit code of a subcommand's result; prints the error on
/// stderr.
pub fn finish(result: Result<Outcome, OpsError>) -> ExitCode {
    match result {
        Ok(Outcome::Clean) => ExitCode::from(EXIT_OK),
        Ok(Outcome::Found) => ExitCode::from(EXIT_FOUND),
        Err(e) => {
            eprintln!("regis: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// A progress bar on stderr, drawn only when stderr is a terminal (so
/// scripts and CI logs get none). `len` is the expected total, if known.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let template = if len.is_some() {
        "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})"
    } else {
        "{spinner} {msg} {pos} ({per_sec}, {elapsed})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Shows bytes as text: UTF-8 as is, anything else with `\xHH` escapes (the
/// way `redis-cli` prints binary keys), so reports never lose a byte.
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Parses a duration given in seconds, possibly fractional (`2`, `0.5`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} must be zero or more seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_documented_exit_codes() {
        assert_eq!(OpsError::Usage("x".into()).exit_code(), 2);
        assert_eq!(OpsError::Failed("x".into()).exit_code(), 1);
        assert!(OpsError::Failed("x".into()).is_retryable());
        assert!(!OpsError::Usage("x".into()).is_retryable());
    }

    #[test]
    fn caused_errors_keep_their_source_and_exit_code() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let invalid = OpsError::invalid("cannot read cmds.txt", io());
        assert_eq!((invalid.exit_code(), invalid.is_retryable()), (2, false));
        assert_eq!(invalid.to_string(), "cannot read cmds.txt: no such file");
        let source = std::error::Error::source(&invalid).expect("a source");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );

        let failed = OpsError::service("", io());
        assert_eq!((failed.exit_code(), failed.is_retryable()), (1, true));
        assert_eq!(failed.to_string(), "no such file", "an empty context adds nothing");
        assert!(std::error::Error::source(&failed).is_some_and(|s| s.is::<std::io::Error>()));

        let redis = redis::RedisError::from((redis::ErrorKind::Io, "connection refused"));
        let e = OpsError::redis("SCAN on the source", &redis);
        assert_eq!(e.exit_code(), 1);
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<redis::RedisError>()));

        let broken = OpsError::from(regis_aws::deployment::Deployment::parse("{").unwrap_err());
        assert_eq!(broken.exit_code(), 2);
        assert!(std::error::Error::source(&broken).is_some_and(|s| s.is::<DeploymentError>()));
    }

    #[test]
    fn bytes_are_shown_without_loss() {
        assert_eq!(show_bytes(b"user:1"), "user:1");
        assert_eq!(show_bytes(b"a\xffb\n"), "a\\xffb\\x0a");
        assert_eq!(show_bytes(b"back\\slash"), "back\\\\slash");
        assert_eq!(show_bytes("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
