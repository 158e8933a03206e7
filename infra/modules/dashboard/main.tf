# One CloudWatch dashboard for a deployment: a row per region, so an operator
# sees every region's replication on one page.
#
# Per region: replication lag p50 and p99, commands applied and batches,
# failures by kind, and the queues (DLQ depth, undelivered-queue depth,
# oldest batch waiting in the apply queue). The applier's figures are its
# embedded metrics (namespace Regis, dimension Region: see
# docs/ARCHITECTURE.md, "Applier configuration"); the queues' are SQS's own.
# Each widget reads the metrics of its region; the undelivered queue's depth
# is read in the topic's region, where SNS keeps it.

locals {
  # Dashboard grid: 24 columns; each region is a title row and a row of five
  # widgets.
  widget_width  = 24 / 5
  widget_height = 6
  row_height    = 1 + local.widget_height

  rows = [
    for i, r in var.regions : [
      {
        type   = "text"
        x      = 0
        y      = i * local.row_height
        width  = 24
        height = 1
        properties = {
          markdown = "## ${r.region}: apply queue `${r.queue_name}`, DLQ `${r.dlq_name}`, undelivered `${r.undelivered_queue_name}` (${r.undelivered_queue_region})${r.function_name != null ? ", applier `${r.function_name}`" : ""}"
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = i * local.row_height + 1
        width  = floor(local.widget_width)
        height = local.widget_height
        properties = {
          title  = "Replication lag (ms)"
          region = r.region
          view   = "timeSeries"
          period = var.period_seconds
          metrics = [
            ["Regis", "ReplicationLagMs", "Region", r.region, { stat = "p50", label = "p50" }],
            ["...", { stat = "p99", label = "p99" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = floor(local.widget_width)
        y      = i * local.row_height + 1
        width  = floor(local.widget_width)
        height = local.widget_height
        properties = {
          title  = "Applied"
          region = r.region
          view   = "timeSeries"
          stat   = "Sum"
          period = var.period_seconds
          metrics = [
            ["Regis", "CommandsApplied", "Region", r.region, { label = "commands applied" }],
            [".", "Batches", ".", ".", { label = "batches", yAxis = "right" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 2 * floor(local.widget_width)
        y      = i * local.row_height + 1
        width  = floor(local.widget_width)
        height = local.widget_height
        properties = {
          title  = "Failures and skips by kind"
          region = r.region
          view   = "timeSeries"
          stat   = "Sum"
          period = var.period_seconds
          metrics = [
            ["Regis", "RetryableFailures", "Region", r.region, { label = "retryable" }],
            [".", "PermanentFailures", ".", ".", { label = "permanent (parked)" }],
            [".", "SkippedOlder", ".", ".", { label = "skipped: older" }],
            [".", "TypeConflicts", ".", ".", { label = "skipped: type conflict" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 3 * floor(local.widget_width)
        y      = i * local.row_height + 1
        width  = floor(local.widget_width)
        height = local.widget_height
        properties = {
          title  = "Waiting in the DLQ and the undelivered queue"
          region = r.region
          view   = "timeSeries"
          stat   = "Maximum"
          period = var.period_seconds
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", r.dlq_name, { label = "DLQ" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", r.undelivered_queue_name, { label = "undelivered (SNS)", region = r.undelivered_queue_region }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 4 * floor(local.widget_width)
        y      = i * local.row_height + 1
        width  = 24 - 4 * floor(local.widget_width)
        height = local.widget_height
        properties = {
          title  = "Oldest batch in the apply queue (s)"
          region = r.region
          view   = "timeSeries"
          stat   = "Maximum"
          period = var.period_seconds
          metrics = [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", r.queue_name, { label = "oldest batch" }],
          ]
        }
      },
    ]
  ]

  widgets = flatten(local.rows)
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.widgets })
}
