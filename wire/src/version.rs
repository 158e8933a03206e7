//! Command versions: readings of a hybrid logical clock.
//!
//! Every command carries the version at which its publisher wrote it. The
//! applier keeps, per key, field and member, the newest version it has
//! applied, and applies a command only when its version is newer: that is
//! what makes the final state independent of delivery order (last writer
//! wins). A version orders by wall-clock milliseconds, then by a counter that
//! tells apart writes within one millisecond, then by the origin region's
//! rank, so two regions writing the same key in the same millisecond resolve
//! the same way everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::CommandError;

/// The largest wall-clock millisecond a version can carry: `2^48 - 1`, about
/// the year 10889. [`Version::sortable`] writes the milliseconds as 12 hex
/// digits, and the applier compares those strings, so a larger value could
/// not be ordered. The decoder refuses larger versions (`malformed`), the
/// encoder refuses to write them and [`HybridClock::try_tick`] never stamps
/// them.
pub const MAX_VERSION_MILLIS: u64 = (1 << 48) - 1;

/// Default bound, in milliseconds, on how far ahead of a clock a version may
/// be (300 s). The applier refuses versions further ahead of its own clock
/// (reason `clock-skew`, `REGIS_MAX_CLOCK_SKEW_SECONDS`), and the publisher's
/// [`HybridClock::try_tick`] refuses to stamp versions further ahead of its
/// own wall clock, so both sides agree on what "too far ahead" means.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 300_000;

/// One reading of a hybrid logical clock. Ordered field by field.
///
/// Deserializing checks that the milliseconds are at most
/// [`MAX_VERSION_MILLIS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "WireVersion", into = "(u64, u32, u16)")]
pub struct Version {
    /// Wall-clock milliseconds since the Unix epoch (or later, if the clock
    /// stepped back: see [`HybridClock`]); at most [`MAX_VERSION_MILLIS`].
    pub millis: u64,
    /// Distinguishes versions taken within the same millisecond.
    pub counter: u32,
    /// The origin region's rank: the final tie-break between regions.
    pub rank: u16,
}

/// Length of [`Version::sortable`]'s output.
pub const SORTABLE_LEN: usize = 24;

impl Version {
    /// A version from its parts.
    pub const fn new(millis: u64, counter: u32, rank: u16) -> Self {
        Self { millis, counter, rank }
    }

    /// True when the milliseconds fit the wire format (at most
    /// [`MAX_VERSION_MILLIS`]).
    pub const fn is_representable(&self) -> bool {
        self.millis <= MAX_VERSION_MILLIS
    }

    /// Refuses a version whose milliseconds do not fit the wire format.
    pub const fn check(&self) -> Result<(), CommandError> {
        if self.is_representable() {
            Ok(())
        } else {
            Err(CommandError::VersionOutOfRange { millis: self.millis })
        }
    }

    /// Fixed-width lowercase hex (`12 + 8 + 4` digits) whose byte order is the
    /// version order, so a Lua script can compare versions as plain strings.
    ///
    /// # Panics
    ///
    /// When the version is not [representable](Version::is_representable):
    /// two such versions could not be told apart in 12 digits. Versions from
    /// [`crate::decode`] and [`HybridClock::try_tick`] always are; use
    /// [`Version::try_sortable`] for versions from anywhere else.
    pub fn sortable(&self) -> String {
        self.try_sortable()
            .unwrap_or_else(|| panic!("version {self} is beyond the wire format's 48-bit milliseconds"))
    }

    /// [`Version::sortable`], or `None` when the milliseconds are beyond
    /// [`MAX_VERSION_MILLIS`].
    pub fn try_sortable(&self) -> Option<String> {
        self.is_representable()
            .then(|| format!("{:012x}{:08x}{:04x}", self.millis, self.counter, self.rank))
    }

    /// Parses the output of [`Version::sortable`].
    pub fn from_sortable(text: &str) -> Option<Self> {
        if text.len() != SORTABLE_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            millis: u64::from_str_radix(&text[..12], 16).ok()?,
            counter: u32::from_str_radix(&text[12..20], 16).ok()?,
            rank: u16::from_str_radix(&text[20..], 16).ok()?,
        })
    }
}

