"""Create the regis topology (topic, queues, DLQs, subscriptions and their DLQs) on LocalStack.

Run by `local/up.sh` with the LocalStack virtualenv's Python:

    .venv/bin/python local/topology.py --endpoint http://127.0.0.1:4566 \
        --topology local/topology.json --redis-base-port 6401 \
        --env-file .regis/env.json

It is idempotent: running it again against the same LocalStack converges the
resources to what the topology says and creates nothing twice.

The pure functions `filter_policy`, `queue_attributes`, `dlq_attributes`,
`queue_policy`, `undelivered_queue_name`, `undelivered_attributes` and
`subscription_attributes` are the single statement of what a region's
resources look like; the Terraform tests import them to check that the
deployed configuration agrees with the local one. Importing this module has
no side effects (boto3 is imported lazily).

Each region's subscription has a dead-letter queue, the region's
"undelivered queue": where SNS puts a batch it could not deliver to the
region's apply queue (a denied queue or key policy, a deleted queue). SNS
requires it in the subscription's region, the topic's, so every region's
undelivered queue lives in the topic's region. With raw message delivery SNS
puts the batch there as published: the raw body, with its message attributes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Optional, Sequence

# ---------------------------------------------------------------------------
# Pure functions: what the resources look like.
# ---------------------------------------------------------------------------


def filter_policy(region: str, tenants_allowed: Optional[Sequence[str]] = None) -> dict:
    """SNS filter policy (scope MessageAttributes) of region `region`'s subscription.

    A batch reaches the region when its `regions` attribute names the region
    or is `["*"]`. When `tenants_allowed` is given, the region additionally
    accepts only those tenants.
    """
    policy: dict[str, Any] = {"regions": [region, "*"]}
    if tenants_allowed is not None:
        policy["tenant"] = list(tenants_allowed)
    return policy


def queue_attributes(topology: dict, dlq_arn: str) -> dict:
    """SQS attributes of a region's apply queue, as passed to boto3 (string values)."""
    redrive = {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": int(topology["max_receive_count"]),
    }
    return {
        "VisibilityTimeout": str(int(topology["visibility_timeout_seconds"])),
        "MessageRetentionPeriod": str(int(topology["message_retention_seconds"])),
        "MaximumMessageSize": str(int(topology["topic"]["max_message_bytes"])),
        "RedrivePolicy": json.dumps(redrive, separators=(",", ":")),
    }


def dlq_attributes(topology: dict) -> dict:
    """SQS attributes of a region's dead-letter queue, as passed to boto3.

    Larger than the apply queue's messages: a batch at that limit is parked
    with the applier's attributes added."""
    return {
        "MessageRetentionPeriod": str(int(topology["dlq_message_retention_seconds"])),
        "MaximumMessageSize": str(int(topology["dlq_max_message_bytes"])),
    }


def undelivered_queue_name(topology: dict, region: str) -> str:
    """Name of `region`'s undelivered queue (its subscription's DLQ, in the topic's region)."""
    return f"{topology['topic']['name']}-{region}-undelivered"


def undelivered_attributes(topology: dict) -> dict:
    """SQS attributes of an undelivered queue: kept as long as the region's DLQ."""
    return dlq_attributes(topology)


def check_retention(topology: dict) -> None:
    """The rule the Terraform enforces too: the DLQ keeps batches longer than
    the apply queue, and the tombstone horizon covers both (so every queue's
    batches, undelivered ones included, are younger than the horizon)."""
    apply, dlq = topology["message_retention_seconds"], topology["dlq_message_retention_seconds"]
    horizon = topology["tombstone_horizon_seconds"]
    if dlq <= apply:
        raise ValueError(f"dlq_message_retention_seconds ({dlq}) must be longer than message_retention_seconds ({apply})")
    if horizon < max(apply, dlq):
        raise ValueError(f"tombstone_horizon_seconds ({horizon}) must cover the queues' retention ({max(apply, dlq)})")


def queue_policy(queue_arn: str, topic_arn: str) -> dict:
    """Queue policy that lets (only) the replication topic send to the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowReplicationTopic",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }


def subscription_attributes(region: dict, undelivered_arn: str) -> dict:
    """SNS subscription attributes of a region's queue (string values)."""
    return {
        "RawMessageDelivery": "true",
        "FilterPolicyScope": "MessageAttributes",
        "FilterPolicy": json.dumps(
            filter_policy(region["name"], region.get("tenants")), separators=(",", ":")
        ),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": undelivered_arn}, separators=(",", ":")),
    }


