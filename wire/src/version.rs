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

/// One reading of a hybrid logical clock. Ordered field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(from = "(u64, u32, u16)", into = "(u64, u32, u16)")]
pub struct Version {
    /// Wall-clock milliseconds since the Unix epoch (or later, if the clock
    /// stepped back: see [`HybridClock`]).
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

    /// Fixed-width lowercase hex (`12 + 8 + 4` digits) whose byte order is the
    /// version order, so a Lua script can compare versions as plain strings.
    /// Milliseconds beyond 48 bits (the year 10889) saturate.
    pub fn sortable(&self) -> String {
        let millis = self.millis.min(0xffff_ffff_ffff);
        format!("{millis:012x}{:08x}{:04x}", self.counter, self.rank)
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
#[derive(Debug, Clone)]
pub struct HybridClock {
    last: Version,
}

impl HybridClock {
    /// A clock for the origin region with the given rank.
    pub const fn new(rank: u16) -> Self {
        Self {
            last: Version::new(0, 0, rank),
        }
    }

    /// The origin rank this clock stamps.
    pub const fn rank(&self) -> u16 {
        self.last.rank
    }

    /// The last version handed out (all zeros before the first).
    pub const fn last(&self) -> Version {
        self.last
    }

    /// The next version, given the wall clock now.
    pub fn tick(&mut self, wall_millis: u64) -> Version {
        let rank = self.last.rank;
        self.last = if wall_millis > self.last.millis {
            Version::new(wall_millis, 0, rank)
        } else if self.last.counter == u32::MAX {
            Version::new(self.last.millis + 1, 0, rank)
        } else {
            Version::new(self.last.millis, self.last.counter + 1, rank)
        };
        self.last
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
    }
}
