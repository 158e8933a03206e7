//! Signing keys kept in AWS Secrets Manager, one secret per key.
//!
//! Each secret's `SecretString` is the document
//! `{"id": "k1", "secret": "<base64 of at least 32 bytes>", "tenants": ["hotel-sg"]}`
//! ([`SigningKey::from_secret_json`]). The applier loads every key it
//! accepts at start (`REGIS_SIGNING_SECRET_IDS`), a publisher the one it
//! signs with; neither keeps keys in plaintext environment variables.
//! Reading goes through the small [`SecretSource`] trait so callers are
//! tested on an in-memory map.

use async_trait::async_trait;
use regis_wire::{KeySpecError, SigningKey};

/// Why a signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secrets service could not be asked, or refused (no such
    /// secret, no permission, unreachable).
    #[error("secret {id}: {message}")]
    Fetch {
        /// The secret id (ARN or name).
        id: String,
        /// What the service said.
        message: String,
    },
    /// The secret holds no string (a binary secret).
    #[error("secret {0}: no SecretString")]
    NotAString(String),
    /// The string is not a signing key document.
    #[error("secret {id}: {source}")]
    Key {
        /// The secret id.
        id: String,
        /// What is wrong with it.
        #[source]
        source: KeySpecError,
    },
    /// `REGIS_SIGNING_SECRET_IDS`-style list with an empty entry.
    #[error("secret id list has an empty entry")]
    EmptyEntry,
}

/// Reads one secret's string.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The `SecretString` of secret `id` (ARN or name).
    async fn secret_string(&self, id: &str) -> Result<String, SecretError>;
}

#[async_trait]
impl SecretSource for aws_sdk_secretsmanager::Client {
    async fn secret_string(&self, id: &str) -> Result<String, SecretError> {
        let out = self
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| SecretError::Fetch {
                id: id.to_owned(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        out.secret_string.ok_or_else(|| SecretError::NotAString(id.to_owned()))
    }
}

/// The Secrets Manager client of `sdk` (so callers need not depend on the
/// SDK crate themselves).
pub fn secrets_manager(sdk: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

/// Splits a comma-separated list of secret ids; an empty entry (`","`, a
/// trailing comma) is an error, never a shorter list.
pub fn parse_secret_ids(list: &str) -> Result<Vec<String>, SecretError> {
    list.split(',')
        .map(|id| {
            let id = id.trim();
            if id.is_empty() {
                Err(SecretError::EmptyEntry)
            } else {
                Ok(id.to_owned())
            }
        })
        .collect()
}

/// Loads the signing key kept in secret `id`.
pub async fn load_signing_key(source: &dyn SecretSource, id: &str) -> Result<SigningKey, SecretError> {
    let text = source.secret_string(id).await?;
    SigningKey::from_secret_json(&text).map_err(|source| SecretError::Key {
        id: id.to_owned(),
        source,
    })
}

/// Loads every key in `ids`, in order; the first failure stops it.
pub async fn load_signing_keys(source: &dyn SecretSource, ids: &[String]) -> Result<Vec<SigningKey>, SecretError> {
    let mut keys = Vec::with_capacity(ids.len());
    for id in ids {
        keys.push(load_signing_key(source, id).await?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<String, String>);

    #[async_trait]
    impl SecretSource for Map {
        async fn secret_string(&self, id: &str) -> Result<String, SecretError> {
            self.0.get(id).cloned().ok_or_else(|| SecretError::Fetch {
                id: id.to_owned(),
                message: "ResourceNotFoundException".into(),
            })
        }
    }

    const S32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[tokio::test]
    async fn loads_keys_and_names_the_secret_that_fails() {
        let map = Map(HashMap::from([
            (
                "a".into(),
                format!(r#"{{"id":"k1","secret":"{S32}","tenants":["hotel-sg"]}}"#),
            ),
            ("b".into(), format!(r#"{{"id":"k2","secret":"{S32}","tenants":["*"]}}"#)),
            ("bad".into(), r#"{"id":"k3"}"#.into()),
        ]));
        let keys = load_signing_keys(&map, &["a".into(), "b".into()]).await.unwrap();
        assert_eq!(keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1", "k2"]);
        let err = load_signing_keys(&map, &["a".into(), "bad".into()]).await.unwrap_err();
        assert!(matches!(&err, SecretError::Key { id, .. } if id == "bad"), "{err}");
        let err = load_signing_key(&map, "missing").await.unwrap_err();
        assert!(
            matches!(&err, SecretError::Fetch { id, .. } if id == "missing"),
            "{err}"
        );
    }

    #[test]
    fn secret_id_lists_refuse_empty_entries() {
        assert_eq!(parse_secret_ids("a, b").unwrap(), ["a", "b"]);
        for bad in [",", "", "a,", "a,,b"] {
            assert!(matches!(parse_secret_ids(bad), Err(SecretError::EmptyEntry)), "{bad:?}");
        }
    }
}