impl From<(u64, u32, u16)> for Version {
    fn from((millis, counter, rank): (u64, u32, u16)) -> Self {
        Self { millis, counter, rank }
    }
}

/// The wire form `[millis, counter, rank]`, before its range is checked.
#[derive(Deserialize)]
struct WireVersion(u64, u32, u16);

impl TryFrom<WireVersion> for Version {
    type Error = CommandError;
    fn try_from(WireVersion(millis, counter, rank): WireVersion) -> Result<Self, CommandError> {
        let version = Self { millis, counter, rank };
        version.check().map(|()| version)
    }
}

impl From<Version> for (u64, u32, u16) {
    fn from(v: Version) -> Self {
        (v.millis, v.counter, v.rank)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.millis, self.counter, self.rank)
    }
}

/// A hybrid logical clock for one publisher.
///
/// Pure: the caller passes the wall-clock reading, so tests can step time
/// forwards and backwards. Readings are strictly increasing even when the
/// wall clock stands still or steps back: the clock then keeps its last
/// millisecond and counts up.
///
/// # A wall clock that steps back
///
/// After a reading far in the future (a host booted with a wrong clock,
/// then corrected), keeping the last millisecond would stamp versions that
/// every applier refuses as too far ahead (`clock-skew`) until the wall
/// clock catches up, possibly for days. [`HybridClock::try_tick`] therefore
/// refuses to stamp a version more than [`HybridClock::max_lead_ms`] (default
/// [`DEFAULT_MAX_CLOCK_SKEW_MS`], the appliers' default bound) ahead of the
/// wall clock it is given: it returns [`ClockError::SteppedBack`], leaves
/// its state unchanged, and stamps again as soon as the wall clock is back
/// within the bound. It does not jump back to the wall clock on its own:
/// the clock cannot tell whether the earlier reading or the current one is
/// wrong, and if the current one is (a clock set back by a day), versions
/// stamped from it would silently lose every conflict with the last day's
/// writes. A new clock (a restarted publisher) starts from the wall clock.
///
/// [`HybridClock::tick`] is the unchecked form, for tools that restate
/// versions they read (resync observes stored versions) and for tests.
#[derive(Debug, Clone)]
pub struct HybridClock {
    last: Version,
    max_lead_ms: u64,
}

/// Why [`HybridClock::try_tick`] stamped nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The wall clock is more than the bound behind the last version
    /// stamped: it stepped back. Stamping resumes when it catches up.
    #[error(
        "the wall clock is {behind_ms} ms behind the last version stamped (bound {max_lead_ms} ms): it stepped back, \
         and appliers would refuse new versions as too far ahead; waiting for it to catch up"
    )]
    SteppedBack {
        /// How far the wall clock is behind the last version.
        behind_ms: u64,
        /// The configured bound.
        max_lead_ms: u64,
    },
    /// The wall clock reads past [`MAX_VERSION_MILLIS`] (the year 10889):
    /// it is broken, and no version can be stamped from it.
    #[error("the wall clock reads {wall_ms} ms, beyond the largest version the wire format can carry")]
    OutOfRange {
        /// The reading.
        wall_ms: u64,
    },
}

impl ClockError {
    /// True when a later call may succeed on its own (the wall clock catches
    /// up); false for a broken clock.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::SteppedBack { .. })
    }
}

