//! Checks an applier makes on a decoded batch before applying it: the
//! reserved namespace, versions too far ahead of its clock, versions older
//! than its tombstone horizon. Pure functions of the batch and the numbers
//! passed in (the applier's clock is an argument), so they are tested with
//! clocks set early and late. Each returns the first offending command as a
//! [`Refusal`], whose [`Refusal::reason`] is the DLQ reason.

use crate::command::VersionedCommand;
use crate::error::Refusal;

/// The applier's namespace: every key starting with these bytes is
/// reserved (its version bookkeeping is `regis:v:{T}:K`), except the lag
/// probes under [`PROBE_PREFIX`]. A batch writing there could freeze or
/// wipe another key's versions.
pub const RESERVED_PREFIX: &[u8] = b"regis:";

/// Lag probes (`regis lag` writes `SET regis:probe:<id>` with a short TTL
/// as ordinary data): the one part of [`RESERVED_PREFIX`] batches may write.
pub const PROBE_PREFIX: &[u8] = b"regis:probe:";

/// True for a key in the applier's reserved namespace: it starts with
/// [`RESERVED_PREFIX`] and not with [`PROBE_PREFIX`]. Keys are bytes and
/// compared exactly (`REGIS:x` is not reserved).
pub fn is_reserved_key(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX) && !key.starts_with(PROBE_PREFIX)
}

/// The first command writing a [reserved](is_reserved_key) key, as
/// [`Refusal::ReservedKey`] (reason `reserved-key`).
pub fn check_reserved_keys(commands: &[VersionedCommand]) -> Result<(), Refusal> {
    match commands
        .iter()
        .enumerate()
        .find(|(_, c)| is_reserved_key(c.command.key()))
    {
        Some((index, c)) => Err(Refusal::ReservedKey {
            index,
            op: c.command.name(),
            key: c.command.key().to_vec(),
        }),
        None => Ok(()),
    }
}

/// The first command whose version is more than `max_ahead_ms` ahead of
/// `now_ms` (the applier's clock, epoch ms), as [`Refusal::ClockSkew`]
/// (reason `clock-skew`) with how far ahead it is. A version exactly
/// `max_ahead_ms` ahead passes.
pub fn check_clock_skew(commands: &[VersionedCommand], now_ms: u64, max_ahead_ms: u64) -> Result<(), Refusal> {
    for (index, c) in commands.iter().enumerate() {
        let ahead_ms = c.version.millis.saturating_sub(now_ms);
        if ahead_ms > max_ahead_ms {
            return Err(Refusal::ClockSkew {
                index,
                version: c.version,
                ahead_ms,
                max_ahead_ms,
            });
        }
    }
    Ok(())
}

