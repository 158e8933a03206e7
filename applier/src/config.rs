//! The applier's settings, as the Lambda reads them from its environment.
//!
//! Parsing takes a lookup function instead of reading the process
//! environment itself, so only `main` touches the environment and tests
//! pass a map. The names are those of the "Applier configuration" table in
//! `docs/ARCHITECTURE.md`; `regis worker` takes the same settings as flags.

use std::time::Duration;

use regis_wire::{DecodeLimits, Keyring, Mode, SigningKey, TenantRegistry};

pub use crate::records::DEFAULT_APPLY_BUDGET_COMMANDS;

/// Default of `REGIS_MAX_CLOCK_SKEW_SECONDS`: five minutes. A batch holding
/// a version further ahead of the applier's clock is refused (`clock-skew`):
/// it would win every conflict on its keys until the wall clock caught up.
/// Clocks synchronised by NTP (or the Amazon Time Sync Service) stay within
/// milliseconds; minutes of margin leave room for a badly kept host
/// without letting a wrong clock rule for long.
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: u64 = regis_wire::DEFAULT_MAX_CLOCK_SKEW_MS / 1000;

/// Default of `REGIS_TOMBSTONE_HORIZON_SECONDS`: the engine's
/// [`DEFAULT_TOMBSTONE_HORIZON`](crate::apply::DEFAULT_TOMBSTONE_HORIZON),
/// in seconds (one default, whoever reads the setting).
pub const DEFAULT_TOMBSTONE_HORIZON_SECONDS: u64 = crate::apply::DEFAULT_TOMBSTONE_HORIZON.as_secs();

/// Everything the applier needs to know about its region.
#[derive(Debug, Clone)]
pub struct ApplierConfig {
    /// The region this applier serves (the `Region` metric dimension).
    pub region: String,
    /// `redis://` or `rediss://` URL, with credentials for AUTH/ACL.
    pub redis_url: String,
    /// Cluster mode (the URL is then a seed node).
    pub cluster: bool,
    /// The dead-letter queue where permanent failures are parked.
    pub dlq_url: String,
    /// How batches are applied; a batch of the other mode is refused.
    pub mode: Mode,
    /// Accepted signing keys (`REGIS_SIGNING_KEYS`, then those loaded from
    /// [`ApplierConfig::signing_secret_ids`] by [`ApplierConfig::add_keys`]);
    /// when non-empty, unsigned batches are refused and a key may sign only
    /// for the tenants it is bound to.
    pub keyring: Keyring,
    /// Secrets Manager secrets (ARNs or names) holding the signing keys
    /// (`REGIS_SIGNING_SECRET_IDS`), one key per secret; loaded at start by
    /// the binary, which is the one place doing I/O.
    pub signing_secret_ids: Vec<String>,
    /// `REGIS_ALLOW_UNSIGNED=true`: an applier with no keys accepts unsigned
    /// batches. Without it, no keys is a configuration error.
    pub allow_unsigned: bool,
    /// The tenant registry (`REGIS_TENANTS`): a batch of a tenant not
    /// allowed in [`ApplierConfig::region`], or writing a key outside its
    /// prefixes, is parked as `tenant-denied`. `None` only with
    /// `REGIS_ALLOW_ANY_TENANT=true`: every tenant may write anything.
    pub tenants: Option<TenantRegistry>,
    /// How long version bookkeeping outlives deleted data.
    pub tombstone_horizon: Duration,
    /// Sentry DSN; `None` disables reporting.
    pub sentry_dsn: Option<String>,
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Most commands applied in one pipelined call (`REGIS_APPLY_BUDGET`).
    pub apply_budget: usize,
    /// How far ahead of the applier's clock a version may be
    /// (`REGIS_MAX_CLOCK_SKEW_SECONDS`).
    pub max_clock_skew: Duration,
}

/// A setting that is missing or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set to something that cannot be used.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No signing key and no explicit opt-out.
    #[error(
        "no signing keys: set REGIS_SIGNING_SECRET_IDS (or REGIS_SIGNING_KEYS), or REGIS_ALLOW_UNSIGNED=true if unsigned traffic is intended"
    )]
    Unsigned,
    /// No tenant registry and no explicit opt-out.
    #[error("REGIS_TENANTS is not set (set REGIS_ALLOW_ANY_TENANT=true if every tenant may write anything here)")]
    NoTenants,
}

