################################################################################
# Region and subscriptions
################################################################################

variable "region" {
  description = "The AWS region this module deploys to (must be the region of the provider passed to it). It is the value the subscription filter matches in the batches' regions attribute, and REGIS_REGION of the applier."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "topic_arns" {
  description = "ARNs of the replication topics this region applies (every origin region's topic, output topic_arn of the topic module), in this region's account. Only these topics may send to the queue, and only they may use its KMS key. The subscriptions themselves belong to each topic's module (output subscription), because SNS subscribes in the topic's region and keeps a subscription's dead-letter queue in the subscription's account and region."
  type        = list(string)

  validation {
    condition     = length(var.topic_arns) > 0
    error_message = "At least one topic ARN is required."
  }

  validation {
    condition     = alltrue([for arn in var.topic_arns : can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", arn))])
    error_message = "Every topic must be a standard SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)."
  }
}

variable "operator_role_arns" {
  description = "IAM roles that may send to the apply queue besides the topics: those `regis dlq redrive` and `regis resync` run as. The queue policy denies sqs:SendMessage to every other principal; these roles still need an IAM policy granting it (and the KMS data-key operations on the queue's key)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.operator_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "Every operator must be an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)."
  }
}

variable "allowed_tenants" {
  description = "When set, this region accepts only these tenants: the filter policy gets \"tenant\": [...] next to \"regions\": [region, \"*\"]. When null, every tenant whose batches name this region (or \"*\") is accepted."
  type        = list(string)
  default     = null

  validation {
    condition     = var.allowed_tenants == null || try(length(var.allowed_tenants) > 0 && alltrue([for t in var.allowed_tenants : length(t) > 0]), false)
    error_message = "allowed_tenants must be null (every tenant) or a non-empty list of non-empty tenant ids."
  }

  # SNS refuses a filter policy with more than 150 combinations of values
  # (the product of the value counts of its keys): 2 values of regions
  # (the region and "*") times the tenants.
  validation {
    condition     = var.allowed_tenants == null || try(2 * length(var.allowed_tenants) <= 150, false)
    error_message = "allowed_tenants may list at most 75 tenants: with the 2 values of regions, the filter policy would exceed SNS's 150 combinations."
  }
}

################################################################################
# Queues
################################################################################

variable "queue_name" {
  description = "Name of the apply queue."
  type        = string
  default     = "regis-apply"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.queue_name))
    error_message = "queue_name must be 1 to 80 letters, digits, hyphens or underscores (standard queue, no .fifo)."
  }
}

variable "dlq_name" {
  description = "Name of the dead-letter queue. When null, \"<queue_name>-dlq\"."
  type        = string
  default     = null

  validation {
    condition     = var.dlq_name == null || can(regex("^[A-Za-z0-9_-]{1,80}$", var.dlq_name))
    error_message = "dlq_name must be 1 to 80 letters, digits, hyphens or underscores, or null."
  }
}

