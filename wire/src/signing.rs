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

/// The tenants a key may sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTenants {
    /// Every tenant (`*`).
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl KeyTenants {
    /// True when a batch of `tenant` may be signed with the key.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(tenants) => tenants.iter().any(|t| t == tenant),
        }
    }

    /// Reads a list of tenant names, `["*"]` meaning every tenant.
    fn from_names(id: &str, names: Vec<String>) -> Result<Self, KeySpecError> {
        match names.as_slice() {
            [only] if only == "*" => Ok(Self::Any),
            [] => Err(KeySpecError::NoTenants(id.to_owned())),
            list if list.iter().any(|t| t.is_empty() || t == "*") => Err(KeySpecError::NoTenants(id.to_owned())),
            _ => Ok(Self::Only(names)),
        }
    }
}

/// A named secret, bound to the tenants it may sign for.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id carried in every signed batch.
    pub id: String,
    secret: Vec<u8>,
    tenants: KeyTenants,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// Smallest secret accepted from configuration, in bytes (HMAC-SHA256's
/// block of output: anything shorter is easier to guess than the MAC).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a key specification could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySpecError {
    /// Not of the form `id:base64secret:tenant1|tenant2`.
    #[error("signing key must look like id:base64secret:tenant1|tenant2 (or id:base64secret:* for every tenant)")]
    Shape,
    /// An empty entry in a comma-separated list (`","`, `"a,,b"`, a trailing comma).
    #[error("signing key list has an empty entry")]
    EmptyEntry,
    /// The same id twice in one keyring.
    #[error("signing key {0:?} is listed twice")]
    Duplicate(String),
    /// The secret is not base64.
    #[error("signing key {0:?}: secret is not base64")]
    Base64(String),
    /// The secret is too short.
    #[error("signing key {0:?}: secret must be at least 32 bytes")]
    TooShort(String),
    /// No tenant named, or an empty tenant name, or `*` next to names.
    #[error("signing key {0:?}: tenants must be * or a list of tenant names")]
    NoTenants(String),
    /// A secret document that is not `{"id", "secret", "tenants"}`.
    #[error("signing key secret is not of the form {{\"id\": ..., \"secret\": base64, \"tenants\": [...]}}: {0}")]
    Json(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretDocument {
    id: String,
    secret: String,
    tenants: Vec<String>,
}

impl SigningKey {
    /// A key from its id and secret bytes, valid for every tenant (bind it
    /// with [`SigningKey::for_tenants`]). Not checked: configuration goes
    /// through [`SigningKey::parse`] or [`SigningKey::from_secret_json`].
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            tenants: KeyTenants::Any,
        }
    }

    /// The same key, valid only for `tenants`.
    pub fn for_tenants<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tenants: I) -> Self {
        self.tenants = KeyTenants::Only(tenants.into_iter().map(Into::into).collect());
        self
    }

    /// The tenants the key may sign for.
    pub fn tenants(&self) -> &KeyTenants {
        &self.tenants
    }

    /// Reads `id:base64secret:tenant1|tenant2` (`*` for every tenant), the
    /// form of `REGIS_SIGNING_KEYS` and `--signing-key`.
    pub fn parse(spec: &str) -> Result<Self, KeySpecError> {
        let mut parts = spec.trim().split(':');
        let (Some(id), Some(secret), Some(tenants), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeySpecError::Shape);
        };
        if id.is_empty() || secret.is_empty() {
            return Err(KeySpecError::Shape);
        }
        let names = tenants.split('|').map(|t| t.trim().to_owned()).collect();
        Self::checked(id, secret, names)
    }

    /// Reads the SecretString of a key kept in a secrets service:
    /// `{"id": "k1", "secret": "<base64 of at least 32 bytes>", "tenants": ["hotel-sg"]}`.
    pub fn from_secret_json(json: &str) -> Result<Self, KeySpecError> {
        let doc: SecretDocument = serde_json::from_str(json).map_err(|e| KeySpecError::Json(bounded(e)))?;
        if doc.id.is_empty() || doc.id.contains([':', ',']) {
            return Err(KeySpecError::Json(
                "id must be a non-empty name without ':' or ','".into(),
            ));
        }
        Self::checked(&doc.id, &doc.secret, doc.tenants)
    }

    fn checked(id: &str, secret: &str, tenants: Vec<String>) -> Result<Self, KeySpecError> {
        let secret = BASE64
            .decode(secret.trim())
            .map_err(|_| KeySpecError::Base64(id.to_owned()))?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeySpecError::TooShort(id.to_owned()));
        }
        let tenants = KeyTenants::from_names(id, tenants)?;
        Ok(Self {
            id: id.to_owned(),
            secret,
            tenants,
        })
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

