//! The tenant registry: which regions each tenant's data may reach and which
//! keys it may write.
//!
//! One JSON document, the same in the local topology, the environment file,
//! Terraform's `tenants` variable and the applier's `REGIS_TENANTS`:
//!
//! ```json
//! {"hotel-sg": {"regions": ["ap-southeast-1", "ap-south-1"], "prefixes": ["hotel-sg:"]},
//!  "acme": {"regions": ["*"], "prefixes": [""]}}
//! ```
//!
//! `regions: ["*"]` means every region; a prefix `""` means any key. The
//! publisher reads it to stamp a batch's `regions` attribute and to refuse
//! keys outside a tenant's prefixes before publishing; the applier reads it
//! to refuse, whole, a batch that reached a region its tenant may not be in
//! or that writes outside its prefixes (reason `tenant-denied`): the
//! attributes and the queue a batch arrived on are not proof of anything,
//! the registry is. Parsing is strict (unknown fields, empty lists, empty
//! names and `*` mixed with regions are errors), since a registry read
//! wrong is a registry that lets data through.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::command::VersionedCommand;
use crate::error::{bounded, shown};

/// The region wildcard: every region.
pub const ANY_REGION: &str = "*";

/// What one tenant may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// `None`: every region.
    regions: Option<Vec<String>>,
    /// Never empty; an empty prefix matches every key.
    prefixes: Vec<Vec<u8>>,
}

impl Tenant {
    /// A tenant allowed in `regions` (`None`: every region) writing keys that
    /// start with one of `prefixes` (an empty prefix: any key).
    pub fn new(regions: Option<Vec<String>>, prefixes: Vec<Vec<u8>>) -> Self {
        Self { regions, prefixes }
    }

    /// Every region, any key.
    pub fn unrestricted() -> Self {
        Self::new(None, vec![Vec::new()])
    }

    /// The regions allowed, `None` for every region.
    pub fn regions(&self) -> Option<&[String]> {
        self.regions.as_deref()
    }

    /// The value of the `regions` message attribute: the regions, or `["*"]`.
    pub fn region_attribute(&self) -> Vec<String> {
        self.regions.clone().unwrap_or_else(|| vec![ANY_REGION.to_owned()])
    }

    /// True when the tenant's data may be in `region`.
    pub fn allows_region(&self, region: &str) -> bool {
        self.regions
            .as_ref()
            .is_none_or(|regions| regions.iter().any(|r| r == region))
    }

    /// True when `key` starts with one of the tenant's prefixes.
    pub fn allows_key(&self, key: &[u8]) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p))
    }
}

/// Why a registry document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantSpecError {
    /// Not JSON of the registry's shape.
    #[error("tenant registry is not of the form {{\"tenant\": {{\"regions\": [...], \"prefixes\": [...]}}}}: {0}")]
    Shape(String),
    /// A tenant with an empty name.
    #[error("tenant registry: a tenant name is empty")]
    EmptyName,
    /// A tenant with no region, an empty region name, or `*` next to names.
    #[error("tenant {0:?}: regions must be [\"*\"] or a non-empty list of region names")]
    Regions(String),
    /// A tenant with no prefix (use `""` for any key).
    #[error("tenant {0:?}: prefixes must not be empty (use [\"\"] for any key)")]
    Prefixes(String),
}

/// Why a tenant may not write a batch, here. The DLQ reason is
/// `tenant-denied`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantDenied {
    /// The tenant is not in the registry.
    #[error("tenant {} is not in the tenant registry", shown(.tenant.as_bytes()))]
    Unknown {
        /// The tenant.
        tenant: String,
    },
    /// The tenant's data may not be in this region.
    #[error("tenant {} is not allowed in region {region}", shown(.tenant.as_bytes()))]
    Region {
        /// The tenant.
        tenant: String,
        /// The region.
        region: String,
    },
    /// A command writes a key outside the tenant's prefixes.
    #[error("command {index} writes key {} outside the prefixes of tenant {}", shown(.key), shown(.tenant.as_bytes()))]
    Key {
        /// The tenant.
        tenant: String,
        /// The command's position in the batch (from 0).
        index: usize,
        /// The key.
        key: Vec<u8>,
    },
}

