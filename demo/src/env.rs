//! The local environment (`.regis/env.json`, written by `local/up.sh`) as
//! the demo and the end-to-end suite need it, complete, and clients for
//! what it describes. The file is read by [`regis_aws::deployment`].

use std::path::PathBuf;
use std::time::Duration;

use regis_aws::deployment::{self, Deployment, DeploymentError, required};
use regis_publisher::{AwsSns, ConfigError, Publisher, PublisherConfig, TenantRegistry};

/// The local environment.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

impl TryFrom<&deployment::Region> for Region {
    type Error = DeploymentError;

    fn try_from(r: &deployment::Region) -> Result<Self, DeploymentError> {
        let field = |value: Option<&String>, name: &str| required(value, format_args!("{name} for region {}", r.name));
        Ok(Self {
            name: r.name.clone(),
            rank: r.rank,
            queue_url: field(r.queue_url.as_ref(), "queue_url")?,
            queue_arn: field(r.queue_arn.as_ref(), "queue_arn")?,
            dlq_url: field(r.dlq_url.as_ref(), "dlq_url")?,
            dlq_arn: field(r.dlq_arn.as_ref(), "dlq_arn")?,
            redis_url: field(r.redis_url.as_ref(), "redis_url")?,
        })
    }
}

impl TryFrom<Deployment> for Env {
    type Error = DeploymentError;

    /// The environment, when the file describes all of it.
    fn try_from(d: Deployment) -> Result<Self, DeploymentError> {
        Ok(Self {
            endpoint_url: required(d.endpoint_url.as_ref(), "endpoint_url")?,
            topic_arn: required(d.topic_arn.as_ref(), "topic_arn")?,
            topic_region: required(d.topic_region.as_ref(), "topic_region")?,
            regions: d.regions.iter().map(Region::try_from).collect::<Result<_, _>>()?,
            tenants: d.tenants,
            visibility_timeout_seconds: required(d.visibility_timeout_seconds.as_ref(), "visibility_timeout_seconds")?,
            max_receive_count: required(d.max_receive_count.as_ref(), "max_receive_count")?,
        })
    }
}

impl Env {
    /// Where the environment file is: `$REGIS_ENV_FILE`, else
    /// `.regis/env.json` in the current directory.
    pub fn path() -> PathBuf {
        std::env::var_os(deployment::ENV_FILE_VARIABLE)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(deployment::DEFAULT_ENV_FILE))
    }

    /// Reads the environment file, with a message that says what to do when
    /// the environment is not up.
    pub fn load() -> Result<Env, String> {
        let path = Self::path();
        let deployment = Deployment::read(&path).map_err(|e| match e {
            DeploymentError::Read { path, source } => format!(
                "cannot read {} ({source}): the local environment is not up; run `make up` (or `make test`, `make demo`)",
                path.display()
            ),
            e => e.to_string(),
        })?;
        Env::try_from(deployment).map_err(|e| format!("{}: {e}", path.display()))
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
        regis_aws::sdk::config(region, &regis_aws::sdk::Endpoint::local(&self.endpoint_url)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETE: &str = r#"{
      "endpoint_url": "http://127.0.0.1:4566",
      "topic_arn": "arn:aws:sns:ap-southeast-1:000000000000:regis-replication",
      "topic_region": "ap-southeast-1",
      "visibility_timeout_seconds": 30,
      "max_receive_count": 5,
      "regions": [
        {"name": "ap-southeast-1", "rank": 1, "queue_url": "http://q1", "queue_arn": "arn:q1",
         "dlq_url": "http://d1", "dlq_arn": "arn:d1", "redis_url": "redis://127.0.0.1:6401"}
      ],
      "tenants": {"hotel-sg": {"regions": ["ap-southeast-1"], "prefixes": [""]}}
    }"#;

    #[test]
    fn a_complete_file_is_the_environment() {
        let env = Env::try_from(Deployment::parse(COMPLETE).unwrap()).unwrap();
        assert_eq!(env.region("ap-southeast-1").dlq_url, "http://d1");
        assert_eq!(env.visibility_timeout(), Duration::from_secs(30));
        assert_eq!(env.regions_of("hotel-sg"), ["ap-southeast-1"]);
        assert_eq!(env.regions_of("open"), env.region_names());
    }

    #[test]
    fn a_missing_field_is_named() {
        let partial = COMPLETE.replace(r#""redis_url": "redis://127.0.0.1:6401""#, r#""rank2": 0"#);
        let e = Env::try_from(Deployment::parse(&partial).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the environment file has no redis_url for region ap-southeast-1"
        );
        let e = Env::try_from(Deployment::parse("{}").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "the environment file has no endpoint_url");
    }
}
