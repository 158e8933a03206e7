################################################################################
# ElastiCache (optional)
################################################################################

resource "aws_security_group" "elasticache" {
  count = var.create_elasticache ? 1 : 0

  name        = "${var.elasticache_replication_group_id}-elasticache"
  description = "regis Redis of ${var.region}: reachable from the applier only"
  vpc_id      = var.vpc_id

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.create_lambda && local.in_vpc && var.vpc_id != null
      error_message = "create_elasticache needs create_lambda, subnet_ids and vpc_id: the replication group lives in those subnets and only the Lambda's security group may reach it."
    }

    precondition {
      condition     = var.redis_url == null
      error_message = "redis_url must be null when create_elasticache is true: the URL is built from the replication group."
    }
  }
}

# Only with the applier's security group: without it (no Lambda, or no
# subnets) the precondition above stops the plan with its message instead of
# an invalid index here.
resource "aws_vpc_security_group_ingress_rule" "elasticache_from_lambda" {
  count = var.create_elasticache && local.lambda_security_group ? 1 : 0

  security_group_id            = aws_security_group.elasticache[0].id
  description                  = "Redis from the regis applier"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.lambda[0].id

  tags = var.tags
}

resource "aws_elasticache_subnet_group" "this" {
  count = var.create_elasticache ? 1 : 0

  name        = var.elasticache_replication_group_id
  description = "regis Redis of ${var.region}"
  subnet_ids  = var.subnet_ids

  tags = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  count = var.create_elasticache ? 1 : 0

  replication_group_id = var.elasticache_replication_group_id
  description          = "regis Redis of ${var.region}"
  engine               = "redis"
  engine_version       = var.elasticache_engine_version
  node_type            = var.elasticache_node_type
  port                 = var.redis_port
  parameter_group_name = var.redis_cluster_mode ? "default.redis7.cluster.on" : "default.redis7"
  subnet_group_name    = aws_elasticache_subnet_group.this[0].name
  security_group_ids   = [aws_security_group.elasticache[0].id]

  num_cache_clusters      = var.redis_cluster_mode ? null : 1 + var.elasticache_replicas
  num_node_groups         = var.redis_cluster_mode ? var.elasticache_shards : null
  replicas_per_node_group = var.redis_cluster_mode ? var.elasticache_replicas : null

  # elasticache_replicas is at least 1, so every shard has a node to fail
  # over to, in another availability zone.
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = local.kms_key_arn
  transit_encryption_enabled = true
  auth_token                 = var.elasticache_auth_token
  # Provider 6 needs a strategy to change the token: ROTATE keeps the old
  # token valid next to the new one, so appliers still holding the old URL
  # keep working until their configuration is updated.
  auth_token_update_strategy = var.elasticache_auth_token != null ? var.elasticache_auth_token_update_strategy : null

  snapshot_retention_limit   = var.elasticache_snapshot_retention_limit
  auto_minor_version_upgrade = true

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.elasticache_auth_token != null
      error_message = "elasticache_auth_token is required when create_elasticache is true."
    }
  }
}
