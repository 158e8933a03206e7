################################################################################
# Apply queue and dead-letter queue
################################################################################

resource "aws_sqs_queue" "dlq" {
  name                              = local.dlq_name
  message_retention_seconds         = var.dlq_message_retention_seconds
  max_message_size                  = var.dlq_max_message_size
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_data_key_reuse_period_seconds

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.dlq_message_retention_seconds > var.message_retention_seconds
      error_message = "dlq_message_retention_seconds must be longer than message_retention_seconds: a batch moved to the DLQ keeps its original enqueue time."
    }

    precondition {
      condition     = var.dlq_max_message_size >= var.max_message_size + local.dlq_attribute_allowance
      error_message = "dlq_max_message_size must be at least max_message_size + 4096: a batch at the apply queue's limit is parked with the applier's attributes (reason, detail) added."
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
      condition     = var.region == data.aws_region.current.region
      error_message = "var.region must be the region of the aws provider given to the module."
    }

    precondition {
      condition     = var.tombstone_horizon_seconds >= max(var.message_retention_seconds, var.dlq_message_retention_seconds)
      error_message = "tombstone_horizon_seconds must cover the retention of both the apply queue and the DLQ (and so of the topic's undelivered queue for this region, which keeps batches as long as the DLQ): a batch older than the horizon is refused (beyond-horizon), since applying it could bring back a key deleted since."
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
