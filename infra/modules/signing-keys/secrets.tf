################################################################################
# The keys' secrets
################################################################################

# 32 random bytes per key. They live in the Terraform state too (as every
# secret Terraform creates does): keep the state encrypted and access to it
# as narrow as to the secrets.
resource "random_bytes" "this" {
  for_each = var.keys

  length = 32
}

resource "aws_secretsmanager_secret" "this" {
  for_each = var.keys

  #checkov:skip=CKV2_AWS_57:A signing key is rotated by adding a second key, letting the publishers switch to it and removing the first (see the module's README): a rotation Lambda replacing the value in place would break every publisher and applier still holding the old value.

  name                    = "${var.name_prefix}${each.key}"
  description             = "regis batch-signing key ${each.key}, for the tenants ${join(", ", each.value.tenants)}"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days

  dynamic "replica" {
    for_each = var.replicas

    content {
      region     = replica.key
      kms_key_id = replica.value
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = alltrue([for t in each.value.tenants : contains(keys(var.tenants), t)])
      error_message = "Every tenant a key is bound to must be in the tenant registry (var.tenants)."
    }

    precondition {
      condition     = !contains(keys(var.replicas), local.region) && split(":", var.kms_key_arn)[3] == local.region
      error_message = "kms_key_arn must be a key of the module's region, and replicas must not name that region (the secret itself is there)."
    }
  }
}

# What the applier and the publisher read: the key id, the secret (base64 of
# the 32 bytes) and the tenants the key may sign for.
resource "aws_secretsmanager_secret_version" "this" {
  for_each = var.keys

  secret_id = aws_secretsmanager_secret.this[each.key].id
  secret_string = jsonencode({
    id      = each.key
    secret  = random_bytes.this[each.key].base64
    tenants = each.value.tenants
  })
}