impl HybridClock {
    /// A clock for the origin region with the given rank, refusing to lead
    /// its wall clock by more than [`DEFAULT_MAX_CLOCK_SKEW_MS`].
    pub const fn new(rank: u16) -> Self {
        Self {
            last: Version::new(0, 0, rank),
            max_lead_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }

    /// The same clock with another bound on how far its versions may lead
    /// the wall clock (see the type's documentation).
    pub const fn with_max_lead_ms(mut self, max_lead_ms: u64) -> Self {
        self.max_lead_ms = max_lead_ms;
        self
    }

    /// The bound on how far [`HybridClock::try_tick`] lets versions lead the
    /// wall clock.
    pub const fn max_lead_ms(&self) -> u64 {
        self.max_lead_ms
    }

    /// The origin rank this clock stamps.
    pub const fn rank(&self) -> u16 {
        self.last.rank
    }

    /// The last version handed out (all zeros before the first).
    pub const fn last(&self) -> Version {
        self.last
    }

    /// The next version, given the wall clock now, unchecked: it follows a
    /// wall clock that stepped back by any amount by counting up from the
    /// last millisecond, and may return a version that is not
    /// [representable](Version::is_representable) (which the encoder then
    /// refuses). Publishers use [`HybridClock::try_tick`].
    pub fn tick(&mut self, wall_millis: u64) -> Version {
        self.last = self.next(wall_millis);
        self.last
    }

    /// The next version, refused when it would lead `wall_millis` by more
    /// than [`HybridClock::max_lead_ms`] or not be representable. A refusal
    /// changes nothing.
    pub fn try_tick(&mut self, wall_millis: u64) -> Result<Version, ClockError> {
        if wall_millis > MAX_VERSION_MILLIS {
            return Err(ClockError::OutOfRange { wall_ms: wall_millis });
        }
        let next = self.next(wall_millis);
        let behind_ms = next.millis.saturating_sub(wall_millis);
        if behind_ms > self.max_lead_ms {
            return Err(ClockError::SteppedBack {
                behind_ms,
                max_lead_ms: self.max_lead_ms,
            });
        }
        if !next.is_representable() {
            return Err(ClockError::OutOfRange { wall_ms: wall_millis });
        }
        self.last = next;
        Ok(next)
    }

    fn next(&self, wall_millis: u64) -> Version {
        let rank = self.last.rank;
        if wall_millis > self.last.millis {
            Version::new(wall_millis, 0, rank)
        } else if self.last.counter == u32::MAX {
            Version::new(self.last.millis.saturating_add(1), 0, rank)
        } else {
            Version::new(self.last.millis, self.last.counter + 1, rank)
        }
    }

    /// Moves the clock past a version seen elsewhere, so the next tick is
    /// newer than it (used by resync, which republishes stored versions).
    pub fn observe(&mut self, seen: Version) {
        if (seen.millis, seen.counter) > (self.last.millis, self.last.counter) {
            self.last = Version::new(seen.millis, seen.counter, self.last.rank);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_by_millis_then_counter_then_rank() {
        assert!(Version::new(2, 0, 0) > Version::new(1, 9, 9));
        assert!(Version::new(1, 2, 0) > Version::new(1, 1, 9));
        assert!(Version::new(1, 1, 2) > Version::new(1, 1, 1));
    }

    #[test]
    fn clock_stepping_backwards_still_increases() {
        let mut clock = HybridClock::new(3);
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        let d = clock.tick(1_001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(c, Version::new(1_000, 2, 3));
        assert_eq!(d, Version::new(1_001, 0, 3));
    }

    #[test]
    fn counter_overflow_moves_to_next_millisecond() {
        let mut clock = HybridClock::new(1);
        clock.last = Version::new(5, u32::MAX, 1);
        assert_eq!(clock.tick(5), Version::new(6, 0, 1));
    }

    #[test]
    fn observe_moves_past_seen_versions() {
        let mut clock = HybridClock::new(1);
        clock.observe(Version::new(500, 7, 9));
        assert_eq!(clock.tick(10), Version::new(500, 8, 1));
    }

    #[test]
    fn sortable_refuses_what_it_cannot_order_instead_of_saturating() {
        let max = Version::new(MAX_VERSION_MILLIS, 0, 0);
        let past = Version::new(MAX_VERSION_MILLIS + 1, 0, 0);
        assert_eq!(max.try_sortable().as_deref(), Some("ffffffffffff000000000000"));
        assert_eq!(past.try_sortable(), None);
        assert_eq!(Version::new(u64::MAX, 0, 0).try_sortable(), None);
        assert!(std::panic::catch_unwind(|| past.sortable()).is_err());
        assert_eq!(past.check(), Err(CommandError::VersionOutOfRange { millis: 1 << 48 }));
    }

    #[test]
    fn unrepresentable_versions_do_not_deserialize() {
        let ok: Version = serde_json::from_str("[281474976710655,4294967295,65535]").unwrap();
        assert_eq!(ok, Version::new(MAX_VERSION_MILLIS, u32::MAX, u16::MAX));
        for bad in [
            "[281474976710656,0,0]",
            "[18446744073709551615,0,0]",
            "[1,4294967296,0]",
            "[1,0,65536]",
            "[-1,0,0]",
            "[1,0]",
        ] {
            assert!(serde_json::from_str::<Version>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_clock_far_ahead_then_corrected_refuses_instead_of_stamping_the_future() {
        const NOW: u64 = 1_700_000_000_000;
        const DAY: u64 = 86_400_000;
        let mut clock = HybridClock::new(1);
        assert_eq!(clock.max_lead_ms(), DEFAULT_MAX_CLOCK_SKEW_MS);
        // Booted a day ahead, then corrected.
        let ahead = clock.try_tick(NOW + DAY).unwrap();
        let err = clock.try_tick(NOW).unwrap_err();
        assert_eq!(
            err,
            ClockError::SteppedBack {
                behind_ms: DAY,
                max_lead_ms: DEFAULT_MAX_CLOCK_SKEW_MS
            }
        );
        assert!(err.is_retryable());
        assert_eq!(clock.last(), ahead, "a refusal changes nothing");
        // Within the bound again: stamping resumes, still after `ahead`.
        let later = clock.try_tick(NOW + DAY - DEFAULT_MAX_CLOCK_SKEW_MS).unwrap();
        assert!(later > ahead);
        assert_eq!(later.millis, NOW + DAY);
        // A small step back is absorbed as before.
        let small = clock.try_tick(NOW + DAY - 1_000).unwrap();
        assert!(small > later);
        // A clock set early is bounded by its own setting.
        let mut strict = HybridClock::new(2).with_max_lead_ms(10);
        strict.try_tick(NOW).unwrap();
        assert!(strict.try_tick(NOW - 10).is_ok());
        assert!(matches!(
            strict.try_tick(NOW - 11),
            Err(ClockError::SteppedBack { behind_ms: 11, .. })
        ));
        // The unchecked tick keeps the old behaviour for tools.
        assert_eq!(clock.tick(NOW).millis, NOW + DAY);
    }

    #[test]
    fn a_clock_beyond_the_format_is_refused() {
        let mut clock = HybridClock::new(1);
        let err = clock.try_tick(MAX_VERSION_MILLIS + 1).unwrap_err();
        assert_eq!(
            err,
            ClockError::OutOfRange {
                wall_ms: MAX_VERSION_MILLIS + 1
            }
        );
        assert!(!err.is_retryable());
        clock.last = Version::new(MAX_VERSION_MILLIS, u32::MAX, 1);
        assert!(matches!(
            clock.try_tick(MAX_VERSION_MILLIS),
            Err(ClockError::OutOfRange { .. })
        ));
        assert_eq!(clock.last(), Version::new(MAX_VERSION_MILLIS, u32::MAX, 1));
    }

    proptest! {
        #[test]
        fn sortable_preserves_order_and_round_trips(a in any::<(u64, u32, u16)>(), b in any::<(u64, u32, u16)>()) {
            let mask = |(m, c, r): (u64, u32, u16)| Version::new(m & 0xffff_ffff_ffff, c, r);
            let (a, b) = (mask(a), mask(b));
            prop_assert_eq!(a.cmp(&b), a.sortable().cmp(&b.sortable()));
            prop_assert_eq!(Version::from_sortable(&a.sortable()), Some(a));
        }

        #[test]
        fn ticks_strictly_increase(walls in proptest::collection::vec(0u64..10_000, 1..200)) {
            let mut clock = HybridClock::new(2);
            let mut prev = clock.last();
            for wall in walls {
                let next = clock.tick(wall);
                prop_assert!(next > prev);
                prev = next;
            }
        }

        #[test]
        fn checked_ticks_increase_and_never_lead_by_more_than_the_bound(
            walls in proptest::collection::vec(0u64..10_000, 1..200),
            bound in 0u64..3_000,
        ) {
            let mut clock = HybridClock::new(2).with_max_lead_ms(bound);
            let mut prev = clock.last();
            for wall in walls {
                match clock.try_tick(wall) {
                    Ok(next) => {
                        prop_assert!(next > prev);
                        prop_assert!(next.millis <= wall + bound);
                        prev = next;
                    }
                    Err(ClockError::SteppedBack { behind_ms, .. }) => {
                        prop_assert!(behind_ms > bound);
                        prop_assert_eq!(clock.last(), prev);
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
        }
    }
}