/// The first command whose version is more than `horizon_ms` older than
/// `now_ms` (the applier's clock, epoch ms), as [`Refusal::BeyondHorizon`]
/// (reason `beyond-horizon`) with its age. Its tombstones may be gone: a
/// delete it should lose to may no longer be recorded, so applying it could
/// bring deleted data back in this region only. A version exactly
/// `horizon_ms` old passes.
pub fn check_horizon(commands: &[VersionedCommand], now_ms: u64, horizon_ms: u64) -> Result<(), Refusal> {
    for (index, c) in commands.iter().enumerate() {
        let age_ms = now_ms.saturating_sub(c.version.millis);
        if age_ms > horizon_ms {
            return Err(Refusal::BeyondHorizon {
                index,
                version: c.version,
                age_ms,
                horizon_ms,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::version::{MAX_VERSION_MILLIS, Version};

    const NOW: u64 = 1_700_000_000_000;
    const MINUTE: u64 = 60_000;
    const DAY: u64 = 86_400_000;

    fn at(millis: u64, key: &str) -> VersionedCommand {
        VersionedCommand::new(Version::new(millis, 0, 1), Command::Del { key: key.into() })
    }

    #[test]
    fn the_reserved_namespace_is_regis_colon_but_probes() {
        for key in [
            "regis:v:{ab}:victim",
            "regis:",
            "regis:x",
            "regis:probe",
            "regis:probex:1",
        ] {
            assert!(is_reserved_key(key.as_bytes()), "{key}");
        }
        for key in [
            "regis:probe:0123",
            "regis:probe:",
            "regis",
            "REGIS:v:x",
            "user:regis:v:1",
            "",
            "xregis:v:",
        ] {
            assert!(!is_reserved_key(key.as_bytes()), "{key}");
        }
    }

    #[test]
    fn the_first_reserved_key_is_named() {
        let batch = [
            at(NOW, "a"),
            at(NOW, "regis:probe:1"),
            at(NOW, "regis:v:{x}:a"),
            at(NOW, "regis:c"),
        ];
        let refusal = check_reserved_keys(&batch).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::ReservedKey {
                index: 2,
                op: "del",
                key: b"regis:v:{x}:a".to_vec()
            }
        );
        assert_eq!(refusal.reason(), "reserved-key");
        assert_eq!(refusal.index(), 2);
        assert!(refusal.to_string().contains("regis:v:{x}:a"), "{refusal}");
        assert_eq!(check_reserved_keys(&batch[..2]), Ok(()));
        // The detail stays short whatever the key.
        let long = VersionedCommand::new(
            Version::new(NOW, 0, 1),
            Command::Del {
                key: [b"regis:v:".as_slice(), &[b'x'; 60_000]].concat(),
            },
        );
        assert!(check_reserved_keys(&[long]).unwrap_err().to_string().len() < 300);
    }

    #[test]
    fn clock_skew_is_measured_against_the_applier_clock_early_and_late() {
        let batch = [at(NOW, "a"), at(NOW + 5 * MINUTE, "b"), at(NOW + DAY, "c")];
        // An applier on time: the day-ahead command is refused, by how much.
        let refusal = check_clock_skew(&batch, NOW, 5 * MINUTE).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::ClockSkew {
                index: 2,
                version: Version::new(NOW + DAY, 0, 1),
                ahead_ms: DAY,
                max_ahead_ms: 5 * MINUTE
            }
        );
        assert_eq!(refusal.reason(), "clock-skew");
        // An applier whose clock is early sees the second one too far ahead.
        let early = check_clock_skew(&batch, NOW - 1, 5 * MINUTE).unwrap_err();
        assert!(matches!(early, Refusal::ClockSkew { index: 1, ahead_ms, .. } if ahead_ms == 5 * MINUTE + 1));
        // An applier whose clock is late accepts all of them.
        assert_eq!(check_clock_skew(&batch, NOW + DAY, 5 * MINUTE), Ok(()));
        // No overflow at the ends of the range.
        assert_eq!(check_clock_skew(&[at(MAX_VERSION_MILLIS, "x")], u64::MAX, 0), Ok(()));
        assert!(check_clock_skew(&[at(MAX_VERSION_MILLIS, "x")], 0, u64::MAX - 1).is_ok());
        assert!(check_clock_skew(&[at(1, "x")], 0, 0).is_err());
    }

    #[test]
    fn the_horizon_is_measured_against_the_applier_clock_early_and_late() {
        let horizon = 4 * DAY;
        let batch = [at(NOW, "a"), at(NOW - 5 * DAY, "b")];
        let refusal = check_horizon(&batch, NOW, horizon).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BeyondHorizon {
                index: 1,
                version: Version::new(NOW - 5 * DAY, 0, 1),
                age_ms: 5 * DAY,
                horizon_ms: horizon
            }
        );
        assert_eq!(refusal.reason(), "beyond-horizon");
        // An applier whose clock is early (by a day or more) accepts both.
        assert_eq!(check_horizon(&batch, NOW - 2 * DAY, horizon), Ok(()));
        // Exactly at the horizon passes; one millisecond more does not.
        assert_eq!(check_horizon(&batch, NOW - DAY, horizon), Ok(()));
        assert!(check_horizon(&batch, NOW - DAY + 1, horizon).is_err());
        // An applier whose clock is late refuses even the newer one.
        assert!(matches!(
            check_horizon(&batch, NOW + 5 * DAY, horizon),
            Err(Refusal::BeyondHorizon { index: 0, .. })
        ));
        // Versions ahead of the clock are not old; no underflow.
        assert_eq!(check_horizon(&[at(MAX_VERSION_MILLIS, "x")], 0, 0), Ok(()));
        assert_eq!(check_horizon(&[], NOW, 0), Ok(()));
    }
}