impl ApplierConfig {
    /// Loads the keys of [`ApplierConfig::signing_secret_ids`] from `source`
    /// (Secrets Manager) into the keyring; the binaries call it once at
    /// start. A secret that cannot be read is a configuration error: the
    /// applier does not start with fewer keys than it was given.
    pub async fn load_signing_secrets(
        &mut self,
        source: &dyn regis_aws::secrets::SecretSource,
    ) -> Result<(), ConfigError> {
        let keys = regis_aws::secrets::load_signing_keys(source, &self.signing_secret_ids)
            .await
            .map_err(|e| ConfigError::Invalid {
                name: "REGIS_SIGNING_SECRET_IDS",
                message: e.to_string(),
            })?;
        self.add_keys(keys)
    }

    /// Adds keys loaded from the secrets service to the keyring; an id
    /// given twice (inline and in a secret, or in two secrets) is an error.
    pub fn add_keys(&mut self, keys: Vec<SigningKey>) -> Result<(), ConfigError> {
        let mut all = self.keyring.keys().to_vec();
        all.extend(keys);
        self.keyring = Keyring::from_keys(all).map_err(|e| ConfigError::Invalid {
            name: "REGIS_SIGNING_SECRET_IDS",
            message: e.to_string(),
        })?;
        Ok(())
    }

    /// Reads the settings through `lookup` (for the Lambda, the process
    /// environment). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let mode = match get("REGIS_MODE") {
            Some(text) => text.trim().parse::<Mode>().map_err(|message| ConfigError::Invalid {
                name: "REGIS_MODE",
                message,
            })?,
            None => Mode::Lww,
        };
        let keyring = match lookup("REGIS_SIGNING_KEYS") {
            // Set but empty, or only commas: a mistake, not "no signing".
            Some(specs) => Keyring::parse(&specs).map_err(|e| ConfigError::Invalid {
                name: "REGIS_SIGNING_KEYS",
                message: e.to_string(),
            })?,
            None => Keyring::default(),
        };
        let signing_secret_ids = match lookup("REGIS_SIGNING_SECRET_IDS") {
            Some(list) => regis_aws::secrets::parse_secret_ids(&list).map_err(|e| ConfigError::Invalid {
                name: "REGIS_SIGNING_SECRET_IDS",
                message: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let flag = |name: &'static str| match get(name) {
            Some(text) => parse_bool(&text).ok_or_else(|| ConfigError::Invalid {
                name,
                message: format!("{text:?} is not a boolean"),
            }),
            None => Ok(false),
        };
        let allow_unsigned = flag("REGIS_ALLOW_UNSIGNED")?;
        if keyring.is_empty() && signing_secret_ids.is_empty() && !allow_unsigned {
            return Err(ConfigError::Unsigned);
        }
        let tenants = match get("REGIS_TENANTS") {
            Some(json) => Some(TenantRegistry::parse(&json).map_err(|e| ConfigError::Invalid {
                name: "REGIS_TENANTS",
                message: e.to_string(),
            })?),
            None if flag("REGIS_ALLOW_ANY_TENANT")? => None,
            None => return Err(ConfigError::NoTenants),
        };
        let seconds = |name: &'static str, default: u64| match get(name) {
            Some(text) => text.trim().parse::<u64>().map_err(|e| ConfigError::Invalid {
                name,
                message: e.to_string(),
            }),
            None => Ok(default),
        };
        let max_clock_skew = seconds("REGIS_MAX_CLOCK_SKEW_SECONDS", DEFAULT_MAX_CLOCK_SKEW_SECONDS)?;
        let horizon = seconds("REGIS_TOMBSTONE_HORIZON_SECONDS", DEFAULT_TOMBSTONE_HORIZON_SECONDS)?;
        check_horizon(Duration::from_secs(horizon)).map_err(|message| ConfigError::Invalid {
            name: "REGIS_TOMBSTONE_HORIZON_SECONDS",
            message,
        })?;
        Ok(Self {
            region: required("REGIS_REGION")?,
            redis_url: required("REGIS_REDIS_URL")?,
            cluster: flag("REGIS_REDIS_CLUSTER")?,
            dlq_url: required("REGIS_DLQ_URL")?,
            mode,
            keyring,
            signing_secret_ids,
            allow_unsigned,
            tenants,
            tombstone_horizon: Duration::from_secs(horizon),
            sentry_dsn: get("SENTRY_DSN"),
            limits: DecodeLimits::default(),
            apply_budget: match get("REGIS_APPLY_BUDGET") {
                Some(text) => parse_apply_budget(&text).map_err(|message| ConfigError::Invalid {
                    name: "REGIS_APPLY_BUDGET",
                    message,
                })?,
                None => DEFAULT_APPLY_BUDGET_COMMANDS,
            },
            max_clock_skew: Duration::from_secs(max_clock_skew),
        })
    }
}

