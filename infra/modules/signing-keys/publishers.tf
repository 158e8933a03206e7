################################################################################
# What each publisher's role may read: its tenants' keys, nothing else
################################################################################

data "aws_iam_policy_document" "publisher" {
  for_each = local.publishers

  statement {
    sid       = "ReadItsTenantsSigningKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for id in local.publisher_keys[each.key] : aws_secretsmanager_secret.this[id].arn]
  }

  # Only through Secrets Manager, and only for those secrets (Secrets Manager
  # names the secret in the encryption context of its KMS calls).
  statement {
    sid       = "DecryptThemThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:SecretARN"
      values   = [for id in local.publisher_keys[each.key] : aws_secretsmanager_secret.this[id].arn]
    }
  }

  lifecycle {
    precondition {
      condition     = alltrue([for t in each.value.tenants : contains(keys(var.tenants), t)])
      error_message = "Every tenant of a publisher must be in the tenant registry (var.tenants)."
    }

    precondition {
      condition     = alltrue([for t in each.value.tenants : anytrue([for k in values(var.keys) : contains(k.tenants, t)])])
      error_message = "Every tenant of a publisher needs a signing key bound to it (var.keys): a publisher without a key cannot sign its batches."
    }
  }
}
