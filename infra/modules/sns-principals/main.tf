# Which service principal SNS delivers as, for the regions involved in a
# delivery (the topic's and the subscriber's).
#
# Between regions enabled by default SNS is sns.amazonaws.com. When either
# region is an opt-in region (launched after 20 March 2019), the subscribed
# resource's policy must name the regional principal
# sns.<opt-in region>.amazonaws.com instead (Amazon SNS developer guide,
# "Sending Amazon SNS messages to an Amazon SQS queue or AWS Lambda function
# in a different Region"). The global principal is always kept: it is the one
# SNS uses for every other pair, and naming a principal that never calls is
# harmless.

locals {
  opt_in = [for r in var.regions : r if contains(var.opt_in_regions, r)]

  identifiers = distinct(concat(["sns.amazonaws.com"], [for r in local.opt_in : "sns.${r}.amazonaws.com"]))
}
