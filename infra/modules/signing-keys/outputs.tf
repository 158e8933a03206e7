output "key_ids" {
  description = "The key ids, sorted."
  value       = local.key_ids
}

output "secret_arns" {
  description = "Per region (this module's and each replica's), the ARNs of the keys' secrets there, in key id order: REGIS_SIGNING_SECRET_IDS of that region's applier (input signing_secret_arns of the region module)."
  value       = local.secret_arns
}

output "secret_arns_by_key" {
  description = "Key id => ARN of its secret in this module's region (where the publishers read it)."
  value       = { for id in local.key_ids : id => aws_secretsmanager_secret.this[id].arn }
}

output "kms_key_arns" {
  description = "Per region, the KMS key that encrypts the secrets there (input signing_kms_key_arn of the region module)."
  value       = local.kms_key_arns
}

output "key_tenants" {
  description = "Key id => the tenants it may sign for (what each secret's tenants field says)."
  value       = { for id in local.key_ids : id => var.keys[id].tenants }
}

output "publisher_policies_json" {
  description = "Publisher name => IAM policy (JSON) that lets its role read the secrets of the keys bound to its tenants (and decrypt them through Secrets Manager), and no other key. Attach it to the publisher's role next to the topic's publisher policy. Empty without keys."
  value       = { for name in keys(local.publishers) : name => data.aws_iam_policy_document.publisher[name].json }
}