variable "message_retention_seconds" {
  description = "How long the apply queue keeps a batch (four days). Must not exceed tombstone_horizon_seconds: a delete's tombstone has to outlive every batch still in flight."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a failed batch (seven days), and the topic's undelivered queue of this region too: longer than the apply queue's retention so an operator has time to inspect and redrive, and not longer than tombstone_horizon_seconds, so a redriven batch is never older than the horizon."
  type        = number
  default     = 604800

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "max_receive_count" {
  description = "Receives of a batch before SQS moves it to the dead-letter queue (redrive policy maxReceiveCount). Retryable failures are retried this many times."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000 && floor(var.max_receive_count) == var.max_receive_count
    error_message = "max_receive_count must be a whole number between 1 and 1000."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the apply queue. When null it is derived as AWS advises for a Lambda event source: 6 x lambda_timeout + maximum_batching_window_in_seconds. Set it when create_lambda is false (the regis worker's receive loop then uses it)."
  type        = number
  default     = null

  validation {
    condition     = var.visibility_timeout_seconds == null || try(var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200, false)
    error_message = "visibility_timeout_seconds must be between 0 and 43200 (12 hours), or null."
  }
}

variable "receive_wait_time_seconds" {
  description = "Long-polling wait of ReceiveMessage on the apply queue."
  type        = number
  default     = 20

  validation {
    condition     = var.receive_wait_time_seconds >= 0 && var.receive_wait_time_seconds <= 20
    error_message = "receive_wait_time_seconds must be between 0 and 20."
  }
}

variable "max_message_size" {
  description = "Largest message the apply queue accepts, in bytes, attributes included. Must be at least the topic's max_message_bytes (SNS delivers up to that, with the batch's attributes)."
  type        = number
  default     = 262144

  validation {
    condition     = var.max_message_size >= 1024 && var.max_message_size <= 1048576 - 4096 && floor(var.max_message_size) == var.max_message_size
    error_message = "max_message_size must be a whole number of bytes between 1024 and 1044480 (SQS's 1 MiB less the room the DLQ needs for the parking attributes)."
  }
}

variable "dlq_max_message_size" {
  description = "Largest message the DLQ accepts, in bytes. At least max_message_size + 4096: a batch at the apply queue's limit is parked with the applier's attributes (reason, detail) added. The default is SQS's maximum, 1 MiB (hashicorp/aws accepts it from 6.8.0)."
  type        = number
  default     = 1048576

  validation {
    condition     = var.dlq_max_message_size >= 1024 && var.dlq_max_message_size <= 1048576 && floor(var.dlq_max_message_size) == var.dlq_max_message_size
    error_message = "dlq_max_message_size must be a whole number of bytes between 1024 and 1048576."
  }
}

################################################################################
# Encryption
################################################################################

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key for the queues, the Lambda environment, the log group, the alarm topic and ElastiCache. Its policy must let sns.amazonaws.com (delivery from the topics), logs.<region>.amazonaws.com and cloudwatch.amazonaws.com use it, and IAM policies of the account grant its use (the signing keys' secrets in this region may be encrypted with it: the applier's and the publishers' policies grant the decryption). When null, the module creates such a key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias), or null."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Waiting period before the module-created KMS key is deleted after a destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30
    error_message = "The deletion window must be between 7 and 30 days."
  }
}

variable "kms_data_key_reuse_period_seconds" {
  description = "How long SQS reuses a data key before calling KMS again."
  type        = number
  default     = 300

  validation {
    condition     = var.kms_data_key_reuse_period_seconds >= 60 && var.kms_data_key_reuse_period_seconds <= 86400
    error_message = "kms_data_key_reuse_period_seconds must be between 60 and 86400."
  }
}

################################################################################
# Lambda applier
################################################################################

variable "create_lambda" {
  description = "Create the applier Lambda, its role, log group, event source mapping and error alarm. Set false where Lambda cannot run (LocalStack without Docker) or when the applier runs as `regis worker` elsewhere; queues, DLQ, subscriptions and filter policies are kept."
  type        = bool
  default     = true
}

variable "lambda_zip_path" {
  description = "Path of the cargo-lambda package (target/lambda/regis-lambda/bootstrap.zip from `cargo lambda build --release --arm64 --output-format zip -p regis-lambda`). Required when create_lambda is true."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_zip_path == null || can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must be the path of a .zip file, or null."
  }
}

variable "function_name" {
  description = "Name of the applier Lambda function (also names its role and log group)."
  type        = string
  default     = "regis-apply"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.function_name))
    error_message = "function_name must be 1 to 40 letters, digits, hyphens or underscores (the IAM role name adds the region to it)."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the package: arm64 for `cargo lambda build --arm64`, x86_64 for `--x86-64`."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_memory_size" {
  description = "Memory of the applier in MB (CPU scales with it)."
  type        = number
  default     = 256

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240
    error_message = "lambda_memory_size must be between 128 and 10240 MB."
  }
}

variable "lambda_timeout" {
  description = "Timeout of one invocation in seconds. The queue's visibility timeout is derived from it."
  type        = number
  default     = 30

  validation {
    condition     = var.lambda_timeout >= 1 && var.lambda_timeout <= 900
    error_message = "lambda_timeout must be between 1 and 900 seconds."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for the applier; also caps how hard one region's Redis is hit. Must be at least maximum_concurrency, as AWS advises, or -1 for no reservation (the default: a reservation must leave the account 100 unreserved executions, so any reservation fails in a new account whose regional quota is 10)."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions == -1 || var.reserved_concurrent_executions >= 2
    error_message = "reserved_concurrent_executions must be -1 (unreserved) or at least 2 (the smallest maximum_concurrency)."
  }
}

