# The batch-signing keys of a deployment: what lives where.
#
#   main.tf        data sources and the values the other files share
#   secrets.tf     each key's random secret and its Secrets Manager secret,
#                  replicated to the other regions
#   publishers.tf  the policy each publisher's role needs to read its keys
#
# The module runs in the publishers' region (the topic's); every applier
# reads the copy of each secret in its own region.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region

  key_ids = sort(keys(var.keys))

  # A replica keeps the secret's ARN but for the region (its name and
  # random suffix are the secret's).
  secret_arns = {
    for region in concat([local.region], sort(keys(var.replicas))) : region => [
      for id in local.key_ids : replace(aws_secretsmanager_secret.this[id].arn, ":${local.region}:", ":${region}:")
    ]
  }

  kms_key_arns = merge({ (local.region) = var.kms_key_arn }, var.replicas)

  # Without keys (a deployment that accepts unsigned batches) publishers
  # have nothing to read.
  publishers = length(var.keys) > 0 ? var.publishers : {}

  # The keys a publisher may read: those bound to one of its tenants.
  publisher_keys = {
    for name, p in var.publishers : name => [
      for id in local.key_ids : id if length(setintersection(var.keys[id].tenants, p.tenants)) > 0
    ]
  }
}
