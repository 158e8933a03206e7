output "dashboard_name" {
  description = "Name of the dashboard (CloudWatch console, Dashboards)."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "dashboard_arn" {
  description = "ARN of the dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_arn
}

output "widgets" {
  description = "The widgets of the dashboard body, as a list of objects (for tests and for embedding elsewhere)."
  value       = local.widgets
}
