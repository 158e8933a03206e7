# One origin topic in ap-southeast-1, replicated to ap-southeast-1, ap-south-1
# and eu-west-1.
#
# Data residency: the publisher sends each batch with the attribute
# regions = the tenant's regions (var.tenants), or ["*"] for a tenant that is
# not restricted. Each region's subscription has the filter policy
# {"regions": ["<region>", "*"]}, so hotel-sg's batches, sent with
# regions = ["ap-southeast-1", "ap-south-1"], match the filters of those two
# regions and never the one of eu-west-1: SNS does not deliver them there.
# var.region_allowed_tenants adds a second, region-side restriction when a
# region must accept only some tenants whatever a publisher sends.

locals {
  region_settings = {
    lambda_zip_path   = var.lambda_zip_path
    signing_keys      = var.signing_keys
    sentry_dsn        = var.sentry_dsn
    max_receive_count = 5
    tags              = var.tags
  }

  regions = [module.region_ap_southeast_1, module.region_ap_south_1, module.region_eu_west_1]

  # What each region receives, for the output below: the regions a tenant's
  # batches reach are those whose filter matches its regions attribute.
  tenant_reach = {
    for tenant, regions in var.tenants : tenant => {
      for r in ["ap-southeast-1", "ap-south-1", "eu-west-1"] : r => contains(regions, r) && contains(lookup(var.region_allowed_tenants, r, [tenant]), tenant)
    }
  }
}

module "topic" {
  source = "../../modules/topic"
  providers = {
    aws = aws.ap_southeast_1
  }

  name                = "regis-replication"
  publisher_role_arns = var.publisher_role_arns
  subscriptions = [
    module.region_ap_southeast_1.subscription,
    module.region_ap_south_1.subscription,
    module.region_eu_west_1.subscription,
  ]

  tags = var.tags
}

module "region_ap_southeast_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.ap_southeast_1
  }

  region          = "ap-southeast-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "ap-southeast-1", null)

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
  signing_keys           = local.region_settings.signing_keys
  sentry_dsn             = local.region_settings.sentry_dsn
  vpc_id                 = var.networks["ap-southeast-1"].vpc_id
  subnet_ids             = var.networks["ap-southeast-1"].subnet_ids
  elasticache_auth_token = var.elasticache_auth_tokens["ap-southeast-1"]

  tags = local.region_settings.tags
}

module "region_ap_south_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.ap_south_1
  }

  region          = "ap-south-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "ap-south-1", null)

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
  signing_keys           = local.region_settings.signing_keys
  sentry_dsn             = local.region_settings.sentry_dsn
  vpc_id                 = var.networks["ap-south-1"].vpc_id
  subnet_ids             = var.networks["ap-south-1"].subnet_ids
  elasticache_auth_token = var.elasticache_auth_tokens["ap-south-1"]

  tags = local.region_settings.tags
}

module "region_eu_west_1" {
  source = "../../modules/region"
  providers = {
    aws = aws.eu_west_1
  }

  region          = "eu-west-1"
  topic_arns      = [module.topic.topic_arn]
  allowed_tenants = lookup(var.region_allowed_tenants, "eu-west-1", null)

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
  signing_keys           = local.region_settings.signing_keys
  sentry_dsn             = local.region_settings.sentry_dsn
  vpc_id                 = var.networks["eu-west-1"].vpc_id
  subnet_ids             = var.networks["eu-west-1"].subnet_ids
  elasticache_auth_token = var.elasticache_auth_tokens["eu-west-1"]

  tags = local.region_settings.tags
}

# One page for the whole deployment: a row per region.
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
