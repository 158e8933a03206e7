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

output "publisher_policy_json" {
  description = "IAM policy to attach to every role in publisher_role_arns."
  value       = module.topic.publisher_policy_json
}

output "publisher_tenants" {
  description = "The publisher's tenant map: tenant => the regions attribute of its batches (a tenant not listed sends [\"*\"])."
  value       = var.tenants
}

output "tenant_reach" {
  description = "For each restricted tenant, whether its batches reach each region (its regions attribute against each region's filter policy)."
  value       = local.tenant_reach
}

output "regions" {
  description = "Per region: queues (the apply queue, its DLQ, and the topic's undelivered queue for the region, in the topic's region), filter policy, alarm topic, applier and Redis endpoint."
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
