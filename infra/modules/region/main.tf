# One region of regis: what lives where.
#
#   main.tf          data sources and the values the other files share
#   kms.tf           the region's customer managed key
#   queues.tf        apply queue, dead-letter queue, redrive allow policy
#   subscription.tf  who may deliver to the queue, and the filter policy
#   iam.tf           the applier's role and its policies
#   lambda.tf        log group, function, event source mapping
#   network.tf       the applier's security group
#   elasticache.tf   the replication group, its security group and subnets
#   alarms.tf        alarm topic and alarms

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  dlq_name = var.dlq_name != null ? var.dlq_name : "${var.queue_name}-dlq"

  # AWS advises a visibility timeout of at least six times the function
  # timeout, plus the batching window, for an SQS event source.
  visibility_timeout_seconds = var.visibility_timeout_seconds != null ? var.visibility_timeout_seconds : 6 * var.lambda_timeout + var.maximum_batching_window_in_seconds

  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  in_vpc = length(var.subnet_ids) > 0

  log_group_name = "/aws/lambda/${var.function_name}"

  # Built rather than read from the topic resource: the key's policy names the
  # alarm topic, and the topic is encrypted with the key.
  alarm_topic_name = "${var.queue_name}-alarms"
  alarm_topic_arn  = "arn:${local.partition}:sns:${var.region}:${local.account_id}:${local.alarm_topic_name}"

  lambda_security_group = var.create_lambda && local.in_vpc

  # The largest DLQ attributes the applier adds when it parks a batch
  # (reason, detail cut to 1,024 characters, names and types): a batch at the
  # apply queue's limit must still fit in the DLQ with them.
  dlq_attribute_allowance = 4096

  redis_host = !var.create_elasticache ? null : (
    var.redis_cluster_mode
    ? one(aws_elasticache_replication_group.this[*].configuration_endpoint_address)
    : one(aws_elasticache_replication_group.this[*].primary_endpoint_address)
  )
  redis_url = var.create_elasticache ? "rediss://:${var.elasticache_auth_token != null ? urlencode(var.elasticache_auth_token) : ""}@${local.redis_host}:${var.redis_port}" : var.redis_url

  signing_kms_key_arn = var.signing_kms_key_arn != null ? var.signing_kms_key_arn : local.kms_key_arn

  # The "Applier configuration" of docs/ARCHITECTURE.md. REGIS_QUEUE_URL is
  # the worker's only: the Lambda receives its records from the event source
  # mapping. Unset optional settings are left out, not set empty.
  lambda_environment = { for k, v in {
    REGIS_REGION                    = var.region
    REGIS_REDIS_URL                 = local.redis_url
    REGIS_REDIS_CLUSTER             = tostring(var.redis_cluster_mode)
    REGIS_DLQ_URL                   = aws_sqs_queue.dlq.url
    REGIS_MODE                      = var.applier_mode
    REGIS_TENANTS                   = jsonencode(var.tenants)
    REGIS_SIGNING_SECRET_IDS        = length(var.signing_secret_arns) > 0 ? join(",", var.signing_secret_arns) : null
    REGIS_ALLOW_UNSIGNED            = var.allow_unsigned ? "true" : null
    REGIS_TOMBSTONE_HORIZON_SECONDS = tostring(var.tombstone_horizon_seconds)
    REGIS_MAX_CLOCK_SKEW_SECONDS    = tostring(var.max_clock_skew_seconds)
    REGIS_APPLY_BUDGET              = tostring(var.apply_budget_commands)
    SENTRY_DSN                      = var.sentry_dsn
  } : k => v if v != null }

  # What Lambda measures against its 4 KB limit: the environment as JSON, in
  # bytes (base64 takes 4 characters per 3 bytes; its padding says how many
  # the last group lacks). Known once the queue's URL and the secrets' ARNs
  # are, so the precondition on the function is checked at apply at the
  # latest.
  lambda_environment_base64 = base64encode(jsonencode(local.lambda_environment))
  lambda_environment_bytes  = length(local.lambda_environment_base64) / 4 * 3 - length(regexall("=", local.lambda_environment_base64))
}