impl TenantDenied {
    /// The stable reason code: `tenant-denied`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown { .. } | Self::Region { .. } | Self::Key { .. } => "tenant-denied",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSpec {
    regions: Vec<String>,
    prefixes: Vec<String>,
}

/// Reads the registry as a member of a larger document (the environment
/// file), with the same checks as [`TenantRegistry::parse`].
impl<'de> Deserialize<'de> for TenantRegistry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let specs = BTreeMap::<String, TenantSpec>::deserialize(deserializer)?;
        Self::from_specs(specs).map_err(serde::de::Error::custom)
    }
}

/// Every tenant, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRegistry {
    tenants: BTreeMap<String, Tenant>,
}

impl TenantRegistry {
    /// An empty registry (every tenant unknown).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the registry document (see the module documentation).
    pub fn parse(json: &str) -> Result<Self, TenantSpecError> {
        let specs: BTreeMap<String, TenantSpec> =
            serde_json::from_str(json).map_err(|e| TenantSpecError::Shape(bounded(e)))?;
        Self::from_specs(specs)
    }

    fn from_specs(specs: BTreeMap<String, TenantSpec>) -> Result<Self, TenantSpecError> {
        let mut registry = Self::new();
        for (name, spec) in specs {
            if name.is_empty() {
                return Err(TenantSpecError::EmptyName);
            }
            let regions = match spec.regions.as_slice() {
                [only] if only == ANY_REGION => None,
                [] => return Err(TenantSpecError::Regions(name)),
                list if list.iter().any(|r| r.is_empty() || r == ANY_REGION) => {
                    return Err(TenantSpecError::Regions(name));
                }
                list => Some(list.to_vec()),
            };
            if spec.prefixes.is_empty() {
                return Err(TenantSpecError::Prefixes(name));
            }
            let prefixes = spec.prefixes.into_iter().map(String::into_bytes).collect();
            registry.insert(name, Tenant::new(regions, prefixes));
        }
        Ok(registry)
    }

    /// Adds (or replaces) a tenant.
    pub fn insert(&mut self, name: impl Into<String>, tenant: Tenant) {
        self.tenants.insert(name.into(), tenant);
    }

