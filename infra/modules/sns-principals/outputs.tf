output "identifiers" {
  description = "The SNS service principals a queue or key policy must admit for these regions: sns.amazonaws.com, plus sns.<region>.amazonaws.com for each opt-in region among them."
  value       = local.identifiers
}
