################################################################################
# The applier Lambda and its event source mapping
################################################################################

resource "aws_cloudwatch_log_group" "lambda" {
  count = var.create_lambda ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = local.kms_key_arn

  tags = var.tags
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
      security_group_ids = aws_security_group.lambda[*].id
    }
  }

  tags = var.tags

  # Everything the function needs on its first start: its log group, its
  # permissions, the ENI permissions in a VPC and, with Active tracing, the
  # X-Ray permission (the service checks it when the function is created).
  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.vpc,
    aws_iam_role_policy_attachment.xray,
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

    # Signed by default: an applier without keys accepts forged batches.
    precondition {
      condition     = length(var.signing_secret_arns) > 0 || var.allow_unsigned
      error_message = "The applier has no signing keys: give signing_secret_arns (the signing-keys module's secret_arns for this region), or set allow_unsigned = true to accept unsigned batches knowingly."
    }

    precondition {
      condition     = alltrue([for arn in var.signing_secret_arns : split(":", arn)[3] == var.region])
      error_message = "Every signing secret must be in the applier's region (the signing-keys module's secret_arns[region]: a replica where the secret is replicated)."
    }

    precondition {
      condition     = local.lambda_environment_bytes <= 4096
      error_message = "The applier's environment exceeds Lambda's 4 KB (as JSON): shorten the tenant registry (REGIS_TENANTS), use fewer signing keys (REGIS_SIGNING_SECRET_IDS) or a shorter sentry_dsn."
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
