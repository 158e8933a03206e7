//! The connection to a region's Redis: one node or a cluster.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Pipeline, RedisResult, Script, Value};

use super::{ApplyError, RedisOptions};

/// Parses a `redis://` or `rediss://` URL (with `user:password@` for
/// AUTH/ACL), refusing other schemes, without connecting.
pub fn parse_url(redis_url: &str) -> Result<redis::ConnectionInfo, ApplyError> {
    use redis::IntoConnectionInfo as _;
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
        return Err(ApplyError::Config {
            detail: "the Redis URL must start with redis:// or rediss://".into(),
            source: None,
        });
    }
    redis_url.into_connection_info().map_err(ApplyError::config)
}

/// A connection that survives Redis restarts and failovers by itself.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) async fn query(&mut self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => pipe.query_async(c).await,
            Self::Cluster(c) => pipe.query_async(c).await,
        }
    }

    pub(crate) async fn load(&mut self, script: &Script) -> RedisResult<String> {
        match self {
            Self::Single(c) => script.load_async(c).await,
            Self::Cluster(c) => script.load_async(c).await,
        }
    }
}

impl Conn {
    /// Connects to `redis_url`: a cluster through a seed node, or one node
    /// behind a connection manager that reconnects by itself. Fails with a
    /// retryable error when Redis cannot be reached, and with
    /// [`ApplyError::Config`] when the URL cannot work.
    pub(crate) async fn open(redis_url: &str, options: &RedisOptions) -> Result<Self, ApplyError> {
        let info = parse_url(redis_url)?;
        Ok(if options.cluster {
            let client = ClusterClientBuilder::new(vec![info])
                .connection_timeout(options.connect_timeout)
                .response_timeout(options.response_timeout)
                .build()
                .map_err(ApplyError::config)?;
            let conn = client
                .get_async_connection()
                .await
                .map_err(|e| ApplyError::from_redis(e, "connect"))?;
            Self::Cluster(conn)
        } else {
            let client = redis::Client::open(info).map_err(ApplyError::config)?;
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(options.response_timeout))
                .set_connection_timeout(Some(options.connect_timeout))
                .set_number_of_retries(3)
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| ApplyError::from_redis(e, "connect"))?;
            Self::Single(manager)
        })
    }
}
