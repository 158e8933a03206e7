data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  dlq_name = var.dlq_name != null ? var.dlq_name : "${var.queue_name}-dlq"

  # The contract of docs/ARCHITECTURE.md: a batch reaches this region when its
  # `regions` attribute names the region or "*", and, when the region keeps
  # an allow-list, only for the tenants on it.
  filter_policy = { for k, v in { regions = [var.region, "*"], tenant = var.allowed_tenants } : k => v if v != null }

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

  redis_host = !var.create_elasticache ? null : (
    var.redis_cluster_mode
    ? aws_elasticache_replication_group.this[0].configuration_endpoint_address
    : aws_elasticache_replication_group.this[0].primary_endpoint_address
  )
  redis_url = var.create_elasticache ? "rediss://:${var.elasticache_auth_token != null ? urlencode(var.elasticache_auth_token) : ""}@${local.redis_host}:${var.redis_port}" : var.redis_url

  # The "Applier configuration" of docs/ARCHITECTURE.md. REGIS_QUEUE_URL is
  # the worker's only: the Lambda receives its records from the event source
  # mapping. Unset optional settings are left out, not set empty.
  lambda_environment = { for k, v in {
    REGIS_REGION                    = var.region
    REGIS_REDIS_URL                 = local.redis_url
    REGIS_REDIS_CLUSTER             = tostring(var.redis_cluster_mode)
    REGIS_DLQ_URL                   = aws_sqs_queue.dlq.url
    REGIS_MODE                      = var.applier_mode
    REGIS_SIGNING_KEYS              = var.signing_keys
    REGIS_TOMBSTONE_HORIZON_SECONDS = tostring(var.tombstone_horizon_seconds)
    SENTRY_DSN                      = var.sentry_dsn
  } : k => v if v != null }
}

################################################################################
# KMS key (optional)
################################################################################

data "aws_iam_policy_document" "kms" {
  count = local.create_kms_key ? 1 : 0

  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "SnsDeliversFromTheTopics"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = concat(var.topic_arns, [local.alarm_topic_arn])
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsTheLogGroup"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${local.log_group_name}"]
    }
  }
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "regis: queues, applier and cache of ${var.region}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${var.queue_name}-${var.region}"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# Queues
################################################################################

resource "aws_sqs_queue" "dlq" {
  name                              = local.dlq_name
  message_retention_seconds         = var.dlq_message_retention_seconds
  max_message_size                  = var.max_message_size
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_data_key_reuse_period_seconds

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.dlq_message_retention_seconds > var.message_retention_seconds
      error_message = "dlq_message_retention_seconds must be longer than message_retention_seconds: a batch moved to the DLQ keeps its original enqueue time."
    }
  }
}

resource "aws_sqs_queue" "this" {
  name                              = var.queue_name
  message_retention_seconds         = var.message_retention_seconds
  visibility_timeout_seconds        = local.visibility_timeout_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  max_message_size                  = var.max_message_size
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_data_key_reuse_period_seconds

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.region == data.aws_region.current.name
      error_message = "var.region must be the region of the aws provider given to the module."
    }

    precondition {
      condition     = var.tombstone_horizon_seconds >= var.message_retention_seconds
      error_message = "tombstone_horizon_seconds must be at least message_retention_seconds, or a late write older than a delete could bring the key back."
    }

    precondition {
      condition     = !var.create_lambda || local.visibility_timeout_seconds >= 6 * var.lambda_timeout + var.maximum_batching_window_in_seconds
      error_message = "With the Lambda, the visibility timeout must be at least 6 x lambda_timeout + maximum_batching_window_in_seconds (leave visibility_timeout_seconds null to derive it)."
    }
  }
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "TopicsDeliverBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = var.topic_arns
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue.json
}

