output "topic_arn" {
  description = "ARN of the replication topic: the publisher's topic_arn, and an element of every region module's topic_arns."
  value       = aws_sns_topic.this.arn
}

output "topic_name" {
  description = "Name of the replication topic."
  value       = aws_sns_topic.this.name
}

output "topic_region" {
  description = "Region of the topic (the origin region of the publishers that use it)."
  value       = local.region
}

output "subscription_arns" {
  description = "ARNs of the subscriptions, in the order of var.subscriptions."
  value       = aws_sns_topic_subscription.this[*].arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the topic (created by the module or passed in)."
  value       = local.kms_key_arn
}

output "max_message_bytes" {
  description = "Largest batch the publisher may send, attributes included (the topic's default MaximumMessageSize, which this module does not change): wire the publisher's max_message_bytes from this output."
  value       = var.max_message_bytes
}

output "publisher_policy_json" {
  description = "IAM policy (JSON) that grants a publisher role what it needs: sns:Publish on the topic and the KMS data-key operations through SNS. Attach it to each role listed in publisher_role_arns."
  value       = data.aws_iam_policy_document.publisher.json
}

output "undelivered_queues" {
  description = "Per subscribed region, the subscription's dead-letter queue in the topic's region: {region => {name, arn, url, region}}. `regis dlq` reads it (env.json sub_dlq_url, sub_dlq_arn) and sends its batches on to that region's apply queue."
  value = {
    for i, s in var.subscriptions : s.region => {
      name   = local.undelivered_queue_names[i]
      arn    = aws_sqs_queue.undelivered[i].arn
      url    = aws_sqs_queue.undelivered[i].url
      region = local.region
    }
  }
}

output "alarm_topic_arn" {
  description = "ARN of the SNS topic the undelivered-queue alarms notify (in the topic's region): subscribe the on-call's endpoints to it."
  value       = aws_sns_topic.alarms.arn
}
