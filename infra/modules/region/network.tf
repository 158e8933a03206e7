################################################################################
# The applier's security group (Lambda in a VPC)
################################################################################

resource "aws_security_group" "lambda" {
  count = local.lambda_security_group ? 1 : 0

  name        = "${var.function_name}-lambda"
  description = "regis applier of ${var.region}: egress to Redis and HTTPS only"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  count = local.lambda_security_group ? length(var.https_egress_cidr_blocks) : 0

  security_group_id = aws_security_group.lambda[0].id
  description       = "HTTPS to SQS, KMS, CloudWatch Logs and Sentry"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.https_egress_cidr_blocks[count.index]

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_elasticache" {
  count = local.lambda_security_group && var.create_elasticache ? 1 : 0

  security_group_id            = aws_security_group.lambda[0].id
  description                  = "Redis of this region"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.elasticache[0].id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_redis_cidr" {
  count = local.lambda_security_group && !var.create_elasticache ? length(var.redis_cidr_blocks) : 0

  security_group_id = aws_security_group.lambda[0].id
  description       = "Redis of this region (redis_url)"
  ip_protocol       = "tcp"
  from_port         = var.redis_port
  to_port           = var.redis_port
  cidr_ipv4         = var.redis_cidr_blocks[count.index]

  tags = var.tags
}
