# Defaults are the values of local/topology.json: the same topology that
# `make up` creates with local/topology.py. infra/tests/test_agreement.py
# fails when the two drift apart.

variable "localstack_endpoint" {
  description = "URL of LocalStack; every AWS service of the configuration is sent there."
  type        = string
  default     = "http://127.0.0.1:4566"

  validation {
    condition     = can(regex("^https?://[^/]+$", var.localstack_endpoint))
    error_message = "localstack_endpoint must be a scheme and host[:port], such as http://127.0.0.1:4566."
  }
}

variable "topic_name" {
  description = "Name of the replication topic (topology.json topic.name)."
  type        = string
  default     = "regis-replication"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,256}$", var.topic_name))
    error_message = "topic_name must be 1 to 256 letters, digits, hyphens or underscores."
  }
}

variable "max_message_bytes" {
  description = "Largest batch the publisher sends (topology.json topic.max_message_bytes); also the queues' maximum message size."
  type        = number
  default     = 262144

  validation {
    condition     = var.max_message_bytes >= 1024 && var.max_message_bytes <= 262144
    error_message = "max_message_bytes must be between 1024 and 262144."
  }
}

variable "queue_name" {
  description = "Name of each region's apply queue (topology.json queue_name)."
  type        = string
  default     = "regis-apply"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.queue_name))
    error_message = "queue_name must be 1 to 80 letters, digits, hyphens or underscores."
  }
}

variable "dlq_name" {
  description = "Name of each region's dead-letter queue (topology.json dlq_name)."
  type        = string
  default     = "regis-apply-dlq"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.dlq_name))
    error_message = "dlq_name must be 1 to 80 letters, digits, hyphens or underscores."
  }
}

variable "max_receive_count" {
  description = "Receives before a batch moves to the DLQ (topology.json max_receive_count)."
  type        = number
  default     = 3

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the apply queues (topology.json visibility_timeout_seconds). Set explicitly: no Lambda runs here to derive it from."
  type        = number
  default     = 20

  validation {
    condition     = var.visibility_timeout_seconds >= 0 && var.visibility_timeout_seconds <= 43200
    error_message = "visibility_timeout_seconds must be between 0 and 43200."
  }
}

variable "message_retention_seconds" {
  description = "Retention of the apply queues (topology.json message_retention_seconds)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queues and of the topic's undelivered queues (topology.json dlq_message_retention_seconds)."
  type        = number
  default     = 604800

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600."
  }
}

variable "dlq_max_message_bytes" {
  description = "Largest message of the dead-letter queues (topology.json dlq_max_message_bytes): room for a batch at the queue's limit and the parking attributes."
  type        = number
  default     = 1048576

  validation {
    condition     = var.dlq_max_message_bytes >= 1024 && var.dlq_max_message_bytes <= 1048576
    error_message = "dlq_max_message_bytes must be between 1024 and 1048576."
  }
}

variable "tombstone_horizon_seconds" {
  description = "The appliers' tombstone horizon (topology.json tombstone_horizon_seconds): it covers the retention of every queue."
  type        = number
  default     = 604800

  validation {
    condition     = var.tombstone_horizon_seconds >= 60
    error_message = "tombstone_horizon_seconds must be at least 60."
  }
}

variable "tenants" {
  description = "The tenant registry (tenant => {regions, prefixes}). When null, the tenants of local/topology.json: the registry the local publishers and workers read, so the two cannot drift apart."
  type = map(object({
    regions  = list(string)
    prefixes = list(string)
  }))
  default = null

  validation {
    condition     = var.tenants == null || try(alltrue([for t in values(var.tenants) : (length(t.regions) == 1 && contains(t.regions, "*")) || (length(t.regions) > 0 && alltrue([for r in t.regions : contains(["ap-southeast-1", "ap-south-1", "eu-west-1"], r)]))]), false)
    error_message = "Every tenant's regions must be [\"*\"] or one or more of ap-southeast-1, ap-south-1 and eu-west-1."
  }
}

variable "region_allowed_tenants" {
  description = "Optional allow-lists per region (topology.json regions[].tenants): a region listed here accepts only these tenants."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for r in keys(var.region_allowed_tenants) : contains(["ap-southeast-1", "ap-south-1", "eu-west-1"], r)])
    error_message = "region_allowed_tenants may only name ap-southeast-1, ap-south-1 and eu-west-1."
  }
}
