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
  description = "The regions that apply this topic: output subscription of each region module ({queue_arn, filter_policy}). Each queue is subscribed with raw message delivery and its filter policy (scope MessageAttributes), and only these queues may subscribe to the topic."
  type = list(object({
    queue_arn     = string
    filter_policy = string
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
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key to encrypt the topic with. When null, the module creates a key whose policy lets the publisher roles (through SNS) and SNS itself use it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key or alias ARN, or null."
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
  description = "Largest batch, attributes included, that the publisher may send. SNS standard topics have no size attribute in the AWS provider (the service limit is 256 KiB); this value is not applied to AWS but exported as the output max_message_bytes so that the publisher's max_message_bytes is wired from one place."
  type        = number
  default     = 262144

  validation {
    condition     = var.max_message_bytes >= 1024 && var.max_message_bytes <= 262144 && floor(var.max_message_bytes) == var.max_message_bytes
    error_message = "max_message_bytes must be a whole number of bytes between 1024 and 262144 (the SNS message size limit)."
  }
}

variable "tags" {
  description = "Tags applied to every resource of the module."
  type        = map(string)
  default     = {}
}
