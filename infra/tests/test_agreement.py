"""The Terraform of infra/ agrees with the local environment.

`local/topology.json` is the single source of truth of the local topology and
`local/topology.py` creates it on LocalStack. The LocalStack example of
infra/ must describe the same resources (names, retention, visibility,
redrive, raw delivery, filter policies, queue policy), and the region module
must honour the contracts of docs/ARCHITECTURE.md (filter policy shape,
applier environment, ReportBatchItemFailures). Terraform cannot run here, so
the configuration is read with python-hcl2 and evaluated by hcl_eval.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hcl_eval  # noqa: E402
from hcl_eval import Unknown  # noqa: E402

INFRA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(INFRA)
LOCALSTACK = os.path.join(INFRA, "examples", "localstack")
THREE_REGIONS = os.path.join(INFRA, "examples", "three-regions")
REGION_MODULE = os.path.join(INFRA, "modules", "region")
ARCHITECTURE = os.path.join(ROOT, "docs", "ARCHITECTURE.md")

REGION_MODULE_NAMES = {
    "ap-southeast-1": "region_ap_southeast_1",
    "ap-south-1": "region_ap_south_1",
    "eu-west-1": "region_eu_west_1",
}

# SQS attribute (as the setup script passes it to boto3) -> aws_sqs_queue argument.
SQS_ATTRIBUTE_ARGUMENTS = {
    "VisibilityTimeout": "visibility_timeout_seconds",
    "MessageRetentionPeriod": "message_retention_seconds",
    "MaximumMessageSize": "max_message_size",
    "RedrivePolicy": "redrive_policy",
    "ReceiveMessageWaitTimeSeconds": "receive_wait_time_seconds",
    "DelaySeconds": "delay_seconds",
}

DLQ_ARN = "arn:aws:sqs:region:000000000000:dlq-placeholder"
QUEUE_ARN = "arn:aws:sqs:region:000000000000:queue-placeholder"
TOPIC_ARN = "arn:aws:sns:region:000000000000:topic-placeholder"

THREE_REGIONS_INPUTS = {
    "publisher_role_arns": ["arn:aws:iam::123456789012:role/orders-service"],
    "networks": {
        r: {"vpc_id": "vpc-0abc", "subnet_ids": ["subnet-0a", "subnet-0b"]} for r in REGION_MODULE_NAMES
    },
    "elasticache_auth_tokens": {r: "token-of-twenty-chars!" for r in REGION_MODULE_NAMES},
}


def load_topology() -> dict:
    with open(os.path.join(ROOT, "local", "topology.json"), encoding="utf-8") as f:
        return json.load(f)


def load_topology_py():
    """local/topology.py, imported from its path (it is not a package)."""
    path = os.path.join(ROOT, "local", "topology.py")
    if not os.path.exists(path):
        return None
    spec = importlib.util.spec_from_file_location("regis_local_topology", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def call_queue_attributes(topo_py, topology: dict) -> dict:
    params = inspect.signature(topo_py.queue_attributes).parameters
    return topo_py.queue_attributes(topology, DLQ_ARN) if len(params) >= 2 else topo_py.queue_attributes(topology)


def as_sqs_string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def redrive(value: str, dlq_address: str) -> dict:
    policy = json.loads(value)
    if policy.get("deadLetterTargetArn") in (dlq_address, DLQ_ARN):
        policy["deadLetterTargetArn"] = "<the region's DLQ>"
    policy["maxReceiveCount"] = int(policy["maxReceiveCount"])
    return policy


def queue_mismatches(region: hcl_eval.Instance, resource: str, expected: dict) -> list[str]:
    """Differences between the attributes the setup script sets and the queue's Terraform."""
    problems = []
    dlq_address = f"${{{region.address}.aws_sqs_queue.dlq.arn}}"
    for attribute, want in expected.items():
        argument = SQS_ATTRIBUTE_ARGUMENTS.get(attribute)
        if argument is None:
            problems.append(f"{attribute}: set by local/topology.py, not mapped to Terraform by this test")
            continue
        body = region.resource("aws_sqs_queue", resource)
        if argument not in body:
            problems.append(f"{attribute}: aws_sqs_queue.{resource} has no {argument}")
            continue
        have = region.attr("aws_sqs_queue", resource, argument)
        if attribute == "RedrivePolicy":
            if redrive(have, dlq_address) != redrive(want, dlq_address):
                problems.append(f"{attribute}: terraform {have} != local {want}")
        elif as_sqs_string(have) != as_sqs_string(want):
            problems.append(f"{attribute}: terraform {have!r} != local {want!r}")
    return problems


