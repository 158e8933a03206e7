//! Binary-safe bytes in JSON.
//!
//! Keys, values, fields and members are bytes, not strings: anything Redis
//! stores must survive the trip. JSON only carries text, so a blob that is
//! valid UTF-8 is written as a plain JSON string (readable in a DLQ listing,
//! and the common case), and any other blob as `{"b64":"..."}`. The decoder
//! accepts both forms without buffering, through a visitor.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};

/// The map key used for blobs that are not UTF-8.
const B64_TAG: &str = "b64";

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

/// Reads either form written by [`serialize`].
pub(crate) struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object {\"b64\": string}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        Ok(v.into_bytes())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u8>, A::Error> {
        let key: std::borrow::Cow<'de, str> = map.next_key()?.ok_or_else(|| de::Error::custom("empty blob object"))?;
        if key != B64_TAG {
            return Err(de::Error::custom(format!("unexpected blob key {key:?}")));
        }
        let text: std::borrow::Cow<'de, str> = map.next_value()?;
        if map.next_key::<std::borrow::Cow<'de, str>>()?.is_some() {
            return Err(de::Error::custom("blob object has more than one key"));
        }
        BASE64
            .decode(text.as_bytes())
            .map_err(|e| de::Error::custom(format!("bad base64 in blob: {e}")))
    }
}

/// Newtype so blobs can sit inside tuples and vectors with derived serde.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob(pub Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BlobVisitor).map(Blob)
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

    #[test]
    fn both_forms_read_back() {
        let a: Blob = serde_json::from_str("\"h\\u00e9\"").unwrap();
        assert_eq!(a.0, "hé".as_bytes());
        let b: Blob = serde_json::from_str("{\"b64\":\"/wA=\"}").unwrap();
        assert_eq!(b.0, vec![0xff, 0x00]);
    }

    #[test]
    fn malformed_blobs_are_errors() {
        for bad in [
            "{}",
            "{\"x\":\"a\"}",
            "{\"b64\":\"!!\"}",
            "{\"b64\":\"AA==\",\"y\":1}",
            "3",
        ] {
            assert!(serde_json::from_str::<Blob>(bad).is_err(), "{bad}");
        }
    }
}
