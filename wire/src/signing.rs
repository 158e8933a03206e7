//! HMAC-SHA256 batch signatures.
//!
//! A publisher signs with one key; an applier verifies with a keyring that
//! may hold several, so a key can be rotated without stopping traffic: add
//! the new key to every applier, switch publishers to it, then remove the
//! old one. The MAC covers every header field and the command payload
//! exactly as it travels, each length-prefixed so no two batches share a
//! signed form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{DecodeError, bounded};

type HmacSha256 = Hmac<Sha256>;

/// A named secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id carried in every signed batch.
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a key specification could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySpecError {
    /// Not of the form `id:base64secret`.
    #[error("signing key must look like id:base64secret")]
    Shape,
    /// The secret is not base64.
    #[error("signing key {0:?}: secret is not base64")]
    Base64(String),
    /// The secret is shorter than 16 bytes.
    #[error("signing key {0:?}: secret must be at least 16 bytes")]
    TooShort(String),
}

impl SigningKey {
    /// A key from its id and secret bytes.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
        }
    }

    /// Reads `id:base64secret` (the form used in configuration).
    pub fn parse(spec: &str) -> Result<Self, KeySpecError> {
        let (id, secret) = spec.trim().split_once(':').ok_or(KeySpecError::Shape)?;
        if id.is_empty() || secret.is_empty() {
            return Err(KeySpecError::Shape);
        }
        let secret = BASE64.decode(secret).map_err(|_| KeySpecError::Base64(id.to_owned()))?;
        if secret.len() < 16 {
            return Err(KeySpecError::TooShort(id.to_owned()));
        }
        Ok(Self::new(id, secret))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    /// The base64 MAC of `parts`.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.mac();
        feed(&mut mac, parts);
        BASE64.encode(mac.finalize().into_bytes())
    }
}

fn feed(mac: &mut HmacSha256, parts: &[&[u8]]) {
    for part in parts {
        mac.update(part.len().to_string().as_bytes());
        mac.update(b":");
        mac.update(part);
    }
}

/// The keys an applier accepts. An empty keyring accepts unsigned batches;
/// a non-empty one rejects them.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    /// A keyring holding `keys`.
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// Reads a comma-separated list of `id:base64secret` (empty: no keys).
    pub fn parse(specs: &str) -> Result<Self, KeySpecError> {
        let keys = specs
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(SigningKey::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// True when no key is configured (signatures are not checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a signature over `parts` made with key `key_id`.
    pub(crate) fn verify(&self, key_id: &str, mac_b64: &str, parts: &[&[u8]]) -> Result<(), DecodeError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| DecodeError::UnknownKey(bounded(key_id)))?;
        let tag = BASE64
            .decode(mac_b64)
            .map_err(|_| DecodeError::BadSignature(bounded(key_id)))?;
        let mut mac = key.mac();
        feed(&mut mac, parts);
        mac.verify_slice(&tag)
            .map_err(|_| DecodeError::BadSignature(bounded(key_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_specs() {
        let ring = Keyring::parse("old:MDEyMzQ1Njc4OWFiY2RlZg==, new:ZmVkY2JhOTg3NjU0MzIxMA==").unwrap();
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.keys[1].id, "new");
        assert!(Keyring::parse("").unwrap().is_empty());
        assert_eq!(SigningKey::parse("nocolon"), Err(KeySpecError::Shape));
        assert_eq!(SigningKey::parse("k:!!"), Err(KeySpecError::Base64("k".into())));
        assert_eq!(SigningKey::parse("k:c2hvcnQ="), Err(KeySpecError::TooShort("k".into())));
    }

    #[test]
    fn length_prefixing_separates_fields() {
        let key = SigningKey::new("k", b"0123456789abcdef".to_vec());
        assert_ne!(key.sign(&[b"ab", b"c"]), key.sign(&[b"a", b"bc"]));
    }
}