/// The keys an applier accepts. An empty keyring checks nothing (an applier
/// runs with one only when told unsigned traffic is intended); a non-empty
/// one refuses unsigned batches, unknown key ids, bad MACs, and batches
/// signed by a key not bound to their tenant.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    /// A keyring holding `keys`.
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// Reads a comma-separated list of `id:base64secret:tenants`. Every entry
    /// must be a key: an empty list, an empty entry (`","`) or an id given
    /// twice is an error, never an empty keyring.
    pub fn parse(specs: &str) -> Result<Self, KeySpecError> {
        let keys = specs
            .split(',')
            .map(|s| {
                if s.trim().is_empty() {
                    Err(KeySpecError::EmptyEntry)
                } else {
                    SigningKey::parse(s)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_keys(keys)
    }

    /// A keyring of `keys`, refusing an id given twice.
    pub fn from_keys(keys: Vec<SigningKey>) -> Result<Self, KeySpecError> {
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.id == key.id) {
                return Err(KeySpecError::Duplicate(key.id.clone()));
            }
        }
        Ok(Self { keys })
    }

    /// True when no key is configured (signatures are not checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Checks a signature over `parts` made with key `key_id` on a batch of
    /// `tenant`.
    pub(crate) fn verify(&self, key_id: &str, mac_b64: &str, parts: &[&[u8]], tenant: &str) -> Result<(), DecodeError> {
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
            .map_err(|_| DecodeError::BadSignature(bounded(key_id)))?;
        if key.tenants.allows(tenant) {
            Ok(())
        } else {
            Err(DecodeError::KeyNotForTenant {
                key: bounded(key_id),
                tenant: bounded(tenant),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const S16: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes

    #[test]
    fn parses_key_specs_bound_to_tenants() {
        let ring = Keyring::parse(&format!("old:{S32}:hotel-sg|acme, new:{S32}:*")).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(
            ring.keys[0].tenants,
            KeyTenants::Only(vec!["hotel-sg".into(), "acme".into()])
        );
        assert_eq!(ring.keys[1].tenants, KeyTenants::Any);
        assert!(ring.keys[0].tenants.allows("acme") && !ring.keys[0].tenants.allows("globex"));
    }

    #[test]
    fn malformed_key_lists_are_errors() {
        assert_eq!(SigningKey::parse("nocolon"), Err(KeySpecError::Shape));
        assert_eq!(
            SigningKey::parse(&format!("k:{S32}")),
            Err(KeySpecError::Shape),
            "tenants are required"
        );
        assert_eq!(SigningKey::parse(&format!("k:{S32}:a:b")), Err(KeySpecError::Shape));
        assert_eq!(SigningKey::parse("k:!!:*"), Err(KeySpecError::Base64("k".into())));
        assert_eq!(
            SigningKey::parse(&format!("k:{S16}:*")),
            Err(KeySpecError::TooShort("k".into()))
        );
        assert_eq!(
            SigningKey::parse(&format!("k:{S32}:")),
            Err(KeySpecError::NoTenants("k".into()))
        );
        assert_eq!(
            SigningKey::parse(&format!("k:{S32}:a||b")),
            Err(KeySpecError::NoTenants("k".into()))
        );
        assert_eq!(
            SigningKey::parse(&format!("k:{S32}:a|*")),
            Err(KeySpecError::NoTenants("k".into()))
        );
        for list in [",", "", " , ", &format!("k:{S32}:*,"), &format!("k:{S32}:*,,j:{S32}:*")] {
            assert_eq!(Keyring::parse(list).unwrap_err(), KeySpecError::EmptyEntry, "{list:?}");
        }
        assert_eq!(
            Keyring::parse(&format!("k:{S32}:*,k:{S32}:a")).unwrap_err(),
            KeySpecError::Duplicate("k".into())
        );
    }

    #[test]
    fn reads_secret_documents() {
        let key = SigningKey::from_secret_json(&format!(
            r#"{{"id": "k1", "secret": "{S32}", "tenants": ["hotel-sg"]}}"#
        ))
        .unwrap();
        assert_eq!(key.id, "k1");
        assert_eq!(key.tenants, KeyTenants::Only(vec!["hotel-sg".into()]));
        for bad in [
            "not json".to_owned(),
            format!(r#"{{"id": "k1", "secret": "{S32}"}}"#),
            format!(r#"{{"id": "", "secret": "{S32}", "tenants": ["*"]}}"#),
            format!(r#"{{"id": "k:1", "secret": "{S32}", "tenants": ["*"]}}"#),
            format!(r#"{{"id": "k1", "secret": "{S32}", "tenants": ["*"], "x": 1}}"#),
        ] {
            assert!(
                matches!(SigningKey::from_secret_json(&bad), Err(KeySpecError::Json(_))),
                "{bad}"
            );
        }
        assert_eq!(
            SigningKey::from_secret_json(&format!(r#"{{"id": "k1", "secret": "{S16}", "tenants": ["*"]}}"#)),
            Err(KeySpecError::TooShort("k1".into()))
        );
        assert_eq!(
            SigningKey::from_secret_json(&format!(r#"{{"id": "k1", "secret": "{S32}", "tenants": []}}"#)),
            Err(KeySpecError::NoTenants("k1".into()))
        );
    }

    #[test]
    fn a_key_signs_only_for_its_tenants() {
        let key = SigningKey::new("k", vec![7; 32]).for_tenants(["hotel-sg"]);
        let ring = Keyring::new(vec![key.clone()]);
        let mac = key.sign(&[b"x"]);
        ring.verify("k", &mac, &[b"x"], "hotel-sg").unwrap();
        assert_eq!(
            ring.verify("k", &mac, &[b"x"], "acme"),
            Err(DecodeError::KeyNotForTenant {
                key: "k".into(),
                tenant: "acme".into()
            })
        );
    }

    #[test]
    fn length_prefixing_separates_fields() {
        let key = SigningKey::new("k", b"0123456789abcdef".to_vec());
        assert_ne!(key.sign(&[b"ab", b"c"]), key.sign(&[b"a", b"bc"]));
    }
}