def sqs_arn(topology: dict, region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{topology['account_id']}:{name}"


# ---------------------------------------------------------------------------
# Side effects: creating the resources.
# ---------------------------------------------------------------------------


def _clients(endpoint: str):
    import boto3
    from botocore.config import Config

    # LocalStack is slow on small machines: generous timeouts, a few retries.
    config = Config(
        retries={"max_attempts": 6, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )

    def make(service: str, region: str):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=config,
        )

    return make


def _ensure_queue(sqs, name: str, attributes: dict) -> str:
    """Create the queue, or bring an existing one's attributes up to date."""
    from botocore.exceptions import ClientError

    try:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        # Exists with other attributes (the topology changed): update in place.
        if "QueueAlreadyExists" not in code and "QueueNameExists" not in code:
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url


def _subscriptions_by_endpoint(sns, topic_arn: str) -> dict:
    subs: dict[str, list] = {}
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs":
                subs.setdefault(sub["Endpoint"], []).append(sub["SubscriptionArn"])
    return subs


def _ensure_subscription(sns, topic_arn: str, queue_arn: str, wanted: dict, existing: list) -> str:
    """Exactly one subscription of the queue to the topic, with `wanted` attributes."""
    # A subscription still pending confirmation has no usable arn; sqs
    # subscriptions are confirmed at once, so every listed arn is real.
    existing = [arn for arn in existing if arn.startswith("arn:")]
    if not existing:
        return sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=wanted,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    keep, extra = existing[0], existing[1:]
    for arn in extra:
        sns.unsubscribe(SubscriptionArn=arn)
    current = sns.get_subscription_attributes(SubscriptionArn=keep)["Attributes"]
    # Scope before policy: a policy is validated against the current scope.
    for name in ("FilterPolicyScope", "FilterPolicy", "RawMessageDelivery", "RedrivePolicy"):
        have = current.get(name)
        want = wanted[name]
        if name in ("FilterPolicy", "RedrivePolicy") and have:
            same = json.loads(have) == json.loads(want)
        else:
            same = have == want
        if not same:
            sns.set_subscription_attributes(
                SubscriptionArn=keep, AttributeName=name, AttributeValue=want
            )
    return keep


def create(topology: dict, endpoint: str, redis_base_port: int) -> dict:
    """Create everything; return the content of `.regis/env.json`."""
    check_retention(topology)
    make = _clients(endpoint)
    topic_region = topology["topic"]["region"]
    sns = make("sns", topic_region)
    topic_sqs = make("sqs", topic_region)
    topic_arn = sns.create_topic(Name=topology["topic"]["name"])["TopicArn"]
    subs = _subscriptions_by_endpoint(sns, topic_arn)

    regions_out = []
    for index, region in enumerate(topology["regions"]):
        name = region["name"]
        sqs = make("sqs", name)

        dlq_url = _ensure_queue(sqs, topology["dlq_name"], dlq_attributes(topology))
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

        # The queue policy names the queue's own arn, which is known before the
        # queue exists, so the queue is created complete in one call.
        queue_arn = sqs_arn(topology, name, topology["queue_name"])
        attrs = queue_attributes(topology, dlq_arn)
        attrs["Policy"] = json.dumps(queue_policy(queue_arn, topic_arn), separators=(",", ":"))
        queue_url = _ensure_queue(sqs, topology["queue_name"], attrs)
        actual_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        if actual_arn != queue_arn:
            # Only if the account id in the topology is not LocalStack's.
            attrs["Policy"] = json.dumps(
                queue_policy(actual_arn, topic_arn), separators=(",", ":")
            )
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": attrs["Policy"]})
            queue_arn = actual_arn

        # The subscription's DLQ, in the topic's region, that only the topic
        # may send to.
        sub_dlq_arn = sqs_arn(topology, topic_region, undelivered_queue_name(topology, name))
        sub_dlq_attrs = undelivered_attributes(topology)
        sub_dlq_attrs["Policy"] = json.dumps(queue_policy(sub_dlq_arn, topic_arn), separators=(",", ":"))
        sub_dlq_url = _ensure_queue(topic_sqs, undelivered_queue_name(topology, name), sub_dlq_attrs)
        sub_dlq_arn = topic_sqs.get_queue_attributes(QueueUrl=sub_dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

        sub_arn = _ensure_subscription(
            sns,
            topic_arn,
            queue_arn,
            subscription_attributes(region, sub_dlq_arn),
            subs.get(queue_arn, []),
        )
        regions_out.append(
            {
                "name": name,
                "rank": region["rank"],
                "queue_url": queue_url,
                "queue_arn": queue_arn,
                "dlq_url": dlq_url,
                "dlq_arn": dlq_arn,
                "sub_dlq_url": sub_dlq_url,
                "sub_dlq_arn": sub_dlq_arn,
                "redis_url": f"redis://127.0.0.1:{redis_base_port + index}",
                "subscription_arn": sub_arn,
            }
        )

    return {
        "endpoint_url": endpoint,
        "topic_arn": topic_arn,
        "topic_region": topic_region,
        "regions": regions_out,
        "tenants": topology.get("tenants", {}),
        # Extras for tests and tools.
        "account_id": topology["account_id"],
        "max_message_bytes": topology["topic"]["max_message_bytes"],
        "max_receive_count": topology["max_receive_count"],
        "visibility_timeout_seconds": topology["visibility_timeout_seconds"],
        "tombstone_horizon_seconds": topology["tombstone_horizon_seconds"],
    }


def write_env(env: dict, path: str) -> None:
    """Write atomically, so a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(env, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="LocalStack URL")
    parser.add_argument("--topology", required=True, help="topology.json")
    parser.add_argument("--redis-base-port", type=int, required=True)
    parser.add_argument("--env-file", required=True, help="where to write env.json")
    args = parser.parse_args(argv)

    with open(args.topology, encoding="utf-8") as f:
        topology = json.load(f)
    started = time.monotonic()
    env = create(topology, args.endpoint, args.redis_base_port)
    write_env(env, args.env_file)
    print(
        f"topology: {len(env['regions'])} regions, topic {env['topic_arn']} "
        f"({time.monotonic() - started:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
