################################################################################
# Subscriptions, and the dead-letter queue of each
################################################################################

# The subscription's dead-letter queue ("undelivered queue"): with raw
# message delivery SNS puts the batch there as published (the raw body and
# its message attributes), so `regis dlq` can send it on to the region's
# apply queue once the cause is fixed.
resource "aws_sqs_queue" "undelivered" {
  count = length(var.subscriptions)

  name                              = local.undelivered_queue_names[count.index]
  message_retention_seconds         = var.subscriptions[count.index].dlq_message_retention_seconds
  max_message_size                  = var.undelivered_max_message_size
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_data_key_reuse_period_seconds

  tags = var.tags

  lifecycle {
    precondition {
      condition     = length(local.undelivered_queue_names[count.index]) <= 80
      error_message = "The undelivered queue's name \"<topic name>-<region>-undelivered\" must be at most 80 characters: shorten the topic name."
    }

    precondition {
      condition     = var.undelivered_max_message_size >= var.max_message_bytes
      error_message = "undelivered_max_message_size must be at least max_message_bytes: SNS puts a whole batch there."
    }
  }
}

data "aws_iam_policy_document" "undelivered" {
  count = length(var.subscriptions)

  statement {
    sid       = "TopicParksUndeliveredBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.undelivered[count.index].arn]

    principals {
      type        = "Service"
      identifiers = module.sns_principals.identifiers
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.this.arn]
    }
  }

  # Fail closed: nobody else, in any account, puts batches there (an
  # operator moves them on to the region's apply queue, never in).
  statement {
    sid       = "DenyEveryOtherSender"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.undelivered[count.index].arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.this.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "undelivered" {
  count = length(var.subscriptions)

  queue_url = aws_sqs_queue.undelivered[count.index].id
  policy    = data.aws_iam_policy_document.undelivered[count.index].json
}

# Created here, with the topic's provider: SNS subscribes in the topic's
# region, whatever the region of the queue, and the dead-letter queue must be
# in the subscription's account and region.
resource "aws_sns_topic_subscription" "this" {
  count = length(var.subscriptions)

  topic_arn            = aws_sns_topic.this.arn
  protocol             = "sqs"
  endpoint             = var.subscriptions[count.index].queue_arn
  raw_message_delivery = true
  filter_policy_scope  = "MessageAttributes"
  filter_policy        = var.subscriptions[count.index].filter_policy

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.undelivered[count.index].arn
  })

  depends_on = [aws_sns_topic_policy.this, aws_sqs_queue_policy.undelivered]

  lifecycle {
    precondition {
      condition     = split(":", var.subscriptions[count.index].queue_arn)[4] == local.account_id
      error_message = "Every subscribed queue must be in the topic's account: cross-account subscriptions are not supported (SNS keeps a subscription's dead-letter queue in the subscription's account)."
    }
  }
}
