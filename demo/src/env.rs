//! `.regis/env.json`, written by `local/up.sh`, and clients for what it
//! describes.

use std::path::PathBuf;
use std::time::Duration;

use regis_publisher::{AwsSns, ConfigError, Publisher, PublisherConfig, TenantRegistry};
use serde::Deserialize;

/// The local environment.
#[derive(Debug, Clone, Deserialize)]
pub struct Env {
    /// LocalStack's URL.
    pub endpoint_url: String,
    /// The replication topic.
    pub topic_arn: String,
    /// The topic's region (the publishers' origin).
    pub topic_region: String,
    /// The regions, in topology order.
    pub regions: Vec<Region>,
    /// The tenant registry: each tenant's regions and key prefixes.
    pub tenants: TenantRegistry,
    /// The apply queues' visibility timeout.
    pub visibility_timeout_seconds: u64,
    /// Receives before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
}

/// One region of the environment.
#[derive(Debug, Clone, Deserialize)]
pub struct Region {
    /// The region's name.
    pub name: String,
    /// The region's rank (the last tie-break of versions).
    pub rank: u16,
    /// The apply queue.
    pub queue_url: String,
    /// The apply queue's ARN.
    pub queue_arn: String,
    /// The dead-letter queue.
    pub dlq_url: String,
    /// The dead-letter queue's ARN.
    pub dlq_arn: String,
    /// The region's Redis.
    pub redis_url: String,
}

impl Env {
    /// Where the environment file is: `$REGIS_ENV_FILE`, else
    /// `.regis/env.json` in the current directory.
    pub fn path() -> PathBuf {
        std::env::var_os("REGIS_ENV_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".regis").join("env.json"))
    }

    /// Reads the environment file, with a message that says what to do when
    /// the environment is not up.
    pub fn load() -> Result<Env, String> {
        let path = Self::path();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} ({e}): the local environment is not up; run `make up` (or `make test`, `make demo`)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The directory of the environment's logs (`logs/` beside env.json).
    pub fn logs_dir() -> PathBuf {
        let path = Self::path();
        path.parent()
            .map(|p| p.join("logs"))
            .unwrap_or_else(|| PathBuf::from("logs"))
    }

    /// The region called `name`; panics if there is none.
    pub fn region(&self, name: &str) -> &Region {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("region {name} is not in the environment"))
    }

    /// Every region's name, in topology order.
    pub fn region_names(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.name.clone()).collect()
    }

    /// Regions the topology allows `tenant` in (all of them when unrestricted).
    pub fn regions_of(&self, tenant: &str) -> Vec<String> {
        match self.tenants.get(tenant).and_then(|t| t.regions()) {
            Some(regions) => regions.to_vec(),
            None => self.region_names(),
        }
    }

    /// How long a message a worker failed on stays invisible.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_seconds)
    }

    /// SDK configuration for `region`: LocalStack endpoint, test credentials.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        let credentials = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "regis-local");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint_url)
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// An SQS client for `region`.
    pub async fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config(region).await)
    }

    /// A publisher in the topic's region that knows the topology's
    /// restricted tenants; `default_tenant` is what `publish` uses.
    pub async fn publisher(&self, default_tenant: &str) -> Result<Publisher, ConfigError> {
        let origin = self.region(&self.topic_region);
        let mut config = PublisherConfig::new(&self.topic_arn, &origin.name, origin.rank);
        config.default_tenant = Some(default_tenant.to_owned());
        config.tenants = self.tenants.clone();
        let sns = AwsSns::from_sdk_config(&self.sdk_config(&origin.name).await);
        Publisher::new(config, sns)
    }

    /// A connection to `region`'s Redis.
    pub async fn redis(&self, region: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.region(region).redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await
    }
}
