output "topic_arn" {
  description = "The publisher's topic_arn."
  value       = module.topic.topic_arn
}

output "topic_region" {
  description = "The publisher's SNS region (and its origin region)."
  value       = module.topic.topic_region
}

output "max_message_bytes" {
  description = "The publisher's max_message_bytes."
  value       = module.topic.max_message_bytes
}

output "publisher_policies" {
  description = "Per publisher: its role and the IAM policy (JSON) to attach to it: publish to the topic, and read (and decrypt) the signing keys of its tenants, no other."
  value = {
    for name, p in var.publishers : name => {
      role_arn    = p.role_arn
      policy_json = data.aws_iam_policy_document.publisher[name].json
    }
  }
}

output "publisher_tenants" {
  description = "The tenant registry (tenant => {regions, prefixes}), as the appliers have it in REGIS_TENANTS: the publishers' tenant configuration (a batch carries its tenant's regions in its regions attribute)."
  value       = var.tenants
}

output "signing_keys" {
  description = "Per signing key: the tenants it may sign for and the ARN of its secret in the topic's region (where the publishers read it; each region's applier reads the replica in its region)."
  value = {
    for id, arn in module.signing_keys.secret_arns_by_key : id => {
      tenants    = module.signing_keys.key_tenants[id]
      secret_arn = arn
    }
  }
}

output "tenant_reach" {
  description = "For each restricted tenant, whether its batches reach each region (its regions attribute against each region's filter policy)."
  value       = local.tenant_reach
}

output "regions" {
  description = "Per region: queues (the apply queue, its DLQ, and the topic's undelivered queue for the region, in the topic's region), filter policy, alarm topic, applier, Redis endpoint and the signing secrets the applier reads there."
  value = {
    for m in local.regions : m.region => {
      queue_url           = m.queue_url
      dlq_url             = m.dlq_url
      sub_dlq_url         = module.topic.undelivered_queues[m.region].url
      sub_dlq_arn         = module.topic.undelivered_queues[m.region].arn
      filter_policy       = m.filter_policy
      alarm_topic_arn     = m.alarm_topic_arn
      lambda_function_arn = m.lambda_function_arn
      redis_endpoint      = m.redis_endpoint
      signing_secret_arns = module.signing_keys.secret_arns[m.region]
    }
  }
}

output "topic_alarm_topic_arn" {
  description = "Alarm topic of the topic's region (undelivered batches): subscribe the on-call to it too."
  value       = module.topic.alarm_topic_arn
}

output "dashboard_name" {
  description = "The deployment's CloudWatch dashboard."
  value       = module.dashboard.dashboard_name
}
