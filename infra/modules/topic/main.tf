data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"

  # Accounts that own the subscriber queues: they are the principals that call
  # sns:Subscribe (cross-account subscriptions are allowed, restricted to the
  # named queue endpoints).
  subscriber_queue_arns = [for s in var.subscriptions : s.queue_arn]

  subscriber_account_roots = distinct([
    for arn in local.subscriber_queue_arns :
    "arn:${data.aws_partition.current.partition}:iam::${split(":", arn)[4]}:root"
  ])
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
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "PublishersEncryptThroughSns"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.publisher_role_arns
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${data.aws_region.current.name}.amazonaws.com"]
    }
  }

  statement {
    sid       = "SnsUsesKeyForThisAccount"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "regis: encryption of SNS topic ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${var.name}-sns"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# Topic
################################################################################

resource "aws_sns_topic" "this" {
  name              = var.name
  kms_master_key_id = local.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "NamedPublishers"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = var.publisher_role_arns
    }
  }

  statement {
    sid       = "NamedSubscriberQueues"
    actions   = ["sns:Subscribe"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = local.subscriber_account_roots
    }

    condition {
      test     = "StringEquals"
      variable = "sns:Protocol"
      values   = ["sqs"]
    }

    condition {
      test     = "StringEquals"
      variable = "sns:Endpoint"
      values   = local.subscriber_queue_arns
    }
  }

  statement {
    sid       = "DenyOtherPublishers"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = var.publisher_role_arns
    }
  }

  statement {
    sid       = "DenyOtherSubscriptions"
    effect    = "Deny"
    actions   = ["sns:Subscribe"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "sns:Endpoint"
      values   = local.subscriber_queue_arns
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

################################################################################
# Subscriptions
################################################################################

# Created here, with the topic's provider: SNS subscribes in the topic's
# region, whatever the region of the queue.
resource "aws_sns_topic_subscription" "this" {
  count = length(var.subscriptions)

  topic_arn            = aws_sns_topic.this.arn
  protocol             = "sqs"
  endpoint             = var.subscriptions[count.index].queue_arn
  raw_message_delivery = true
  filter_policy_scope  = "MessageAttributes"
  filter_policy        = var.subscriptions[count.index].filter_policy

  depends_on = [aws_sns_topic_policy.this]
}

################################################################################
# Policy for the publishers' roles
################################################################################

data "aws_iam_policy_document" "publisher" {
  statement {
    sid       = "PublishBatches"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  statement {
    sid       = "EncryptBatches"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}