def topology_queue_expectations(topology: dict) -> dict:
    """What topology.json alone says about the apply queue."""
    return {
        "VisibilityTimeout": str(topology["visibility_timeout_seconds"]),
        "MessageRetentionPeriod": str(topology["message_retention_seconds"]),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": topology["max_receive_count"]}),
    }


def render_policy(region: hcl_eval.Instance, name: str, replacements: dict) -> dict:
    """The JSON that data.aws_iam_policy_document.<name> renders, normalised."""

    def fix(v):
        if isinstance(v, Unknown):
            return replacements.get(v.address, str(v))
        if isinstance(v, list):
            return sorted(fix(x) for x in v)
        return v

    def one(v):
        v = fix(v)
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    statements = []
    for st in region.block("aws_iam_policy_document", name, "statement", kind="data"):
        ev = region.eval_in_resource
        out = {"Effect": ev(st.get("effect", '"Allow"')), "Action": one(ev(st["actions"])), "Resource": one(ev(st["resources"]))}
        for p in st.get("principals", []):
            out.setdefault("Principal", {})[ev(p["type"])] = one(ev(p["identifiers"]))
        for c in st.get("condition", []):
            out.setdefault("Condition", {}).setdefault(ev(c["test"]), {})[ev(c["variable"])] = one(ev(c["values"]))
        statements.append(out)
    return {"Statement": statements}


def normalise_policy(policy: dict) -> dict:
    def one(v):
        if isinstance(v, list):
            v = sorted(v)
            return v[0] if len(v) == 1 else v
        return v

    statements = []
    for st in policy["Statement"]:
        st = {k: v for k, v in st.items() if k != "Sid"}
        for key in ("Action", "Resource"):
            st[key] = one(st[key])
        if "Principal" in st:
            st["Principal"] = {k: one(v) for k, v in st["Principal"].items()}
        if "Condition" in st:
            st["Condition"] = {t: {k: one(v) for k, v in c.items()} for t, c in st["Condition"].items()}
        statements.append(st)
    return {"Statement": statements}


def sns_delivers(filter_policy: dict, attributes: dict) -> bool:
    """SNS attribute filtering for exact string matches: every key of the policy
    must be present and one of its values must equal (one of) the attribute's."""
    for key, allowed in filter_policy.items():
        value = attributes.get(key)
        if value is None:
            return False
        values = value if isinstance(value, list) else [value]
        if not any(v in allowed for v in values):
            return False
    return True


def subscription_of(root: hcl_eval.Instance, region: hcl_eval.Instance) -> dict:
    """The arguments of the topic's subscription of `region`'s apply queue."""
    topic = root.child("topic")
    queue = Unknown(f"{region.address}.aws_sqs_queue.this.arn")
    found = []
    for i in range(topic.count("aws_sns_topic_subscription", "this")):
        if topic.attr("aws_sns_topic_subscription", "this", "endpoint", index=i) == queue:
            found.append(
                {
                    arg: topic.attr("aws_sns_topic_subscription", "this", arg, index=i)
                    for arg in ("topic_arn", "protocol", "raw_message_delivery", "filter_policy_scope", "filter_policy")
                }
            )
    if len(found) != 1:
        raise AssertionError(f"{len(found)} subscriptions of {queue} on the topic, expected 1")
    return found[0]


