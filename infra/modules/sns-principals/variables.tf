variable "regions" {
  description = "The regions of a delivery: the topic's and the subscribed queue's (in any order; duplicates are fine)."
  type        = list(string)
}

variable "opt_in_regions" {
  description = "The opt-in regions where SNS delivers as sns.<region>.amazonaws.com (the list of the Amazon SNS developer guide, \"Opt-in Regions\")."
  type        = list(string)
  default = [
    "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-3", "ap-south-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "ca-west-1", "eu-central-2", "eu-south-1", "eu-south-2", "il-central-1",
    "me-central-1", "me-south-1", "mx-central-1",
  ]
}
