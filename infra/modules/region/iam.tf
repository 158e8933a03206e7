################################################################################
# The applier's role
################################################################################

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

  # Every signing key's secret in this region, whichever tenants it signs
  # for: the applier checks each batch's key against its tenant.
  dynamic "statement" {
    for_each = length(var.signing_secret_arns) > 0 ? ["ReadTheSigningKeys"] : []

    content {
      sid       = statement.value
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.signing_secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.signing_secret_arns) > 0 ? ["DecryptTheSigningKeys"] : []

    content {
      sid       = statement.value
      actions   = ["kms:Decrypt"]
      resources = [local.signing_kms_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
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
