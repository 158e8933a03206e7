################################################################################
# What reaches the apply queue: the filter policy of this region's
# subscriptions (created by each topic's module, in the topic's region and
# account) and the queue policy that lets only those topics deliver, and
# only them and the operators' roles send
################################################################################

locals {
  # The contract of docs/ARCHITECTURE.md: a batch reaches this region when its
  # `regions` attribute names the region or "*", and, when the region keeps
  # an allow-list, only for the tenants on it.
  filter_policy = { for k, v in { regions = [var.region, "*"], tenant = var.allowed_tenants } : k => v if v != null }
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "TopicsDeliverBatches"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]

    principals {
      type        = "Service"
      identifiers = module.sns_principals.identifiers
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = var.topic_arns
    }
  }

  # Fail closed: no principal of any account, this one's included, sends
  # to the queue but the topics (SNS names them in aws:SourceArn; absent on
  # a direct call, so a caller cannot pass for them) and the roles named in
  # operator_role_arns (redrive, resync). Conditions of a statement are
  # all required: a topic's delivery fails the first, an operator's call
  # the second.
  statement {
    sid       = "DenyEveryOtherSender"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:SourceArn"
      values   = var.topic_arns
    }

    dynamic "condition" {
      for_each = length(var.operator_role_arns) > 0 ? [var.operator_role_arns] : []

      content {
        test     = "ArnNotEquals"
        variable = "aws:PrincipalArn"
        values   = condition.value
      }
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue.json

  lifecycle {
    precondition {
      condition     = alltrue([for arn in var.topic_arns : split(":", arn)[4] == local.account_id])
      error_message = "Every topic must belong to this region's account: the topic module subscribes the queue with the topic account's credentials and keeps the subscription's dead-letter queue there, and SNS requires both in one account (cross-account deployments are not supported)."
    }
  }
}