variable "batch_size" {
  description = "Records per invocation (event source mapping). Above 10, maximum_batching_window_in_seconds must be at least 1."
  type        = number
  default     = 10

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  description = "How long the event source mapping gathers records before invoking."
  type        = number
  default     = 0

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds must be between 0 and 300."
  }
}

variable "maximum_concurrency" {
  description = "Most concurrent invocations the SQS event source mapping starts (scaling_config.maximum_concurrency)."
  type        = number
  default     = 10

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency must be between 2 and 1000."
  }
}

variable "applier_mode" {
  description = "REGIS_MODE: lww (last writer wins, versioned) or plain (apply as-is)."
  type        = string
  default     = "lww"

  validation {
    condition     = contains(["lww", "plain"], var.applier_mode)
    error_message = "applier_mode must be lww or plain."
  }
}

variable "tenants" {
  description = "The tenant registry, the same for every region, the publishers and the local topology: tenant => {regions, prefixes}. regions are the regions its data may live in ([\"*\"]: every region), prefixes the key prefixes its batches may write ([\"\"]: any key). Rendered as compact JSON to REGIS_TENANTS: the applier parks (tenant-denied) a batch of a tenant not allowed in its region, or writing a key outside the tenant's prefixes. Lambda allows 4 KB for its whole environment: the registry may take 3 KB of it."
  type = map(object({
    regions  = list(string)
    prefixes = list(string)
  }))

  validation {
    condition     = length(var.tenants) > 0 && alltrue([for t in keys(var.tenants) : length(t) > 0])
    error_message = "tenants must name one or more tenants, each with a non-empty id."
  }

  validation {
    condition     = alltrue([for t in values(var.tenants) : (length(t.regions) == 1 && contains(t.regions, "*")) || (length(t.regions) > 0 && alltrue([for r in t.regions : can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", r))]))])
    error_message = "Every tenant's regions must be [\"*\"] (every region) or one or more region names such as eu-west-1."
  }

  validation {
    condition     = alltrue([for t in values(var.tenants) : length(t.prefixes) > 0])
    error_message = "Every tenant needs one or more key prefixes ([\"\"] allows any key)."
  }

  # Bytes, not characters: base64 takes 4 characters per 3 bytes, and its
  # padding says how many the last group lacks.
  validation {
    condition     = length(base64encode(jsonencode(var.tenants))) / 4 * 3 - length(regexall("=", base64encode(jsonencode(var.tenants)))) <= 3072
    error_message = "The tenant registry takes more than 3072 bytes as compact JSON (REGIS_TENANTS): Lambda allows 4 KB for the whole environment of the applier, and the other settings need the rest."
  }
}

variable "signing_secret_arns" {
  description = "ARNs of the signing keys' Secrets Manager secrets in this region (output secret_arns[region] of the signing-keys module): REGIS_SIGNING_SECRET_IDS, comma-separated. The applier's role may read them (secretsmanager:GetSecretValue, and kms:Decrypt on signing_kms_key_arn through Secrets Manager); the applier loads them at start and refuses unsigned batches and batches signed by a key not bound to their tenant. Empty is refused unless allow_unsigned is true."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.signing_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "Every signing secret must be a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>)."
  }
}

variable "signing_kms_key_arn" {
  description = "The KMS key that encrypts the signing secrets in this region (output kms_key_arns[region] of the signing-keys module). When null, the region's key (kms_key_arn, or the one the module creates)."
  type        = string
  default     = null

  validation {
    condition     = var.signing_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.signing_kms_key_arn))
    error_message = "signing_kms_key_arn must be a KMS key ARN (not an alias), or null."
  }
}

variable "allow_unsigned" {
  description = "REGIS_ALLOW_UNSIGNED=true: the applier may start without signing keys and then accepts unsigned batches. Without it, a Lambda without signing_secret_arns is refused at plan: a deployment is signed unless it says otherwise."
  type        = bool
  default     = false
}

variable "tombstone_horizon_seconds" {
  description = "REGIS_TOMBSTONE_HORIZON_SECONDS: how long version bookkeeping outlives deleted data (seven days). Must cover message_retention_seconds and dlq_message_retention_seconds: the applier refuses a batch older than the horizon (beyond-horizon), so no queue may keep one longer."
  type        = number
  default     = 604800

  validation {
    condition     = var.tombstone_horizon_seconds >= 60 && floor(var.tombstone_horizon_seconds) == var.tombstone_horizon_seconds
    error_message = "tombstone_horizon_seconds must be a whole number of seconds, at least 60."
  }
}

variable "max_clock_skew_seconds" {
  description = "REGIS_MAX_CLOCK_SKEW_SECONDS: how far ahead of the applier's clock a command's version may be; a batch further ahead is parked (clock-skew) instead of winning every conflict until the clocks meet."
  type        = number
  default     = 300

  validation {
    condition     = var.max_clock_skew_seconds >= 1 && var.max_clock_skew_seconds <= 86400 && floor(var.max_clock_skew_seconds) == var.max_clock_skew_seconds
    error_message = "max_clock_skew_seconds must be a whole number of seconds between 1 and 86400."
  }
}

variable "apply_budget_commands" {
  description = "REGIS_APPLY_BUDGET: most commands applied in one pipelined call; an invocation's records are decoded and applied in slices of this size, which bounds the function's memory (a record larger than this goes alone)."
  type        = number
  default     = 20000

  validation {
    condition     = var.apply_budget_commands >= 1 && var.apply_budget_commands <= 1000000 && floor(var.apply_budget_commands) == var.apply_budget_commands
    error_message = "apply_budget_commands must be a whole number between 1 and 1000000."
  }
}

variable "sentry_dsn" {
  description = "SENTRY_DSN: report permanent failures and panics to Sentry. Null disables Sentry."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.sentry_dsn == null || can(regex("^https?://", var.sentry_dsn))
    error_message = "sentry_dsn must be an http(s) DSN, or null."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the applier's CloudWatch log group."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing of the function: PassThrough or Active (Active also grants the role X-Ray write access)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "code_signing_config_arn" {
  description = "ARN of a Lambda code signing configuration; when set, only packages signed by its AWS Signer profiles deploy. Null deploys the package unsigned."
  type        = string
  default     = null

  validation {
    condition     = var.code_signing_config_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:code-signing-config:csc-[a-z0-9]+$", var.code_signing_config_arn))
    error_message = "code_signing_config_arn must be a Lambda code signing config ARN, or null."
  }
}

################################################################################
# Network
################################################################################

variable "vpc_id" {
  description = "VPC of the subnets. Required when subnet_ids is not empty (the Lambda's security group and ElastiCache's live there)."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...), or null."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the Lambda's network interfaces and ElastiCache. They need a route to SQS and KMS (NAT gateway or VPC endpoints). Empty: the Lambda runs outside any VPC (only with a Redis reachable from there, create_elasticache = false)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must be subnet ids (subnet-...)."
  }
}