def documented_applier_variables() -> dict:
    """Environment variables of the "Applier configuration" table, with their flag."""
    with open(ARCHITECTURE, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Applier configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([A-Z_]+)`\s*\|\s*([^|]*)\|\s*([^|]*)\|", section, re.M)
    return {name: (flag.strip(), meaning.strip()) for name, flag, meaning in rows}


class LocalStackAgreesWithTopology(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.topology = load_topology()
        cls.topology_py = load_topology_py()
        cls.root = hcl_eval.load(LOCALSTACK)

    def regions(self):
        for region in self.topology["regions"]:
            yield region, self.root.child(REGION_MODULE_NAMES[region["name"]])

    def test_every_topology_region_has_a_region_module_in_its_own_region(self):
        wanted = [r["name"] for r in self.topology["regions"]]
        self.assertEqual(sorted(wanted), sorted(REGION_MODULE_NAMES))
        module_regions = {}
        for name, block in self.root.module.modules.items():
            if name.startswith("region_"):
                inst = self.root.child(name)
                module_regions[inst.var("region")] = name
                self.assertEqual(self.root.provider_region(name), inst.var("region"), name)
        self.assertEqual(sorted(module_regions), sorted(wanted))

    def test_topic(self):
        topic = self.root.child("topic")
        self.assertEqual(topic.attr("aws_sns_topic", "this", "name"), self.topology["topic"]["name"])
        self.assertEqual(self.root.provider_region("topic"), self.topology["topic"]["region"])
        self.assertEqual(self.root.output("max_message_bytes"), self.topology["topic"]["max_message_bytes"])
        for _, region in self.regions():
            self.assertEqual(region.var("topic_arns"), [Unknown("module.topic.aws_sns_topic.this.arn")])

    def test_queue_and_dlq_names(self):
        for _, region in self.regions():
            self.assertEqual(region.attr("aws_sqs_queue", "this", "name"), self.topology["queue_name"])
            self.assertEqual(region.attr("aws_sqs_queue", "dlq", "name"), self.topology["dlq_name"])

    def test_queue_attributes_agree_with_topology_json(self):
        for region, inst in self.regions():
            problems = queue_mismatches(inst, "this", topology_queue_expectations(self.topology))
            self.assertEqual(problems, [], region["name"])
            self.assertEqual(
                inst.attr("aws_sqs_queue", "dlq", "message_retention_seconds"),
                self.topology["dlq_message_retention_seconds"],
            )

    def test_queue_attributes_agree_with_setup_script(self):
        if self.topology_py is None:
            self.fail("local/topology.py is missing")
        for region, inst in self.regions():
            self.assertEqual(queue_mismatches(inst, "this", call_queue_attributes(self.topology_py, self.topology)), [], region["name"])
            self.assertEqual(queue_mismatches(inst, "dlq", self.topology_py.dlq_attributes(self.topology)), [], region["name"])

    def test_subscriptions(self):
        topic = self.root.child("topic")
        self.assertEqual(topic.count("aws_sns_topic_subscription", "this"), len(self.topology["regions"]))
        for region, inst in self.regions():
            sub = subscription_of(self.root, inst)
            raw, scope = sub["raw_message_delivery"], sub["filter_policy_scope"]
            policy = json.loads(sub["filter_policy"])
            self.assertEqual(sub["topic_arn"], Unknown("module.topic.aws_sns_topic.this.arn"))
            self.assertEqual(sub["protocol"], "sqs")
            self.assertIs(raw, True)
            self.assertEqual(scope, "MessageAttributes")
            # docs/ARCHITECTURE.md: {"regions": ["R", "*"]}, plus "tenant" for an allow-list.
            expected = {"regions": [region["name"], "*"]}
            if region.get("tenants") is not None:
                expected["tenant"] = list(region["tenants"])
            self.assertEqual(policy, expected)
            if self.topology_py is not None:
                self.assertEqual(policy, self.topology_py.filter_policy(region["name"], region.get("tenants")))
                if hasattr(self.topology_py, "subscription_attributes"):
                    local = self.topology_py.subscription_attributes(region)
                    self.assertEqual(local["RawMessageDelivery"], as_sqs_string(raw))
                    self.assertEqual(local["FilterPolicyScope"], scope)
                    self.assertEqual(json.loads(local["FilterPolicy"]), policy)

    def test_queue_policy_lets_only_the_topic_send(self):
        if self.topology_py is None or not hasattr(self.topology_py, "queue_policy"):
            self.skipTest("local/topology.py has no queue_policy")
        for region, inst in self.regions():
            rendered = render_policy(
                inst,
                "queue",
                {
                    f"{inst.address}.aws_sqs_queue.this.arn": QUEUE_ARN,
                    "module.topic.aws_sns_topic.this.arn": TOPIC_ARN,
                },
            )
            local = normalise_policy(self.topology_py.queue_policy(QUEUE_ARN, TOPIC_ARN))
            self.assertEqual(rendered, local, region["name"])

    def test_tenants_agree(self):
        self.assertEqual(self.root.var("tenants"), self.topology.get("tenants", {}))
        for region, inst in self.regions():
            self.assertEqual(inst.var("allowed_tenants"), region.get("tenants"), region["name"])

    def test_lambda_and_elasticache_are_off_but_queues_stay(self):
        for _, inst in self.regions():
            for rtype in (
                "aws_lambda_function",
                "aws_lambda_event_source_mapping",
                "aws_iam_role",
                "aws_cloudwatch_log_group",
            ):
                self.assertEqual(inst.count(rtype, "this" if rtype.startswith("aws_lambda") else "lambda"), 0, rtype)
            self.assertEqual(inst.count("aws_elasticache_replication_group", "this"), 0)
            self.assertEqual(inst.count("aws_sqs_queue", "this"), 1)
            self.assertEqual(inst.count("aws_sqs_queue", "dlq"), 1)
            self.assertEqual(inst.count("aws_sqs_queue_policy", "this"), 1)

    def test_filter_policies_route_tenants_as_the_topology_says(self):
        policies = {r["name"]: json.loads(subscription_of(self.root, inst)["filter_policy"]) for r, inst in self.regions()}
        for tenant, allowed in self.topology.get("tenants", {}).items():
            attributes = {"tenant": tenant, "regions": allowed}
            reached = sorted(r for r, p in policies.items() if sns_delivers(p, attributes))
            self.assertEqual(reached, sorted(allowed), tenant)
        # A tenant without restriction is published with regions ["*"].
        unrestricted = sorted(r for r, p in policies.items() if sns_delivers(p, {"tenant": "any", "regions": ["*"]}))
        self.assertEqual(unrestricted, sorted(policies))


class MismatchesAreCaught(unittest.TestCase):
    """The comparisons above do fail when the two sides drift apart."""

    def setUp(self):
        self.topology = load_topology()
        self.topology_py = load_topology_py()

    def test_redrive_count_in_topology_differs(self):
        inst = hcl_eval.load(LOCALSTACK).child("region_eu_west_1")
        changed = copy.deepcopy(self.topology)
        changed["max_receive_count"] += 1
        problems = queue_mismatches(inst, "this", topology_queue_expectations(changed))
        self.assertEqual(len(problems), 1)
        self.assertIn("RedrivePolicy", problems[0])
        if self.topology_py is not None:
            self.assertTrue(queue_mismatches(inst, "this", call_queue_attributes(self.topology_py, changed)))

    def test_terraform_values_differ(self):
        for variable, value, attribute in (
            ("max_receive_count", self.topology["max_receive_count"] + 1, "RedrivePolicy"),
            ("visibility_timeout_seconds", self.topology["visibility_timeout_seconds"] + 1, "VisibilityTimeout"),
            ("message_retention_seconds", self.topology["message_retention_seconds"] - 60, "MessageRetentionPeriod"),
        ):
            inst = hcl_eval.load(LOCALSTACK, {variable: value}).child("region_ap_south_1")
            problems = queue_mismatches(inst, "this", topology_queue_expectations(self.topology))
            self.assertEqual([p.split(":")[0] for p in problems], [attribute], variable)

    def test_unmapped_attribute_is_reported(self):
        inst = hcl_eval.load(LOCALSTACK).child("region_eu_west_1")
        problems = queue_mismatches(inst, "this", {"FifoQueue": "true"})
        self.assertEqual(len(problems), 1)

    def test_filter_routing_detects_a_leak(self):
        # A policy without the region (e.g. {"regions": ["*"]}) would let a
        # restricted tenant in: the routing check must see that.
        self.assertTrue(sns_delivers({"regions": ["*"]}, {"tenant": "t", "regions": ["*"]}))
        self.assertFalse(sns_delivers({"regions": ["eu-west-1", "*"]}, {"tenant": "hotel-sg", "regions": ["ap-southeast-1", "ap-south-1"]}))
        self.assertFalse(sns_delivers({"regions": ["eu-west-1", "*"], "tenant": ["a"]}, {"tenant": "b", "regions": ["*"]}))


class RegionModuleHonoursTheContracts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = hcl_eval.load(THREE_REGIONS, THREE_REGIONS_INPUTS)

    def test_event_source_mapping(self):
        for name in REGION_MODULE_NAMES.values():
            inst = self.root.child(name)
            self.assertEqual(inst.count("aws_lambda_event_source_mapping", "this"), 1)
            self.assertEqual(
                inst.attr("aws_lambda_event_source_mapping", "this", "function_response_types"),
                ["ReportBatchItemFailures"],
            )
            self.assertEqual(
                inst.attr("aws_lambda_event_source_mapping", "this", "event_source_arn"),
                Unknown(f"{inst.address}.aws_sqs_queue.this.arn"),
            )
            self.assertEqual(
                inst.attr("aws_lambda_event_source_mapping", "this", "scaling_config", "maximum_concurrency"),
                inst.var("maximum_concurrency"),
            )

    def test_visibility_timeout_is_derived_from_the_function_timeout(self):
        inst = self.root.child("region_eu_west_1")
        self.assertEqual(
            inst.attr("aws_sqs_queue", "this", "visibility_timeout_seconds"),
            6 * inst.var("lambda_timeout") + inst.var("maximum_batching_window_in_seconds"),
        )
        module = hcl_eval.Instance(
            hcl_eval.Module(REGION_MODULE),
            {
                "region": lambda: "eu-west-1",
                "topic_arns": lambda: [TOPIC_ARN],
                "lambda_timeout": lambda: 60,
                "maximum_batching_window_in_seconds": lambda: 5,
            },
        )
        self.assertEqual(module.attr("aws_sqs_queue", "this", "visibility_timeout_seconds"), 365)

    def test_retention_defaults(self):
        module = hcl_eval.Instance(hcl_eval.Module(REGION_MODULE), {"region": lambda: "eu-west-1", "topic_arns": lambda: [TOPIC_ARN]})
        self.assertEqual(module.attr("aws_sqs_queue", "this", "message_retention_seconds"), 345600)
        self.assertEqual(module.var("tombstone_horizon_seconds"), 345600)
        self.assertGreater(module.attr("aws_sqs_queue", "dlq", "message_retention_seconds"), 345600)

    def test_lambda_environment_is_the_documented_applier_configuration(self):
        documented = documented_applier_variables()
        self.assertIn("REGIS_REGION", documented, "the Applier configuration table was not found")
        worker_only = {name for name, (_, meaning) in documented.items() if "worker only" in meaning}
        sdk_only = {name for name, (flag, _) in documented.items() if not flag}
        lambda_variables = set(documented) - worker_only - sdk_only
        self.assertIn("REGIS_QUEUE_URL", worker_only)

        module = hcl_eval.Instance(
            hcl_eval.Module(REGION_MODULE),
            {
                "region": lambda: "ap-south-1",
                "topic_arns": lambda: [TOPIC_ARN],
                "signing_keys": lambda: "k1:c2VjcmV0",
                "sentry_dsn": lambda: "https://key@sentry.example.org/1",
                "elasticache_auth_token": lambda: "abc/def?ghi#jkl-mn",
            },
            "module.region",
        )
        env = module.local("lambda_environment")
        self.assertEqual(set(env), lambda_variables)
        self.assertEqual(env["REGIS_REGION"], "ap-south-1")
        self.assertEqual(env["REGIS_REDIS_CLUSTER"], "false")
        self.assertEqual(env["REGIS_TOMBSTONE_HORIZON_SECONDS"], "345600")
        self.assertEqual(env["REGIS_DLQ_URL"], Unknown("module.region.aws_sqs_queue.dlq.url"))
        # TLS to ElastiCache, AUTH token percent-encoded in the URL.
        self.assertTrue(env["REGIS_REDIS_URL"].startswith("rediss://:abc%2Fdef%3Fghi%23jkl-mn@"))
        env_var = module.block("aws_lambda_function", "this", "environment")[0]["variables"]
        self.assertEqual(env_var, "${local.lambda_environment}")

        # Optional settings that are not set are left out, not set empty.
        plain = hcl_eval.Instance(
            hcl_eval.Module(REGION_MODULE),
            {"region": lambda: "ap-south-1", "topic_arns": lambda: [TOPIC_ARN], "create_elasticache": lambda: False, "redis_url": lambda: "redis://r:6379"},
        )
        self.assertEqual(set(plain.local("lambda_environment")), lambda_variables - {"REGIS_SIGNING_KEYS", "SENTRY_DSN"})
        self.assertEqual(plain.local("lambda_environment")["REGIS_REDIS_URL"], "redis://r:6379")

    def test_tenant_reach_output(self):
        reach = self.root.output("tenant_reach")
        self.assertEqual(reach["hotel-sg"], {"ap-southeast-1": True, "ap-south-1": True, "eu-west-1": False})
        for region, name in REGION_MODULE_NAMES.items():
            policy = json.loads(subscription_of(self.root, self.root.child(name))["filter_policy"])
            self.assertEqual(policy, {"regions": [region, "*"]})
            self.assertEqual(
                sns_delivers(policy, {"tenant": "hotel-sg", "regions": self.root.output("publisher_tenants")["hotel-sg"]}),
                reach["hotel-sg"][region],
            )


class ExamplesPassTheModulesValidations(unittest.TestCase):
    """Every value an example gives a module satisfies that variable's validation blocks."""

    def check(self, root: hcl_eval.Instance):
        checked = 0
        for name in root.module.modules:
            child = root.child(name)
            for var_name, var in child.module.variables.items():
                for validation in var.get("validation", []):
                    ok = child.eval(hcl_eval.to_ast(validation["condition"]))
                    if isinstance(ok, Unknown):
                        continue
                    self.assertIs(ok, True, f"{name}.{var_name}: {validation['error_message']}")
                    checked += 1
        for var_name, var in root.module.variables.items():
            for validation in var.get("validation", []):
                self.assertIs(root.eval(hcl_eval.to_ast(validation["condition"])), True, var_name)
                checked += 1
        self.assertGreater(checked, 20)

    def test_localstack(self):
        self.check(hcl_eval.load(LOCALSTACK))

    def test_three_regions(self):
        self.check(hcl_eval.load(THREE_REGIONS, THREE_REGIONS_INPUTS))

    def test_a_bad_value_fails_validation(self):
        inst = hcl_eval.Instance(hcl_eval.Module(REGION_MODULE), {"max_receive_count": lambda: 0})
        validation = inst.module.variables["max_receive_count"]["validation"][0]
        self.assertIs(inst.eval(hcl_eval.to_ast(validation["condition"])), False)


if __name__ == "__main__":
    unittest.main()
