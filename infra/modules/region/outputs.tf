output "region" {
  description = "The region this module deployed."
  value       = var.region
}

output "queue_arn" {
  description = "ARN of the apply queue."
  value       = aws_sqs_queue.this.arn
}

output "queue_url" {
  description = "URL of the apply queue (REGIS_QUEUE_URL of a `regis worker`)."
  value       = aws_sqs_queue.this.url
}

output "queue_name" {
  description = "Name of the apply queue."
  value       = aws_sqs_queue.this.name
}

output "visibility_timeout_seconds" {
  description = "Visibility timeout of the apply queue, as set or as derived from the Lambda timeout."
  value       = aws_sqs_queue.this.visibility_timeout_seconds
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue (REGIS_DLQ_URL; what `regis dlq` reads)."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "filter_policy" {
  description = "The filter policy of this region's subscriptions (JSON, scope MessageAttributes): {\"regions\": [region, \"*\"]}, plus \"tenant\" with allowed_tenants."
  value       = jsonencode(local.filter_policy)
}

output "subscription" {
  description = "What a topic module needs to subscribe this region (an element of its subscriptions): the region, the queue ARN, the filter policy, and how long the subscription's dead-letter queue keeps a batch (the DLQ's retention, which the tombstone horizon covers). Available once the queue policy admits the topics."
  value = {
    region                        = var.region
    queue_arn                     = aws_sqs_queue.this.arn
    filter_policy                 = jsonencode(local.filter_policy)
    dlq_message_retention_seconds = var.dlq_message_retention_seconds
  }

  # SNS may deliver as soon as the subscription exists: the queue policy
  # must let the topics send by then.
  depends_on = [aws_sqs_queue_policy.this]
}

output "kms_key_arn" {
  description = "ARN of the KMS key of the queues, the Lambda environment, the logs, the alarm topic and ElastiCache."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic that the region's alarms notify: subscribe the on-call's endpoints to it."
  value       = aws_sns_topic.alarms.arn
}

output "lambda_function_arn" {
  description = "ARN of the applier Lambda (null without create_lambda)."
  value       = try(aws_lambda_function.this[0].arn, null)
}

output "lambda_role_arn" {
  description = "ARN of the applier's IAM role (null without create_lambda)."
  value       = try(aws_iam_role.lambda[0].arn, null)
}

output "lambda_security_group_id" {
  description = "Security group of the applier's network interfaces (null outside a VPC)."
  value       = try(aws_security_group.lambda[0].id, null)
}

output "log_group_name" {
  description = "CloudWatch log group of the applier (null without create_lambda)."
  value       = try(aws_cloudwatch_log_group.lambda[0].name, null)
}

output "elasticache_replication_group_id" {
  description = "Id of the created replication group (null without create_elasticache)."
  value       = try(aws_elasticache_replication_group.this[0].id, null)
}

output "redis_endpoint" {
  description = "Primary (or, in cluster mode, configuration) endpoint of the created replication group (null without create_elasticache)."
  value       = local.redis_host
}

output "redis_url" {
  description = "REGIS_REDIS_URL the applier uses, AUTH token included."
  value       = local.redis_url
  sensitive   = true
}

output "tombstone_horizon_seconds" {
  description = "REGIS_TOMBSTONE_HORIZON_SECONDS of the applier: batches older than this are refused, so redrive DLQ contents younger than it."
  value       = var.tombstone_horizon_seconds
}

output "dashboard" {
  description = "This region's part of the deployment's dashboard (input regions of the dashboard module, with the topic's undelivered queue added): region, queue and DLQ names, applier function name (null without create_lambda). Known at plan time, so the dashboard's body is too."
  value = {
    region        = var.region
    queue_name    = var.queue_name
    dlq_name      = local.dlq_name
    function_name = var.create_lambda ? var.function_name : null
  }
}