variable "https_egress_cidr_blocks" {
  description = "Where the Lambda may open HTTPS connections (SQS, KMS, CloudWatch, Sentry): through a NAT gateway this is 0.0.0.0/0, with VPC endpoints only it can be the VPC's CIDR."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.https_egress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "https_egress_cidr_blocks must be IPv4 CIDR blocks."
  }
}

################################################################################
# Redis
################################################################################

variable "create_elasticache" {
  description = "Create an ElastiCache replication group for this region (true), or use the Redis given in redis_url (false)."
  type        = bool
  default     = true
}

variable "redis_url" {
  description = "REGIS_REDIS_URL of a Redis brought by the user (redis:// or rediss://, with user and password for AUTH/ACL). Required when create_elasticache is false and create_lambda is true; must be null when create_elasticache is true."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.redis_url == null || can(regex("^rediss?://[^ ]+$", var.redis_url))
    error_message = "redis_url must start with redis:// or rediss://, or be null."
  }
}

variable "redis_cidr_blocks" {
  description = "Where the Redis of redis_url lives, for the Lambda's security group egress on redis_port (create_elasticache = false, Lambda in a VPC)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.redis_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "redis_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "redis_port" {
  description = "Port of Redis (ElastiCache's, or the one of redis_url)."
  type        = number
  default     = 6379

  validation {
    condition     = var.redis_port >= 1 && var.redis_port <= 65535
    error_message = "redis_port must be a TCP port."
  }
}

variable "redis_cluster_mode" {
  description = "REGIS_REDIS_CLUSTER: Redis Cluster (ElastiCache cluster mode enabled). With create_elasticache, creates a cluster-mode replication group of elasticache_shards shards."
  type        = bool
  default     = false
}

variable "elasticache_node_type" {
  description = "Node type of the replication group."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.elasticache_node_type))
    error_message = "elasticache_node_type must be an ElastiCache node type such as cache.t4g.small."
  }
}

