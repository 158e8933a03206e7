"""The provider-schema check passes on infra/ and fails on each kind of mistake.

Each mistake is made in a copy of a real module (a misspelled argument, a
missing required argument, a block written as an argument, a misspelled
attribute reference, ...), so the test also shows the check reads the
modules as they are.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hcl_eval  # noqa: E402
import provider_schema  # noqa: E402
import schema_check  # noqa: E402

INFRA = schema_check.INFRA
REGION = os.path.join(INFRA, "modules", "region")
TOPIC = os.path.join(INFRA, "modules", "topic")
LOCALSTACK = os.path.join(INFRA, "examples", "localstack")
SIGNING = os.path.join(INFRA, "modules", "signing-keys")


class SchemaCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        modules = [hcl_eval.Module(p) for p in schema_check.folders()]
        cls.schema = provider_schema.load(schema_check.used_types(modules) | {"resource.aws_sqs_queue_policy"})

    def mutated(self, folder: str, file: str, old: str, new: str) -> list[str]:
        """Problems of a copy of `folder` (with its sibling modules) where `old` became `new` in `file`."""
        with tempfile.TemporaryDirectory() as tmp:
            group = os.path.basename(os.path.dirname(folder))
            shutil.copytree(os.path.join(INFRA, "modules"), os.path.join(tmp, "modules"))
            if group == "examples":
                shutil.copytree(folder, os.path.join(tmp, "examples", os.path.basename(folder)))
            copy = os.path.join(tmp, group, os.path.basename(folder))
            path = os.path.join(copy, file)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            self.assertIn(old, text, f"{file} no longer contains {old!r}: update the test")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            return schema_check.check([copy], self.schema).problems

    def test_infra_passes(self):
        checker = schema_check.check(schema_check.folders(), self.schema)
        self.assertEqual(checker.problems, [])
        self.assertGreater(checker.counts["arguments"], 300)
        self.assertGreater(checker.counts["references"], 300)

    def test_misspelled_argument(self):
        problems = self.mutated(REGION, "queues.tf", "max_message_size ", "max_mesage_size ")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("unsupported argument or block 'max_mesage_size'", problems[0])
        self.assertIn("did you mean 'max_message_size'", problems[0])

    def test_misspelled_nested_argument(self):
        problems = self.mutated(REGION, "lambda.tf", "maximum_concurrency =", "maximum_concurency =")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("aws_lambda_event_source_mapping.this.scaling_config", problems[0])

    def test_missing_required_argument(self):
        problems = self.mutated(TOPIC, "subscriptions.tf", 'protocol             = "sqs"', "")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("aws_sns_topic_subscription.this: required argument 'protocol' is missing", problems[0])

    def test_block_written_as_argument(self):
        problems = self.mutated(REGION, "lambda.tf", "tracing_config {", "tracing_config = {")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("tracing_config is a block", problems[0])

    def test_argument_written_as_block(self):
        problems = self.mutated(REGION, "lambda.tf", "variables = local.lambda_environment", "variables { x = 1 }")
        self.assertTrue(any("variables is an argument" in p for p in problems), problems)

    def test_misspelled_attribute_reference(self):
        problems = self.mutated(REGION, "outputs.tf", "aws_sqs_queue.dlq.url", "aws_sqs_queue.dlq.urls")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("aws_sqs_queue.dlq has no attribute 'urls'", problems[0])

    def test_nested_attribute_reference(self):
        # data.aws_iam_policy_document has a readable statement list whose
        # elements have a sid; a field it does not have is refused.
        checker = schema_check.Checker(self.schema)
        spec = self.schema["data"]["aws_iam_policy_document"]["attributes"]
        checker.attribute_path("t", "data.aws_iam_policy_document.x", spec, [("attr", "statement"), ("index", None), ("attr", "sid")])
        self.assertEqual(checker.problems, [])
        checker.attribute_path("t", "data.aws_iam_policy_document.x", spec, [("attr", "statement"), ("index", None), ("attr", "side")])
        self.assertEqual(len(checker.problems), 1)

    def test_deprecated_attribute(self):
        problems = self.mutated(TOPIC, "main.tf", "data.aws_region.current.region", "data.aws_region.current.name")
        self.assertTrue(problems and all("deprecated" in p for p in problems), problems)

    def test_undeclared_resource_and_unknown_type(self):
        problems = self.mutated(REGION, "outputs.tf", "aws_sqs_queue.dlq.url", "aws_sqs_queue.deadletter.url")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("aws_sqs_queue.deadletter is not declared", problems[0])
        problems = self.mutated(REGION, "subscription.tf", 'resource "aws_sqs_queue_policy"', 'resource "aws_sqs_queues_policy"')
        self.assertTrue(any("no resource type 'aws_sqs_queues_policy'" in p for p in problems), problems)

    def test_module_inputs_and_outputs(self):
        problems = self.mutated(LOCALSTACK, "main.tf", "allowed_tenants = lookup", "allowed_tenant = lookup")
        self.assertTrue(any("the module has no variable 'allowed_tenant'" in p for p in problems), problems)
        problems = self.mutated(LOCALSTACK, "outputs.tf", "module.topic.topic_arn", "module.topic.topic_arns")
        self.assertTrue(any("module.topic has no output 'topic_arns'" in p for p in problems), problems)

    def test_provider_floor_is_the_checked_version(self):
        problems = self.mutated(REGION, "versions.tf", 'version = ">= 6.25.0, < 7.0.0"', 'version = ">= 6.8.0, < 7.0.0"')
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("must start with '>= 6.25.0'", problems[0])

    def test_signing_resources_are_checked(self):
        # The secrets, their values and the random bytes are checked against
        # hashicorp/aws and hashicorp/random.
        wanted = schema_check.used_types([hcl_eval.Module(p) for p in schema_check.folders()])
        for t in ("resource.aws_secretsmanager_secret", "resource.aws_secretsmanager_secret_version", "resource.random_bytes"):
            self.assertIn(t, wanted)
        self.assertEqual(self.schema["versions"], {"aws": "6.25.0", "random": "3.7.2"})
        self.assertIn("length", self.schema["resource"]["random_bytes"]["arguments"])

    def test_misspelled_random_argument(self):
        problems = self.mutated(SIGNING, "secrets.tf", "length = 32", "lenght = 32")
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("random_bytes.this: unsupported argument or block 'lenght'", problems[0])
        self.assertIn("required argument 'length' is missing", problems[1])

    def test_misspelled_argument_in_a_dynamic_block(self):
        problems = self.mutated(SIGNING, "secrets.tf", "kms_key_id = replica.value", "kms_key = replica.value")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("aws_secretsmanager_secret.this.replica: unsupported argument or block 'kms_key'", problems[0])

    def test_misspelled_random_attribute(self):
        problems = self.mutated(SIGNING, "secrets.tf", "random_bytes.this[each.key].base64", "random_bytes.this[each.key].base46")
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("random_bytes.this has no attribute 'base46'", problems[0])

    def test_random_floor_is_the_checked_version(self):
        problems = self.mutated(SIGNING, "versions.tf", 'version = ">= 3.7.2, < 4.0.0"', 'version = ">= 3.5.0, < 4.0.0"')
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("hashicorp/random constraint '>= 3.5.0, < 4.0.0' must start with '>= 3.7.2'", problems[0])

    def test_provider_block(self):
        problems = self.mutated(LOCALSTACK, "providers.tf", "skip_metadata_api_check", "skip_metadata_check")
        self.assertTrue(any("unsupported argument or block 'skip_metadata_check'" in p for p in problems), problems)


if __name__ == "__main__":
    unittest.main()
