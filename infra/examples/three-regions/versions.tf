terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      # The floor is the version whose schema infra/check.sh checks this
      # configuration against (infra/tests/provider_schema.py). The features
      # it needs came earlier: data.aws_region's region attribute (6.0) and
      # SQS queues up to 1 MiB (6.8.0).
      source  = "hashicorp/aws"
      version = ">= 6.25.0, < 7.0.0"
    }
    random = {
      # The signing keys' random bytes (modules/signing-keys); the floor is
      # the version whose schema the check reads.
      source  = "hashicorp/random"
      version = ">= 3.7.2, < 4.0.0"
    }
  }
}
