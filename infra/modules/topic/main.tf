# The replication topic of one origin region: what lives where.
#
#   main.tf           data sources and the values the other files share
#   kms.tf            the topic's customer managed key
#   topic.tf          the topic and its policy
#   subscriptions.tf  each region's subscription and its dead-letter queue
#   alarms.tf         alarm topic and the undelivered-batch alarms
#   publisher.tf      the policy the publishers' roles need

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region

  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  account_root = "arn:${local.partition}:iam::${local.account_id}:root"

  subscriber_queue_arns = [for s in var.subscriptions : s.queue_arn]

  # Where SNS puts a batch it could not deliver to a region's queue (a
  # client error such as a denied KMS key or queue policy, or a deleted
  # queue; or server errors past the retry policy). SNS requires the dead-
  # letter queue in the subscription's account and region: the topic's.
  undelivered_queue_names = [for s in var.subscriptions : "${var.name}-${s.region}-undelivered"]

  # Built rather than read from the topic resource: the key's policy names the
  # alarm topic, and the topic is encrypted with the key.
  alarm_topic_name = "${var.name}-alarms"
  alarm_topic_arn  = "arn:${local.partition}:sns:${local.region}:${local.account_id}:${local.alarm_topic_name}"
}

# The SNS principals of this topic's region (the undelivered queues are in
# the same region as the topic).
module "sns_principals" {
  source = "../sns-principals"

  regions = [local.region]
}
