variable "keys" {
  description = "The signing keys: key id => the tenants it may sign for. Each key gets a secret holding {\"id\", \"secret\" (base64 of 32 random bytes), \"tenants\"}; an applier refuses a batch signed by a key not bound to the batch's tenant. Two keys for one tenant is how a key is rotated: add the new one, let the publishers switch, remove the old one. Empty only for a deployment that accepts unsigned batches (the region module's allow_unsigned)."
  type = map(object({
    tenants = list(string)
  }))

  validation {
    condition     = alltrue([for id in keys(var.keys) : can(regex("^[A-Za-z0-9._-]{1,64}$", id))])
    error_message = "Every key id must be 1 to 64 letters, digits, dots, hyphens or underscores (it names the secret, and a batch's signature names it)."
  }

  validation {
    condition     = alltrue([for k in values(var.keys) : length(k.tenants) > 0 && length(distinct(k.tenants)) == length(k.tenants) && alltrue([for t in k.tenants : length(t) > 0])])
    error_message = "Every key must be bound to one or more distinct, non-empty tenant ids."
  }
}

variable "tenants" {
  description = "The tenant registry (tenant => {regions, prefixes}), the one every region module gets: each key's tenants and each publisher's must be in it."
  type = map(object({
    regions  = list(string)
    prefixes = list(string)
  }))
}

variable "kms_key_arn" {
  description = "ARN of the customer managed KMS key (a key ARN, not an alias) that encrypts the secrets in this module's region, the publishers' region. Its policy must let IAM policies of the account grant its use (the default key policy's account statement), so that the publishers' and appliers' policies can."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>, not an alias)."
  }
}

variable "replicas" {
  description = "The other regions whose appliers verify signatures: region => the customer managed KMS key (in that region) that encrypts the secrets' replica there. Secrets Manager keeps the replicas in step with the secrets; each applier reads the copy in its own region."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for region, key in var.replicas : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", key)) && try(split(":", key)[3] == region, false)])
    error_message = "Every replica's KMS key must be a key ARN (not an alias) of the region it is given for."
  }
}

variable "publishers" {
  description = "The services that publish: name => {role_arn, tenants}. Output publisher_policies_json has, for each, a policy that lets its role read the secrets of the keys bound to its tenants, and no other; each of its tenants needs a key (a precondition). Without keys, no policy."
  type = map(object({
    role_arn = string
    tenants  = list(string)
  }))
  default = {}

  validation {
    condition     = alltrue([for p in values(var.publishers) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", p.role_arn)) && length(p.tenants) > 0])
    error_message = "Every publisher needs an IAM role ARN and one or more tenants."
  }
}

variable "name_prefix" {
  description = "Prefix of the secrets' names: a key's secret is <name_prefix><key id>."
  type        = string
  default     = "regis/signing/"

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,400}$", var.name_prefix))
    error_message = "name_prefix must be letters, digits and characters among / _ + = . @ - (what Secrets Manager accepts in a name)."
  }
}

variable "recovery_window_in_days" {
  description = "How long a removed key's secret can still be restored before Secrets Manager deletes it (0 deletes at once). Its name stays taken meanwhile: a key id removed cannot be added again until then."
  type        = number
  default     = 7

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
