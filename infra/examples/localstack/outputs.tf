output "topic_arn" {
  description = "ARN of the replication topic (the publisher's topic_arn; .regis/env.json topic_arn)."
  value       = module.topic.topic_arn
}

output "max_message_bytes" {
  description = "The publisher's max_message_bytes."
  value       = module.topic.max_message_bytes
}

output "publisher_role_arn" {
  description = "Role the publishers use."
  value       = aws_iam_role.publisher.arn
}

output "publisher_tenants" {
  description = "The tenant registry (tenant => {regions, prefixes}): what the publishers and the workers (REGIS_TENANTS) are given."
  value       = local.tenants
}

output "regions" {
  description = "Per region: queue, DLQ and undelivered-queue (subscription DLQ, in the topic's region) URLs and ARNs, and the subscription's filter policy (the shape of .regis/env.json regions)."
  value = {
    for m in local.regions : m.region => {
      queue_url     = m.queue_url
      queue_arn     = m.queue_arn
      dlq_url       = m.dlq_url
      dlq_arn       = m.dlq_arn
      sub_dlq_url   = module.topic.undelivered_queues[m.region].url
      sub_dlq_arn   = module.topic.undelivered_queues[m.region].arn
      filter_policy = m.filter_policy
      alarm_topic   = m.alarm_topic_arn
    }
  }
}
