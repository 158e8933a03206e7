//! The local environment file (`.regis/env.json`, written by `make up`) and
//! the AWS SDK configuration the operator subcommands build from it.
//!
//! Every subcommand that needs a region's queues or Redis takes them from
//! flags first and falls back to this file, so that against the local
//! environment `regis dlq list --region eu-west-1` needs nothing else, and
//! against real AWS the flags (or `REGIS_*` variables) say everything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::output::OpsError;

/// Where the file is looked for when neither `--env-file` nor
/// `REGIS_ENV_FILE` says otherwise (relative to the working directory).
pub const DEFAULT_ENV_FILE: &str = ".regis/env.json";

/// One region of the local environment.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RegionEnv {
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
}

/// The content of `.regis/env.json` (the fields the subcommands use).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct LocalEnv {
    /// The AWS endpoint (LocalStack).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The replication topic.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// The region the topic lives in.
    #[serde(default)]
    pub topic_region: Option<String>,
    /// The regions, in rank order.
    #[serde(default)]
    pub regions: Vec<RegionEnv>,
    /// The tenant registry (regions and key prefixes per tenant).
    #[serde(default)]
    pub tenants: regis_wire::TenantRegistry,
}

impl LocalEnv {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, OpsError> {
        serde_json::from_str(text).map_err(|e| OpsError::Usage(format!("environment file: {e}")))
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&RegionEnv> {
        self.regions.iter().find(|r| r.name == name)
    }
}

/// The `--env-file` flag every operator subcommand has.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EnvArgs {
    /// The local environment file, for regions, queues, Redis URLs and the
    /// topic not given by flags [default: .regis/env.json, if it exists].
    #[arg(long, env = "REGIS_ENV_FILE", value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

impl EnvArgs {
    /// Reads the environment file: the one named (which must exist), else
    /// the default one if it exists, else none.
    pub fn load(&self) -> Result<Option<LocalEnv>, OpsError> {
        match &self.env_file {
            Some(path) => read(path).map(Some),
            None => {
                let path = Path::new(DEFAULT_ENV_FILE);
                if path.exists() { read(path).map(Some) } else { Ok(None) }
            }
        }
    }
}

fn read(path: &Path) -> Result<LocalEnv, OpsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OpsError::Usage(format!("cannot read the environment file {}: {e}", path.display())))?;
    LocalEnv::parse(&text).map_err(|e| OpsError::Usage(format!("{}: {e}", path.display())))
}

/// Takes a setting from its flag, else from the environment file, else
/// fails with a message naming both.
pub fn pick(flag: Option<&str>, from_env: Option<&str>, what: &str, flag_name: &str) -> Result<String, OpsError> {
    flag.or(from_env).map(str::to_owned).ok_or_else(|| {
        OpsError::Usage(format!(
            "no {what}: give {flag_name}, or an environment file (--env-file) that has it"
        ))
    })
}

/// SDK configuration for `region`. The endpoint is the SDK's own
/// `AWS_ENDPOINT_URL` when set, else the environment file's; with the
/// file's endpoint (LocalStack) and no credentials in the environment, the
/// test credentials LocalStack accepts are used.
pub async fn sdk_config(region: &str, env: Option<&LocalEnv>) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region.to_owned()));
    let endpoint_from_file = std::env::var_os("AWS_ENDPOINT_URL")
        .is_none()
        .then(|| env.and_then(|e| e.endpoint_url.clone()));
    if let Some(Some(endpoint)) = endpoint_from_file {
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() && std::env::var_os("AWS_PROFILE").is_none() {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "regis-local",
            ));
        }
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "endpoint_url": "http://127.0.0.1:4566",
      "topic_arn": "arn:aws:sns:ap-southeast-1:000000000000:regis-replication",
      "topic_region": "ap-southeast-1",
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
        let env = LocalEnv::parse(SAMPLE).unwrap();
        assert_eq!(env.topic_region.as_deref(), Some("ap-southeast-1"));
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
    }

    #[test]
    fn broken_files_are_usage_errors() {
        assert_eq!(LocalEnv::parse("{").unwrap_err().exit_code(), 2);
        let missing = EnvArgs {
            env_file: Some(PathBuf::from("does/not/exist.json")),
        };
        assert_eq!(missing.load().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn flags_win_over_the_file() {
        assert_eq!(pick(Some("a"), Some("b"), "x", "--x").unwrap(), "a");
        assert_eq!(pick(None, Some("b"), "x", "--x").unwrap(), "b");
        let e = pick(None, None, "DLQ URL", "--dlq-url").unwrap_err();
        assert!(e.to_string().contains("--dlq-url"), "{e}");
    }
}
