variable "name" {
  description = "Name of the dashboard (unique in the account)."
  type        = string
  default     = "regis"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.name))
    error_message = "name must be 1 to 255 letters, digits, hyphens or underscores."
  }
}

variable "regions" {
  description = "One element per region, in the order of the rows: the region module's dashboard output with the topic module's undelivered queue of that region added (undelivered_queue_name, undelivered_queue_region)."
  type = list(object({
    region                   = string
    queue_name               = string
    dlq_name                 = string
    function_name            = optional(string)
    undelivered_queue_name   = string
    undelivered_queue_region = string
  }))

  validation {
    condition     = length(var.regions) > 0 && length(var.regions) <= 40
    error_message = "regions must have 1 to 40 elements (a dashboard holds at most 500 widgets, six per region)."
  }
}

variable "period_seconds" {
  description = "Period of the widgets' statistics."
  type        = number
  default     = 300

  validation {
    condition     = var.period_seconds >= 60 && var.period_seconds % 60 == 0
    error_message = "period_seconds must be a multiple of 60."
  }
}
