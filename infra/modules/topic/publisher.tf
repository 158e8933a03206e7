################################################################################
# Policy for the publishers' roles
################################################################################

data "aws_iam_policy_document" "publisher" {
  statement {
    sid       = "PublishBatches"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  # A key ARN, not an alias: KMS ignores alias ARNs in a policy's resources
  # for the key's use (kms_key_arn accepts key ARNs only).
  statement {
    sid       = "EncryptBatches"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sns.${local.region}.amazonaws.com"]
    }
  }
}