    /// The tenant named `name`.
    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    /// True when the registry names `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tenants.contains_key(name)
    }

    /// The tenants' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// Checks a batch of `tenant` in `region`: the tenant is known, allowed
    /// in the region, and every command's key is inside its prefixes. The
    /// first violation is returned.
    pub fn check(&self, tenant: &str, region: &str, commands: &[VersionedCommand]) -> Result<(), TenantDenied> {
        let rule = self.known(tenant)?;
        if !rule.allows_region(region) {
            return Err(TenantDenied::Region {
                tenant: tenant.to_owned(),
                region: bounded(region),
            });
        }
        match commands.iter().position(|c| !rule.allows_key(c.command.key())) {
            Some(index) => Err(TenantDenied::Key {
                tenant: tenant.to_owned(),
                index,
                key: commands[index].command.key().to_vec(),
            }),
            None => Ok(()),
        }
    }

    /// Checks one key of `tenant` against its prefixes (the publisher's
    /// check, command by command).
    pub fn check_key(&self, tenant: &str, key: &[u8]) -> Result<(), TenantDenied> {
        if self.known(tenant)?.allows_key(key) {
            Ok(())
        } else {
            Err(TenantDenied::Key {
                tenant: tenant.to_owned(),
                index: 0,
                key: key.to_vec(),
            })
        }
    }

    fn known(&self, tenant: &str) -> Result<&Tenant, TenantDenied> {
        self.get(tenant).ok_or_else(|| TenantDenied::Unknown {
            tenant: tenant.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, HybridClock};

    const DOC: &str = r#"{"hotel-sg": {"regions": ["ap-southeast-1", "ap-south-1"], "prefixes": ["hotel-sg:"]},
                          "acme": {"regions": ["*"], "prefixes": [""]}}"#;

    fn sets(keys: &[&str]) -> Vec<VersionedCommand> {
        let mut clock = HybridClock::new(1);
        keys.iter()
            .map(|k| {
                VersionedCommand::new(
                    clock.tick(1_700_000_000_000),
                    Command::Set {
                        key: k.as_bytes().to_vec(),
                        value: b"v".to_vec(),
                        expire_at_ms: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn reads_the_shared_document() {
        let r = TenantRegistry::parse(DOC).unwrap();
        assert_eq!(r.names().collect::<Vec<_>>(), ["acme", "hotel-sg"]);
        let sg = r.get("hotel-sg").unwrap();
        assert_eq!(sg.region_attribute(), ["ap-southeast-1", "ap-south-1"]);
        assert_eq!(r.get("acme").unwrap().region_attribute(), ["*"]);
        assert!(r.get("acme").unwrap().allows_key(b"anything"));
        assert!(TenantRegistry::parse("{}").unwrap().names().next().is_none());
        #[derive(Deserialize)]
        struct Env {
            tenants: TenantRegistry,
        }
        let env: Env = serde_json::from_str(&format!(r#"{{"tenants": {DOC}}}"#)).unwrap();
        assert_eq!(env.tenants, r);
        assert!(serde_json::from_str::<Env>(r#"{"tenants": {"a": {"regions": [], "prefixes": [""]}}}"#).is_err());
    }

    #[test]
    fn allows_a_tenant_inside_its_regions_and_prefixes() {
        let r = TenantRegistry::parse(DOC).unwrap();
        r.check("hotel-sg", "ap-south-1", &sets(&["hotel-sg:1", "hotel-sg:2"]))
            .unwrap();
        r.check("acme", "eu-west-1", &sets(&["x", "hotel-sg:1"])).unwrap();
        r.check_key("hotel-sg", b"hotel-sg:9").unwrap();
    }

    #[test]
    fn denies_unknown_tenants_other_regions_and_foreign_keys() {
        let r = TenantRegistry::parse(DOC).unwrap();
        let denied = r.check("globex", "eu-west-1", &sets(&["a"])).unwrap_err();
        assert_eq!(
            denied,
            TenantDenied::Unknown {
                tenant: "globex".into()
            }
        );
        assert_eq!(denied.reason(), "tenant-denied");
        let denied = r.check("hotel-sg", "eu-west-1", &sets(&["hotel-sg:1"])).unwrap_err();
        assert!(matches!(&denied, TenantDenied::Region { region, .. } if region == "eu-west-1"));
        assert!(denied.to_string().contains("eu-west-1"), "{denied}");
        let denied = r
            .check("hotel-sg", "ap-south-1", &sets(&["hotel-sg:1", "acme:2"]))
            .unwrap_err();
        assert!(matches!(&denied, TenantDenied::Key { index: 1, key, .. } if key == b"acme:2"));
        assert!(denied.to_string().contains("acme:2") && denied.to_string().contains("hotel-sg"));
        assert!(r.check_key("hotel-sg", b"hotel-s").is_err());
        assert!(r.check_key("nobody", b"x").is_err());
    }

    #[test]
    fn malformed_documents_are_errors() {
        for (doc, want) in [
            (r#"{"a": ["eu-west-1"]}"#, "shape"),
            (r#"{"a": {"regions": ["*"]}}"#, "shape"),
            (r#"{"a": {"regions": ["*"], "prefixes": [""], "extra": 1}}"#, "shape"),
            ("not json", "shape"),
            (r#"{"": {"regions": ["*"], "prefixes": [""]}}"#, "name"),
            (r#"{"a": {"regions": [], "prefixes": [""]}}"#, "regions"),
            (r#"{"a": {"regions": ["*", "eu-west-1"], "prefixes": [""]}}"#, "regions"),
            (r#"{"a": {"regions": [""], "prefixes": [""]}}"#, "regions"),
            (r#"{"a": {"regions": ["*"], "prefixes": []}}"#, "prefixes"),
        ] {
            let got = TenantRegistry::parse(doc).unwrap_err();
            let kind = match got {
                TenantSpecError::Shape(_) => "shape",
                TenantSpecError::EmptyName => "name",
                TenantSpecError::Regions(_) => "regions",
                TenantSpecError::Prefixes(_) => "prefixes",
            };
            assert_eq!(kind, want, "{doc}: {got}");
        }
    }
}
