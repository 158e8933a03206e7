terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      # The floor is the version whose schema infra/check.sh checks this
      # configuration against (infra/tests/provider_schema.py). Secret
      # replicas with their own KMS key came much earlier.
      source  = "hashicorp/aws"
      version = ">= 6.25.0, < 7.0.0"
    }
    random = {
      # The version whose schema the check reads (cdktf-cdktf-provider-random
      # 12.0.1); random_bytes came in 3.5.0.
      source  = "hashicorp/random"
      version = ">= 3.7.2, < 4.0.0"
    }
  }
}
