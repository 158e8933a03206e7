variable "name" {
  description = "Name of the SNS topic that carries replication batches (standard topic, not FIFO)."
  type        = string
  default     = "regis-replication"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,256}$", var.name))
    error_message = "The topic name must be 1 to 256 letters, digits, hyphens or underscores (no .fifo: regis uses a standard topic)."
  }
}

variable "publisher_role_arns" {
  description = "IAM role ARNs of the services that publish batches. Only these principals may call sns:Publish on the topic, and they are the only principals (besides the account root) granted the data-key operations on the topic's KMS key."
  type        = list(string)

  validation {
    condition     = length(var.publisher_role_arns) > 0
    error_message = "At least one publisher role ARN is required: a topic nobody may publish to replicates nothing."
  }

  validation {
    condition     = alltrue([for arn in var.publisher_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "Every publisher must be an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)."
  }
}

variable "subscriptions" {
  description = "The regions that apply this topic: output subscription of each region module ({region, queue_arn, filter_policy, dlq_message_retention_seconds}). Each queue, in this topic's account, is subscribed with raw message delivery and its filter policy (scope MessageAttributes) and gets an undelivered queue (the subscription's dead-letter queue) keeping batches dlq_message_retention_seconds; only these queues may subscribe to the topic."
  type = list(object({
    region                        = string
    queue_arn                     = string
    filter_policy                 = string
    dlq_message_retention_seconds = number
  }))

  validation {
    condition     = length(var.subscriptions) > 0
    error_message = "At least one subscription is required."
  }

  validation {
    condition     = alltrue([for s in var.subscriptions : can(regex("^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}$", s.queue_arn))])
    error_message = "Every queue_arn must be a standard SQS queue ARN (arn:<partition>:sqs:<region>:<account>:<name>)."
  }

  validation {
    condition     = alltrue([for s in var.subscriptions : can(jsondecode(s.filter_policy).regions)])
    error_message = "Every filter_policy must be a JSON object with a regions key (the region module's filter_policy)."
  }

  validation {
    condition     = alltrue([for s in var.subscriptions : s.region == split(":", s.queue_arn)[3]])
    error_message = "Every subscription's region must be the region of its queue_arn."
  }

  validation {
    condition     = length(distinct([for s in var.subscriptions : s.region])) == length(var.subscriptions)
    error_message = "One subscription per region: each region's undelivered queue is named after the region."
  }

  validation {
    condition     = alltrue([for s in var.subscriptions : s.dlq_message_retention_seconds >= 60 && s.dlq_message_retention_seconds <= 1209600])
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key (a key ARN, not an alias: KMS ignores alias ARNs in policies that grant use of a key) to encrypt the topic, its undelivered queues and its alarm topic with. Its policy must let the publisher roles use it through SNS, and sns.amazonaws.com and cloudwatch.amazonaws.com use it for this account. When null, the module creates such a key."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>, not an alias), or null."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Waiting period before the module-created KMS key is deleted after a destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30
    error_message = "The deletion window must be between 7 and 30 days."
  }
}

variable "max_message_bytes" {
  description = "Largest batch, body and attributes, that the publisher may send: at most 262144, the topic's default MaximumMessageSize. SNS lets a topic be raised to 1 MiB, but hashicorp/aws (up to 6.25.0) cannot set that attribute, so this module leaves the topic at its default; the value is exported as the output max_message_bytes so that the publisher's max_message_bytes is wired from one place."
  type        = number
  default     = 262144

  validation {
    condition     = var.max_message_bytes >= 1024 && var.max_message_bytes <= 262144 && floor(var.max_message_bytes) == var.max_message_bytes
    error_message = "max_message_bytes must be a whole number of bytes between 1024 and 262144 (the SNS message size limit)."
  }
}

variable "undelivered_max_message_size" {
  description = "Largest message the undelivered queues accept, in bytes: a batch SNS could not deliver, with its attributes. At least max_message_bytes."
  type        = number
  default     = 1048576

  validation {
    condition     = var.undelivered_max_message_size >= 1024 && var.undelivered_max_message_size <= 1048576 && floor(var.undelivered_max_message_size) == var.undelivered_max_message_size
    error_message = "undelivered_max_message_size must be a whole number of bytes between 1024 and 1048576."
  }
}

variable "kms_data_key_reuse_period_seconds" {
  description = "How long SQS reuses a data key for the undelivered queues before calling KMS again."
  type        = number
  default     = 300

  validation {
    condition     = var.kms_data_key_reuse_period_seconds >= 60 && var.kms_data_key_reuse_period_seconds <= 86400
    error_message = "kms_data_key_reuse_period_seconds must be between 60 and 86400."
  }
}

variable "alarm_period_seconds" {
  description = "Period of the undelivered-queue alarms' statistics (SQS publishes its metrics every minute)."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60."
  }
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
