variable "publishers" {
  description = "The services that publish batches: name => {role_arn, tenants}. Their roles are the only principals allowed to publish; each may read the signing keys of its tenants only. Attach output publisher_policies[name].policy_json to each role."
  type = map(object({
    role_arn = string
    tenants  = list(string)
  }))

  validation {
    condition     = length(var.publishers) > 0 && alltrue([for p in values(var.publishers) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", p.role_arn)) && length(p.tenants) > 0])
    error_message = "publishers must name one or more services, each with an IAM role ARN and one or more tenants."
  }
}

variable "lambda_zip_path" {
  description = "The applier package built by `cargo lambda build --release --arm64 --output-format zip -p regis-lambda`, relative to this folder."
  type        = string
  default     = "../../../target/lambda/regis-lambda/bootstrap.zip"

  validation {
    condition     = can(regex("\\.zip$", var.lambda_zip_path))
    error_message = "lambda_zip_path must be the path of a .zip file."
  }
}

variable "networks" {
  description = "Per region, the VPC and private subnets (two or more availability zones) where the applier and ElastiCache run. The subnets need a route to SQS (NAT gateway or an SQS interface endpoint) for the applier's DLQ sends, and to the internet if sentry_dsn is set."
  type = map(object({
    vpc_id     = string
    subnet_ids = list(string)
  }))

  validation {
    condition     = length(setsubtract(["ap-southeast-1", "ap-south-1", "eu-west-1"], keys(var.networks))) == 0
    error_message = "networks needs an entry for each of ap-southeast-1, ap-south-1 and eu-west-1."
  }

  validation {
    condition     = alltrue([for n in values(var.networks) : length(n.subnet_ids) >= 2])
    error_message = "Each region needs at least two subnets (Multi-AZ ElastiCache)."
  }
}

variable "elasticache_auth_tokens" {
  description = "AUTH token of each region's ElastiCache replication group: 16 to 128 letters, digits or characters among ! & # $ ^ < > - (what ElastiCache accepts)."
  type        = map(string)
  sensitive   = true

  validation {
    condition     = length(setsubtract(["ap-southeast-1", "ap-south-1", "eu-west-1"], keys(var.elasticache_auth_tokens))) == 0
    error_message = "elasticache_auth_tokens needs a token for each of ap-southeast-1, ap-south-1 and eu-west-1."
  }
}

variable "signing_keys" {
  description = "The batch-signing keys: key id => {tenants} it may sign for. Each becomes a Secrets Manager secret (32 random bytes, KMS-encrypted) in the topic's region, replicated to the other regions; every applier reads all of them, each publisher those of its tenants. Empty is refused unless allow_unsigned is true. Rotate by adding a key, switching the publishers to it, then removing the old one."
  type = map(object({
    tenants = list(string)
  }))
  default = {}
}

variable "allow_unsigned" {
  description = "Deploy the appliers without signing keys, accepting unsigned batches (REGIS_ALLOW_UNSIGNED=true). Only for a deployment that means it."
  type        = bool
  default     = false
}

variable "operator_role_arns" {
  description = "Roles that may send to the apply queues besides the topic: those `regis dlq redrive` and `regis resync` run as. Every other sender is denied by the queue policies."
  type        = list(string)
  default     = []
}

variable "sentry_dsn" {
  description = "SENTRY_DSN of every applier; null disables Sentry."
  type        = string
  default     = null
  sensitive   = true
}

variable "tenants" {
  description = "The tenant registry: tenant => {regions its data may live in ([\"*\"]: every region), key prefixes its batches may write ([\"\"]: any key)}. The publishers send a tenant's batches with regions = its regions, so SNS delivers them only there; every applier gets the registry (REGIS_TENANTS) and parks a batch of a tenant not allowed in its region or writing outside its prefixes. A tenant not listed is refused."
  type = map(object({
    regions  = list(string)
    prefixes = list(string)
  }))

  validation {
    condition     = alltrue([for t in values(var.tenants) : (length(t.regions) == 1 && contains(t.regions, "*")) || (length(t.regions) > 0 && alltrue([for r in t.regions : contains(["ap-southeast-1", "ap-south-1", "eu-west-1"], r)]))])
    error_message = "Every tenant's regions must be [\"*\"] or one or more of ap-southeast-1, ap-south-1 and eu-west-1."
  }
}

variable "region_allowed_tenants" {
  description = "Optional allow-lists: a region listed here accepts only these tenants, whatever the publisher sends (its filter policy gets a tenant key)."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for r in keys(var.region_allowed_tenants) : contains(["ap-southeast-1", "ap-south-1", "eu-west-1"], r)])
    error_message = "region_allowed_tenants may only name ap-southeast-1, ap-south-1 and eu-west-1."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default = {
    Project = "regis"
  }
}