variable "elasticache_engine_version" {
  description = "Redis OSS engine version of the replication group (7.x: the applier's Lua and functions need it)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.elasticache_engine_version))
    error_message = "elasticache_engine_version must be a Redis 7 version such as 7.1."
  }
}

variable "elasticache_replicas" {
  description = "Replicas per shard (automatic failover and Multi-AZ are always on, so at least 1; the subnets should span as many availability zones)."
  type        = number
  default     = 1

  validation {
    condition     = var.elasticache_replicas >= 1 && var.elasticache_replicas <= 5
    error_message = "elasticache_replicas must be between 1 and 5: automatic failover needs a replica."
  }
}

variable "elasticache_shards" {
  description = "Shards (node groups) when redis_cluster_mode is true; ignored otherwise."
  type        = number
  default     = 1

  validation {
    condition     = var.elasticache_shards >= 1 && var.elasticache_shards <= 500
    error_message = "elasticache_shards must be between 1 and 500."
  }
}

variable "elasticache_auth_token" {
  description = "AUTH token of the replication group: 16 to 128 characters, each a letter, a digit or one of ! & # $ ^ < > - (what ElastiCache accepts). Required when create_elasticache is true; it becomes the password of REGIS_REDIS_URL."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.elasticache_auth_token == null || can(regex("^[A-Za-z0-9!&#$^<>-]{16,128}$", var.elasticache_auth_token))
    error_message = "elasticache_auth_token must be 16 to 128 letters, digits or characters among ! & # $ ^ < > -, or null."
  }
}

variable "elasticache_auth_token_update_strategy" {
  description = "How a changed elasticache_auth_token is applied: ROTATE (the old token stays valid next to the new one, so running appliers keep working; apply SET later to retire it) or SET (only the new token is valid at once)."
  type        = string
  default     = "ROTATE"

  validation {
    condition     = contains(["ROTATE", "SET"], var.elasticache_auth_token_update_strategy)
    error_message = "elasticache_auth_token_update_strategy must be ROTATE or SET."
  }
}

variable "elasticache_snapshot_retention_limit" {
  description = "Days of automatic snapshots of the replication group (0 disables them)."
  type        = number
  default     = 7

  validation {
    condition     = var.elasticache_snapshot_retention_limit >= 0 && var.elasticache_snapshot_retention_limit <= 35
    error_message = "elasticache_snapshot_retention_limit must be between 0 and 35."
  }
}

################################################################################
# Alarms
################################################################################

variable "alarm_oldest_message_age_seconds" {
  description = "Alarm when the oldest batch in the apply queue is older than this (replication is falling behind)."
  type        = number
  default     = 600

  validation {
    condition     = var.alarm_oldest_message_age_seconds >= 60
    error_message = "alarm_oldest_message_age_seconds must be at least 60."
  }
}

variable "alarm_lambda_errors_threshold" {
  description = "Alarm when the applier's Errors (failed or timed-out invocations, not per-record failures) in one period exceed this."
  type        = number
  default     = 0

  validation {
    condition     = var.alarm_lambda_errors_threshold >= 0
    error_message = "alarm_lambda_errors_threshold must not be negative."
  }
}

variable "alarm_type_conflicts_threshold" {
  description = "Alarm when the applier skips more writes than this in one period because the key holds another type in this region (metric TypeConflicts)."
  type        = number
  default     = 0

  validation {
    condition     = var.alarm_type_conflicts_threshold >= 0
    error_message = "alarm_type_conflicts_threshold must not be negative."
  }
}

variable "alarm_period_seconds" {
  description = "Period of the alarms' statistics (SQS publishes its metrics every minute)."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60."
  }
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}

variable "elasticache_replication_group_id" {
  description = "Id of the replication group created when create_elasticache is true (unique per account and region)."
  type        = string
  default     = "regis"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9]|-[a-z0-9]){0,39}$", var.elasticache_replication_group_id))
    error_message = "elasticache_replication_group_id must be 1 to 40 lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."
  }
}
