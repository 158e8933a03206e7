//! Typed errors. [`PublishError`] is what `publish` refuses at once;
//! [`DeliveryError`] is what a [`crate::Receipt`] reports when SNS never took
//! the batch; [`SnsError`] is one failed SNS call, classified for retrying.

use std::sync::Arc;

use thiserror::Error;

/// Why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required text setting is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// `max_message_bytes` is outside what SNS allows.
    #[error("max_message_bytes must be between {min} and {max}, not {actual}")]
    MessageSize {
        /// Smallest accepted.
        min: usize,
        /// Largest accepted (SNS's 1 MiB).
        max: usize,
        /// What was configured.
        actual: usize,
    },
    /// A numeric setting is out of range.
    #[error("{name}: {why}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A tenant policy allows no region at all.
    #[error("tenant {0:?} allows no region (leave regions unset for all regions)")]
    NoRegions(String),
    /// The default tenant is refused by the configuration itself.
    #[error("default tenant {0:?} is not configured and unknown tenants are refused")]
    UnknownDefaultTenant(String),
}

/// Why `publish` refused a command. Nothing was queued.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The publisher was shut down.
    #[error("the publisher is shut down")]
    Closed,
    /// No tenant was given and none is configured as the default.
    #[error("no tenant given and no default tenant configured")]
    NoTenant,
    /// The tenant is not configured and unknown tenants are refused.
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// The tenant registry refuses the command (a key outside the
    /// tenant's prefixes).
    #[error(transparent)]
    TenantDenied(#[from] regis_wire::TenantDenied),
    /// The signing key is not bound to the tenant: every applier would
    /// refuse the batch (`key-not-for-tenant`).
    #[error("signing key {key:?} may not sign for tenant {tenant:?}")]
    KeyNotForTenant {
        /// The key id.
        key: String,
        /// The tenant.
        tenant: String,
    },
    /// The key is in the applier's reserved namespace (`regis:`, except
    /// `regis:probe:`): every applier would refuse the batch.
    #[error(
        "key {:?} is in the reserved namespace regis: (the applier's version bookkeeping); only regis:probe: keys may be written there",
        String::from_utf8_lossy(.key)
    )]
    ReservedKey {
        /// The key.
        key: Vec<u8>,
    },
    /// The command is malformed (an empty member list, a NaN score, an
    /// expiry Redis would refuse).
    #[error("invalid command: {0}")]
    Invalid(#[from] regis_wire::CommandError),
    /// The command is over one of the appliers' decode limits
    /// ([`crate::PublisherConfig::limits`]): too many fields or members, a
    /// key, field, member or value too long, or JSON too long for one batch.
    #[error("command over the appliers' limits: {0}")]
    OverLimit(#[from] regis_wire::OverLimit),
    /// The wall clock stepped back by more than
    /// [`crate::PublisherConfig::max_clock_skew`] (or is broken): versions
    /// stamped now would be refused by every applier. Retryable once the
    /// clock has caught up; restarting the publisher starts from the wall
    /// clock again.
    #[error(transparent)]
    Clock(#[from] regis_wire::ClockError),
    /// A raw command that is not idempotent or not a replicated write.
    #[error(transparent)]
    NotReplicable(#[from] regis_wire::ParseError),
    /// The command alone is larger than one message can carry.
    #[error("command of {bytes} bytes cannot fit in one SNS message of at most {max} bytes, even compressed")]
    TooLarge {
        /// The command's serialized size.
        bytes: usize,
        /// The message size limit.
        max: usize,
    },
    /// The command alone is larger than the whole send buffer.
    #[error("command of {bytes} bytes is larger than the send buffer ({max} bytes)")]
    LargerThanBuffer {
        /// The command's serialized size.
        bytes: usize,
        /// The buffer cap.
        max: usize,
    },
    /// The send buffer is full and the configuration asks to fail at once.
    #[error("send buffer full ({max} bytes not yet acknowledged by SNS)")]
    BufferFull {
        /// The buffer cap.
        max: usize,
    },
    /// The command could not be serialized.
    #[error("could not encode: {0}")]
    Encode(#[from] regis_wire::EncodeError),
}

impl PublishError {
    /// True when the same call may succeed later (the buffer drains, the
    /// wall clock catches up); false when the command itself or the
    /// publisher's state is the problem.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BufferFull { .. } => true,
            Self::Clock(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// One failed SNS call, or one failed entry of a `PublishBatch` call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SnsError {
    /// SNS throttled the request.
    #[error("throttled by SNS ({code}): {message}")]
    Throttled {
        /// SNS's error code.
        code: String,
        /// SNS's explanation.
        message: String,
    },
    /// SNS failed (a 5xx, or an entry failure that is not the sender's fault).
    #[error("SNS failed ({code}): {message}")]
    Server {
        /// SNS's error code.
        code: String,
        /// SNS's explanation.
        message: String,
    },
    /// The request timed out.
    #[error("request to SNS timed out: {0}")]
    Timeout(String),
    /// SNS could not be reached (DNS, TCP, TLS, a dropped connection).
    #[error("could not reach SNS: {0}")]
    Connection(String),
    /// SNS refused the request as wrong (bad parameters, no such topic, no
    /// permission, message too large): retrying cannot help.
    #[error("SNS rejected the request ({code}): {message}")]
    Rejected {
        /// SNS's error code.
        code: String,
        /// SNS's explanation.
        message: String,
    },
}

impl SnsError {
    /// True for throttling, server errors, timeouts and connection errors;
    /// false for requests SNS rejected as wrong.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }
}

/// Error codes SNS (and AWS generally) use for throttling.
pub(crate) fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttled"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestLimitExceeded"
            | "KMSThrottling"
            | "KMSThrottlingException"
    )
}

/// Why a batch never reached SNS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FailureCause {
    /// SNS refused it, or kept failing until the retry deadline.
    #[error(transparent)]
    Sns(SnsError),
    /// The publisher's background task stopped (its runtime shut down)
    /// before the batch was sent.
    #[error("the publisher stopped before the batch was sent")]
    Abandoned,
    /// The batch could not be encoded.
    #[error("could not encode the batch: {0}")]
    Encode(String),
}

/// Commands that were accepted by `publish` but never reached SNS. Nothing
/// is dropped silently: every receipt of these commands resolves to this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("batch {batch_id} (tenant {tenant:?}, {commands} commands) not published after {attempts} attempts: {cause}")]
#[non_exhaustive]
pub struct DeliveryError {
    /// The id of the message that failed (empty if it was never encoded).
    pub batch_id: Arc<str>,
    /// The tenant of the batch.
    pub tenant: Arc<str>,
    /// How many commands the failed message carried.
    pub commands: usize,
    /// The keys of those commands, in publish order.
    pub keys: Arc<[Vec<u8>]>,
    /// How many times the message was sent.
    pub attempts: u32,
    /// Why it failed in the end.
    pub cause: FailureCause,
}

/// What `flush` or `shutdown` found: some commands published before it
/// never reached SNS.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{failed_commands} commands in {failed_messages} messages were not published; first: {first}")]
#[non_exhaustive]
pub struct FlushError {
    /// Commands that failed.
    pub failed_commands: usize,
    /// Messages that failed.
    pub failed_messages: usize,
    /// The first failure.
    pub first: DeliveryError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rejections_are_final() {
        assert!(
            SnsError::Throttled {
                code: "Throttled".into(),
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            SnsError::Server {
                code: "InternalError".into(),
                message: String::new()
            }
            .is_retryable()
        );
        assert!(SnsError::Timeout("t".into()).is_retryable());
        assert!(SnsError::Connection("c".into()).is_retryable());
        assert!(
            !SnsError::Rejected {
                code: "InvalidParameter".into(),
                message: String::new()
            }
            .is_retryable()
        );
        assert!(PublishError::BufferFull { max: 1 }.is_retryable());
        assert!(
            PublishError::Clock(regis_wire::ClockError::SteppedBack {
                behind_ms: 2,
                max_lead_ms: 1
            })
            .is_retryable()
        );
        assert!(!PublishError::Clock(regis_wire::ClockError::OutOfRange { wall_ms: u64::MAX }).is_retryable());
        assert!(
            !PublishError::ReservedKey {
                key: b"regis:v:x".to_vec()
            }
            .is_retryable()
        );
        assert!(!PublishError::Closed.is_retryable());
    }
}
