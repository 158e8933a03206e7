"""Undelivered batches on LocalStack: the local topology keeps them, as published.

Runs against the environment of `.regis/env.json` (`make up`; `make test`
runs infra/check.sh while it is up) and is skipped without one. It checks
that each region's subscription sends what SNS cannot deliver to that
region's undelivered queue, and what such a message looks like: a
subscription built by local/topology.py's `subscription_attributes`, whose
queue does not exist, gets a batch published the way the publisher does;
the batch must arrive in its dead-letter queue with the body and message
attributes as published (raw message delivery), which is what `regis dlq`
relies on to send it on. The probe's subscription filters on a region name
no real subscription has, so nothing reaches the real queues.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import unittest
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV_FILE = os.environ.get("REGIS_ENV_FILE", os.path.join(ROOT, ".regis", "env.json"))


def load_topology_py():
    spec = importlib.util.spec_from_file_location("regis_local_topology", os.path.join(ROOT, "local", "topology.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@unittest.skipUnless(os.path.exists(ENV_FILE), f"no local environment ({ENV_FILE}): make up")
class UndeliveredBatchesAreKept(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import boto3

        with open(ENV_FILE, encoding="utf-8") as f:
            cls.env = json.load(f)
        cls.topology = load_topology_py()

        def client(service, region):
            return boto3.client(
                service,
                region_name=region,
                endpoint_url=cls.env["endpoint_url"],
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )

        cls.client = staticmethod(client)
        cls.sns = client("sns", cls.env["topic_region"])
        cls.sqs = client("sqs", cls.env["topic_region"])

    def test_every_region_has_an_undelivered_queue_in_the_topic_region(self):
        for region in self.env["regions"]:
            with self.subTest(region=region["name"]):
                arn = region["sub_dlq_arn"]
                self.assertEqual(arn.split(":")[3], self.env["topic_region"])
                attributes = self.sqs.get_queue_attributes(QueueUrl=region["sub_dlq_url"], AttributeNames=["QueueArn", "Policy"])["Attributes"]
                self.assertEqual(attributes["QueueArn"], arn)
                statement = json.loads(attributes["Policy"])["Statement"][0]
                self.assertEqual(statement["Condition"]["ArnEquals"]["aws:SourceArn"], self.env["topic_arn"])
                subscription = self.sns.get_subscription_attributes(SubscriptionArn=region["subscription_arn"])["Attributes"]
                self.assertEqual(json.loads(subscription["RedrivePolicy"]), {"deadLetterTargetArn": arn})
                self.assertEqual(subscription["RawMessageDelivery"], "true")

    def test_a_batch_sns_cannot_deliver_is_kept_as_published(self):
        probe = f"undelivered-probe-{uuid.uuid4().hex[:8]}"
        topic_region = self.env["topic_region"]
        account = self.env["account_id"]
        dlq_name = f"regis-{probe}"
        dlq_arn = f"arn:aws:sqs:{topic_region}:{account}:{dlq_name}"
        dlq_url = self.sqs.create_queue(
            QueueName=dlq_name,
            Attributes={"Policy": json.dumps(self.topology.queue_policy(dlq_arn, self.env["topic_arn"]))},
        )["QueueUrl"]
        missing_queue = f"arn:aws:sqs:eu-west-1:{account}:regis-{probe}-missing"
        subscription = self.sns.subscribe(
            TopicArn=self.env["topic_arn"],
            Protocol="sqs",
            Endpoint=missing_queue,
            Attributes=self.topology.subscription_attributes({"name": probe}, dlq_arn),
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        try:
            body = json.dumps({"probe": probe, "note": "a batch body as the publisher sends it"})
            attributes = {
                "tenant": {"DataType": "String", "StringValue": "probe-tenant"},
                "origin": {"DataType": "String", "StringValue": topic_region},
                "regions": {"DataType": "String.Array", "StringValue": json.dumps([probe])},
            }
            self.sns.publish(TopicArn=self.env["topic_arn"], Message=body, MessageAttributes=attributes)
            received = []
            deadline = time.monotonic() + 30
            while not received and time.monotonic() < deadline:
                received = self.sqs.receive_message(
                    QueueUrl=dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=2
                ).get("Messages", [])
            self.assertEqual(len(received), 1, "the undeliverable batch did not reach the subscription's dead-letter queue")
            message = received[0]
            self.assertEqual(message["Body"], body)
            self.assertEqual(
                {k: (v["DataType"], v["StringValue"]) for k, v in message["MessageAttributes"].items()},
                {k: (v["DataType"], v["StringValue"]) for k, v in attributes.items()},
            )
        finally:
            self.sns.unsubscribe(SubscriptionArn=subscription)
            self.sqs.delete_queue(QueueUrl=dlq_url)


if __name__ == "__main__":
    unittest.main()