/// A tombstone horizon the engine can work with: at least the window
/// expired data is kept aside, and small enough that expiry plus horizon
/// stays exact in the script's arithmetic ([`regis_wire::MAX_HORIZON_MS`]).
pub fn check_horizon(horizon: Duration) -> Result<(), String> {
    let ms = horizon.as_millis();
    let max = u128::from(regis_wire::MAX_HORIZON_MS);
    let window = crate::apply::ASIDE_WINDOW.as_millis();
    if ms < window {
        Err(format!(
            "must be at least {} s, the window expired data is kept aside",
            crate::apply::ASIDE_WINDOW.as_secs()
        ))
    } else if ms + window > max {
        Err(format!("must be at most {} s", (max - window) / 1000))
    } else {
        Ok(())
    }
}

/// A command budget: a whole number, at least 1.
pub fn parse_apply_budget(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `true`/`false` in the spellings people write in environment files.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<ApplierConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ApplierConfig::from_lookup(|name| map.get(name).cloned())
    }

    const KEY: &str = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=:hotel-sg";
    const TENANTS: &str = r#"{"hotel-sg": {"regions": ["eu-west-1"], "prefixes": ["hotel-sg:"]}}"#;

    const BASE: [(&str, &str); 5] = [
        ("REGIS_REGION", "eu-west-1"),
        ("REGIS_REDIS_URL", "redis://127.0.0.1:6379"),
        ("REGIS_DLQ_URL", "http://127.0.0.1:4566/000000000000/dlq"),
        ("REGIS_SIGNING_KEYS", KEY),
        ("REGIS_TENANTS", TENANTS),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        BASE.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    #[test]
    fn no_keys_is_an_error_unless_unsigned_is_intended() {
        assert_eq!(
            config(&without("REGIS_SIGNING_KEYS")).unwrap_err(),
            ConfigError::Unsigned
        );
        let mut pairs = without("REGIS_SIGNING_KEYS");
        pairs.push(("REGIS_ALLOW_UNSIGNED", "false"));
        assert_eq!(config(&pairs).unwrap_err(), ConfigError::Unsigned);
        pairs.push(("REGIS_ALLOW_UNSIGNED", "true"));
        let c = config(
            &pairs[..pairs.len()]
                .iter()
                .filter(|p| *p != &("REGIS_ALLOW_UNSIGNED", "false"))
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(c.allow_unsigned && c.keyring.is_empty());
        let mut pairs = without("REGIS_SIGNING_KEYS");
        pairs.push((
            "REGIS_SIGNING_SECRET_IDS",
            "arn:aws:secretsmanager:eu-west-1:1:secret:k1, k2",
        ));
        let c = config(&pairs).unwrap();
        assert_eq!(
            c.signing_secret_ids,
            ["arn:aws:secretsmanager:eu-west-1:1:secret:k1", "k2"]
        );
    }

    #[test]
    fn empty_or_malformed_key_lists_are_errors() {
        for (name, bad) in [
            ("REGIS_SIGNING_KEYS", ","),
            ("REGIS_SIGNING_KEYS", ""),
            ("REGIS_SIGNING_KEYS", "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
            ("REGIS_SIGNING_SECRET_IDS", ","),
            ("REGIS_SIGNING_SECRET_IDS", "a,,b"),
        ] {
            let mut pairs = without("REGIS_SIGNING_KEYS");
            pairs.push((name, bad));
            pairs.push(("REGIS_ALLOW_UNSIGNED", "true"));
            assert!(
                matches!(config(&pairs), Err(ConfigError::Invalid { name: n, .. }) if n == name),
                "{name}={bad:?}"
            );
        }
    }

    #[test]
    fn no_tenant_registry_is_an_error_unless_any_tenant_is_intended() {
        assert_eq!(config(&without("REGIS_TENANTS")).unwrap_err(), ConfigError::NoTenants);
        let mut pairs = without("REGIS_TENANTS");
        pairs.push(("REGIS_ALLOW_ANY_TENANT", "true"));
        assert_eq!(config(&pairs).unwrap().tenants, None);
        let mut pairs = without("REGIS_TENANTS");
        pairs.push(("REGIS_TENANTS", r#"{"hotel-sg": ["eu-west-1"]}"#));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid {
                name: "REGIS_TENANTS",
                ..
            })
        ));
    }

    #[test]
    fn keys_from_secrets_join_the_keyring_without_duplicate_ids() {
        let mut c = config(&BASE).unwrap();
        c.add_keys(vec![SigningKey::new("k2", vec![1; 32])]).unwrap();
        assert_eq!(c.keyring.len(), 2);
        assert!(matches!(
            c.add_keys(vec![SigningKey::new("k1", vec![1; 32])]),
            Err(ConfigError::Invalid {
                name: "REGIS_SIGNING_SECRET_IDS",
                ..
            })
        ));
    }

    #[test]
    fn defaults_apply_when_only_required_settings_are_given() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.mode, Mode::Lww);
        assert!(!c.cluster);
        assert_eq!(c.keyring.len(), 1);
        assert!(!c.allow_unsigned);
        assert!(c.tenants.as_ref().is_some_and(|t| t.contains("hotel-sg")));
        assert_eq!(c.tombstone_horizon, Duration::from_secs(604_800));
        assert_eq!(c.sentry_dsn, None);
        assert_eq!(c.apply_budget, DEFAULT_APPLY_BUDGET_COMMANDS);
        assert_eq!(c.max_clock_skew, Duration::from_secs(300));
    }

    #[test]
    fn reads_every_optional_setting() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("REGIS_MODE", "plain"),
            ("REGIS_REDIS_CLUSTER", "true"),
            ("REGIS_TOMBSTONE_HORIZON_SECONDS", "7200"),
            ("SENTRY_DSN", "https://key@sentry.invalid/1"),
            ("REGIS_APPLY_BUDGET", "500"),
            ("REGIS_MAX_CLOCK_SKEW_SECONDS", "30"),
        ]);
        let c = config(&pairs).unwrap();
        assert_eq!(c.mode, Mode::Plain);
        assert!(c.cluster);
        assert_eq!(c.tombstone_horizon, Duration::from_secs(7200));
        assert_eq!(c.sentry_dsn.as_deref(), Some("https://key@sentry.invalid/1"));
        assert_eq!(c.apply_budget, 500);
        assert_eq!(c.max_clock_skew, Duration::from_secs(30));
    }

    #[test]
    fn names_the_missing_or_bad_variable() {
        assert_eq!(
            config(&without("REGIS_DLQ_URL")).unwrap_err(),
            ConfigError::Missing("REGIS_DLQ_URL")
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("REGIS_MODE", "fast"));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid { name: "REGIS_MODE", .. })
        ));
        let mut pairs = BASE.to_vec();
        pairs.push(("REGIS_REDIS_CLUSTER", "maybe"));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid {
                name: "REGIS_REDIS_CLUSTER",
                ..
            })
        ));
        for bad in ["60", "99999999999999"] {
            let mut pairs = BASE.to_vec();
            pairs.push(("REGIS_TOMBSTONE_HORIZON_SECONDS", bad));
            assert!(
                matches!(
                    config(&pairs),
                    Err(ConfigError::Invalid {
                        name: "REGIS_TOMBSTONE_HORIZON_SECONDS",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let mut pairs = BASE.to_vec();
        pairs.push(("REGIS_MAX_CLOCK_SKEW_SECONDS", "-1"));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid {
                name: "REGIS_MAX_CLOCK_SKEW_SECONDS",
                ..
            })
        ));
        let mut pairs = BASE.to_vec();
        pairs.push(("REGIS_APPLY_BUDGET", "0"));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid {
                name: "REGIS_APPLY_BUDGET",
                ..
            })
        ));
        let mut pairs = without("REGIS_SIGNING_KEYS");
        pairs.push(("REGIS_SIGNING_KEYS", "nocolon"));
        assert!(matches!(
            config(&pairs),
            Err(ConfigError::Invalid {
                name: "REGIS_SIGNING_KEYS",
                ..
            })
        ));
    }
}