################################################################################
# Alarms
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = local.alarm_topic_name
  kms_master_key_id = local.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "alarms" {
  statement {
    sid       = "CloudWatchAlarmsOfThisAccount"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms.json
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name          = "${local.dlq_name}-${var.region}-not-empty"
  alarm_description   = "Batches wait in the dead-letter queue of ${var.region}: inspect them with `regis dlq list`, fix, then `regis dlq redrive`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  alarm_name          = "${var.queue_name}-${var.region}-falling-behind"
  alarm_description   = "The oldest batch in the apply queue of ${var.region} is older than ${var.alarm_oldest_message_age_seconds} s: replication lags."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.this.name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_oldest_message_age_seconds
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  count = var.create_lambda ? 1 : 0

  alarm_name          = "${var.function_name}-${var.region}-errors"
  alarm_description   = "Invocations of the applier in ${var.region} failed or timed out."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[0].function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_lambda_errors_threshold
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = var.tags
}

################################################################################
# Lambda applier
################################################################################

resource "aws_cloudwatch_log_group" "lambda" {
  count = var.create_lambda ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = local.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "lambda_assume" {
  count = var.create_lambda ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  count = var.create_lambda ? 1 : 0

  # IAM is global: the region keeps the roles of the regions apart.
  name               = "${var.function_name}-${var.region}"
  description        = "regis applier of ${var.region}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume[0].json

  tags = var.tags
}

data "aws_iam_policy_document" "lambda" {
  count = var.create_lambda ? 1 : 0

  statement {
    sid = "ConsumeTheApplyQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.this.arn]
  }

  statement {
    sid       = "SendPermanentFailuresToTheDlq"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "UseTheQueuesAndEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]
  }

  statement {
    sid       = "WriteItsOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "lambda" {
  count = var.create_lambda ? 1 : 0

  name   = "regis-apply"
  role   = aws_iam_role.lambda[0].id
  policy = data.aws_iam_policy_document.lambda[0].json
}

resource "aws_iam_role_policy_attachment" "vpc" {
  count = var.create_lambda && local.in_vpc ? 1 : 0

  role       = aws_iam_role.lambda[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy_attachment" "xray" {
  count = var.create_lambda && var.tracing_mode == "Active" ? 1 : 0

  role       = aws_iam_role.lambda[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

resource "aws_lambda_function" "this" {
  count = var.create_lambda ? 1 : 0

  #checkov:skip=CKV_AWS_116:The function is invoked synchronously by its SQS event source mapping; dead_letter_config only applies to asynchronous invocations. Failed records go to the DLQ through the queue's redrive policy, and permanent failures are sent there by the applier.

  function_name                  = var.function_name
  description                    = "regis: applies replicated batches to the Redis of ${var.region}"
  role                           = aws_iam_role.lambda[0].arn
  filename                       = var.lambda_zip_path
  source_code_hash               = var.lambda_zip_path != null ? filebase64sha256(var.lambda_zip_path) : null
  handler                        = "bootstrap"
  runtime                        = "provided.al2023"
  architectures                  = [var.lambda_architecture]
  memory_size                    = var.lambda_memory_size
  timeout                        = var.lambda_timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  kms_key_arn                    = local.kms_key_arn
  code_signing_config_arn        = var.code_signing_config_arn

  environment {
    variables = local.lambda_environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [true] : []

    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = [aws_security_group.lambda[0].id]
    }
  }

  tags = var.tags

  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.vpc,
  ]

  lifecycle {
    precondition {
      condition     = var.lambda_zip_path != null
      error_message = "lambda_zip_path is required when create_lambda is true (build it with cargo lambda build --release --arm64 --output-format zip -p regis-lambda)."
    }

    precondition {
      condition     = var.create_elasticache || var.redis_url != null
      error_message = "Without create_elasticache, the Lambda needs redis_url."
    }

    precondition {
      condition     = var.reserved_concurrent_executions == -1 || var.reserved_concurrent_executions >= var.maximum_concurrency
      error_message = "reserved_concurrent_executions must be at least maximum_concurrency (or -1), or the event source mapping is throttled."
    }

    precondition {
      condition     = var.batch_size <= 10 || var.maximum_batching_window_in_seconds >= 1
      error_message = "A batch_size above 10 needs maximum_batching_window_in_seconds of at least 1."
    }

    precondition {
      condition     = !local.in_vpc || var.vpc_id != null
      error_message = "vpc_id is required with subnet_ids."
    }
  }
}

resource "aws_lambda_event_source_mapping" "this" {
  count = var.create_lambda ? 1 : 0

  event_source_arn                   = aws_sqs_queue.this.arn
  function_name                      = aws_lambda_function.this[0].arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }

  depends_on = [aws_iam_role_policy.lambda]
}

################################################################################
# Network
################################################################################

resource "aws_security_group" "lambda" {
  count = local.lambda_security_group ? 1 : 0

  name        = "${var.function_name}-lambda"
  description = "regis applier of ${var.region}: egress to Redis and HTTPS only"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  count = local.lambda_security_group ? length(var.https_egress_cidr_blocks) : 0

  security_group_id = aws_security_group.lambda[0].id
  description       = "HTTPS to SQS, KMS, CloudWatch Logs and Sentry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.https_egress_cidr_blocks[count.index]

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_elasticache" {
  count = local.lambda_security_group && var.create_elasticache ? 1 : 0

  security_group_id            = aws_security_group.lambda[0].id
  description                  = "Redis of this region"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.elasticache[0].id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_redis_cidr" {
  count = local.lambda_security_group && !var.create_elasticache ? length(var.redis_cidr_blocks) : 0

  security_group_id = aws_security_group.lambda[0].id
  description       = "Redis of this region (redis_url)"
  ip_protocol       = "tcp"
  from_port         = var.redis_port
  to_port           = var.redis_port
  cidr_ipv4         = var.redis_cidr_blocks[count.index]

  tags = var.tags
}

################################################################################
# ElastiCache (optional)
################################################################################

resource "aws_security_group" "elasticache" {
  count = var.create_elasticache ? 1 : 0

  name        = "${var.elasticache_replication_group_id}-elasticache"
  description = "regis Redis of ${var.region}: reachable from the applier only"
  vpc_id      = var.vpc_id

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.create_lambda && local.in_vpc && var.vpc_id != null
      error_message = "create_elasticache needs create_lambda, subnet_ids and vpc_id: the replication group lives in those subnets and only the Lambda's security group may reach it."
    }

    precondition {
      condition     = var.redis_url == null
      error_message = "redis_url must be null when create_elasticache is true: the URL is built from the replication group."
    }
  }
}

resource "aws_vpc_security_group_ingress_rule" "elasticache_from_lambda" {
  count = var.create_elasticache ? 1 : 0

  security_group_id            = aws_security_group.elasticache[0].id
  description                  = "Redis from the regis applier"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.lambda[0].id

  tags = var.tags
}

resource "aws_elasticache_subnet_group" "this" {
  count = var.create_elasticache ? 1 : 0

  name        = var.elasticache_replication_group_id
  description = "regis Redis of ${var.region}"
  subnet_ids  = var.subnet_ids

  tags = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  count = var.create_elasticache ? 1 : 0

  replication_group_id = var.elasticache_replication_group_id
  description          = "regis Redis of ${var.region}"
  engine               = "redis"
  engine_version       = var.elasticache_engine_version
  node_type            = var.elasticache_node_type
  port                 = var.redis_port
  parameter_group_name = var.redis_cluster_mode ? "default.redis7.cluster.on" : "default.redis7"
  subnet_group_name    = aws_elasticache_subnet_group.this[0].name
  security_group_ids   = [aws_security_group.elasticache[0].id]

  num_cache_clusters      = var.redis_cluster_mode ? null : 1 + var.elasticache_replicas
  num_node_groups         = var.redis_cluster_mode ? var.elasticache_shards : null
  replicas_per_node_group = var.redis_cluster_mode ? var.elasticache_replicas : null

  # elasticache_replicas is at least 1, so every shard has a node to fail
  # over to, in another availability zone.
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = local.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = var.elasticache_auth_token

  snapshot_retention_limit   = var.elasticache_snapshot_retention_limit
  auto_minor_version_upgrade = true

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.elasticache_auth_token != null
      error_message = "elasticache_auth_token is required when create_elasticache is true."
    }
  }
}
