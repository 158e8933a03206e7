//! Feeds arbitrary bytes to the batch decoder, with and without a keyring
//! and with tight limits: it must never panic, whatever it accepts must
//! encode and decode again to the same batch, and the applier's checks must
//! run on it (never panicking either).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regis_wire::{
    DecodeLimits, EncodeOptions, Keyring, SigningKey, check_clock_skew, check_horizon, check_reserved_keys, decode,
    encode,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tight = DecodeLimits {
        max_message_bytes: 64 * 1024,
        max_decompressed_bytes: 256 * 1024,
        max_commands: 1000,
        max_elements_per_command: 500,
        max_elements_per_batch: 2000,
        max_element_bytes: 4096,
        max_value_bytes: 64 * 1024,
    };
    let keys = Keyring::new(vec![SigningKey::new("k1", b"fuzzing-secret-0123".to_vec())]);
    let _ = decode(text, &tight, &keys);
    if let Ok(batch) = decode(text, &tight, &Keyring::default()) {
        for c in &batch.commands {
            assert!(c.version.try_sortable().is_some(), "a decoded version is representable");
            assert!(tight.check_command(&c.command).is_ok(), "a decoded command is within the limits");
        }
        let _ = check_reserved_keys(&batch.commands);
        let _ = check_clock_skew(&batch.commands, 1_700_000_000_000, 300_000);
        let _ = check_horizon(&batch.commands, 1_700_000_000_000, 345_600_000);
        let again = encode(&batch, &EncodeOptions::default()).expect("a decoded batch encodes");
        let back = decode(&again.text, &DecodeLimits::default(), &Keyring::default()).expect("and decodes again");
        assert_eq!(back, batch);
    }
});
