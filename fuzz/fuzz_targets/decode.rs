//! Feeds arbitrary bytes to the batch decoder, with and without a keyring
//! and with tight limits: it must never panic, and whatever it accepts must
//! encode and decode again to the same batch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regis_wire::{DecodeLimits, EncodeOptions, Keyring, SigningKey, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tight = DecodeLimits { max_message_bytes: 64 * 1024, max_decompressed_bytes: 256 * 1024, max_commands: 1000 };
    let keys = Keyring::new(vec![SigningKey::new("k1", b"fuzzing-secret-0123".to_vec())]);
    let _ = decode(text, &tight, &keys);
    if let Ok(batch) = decode(text, &tight, &Keyring::default()) {
        let again = encode(&batch, &EncodeOptions::default()).expect("a decoded batch encodes");
        let back = decode(&again.text, &DecodeLimits::default(), &Keyring::default()).expect("and decodes again");
        assert_eq!(back, batch);
    }
});
