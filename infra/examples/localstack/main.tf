# The local topology of local/topology.json, on LocalStack: one topic in
# ap-southeast-1, and in each of the three regions an apply queue, its DLQ and
# the subscription with its filter policy. LocalStack cannot run the Lambda
# (that needs Docker) and has no ElastiCache here, so both are off: locally
# `regis worker` applies each region's queue to a redis-server.

locals {
  # The tenant registry: local/topology.json's, unless given.
  tenants = var.tenants != null ? var.tenants : jsondecode(file("${path.module}/../../../local/topology.json")).tenants

  # Settings shared by every region.
  queue_settings = {
    queue_name                    = var.queue_name
    dlq_name                      = var.dlq_name
    max_receive_count             = var.max_receive_count
    visibility_timeout_seconds    = var.visibility_timeout_seconds
    message_retention_seconds     = var.message_retention_seconds
    dlq_message_retention_seconds = var.dlq_message_retention_seconds
    dlq_max_message_size          = var.dlq_max_message_bytes
    tombstone_horizon_seconds     = var.tombstone_horizon_seconds
  }

  regions = [module.region_ap_southeast_1, module.region_ap_south_1, module.region_eu_west_1]
}

data "aws_caller_identity" "current" {
  provider = aws.ap_southeast_1
}

data "aws_iam_policy_document" "publisher_assume" {
  provider = aws.ap_southeast_1

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

# The role the services publish with.
resource "aws_iam_role" "publisher" {
  provider = aws.ap_southeast_1

  name               = "regis-publisher"
  assume_role_policy = data.aws_iam_policy_document.publisher_assume.json
}

resource "aws_iam_role_policy" "publisher" {
  provider = aws.ap_southeast_1

  name   = "regis-publish"
  role   = aws_iam_role.publisher.id
  policy = module.topic.publisher_policy_json
}

module "topic" {
  source = "../../modules/topic"
  providers = {
    aws = aws.ap_southeast_1
  }

  name                         = var.topic_name
  max_message_bytes            = var.max_message_bytes
  undelivered_max_message_size = var.dlq_max_message_bytes
  publisher_role_arns          = [aws_iam_role.publisher.arn]
  subscriptions = [
    module.region_ap_southeast_1.subscription,
    module.region_ap_south_1.subscription,
    module.region_eu_west_1.subscription,
  ]
}

module "region_ap_southeast_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.ap_southeast_1
  }

  region          = "ap-southeast-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "ap-southeast-1", null)
  tenants         = local.tenants

  queue_name                    = local.queue_settings.queue_name
  dlq_name                      = local.queue_settings.dlq_name
  max_receive_count             = local.queue_settings.max_receive_count
  visibility_timeout_seconds    = local.queue_settings.visibility_timeout_seconds
  message_retention_seconds     = local.queue_settings.message_retention_seconds
  dlq_message_retention_seconds = local.queue_settings.dlq_message_retention_seconds
  dlq_max_message_size          = local.queue_settings.dlq_max_message_size
  tombstone_horizon_seconds     = local.queue_settings.tombstone_horizon_seconds
  max_message_size              = module.topic.max_message_bytes

  create_lambda      = false
  create_elasticache = false
}

module "region_ap_south_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.ap_south_1
  }

  region          = "ap-south-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "ap-south-1", null)
  tenants         = local.tenants

  queue_name                    = local.queue_settings.queue_name
  dlq_name                      = local.queue_settings.dlq_name
  max_receive_count             = local.queue_settings.max_receive_count
  visibility_timeout_seconds    = local.queue_settings.visibility_timeout_seconds
  message_retention_seconds     = local.queue_settings.message_retention_seconds
  dlq_message_retention_seconds = local.queue_settings.dlq_message_retention_seconds
  dlq_max_message_size          = local.queue_settings.dlq_max_message_size
  tombstone_horizon_seconds     = local.queue_settings.tombstone_horizon_seconds
  max_message_size              = module.topic.max_message_bytes

  create_lambda      = false
  create_elasticache = false
}

module "region_eu_west_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.eu_west_1
  }

  region          = "eu-west-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "eu-west-1", null)
  tenants         = local.tenants

  queue_name                    = local.queue_settings.queue_name
  dlq_name                      = local.queue_settings.dlq_name
  max_receive_count             = local.queue_settings.max_receive_count
  visibility_timeout_seconds    = local.queue_settings.visibility_timeout_seconds
  message_retention_seconds     = local.queue_settings.message_retention_seconds
  dlq_message_retention_seconds = local.queue_settings.dlq_message_retention_seconds
  dlq_max_message_size          = local.queue_settings.dlq_max_message_size
  tombstone_horizon_seconds     = local.queue_settings.tombstone_horizon_seconds
  max_message_size              = module.topic.max_message_bytes

  create_lambda      = false
  create_elasticache = false
}

module "dashboard" {
  source = "../../modules/dashboard"
  providers = {
    aws = aws.ap_southeast_1
  }

  name = "regis"
  regions = [
    for m in local.regions : merge(m.dashboard, {
      undelivered_queue_name   = module.topic.undelivered_queues[m.region].name
      undelivered_queue_region = module.topic.undelivered_queues[m.region].region
    })
  ]
}
