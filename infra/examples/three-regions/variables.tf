variable "publisher_role_arns" {
  description = "IAM roles of the services that publish batches (the only principals allowed to publish). Attach the output publisher_policy_json to each."
  type        = list(string)

  validation {
    condition     = length(var.publisher_role_arns) > 0 && alltrue([for arn in var.publisher_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "publisher_role_arns must be one or more IAM role ARNs."
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
  description = "REGIS_SIGNING_KEYS of every applier (id:base64secret, comma-separated), the same keys the publishers sign with. Null accepts unsigned batches."
  type        = string
  default     = null
  sensitive   = true
}

variable "sentry_dsn" {
  description = "SENTRY_DSN of every applier; null disables Sentry."
  type        = string
  default     = null
  sensitive   = true
}

variable "tenants" {
  description = "Tenants whose data may only go to some regions: the publisher's tenant map (tenant => the regions attribute of its batches). A tenant not listed is sent with [\"*\"] and reaches every region."
  type        = map(list(string))
  default = {
    "hotel-sg" = ["ap-southeast-1", "ap-south-1"]
  }

  validation {
    condition     = alltrue([for regions in values(var.tenants) : length(regions) > 0 && alltrue([for r in regions : contains(["ap-southeast-1", "ap-south-1", "eu-west-1"], r)])])
    error_message = "Every tenant needs at least one region, among ap-southeast-1, ap-south-1 and eu-west-1."
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
