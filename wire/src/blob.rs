//! Binary-safe bytes in JSON.
//!
//! Keys, values, fields and members are bytes, not strings: anything Redis
//! stores must survive the trip. JSON only carries text, so a blob that is
//! valid UTF-8 is written as a plain JSON string (readable in a DLQ listing,
//! and the common case), and any other blob as `{"b64":"..."}`. The decoder
//! (`de`) accepts both forms without buffering, through a visitor.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serializer;
use serde::ser::SerializeMap;

/// The map key used for blobs that are not UTF-8.
pub(crate) const B64_TAG: &str = "b64";

/// Writes `bytes` as a JSON string when it is UTF-8, else as `{"b64": ..}`.
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(B64_TAG, &BASE64.encode(bytes))?;
            map.end()
        }
    }
}

/// A borrowed blob for serialization without copying.
pub(crate) struct BlobRef<'a>(pub &'a [u8]);

impl serde::Serialize for BlobRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_a_plain_string_and_binary_is_tagged() {
        assert_eq!(serde_json::to_string(&BlobRef(b"hello")).unwrap(), "\"hello\"");
        assert_eq!(
            serde_json::to_string(&BlobRef(&[0xff, 0x00])).unwrap(),
            "{\"b64\":\"/wA=\"}"
        );
    }
}
