//! The description of a deployment: its endpoint, topic, regions (queues,
//! dead-letter queues, Redis) and tenants, as `local/up.sh` writes it to
//! `.regis/env.json`.
//!
//! One reader serves everyone who needs the file: the operator's tool
//! (every field optional, flags fill the gaps), the demo and the
//! end-to-end suite (which require a complete local environment, see
//! [`required`]). Where the file is comes from the caller (a
//! flag, or [`ENV_FILE_VARIABLE`]); this module only reads and parses.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sdk::Endpoint;

/// The file's path relative to the repository (or working directory) when
/// nothing says otherwise.
pub const DEFAULT_ENV_FILE: &str = ".regis/env.json";

/// The environment variable that names the file.
pub const ENV_FILE_VARIABLE: &str = "REGIS_ENV_FILE";

/// One region of a deployment.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct Region {
    /// The region name (`eu-west-1`).
    pub name: String,
    /// The region's rank (the last tie-break of versions).
    #[serde(default)]
    pub rank: u16,
    /// The apply queue.
    #[serde(default)]
    pub queue_url: Option<String>,
    /// The apply queue's ARN.
    #[serde(default)]
    pub queue_arn: Option<String>,
    /// The dead-letter queue.
    #[serde(default)]
    pub dlq_url: Option<String>,
    /// The dead-letter queue's ARN.
    #[serde(default)]
    pub dlq_arn: Option<String>,
    /// The region's Redis.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// The subscription's dead-letter queue ("undelivered" queue), where SNS
    /// keeps what it could not deliver to this region's queue. It lives in
    /// the topic's region.
    #[serde(default)]
    pub sub_dlq_url: Option<String>,
}

/// The content of the environment file. Unknown fields are ignored, so the
/// writer may add some without breaking readers.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The AWS endpoint (LocalStack).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The replication topic.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// The region the topic lives in (the publishers' origin).
    #[serde(default)]
    pub topic_region: Option<String>,
    /// The regions, in rank (topology) order.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// The tenant registry: regions and key prefixes per tenant.
    #[serde(default)]
    pub tenants: regis_wire::TenantRegistry,
    /// The apply queues' visibility timeout, seconds.
    #[serde(default)]
    pub visibility_timeout_seconds: Option<u64>,
    /// Receives before SQS moves a message to the DLQ.
    #[serde(default)]
    pub max_receive_count: Option<u32>,
}

/// Why the environment file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The file could not be read.
    #[error("cannot read the environment file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a deployment description.
    #[error("{}: {source}", path.as_deref().map_or_else(|| "environment file".into(), |p| p.display().to_string()))]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A field the caller needs is absent.
    #[error("the environment file has no {0}")]
    Missing(String),
}

impl Deployment {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, DeploymentError> {
        serde_json::from_str(text).map_err(|source| DeploymentError::Parse { path: None, source })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DeploymentError::Parse {
            path: Some(path.to_owned()),
            source,
        })
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The endpoint the file names: LocalStack with test credentials when
    /// it has an `endpoint_url`, else the SDK's defaults.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint_url.as_deref().map_or_else(Endpoint::aws, Endpoint::local)
    }
}

/// `value`, or [`DeploymentError::Missing`] naming `what`: for callers that
/// need a complete description (the demo, the end-to-end suite).
pub fn required<T: Clone>(value: Option<&T>, what: impl std::fmt::Display) -> Result<T, DeploymentError> {
    value.cloned().ok_or_else(|| DeploymentError::Missing(what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "endpoint_url": "http://127.0.0.1:4566",
      "topic_arn": "arn:aws:sns:ap-southeast-1:000000000000:regis-replication",
      "topic_region": "ap-southeast-1",
      "visibility_timeout_seconds": 30,
      "max_receive_count": 5,
      "regions": [
        {"name": "ap-southeast-1", "rank": 1, "queue_url": "http://q1", "queue_arn": "arn:q1",
         "dlq_url": "http://d1", "dlq_arn": "arn:d1", "redis_url": "redis://127.0.0.1:6401",
         "subscription_arn": "arn:s1"},
        {"name": "eu-west-1", "rank": 3}
      ],
      "tenants": {"hotel-sg": {"regions": ["ap-southeast-1", "ap-south-1"], "prefixes": ["hotel-sg:"]}}
    }"#;

    #[test]
    fn the_file_written_by_make_up_is_read() {
        let env = Deployment::parse(SAMPLE).unwrap();
        assert_eq!(env.topic_region.as_deref(), Some("ap-southeast-1"));
        assert_eq!(
            (env.visibility_timeout_seconds, env.max_receive_count),
            (Some(30), Some(5))
        );
        let first = env.region("ap-southeast-1").unwrap();
        assert_eq!(first.rank, 1);
        assert_eq!(first.dlq_url.as_deref(), Some("http://d1"));
        let bare = env.region("eu-west-1").unwrap();
        assert_eq!((bare.rank, bare.queue_url.as_deref()), (3, None));
        assert!(env.region("us-east-1").is_none());
        assert_eq!(
            env.tenants.get("hotel-sg").and_then(|t| t.regions()),
            Some(&["ap-southeast-1".to_owned(), "ap-south-1".to_owned()][..])
        );
        assert_eq!(env.endpoint(), Endpoint::local("http://127.0.0.1:4566"));
        assert_eq!(Deployment::default().endpoint(), Endpoint::aws());
    }

    #[test]
    fn errors_keep_their_cause_and_name_the_file() {
        let e = Deployment::parse("{").unwrap_err();
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<serde_json::Error>()));
        let dir = std::env::temp_dir().join(format!("regis-deployment-{}", std::process::id()));
        let missing = dir.join("missing.json");
        let e = Deployment::read(&missing).unwrap_err();
        assert!(
            matches!(&e, DeploymentError::Read { path, .. } if path == &missing),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()));
        assert!(e.to_string().contains("missing.json"), "{e}");
        let e = required::<String>(None, "topic_arn").unwrap_err();
        assert_eq!(e.to_string(), "the environment file has no topic_arn");
    }
}
