//! The arguments of `regis resync`.

use regis_applier::snapshot::DEFAULT_SCAN_COUNT;

use crate::local_env::EnvArgs;
use crate::publish::TopicArgs;

/// `regis resync`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    group(clap::ArgGroup::new("target").required(true).args(["to_region", "all"])),
    long_about = "Re-publish the full state of a source Redis as versioned commands, to bootstrap a new region or \
heal drift. Each key becomes a whole-value replacement (SET/HREPLACE/SREPLACE/ZREPLACE with its expiry) stamped \
with the source's own version bookkeeping, plus element writes for elements changed later, and DEL for keys the \
source has deleted. Because apply is last-writer-wins, a resync never overwrites newer data. Keys without \
bookkeeping get a fresh clock reading: they win over whatever the target held before the resync (see the crate \
docs). --to-region sends to one region's apply queue only; --all publishes to the topic (every region).",
    after_help = "Examples:
  regis resync --from redis://127.0.0.1:6401 --to-region eu-west-1
  regis resync --from redis://10.0.0.5:6379 --to-region eu-west-1 --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/regis-apply --rate 2000
  regis resync --from redis://127.0.0.1:6401 --all --tenant hotel-sg --match 'hotel:*'

Lists and other types regis does not replicate are skipped and counted. Exit 1 if anything could not be sent."
)]
pub struct ResyncArgs {
    /// The source Redis (`redis://` or `rediss://`).
    #[arg(long, value_name = "REDIS_URL")]
    pub from: String,
    /// Send to this region's apply queue only.
    #[arg(long, value_name = "REGION")]
    pub to_region: Option<String>,
    /// The apply queue of --to-region [default: the environment file's].
    #[arg(long, env = "REGIS_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,
    /// Publish to the topic, for every region.
    #[arg(long)]
    pub all: bool,
    /// The tenant stamped on the batches (selects regions with --all).
    #[arg(long, env = "REGIS_TENANT", default_value = "resync")]
    pub tenant: String,
    /// Resync only keys matching this SCAN pattern.
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// At most this many commands per second (0: no limit).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Origin rank of the fresh versions given to keys without bookkeeping.
    #[arg(long = "clock-rank", default_value_t = 0)]
    pub clock_rank: u16,
    /// SCAN COUNT hint.
    #[arg(long, default_value_t = DEFAULT_SCAN_COUNT)]
    pub count: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The topic (with --all).
    #[command(flatten)]
    pub topic: TopicArgs,
    /// The local environment file.
    #[command(flatten)]
    pub env: EnvArgs,
}
