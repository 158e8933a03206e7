//! Redis Cluster key slots, computed the way the server computes them.
//!
//! Redis Cluster maps a key to one of 16384 slots by CRC16 (the XMODEM
//! variant) of the key, or of its hash tag when the key has one: the bytes
//! between the first `{` and the next `}`, if not empty. Keys in the same
//! slot live on the same node, and only keys of one slot can appear together
//! in a pipeline routed to one node or in one script call.

/// Number of slots in a Redis Cluster.
pub const SLOT_COUNT: u16 = 16384;

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), as in Redis's `crc16.c`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of a key that decides its slot: the hash tag if there is a
/// non-empty one, otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot of a key (`CLUSTER KEYSLOT`).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The standard check value of CRC-16/XMODEM, also used by Redis's own test.
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn slots_match_redis_examples() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOT_COUNT);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn agrees_with_the_redis_crate() {
        for key in [&b"a"[..], b"user:1", b"{tag}x", b"\xff\x00", b"{}", b"x{y"] {
            let ours = key_slot(key);
            let theirs = redis::cluster_routing::Route::with_key(key, redis::cluster_routing::SlotAddr::Master);
            assert_eq!(format!("{theirs:?}"), format!("Route({ours}, Master)"), "{key:?}");
        }
    }
}
