# One origin topic in ap-southeast-1, replicated to ap-southeast-1, ap-south-1
# and eu-west-1.
#
# Data residency: the publisher sends each batch with the attribute
# regions = the tenant's regions (var.tenants), ["*"] for a tenant of every
# region. Each region's subscription has the filter policy
# {"regions": ["<region>", "*"]}, so hotel-sg's batches, sent with
# regions = ["ap-southeast-1", "ap-south-1"], match the filters of those two
# regions and never the one of eu-west-1: SNS does not deliver them there.
# Each applier gets the same registry (REGIS_TENANTS) and parks a batch of a
# tenant not allowed in its region, or writing outside its key prefixes,
# whatever its attributes say. var.region_allowed_tenants adds a region-side
# restriction to the filter policies too.
#
# Signed by default: each key of var.signing_keys is a Secrets Manager
# secret in the topic's region, replicated to the others, encrypted with
# each region's key; the appliers read every key, the publishers those of
# their tenants.

locals {
  region_settings = {
    lambda_zip_path    = var.lambda_zip_path
    tenants            = var.tenants
    allow_unsigned     = var.allow_unsigned
    operator_role_arns = var.operator_role_arns
    sentry_dsn         = var.sentry_dsn
    max_receive_count  = 5
    tags               = var.tags
  }

  regions = [module.region_ap_southeast_1, module.region_ap_south_1, module.region_eu_west_1]

  # What each region receives, for the output below: the regions a tenant's
  # batches reach are those whose filter matches its regions attribute.
  tenant_reach = {
    for tenant, t in var.tenants : tenant => {
      for r in ["ap-southeast-1", "ap-south-1", "eu-west-1"] : r => (contains(t.regions, r) || contains(t.regions, "*")) && contains(lookup(var.region_allowed_tenants, r, [tenant]), tenant)
    }
  }
}

module "topic" {
  source = "../../modules/topic"
  providers = {
    aws = aws.ap_southeast_1
  }

  name                = "regis-replication"
  publisher_role_arns = distinct([for p in values(var.publishers) : p.role_arn])
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

  tenants             = local.region_settings.tenants
  signing_secret_arns = module.signing_keys.secret_arns["ap-southeast-1"]
  signing_kms_key_arn = module.signing_keys.kms_key_arns["ap-southeast-1"]
  allow_unsigned      = local.region_settings.allow_unsigned
  operator_role_arns  = local.region_settings.operator_role_arns

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
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

  tenants             = local.region_settings.tenants
  signing_secret_arns = module.signing_keys.secret_arns["ap-south-1"]
  signing_kms_key_arn = module.signing_keys.kms_key_arns["ap-south-1"]
  allow_unsigned      = local.region_settings.allow_unsigned
  operator_role_arns  = local.region_settings.operator_role_arns

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
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

  tenants             = local.region_settings.tenants
  signing_secret_arns = module.signing_keys.secret_arns["eu-west-1"]
  signing_kms_key_arn = module.signing_keys.kms_key_arns["eu-west-1"]
  allow_unsigned      = local.region_settings.allow_unsigned
  operator_role_arns  = local.region_settings.operator_role_arns

  max_message_size       = module.topic.max_message_bytes
  max_receive_count      = local.region_settings.max_receive_count
  lambda_zip_path        = local.region_settings.lambda_zip_path
  sentry_dsn             = local.region_settings.sentry_dsn
  vpc_id                 = var.networks["eu-west-1"].vpc_id
  subnet_ids             = var.networks["eu-west-1"].subnet_ids
  elasticache_auth_token = var.elasticache_auth_tokens["eu-west-1"]

  tags = local.region_settings.tags
}

# The signing keys, in the topic's region (where the publishers read them),
# each encrypted with the key of the region it is in.
module "signing_keys" {
  source = "../../modules/signing-keys"
  providers = {
    aws = aws.ap_southeast_1
  }

  keys        = var.signing_keys
  tenants     = var.tenants
  publishers  = var.publishers
  kms_key_arn = module.region_ap_southeast_1.kms_key_arn
  replicas = {
    "ap-south-1" = module.region_ap_south_1.kms_key_arn
    "eu-west-1"  = module.region_eu_west_1.kms_key_arn
  }

  tags = var.tags
}

# One policy per publishing service: publish to the topic, and read the
# signing keys of its tenants.
data "aws_iam_policy_document" "publisher" {
  for_each = var.publishers
  provider = aws.ap_southeast_1

  # Without signing keys (allow_unsigned) there is no key policy: compact
  # drops the null.
  source_policy_documents = compact([
    module.topic.publisher_policy_json,
    lookup(module.signing_keys.publisher_policies_json, each.key, null),
  ])
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
