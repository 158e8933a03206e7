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
import fnmatch
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
SECRET_ARN = "arn:aws:secretsmanager:ap-south-1:000000000000:secret:regis/signing/k1-AbCdEf"

# The tenant registry of issue 14, in the one shape every side reads.
REGISTRY = {
    "hotel-sg": {"regions": ["ap-southeast-1", "ap-south-1"], "prefixes": ["hotel-sg:"]},
    "acme": {"regions": ["*"], "prefixes": [""]},
}

ORDERS_ROLE = "arn:aws:iam::123456789012:role/orders-service"
BILLING_ROLE = "arn:aws:iam::123456789012:role/billing"
OPERATOR_ROLE = "arn:aws:iam::123456789012:role/regis-operator"

THREE_REGIONS_INPUTS = {
    "publishers": {
        "orders": {"role_arn": ORDERS_ROLE, "tenants": ["hotel-sg"]},
        "billing": {"role_arn": BILLING_ROLE, "tenants": ["acme"]},
    },
    "networks": {
        r: {"vpc_id": "vpc-0abc", "subnet_ids": ["subnet-0a", "subnet-0b"]} for r in REGION_MODULE_NAMES
    },
    "elasticache_auth_tokens": {r: "token-of-twenty-chars!" for r in REGION_MODULE_NAMES},
    "tenants": REGISTRY,
    # hotel-sg mid-rotation: two keys valid at once.
    "signing_keys": {"hotel-sg-1": {"tenants": ["hotel-sg"]}, "hotel-sg-2": {"tenants": ["hotel-sg"]}, "acme-1": {"tenants": ["acme"]}},
    "operator_role_arns": [OPERATOR_ROLE],
}


# Applier settings the region module sets that docs/ARCHITECTURE.md's table
# does not list yet (the applier change that reads them documents them).
PENDING_DOCUMENTATION: set = set()

# Documented settings the Lambda is never given: signing keys in plaintext
# (the Lambda reads them from Secrets Manager, REGIS_SIGNING_SECRET_IDS).
NOT_FOR_THE_LAMBDA = {"REGIS_SIGNING_KEYS", "REGIS_ALLOW_ANY_TENANT"}

TOPIC_MODULE = os.path.join(INFRA, "modules", "topic")


def region_module(**inputs) -> hcl_eval.Instance:
    """The region module alone, in eu-west-1 with one topic and the registry, and `inputs`."""
    values = {"region": "eu-west-1", "topic_arns": [TOPIC_ARN], "tenants": REGISTRY, **inputs}
    return hcl_eval.Instance(hcl_eval.Module(REGION_MODULE), {k: (lambda v=v: v) for k, v in values.items()})


def precondition(inst: hcl_eval.Instance, rtype: str, rname: str, mentions: str):
    """The value of the precondition of a resource whose condition or message mentions `mentions`."""
    found = [
        p
        for p in inst.block(rtype, rname, "lifecycle")[0]["precondition"]
        if mentions in p["condition"] or mentions in p["error_message"]
    ]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} preconditions of {rtype}.{rname} mention {mentions!r}")
    return inst.eval(hcl_eval.to_ast(found[0]["condition"]), {"count": {"index": 0}})


def load_topology() -> dict:
    with open(os.path.join(ROOT, "local", "topology.json"), encoding="utf-8") as f:
        return json.load(f)


def registry(tenants: dict) -> dict:
    """topology.json's tenants in the registry shape (tenant => {regions,
    prefixes}). A topology written before the registry maps a tenant to its
    regions only: that reads as any key ("")."""
    return {t: v if isinstance(v, dict) else {"regions": list(v), "prefixes": [""]} for t, v in tenants.items()}


def load_localstack(inputs: dict | None = None) -> hcl_eval.Instance:
    """The LocalStack example as `terraform apply` there would see it: its
    tenants are topology.json's (read with file()); a topology in the shape
    before the registry is given in the registry's shape instead, as the
    typed variable would refuse it."""
    inputs = dict(inputs or {})
    tenants = load_topology().get("tenants", {})
    if "tenants" not in inputs and registry(tenants) != tenants:
        inputs["tenants"] = registry(tenants)
    return hcl_eval.load(LOCALSTACK, inputs)


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's ArnLike/ArnEquals: * and ? match within the ARN."""
    return fnmatch.fnmatchcase(arn, pattern)


def denied_send(policy: dict, context: dict) -> bool:
    """Whether a Deny statement of a rendered policy denies sqs:SendMessage to
    a request with `context` (condition keys such as aws:SourceArn,
    aws:PrincipalArn; an absent key is absent from the request). IAM's rules
    for the operators these policies use: every condition of a statement
    must hold; a positive operator on an absent key fails, a negated one
    holds."""

    def holds(test: str, key: str, values) -> bool:
        values = values if isinstance(values, list) else [values]
        if test not in ("ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "StringEquals", "StringNotEquals"):
            raise AssertionError(f"operator {test} is not simulated")
        negated = "Not" in test
        if key not in context:
            return negated
        match = any(arn_matches(v, context[key]) if test.startswith("Arn") else v == context[key] for v in values)
        return not match if negated else match

    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] != "Deny" or "sqs:SendMessage" not in actions:
            continue
        if all(holds(test, key, values) for test, conds in st.get("Condition", {}).items() for key, values in conds.items()):
            return True
    return False


def allows(policy: dict) -> list:
    """The Allow statements of a policy (what the local topology states)."""
    return [st for st in policy["Statement"] if st["Effect"] == "Allow"]


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


def queue_mismatches(region: hcl_eval.Instance, resource: str, expected: dict, index: int = 0) -> list[str]:
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
        have = region.attr("aws_sqs_queue", resource, argument, index=index)
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


def render_policy(region: hcl_eval.Instance, name: str, replacements: dict, index: int = 0, key=None) -> dict:
    """The JSON that data.aws_iam_policy_document.<name> (instance `index`, or
    `key` with for_each) renders, normalised; dynamic statements and
    conditions expanded."""

    def fix(v):
        if isinstance(v, Unknown):
            return replacements.get(v.address, str(v))
        if isinstance(v, list):
            return sorted(fix(x) for x in v)
        return v

    def one(v):
        v = fix(v)
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    body = region.module.data[("aws_iam_policy_document", name)]
    statements = []
    for st, scope in region.nested(body, "statement", region.scope("aws_iam_policy_document", name, "data", index, key)):

        def ev(value, scope=scope):
            return region.eval(hcl_eval.to_ast(value), scope)

        out = {"Effect": ev(st.get("effect", '"Allow"')), "Action": one(ev(st["actions"])), "Resource": one(ev(st["resources"]))}
        for p, p_scope in region.nested(st, "principals", scope):
            out.setdefault("Principal", {})[ev(p["type"], p_scope)] = one(ev(p["identifiers"], p_scope))
        for c, c_scope in region.nested(st, "condition", scope):
            out.setdefault("Condition", {}).setdefault(ev(c["test"], c_scope), {})[ev(c["variable"], c_scope)] = one(ev(c["values"], c_scope))
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
                    for arg in ("topic_arn", "protocol", "raw_message_delivery", "filter_policy_scope", "filter_policy", "redrive_policy")
                }
                | {"index": i}
            )
    if len(found) != 1:
        raise AssertionError(f"{len(found)} subscriptions of {queue} on the topic, expected 1")
    return found[0]


def with_topic_arns(region: hcl_eval.Instance, arns: list[str]) -> hcl_eval.Instance:
    """`region` as its caller instantiates it, but with known topic ARNs (the
    SNS principals its policies name depend on the topics' regions)."""
    inputs = dict(region.inputs, topic_arns=lambda: arns)
    return hcl_eval.Instance(region.module, inputs, region.address, region.parent)


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
        cls.root = load_localstack()

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
                undelivered = f"${{module.topic.aws_sqs_queue.undelivered[{sub['index']}].arn}}"
                local = self.topology_py.subscription_attributes(region, undelivered)
                self.assertEqual(local["RawMessageDelivery"], as_sqs_string(raw))
                self.assertEqual(local["FilterPolicyScope"], scope)
                self.assertEqual(json.loads(local["FilterPolicy"]), policy)
                self.assertEqual(json.loads(local["RedrivePolicy"]), json.loads(sub["redrive_policy"]))

    def test_undelivered_queues(self):
        """Each region's subscription DLQ: in the topic's region, named, kept and
        sized as local/topology.py makes it, and only the topic may send to it."""
        topic = self.root.child("topic")
        outputs = self.root.output("regions")
        for region, inst in self.regions():
            index = subscription_of(self.root, inst)["index"]
            name = self.topology_py.undelivered_queue_name(self.topology, region["name"])
            self.assertEqual(topic.attr("aws_sqs_queue", "undelivered", "name", index=index), name)
            self.assertEqual(
                queue_mismatches(topic, "undelivered", self.topology_py.undelivered_attributes(self.topology), index), [], region["name"]
            )
            rendered = render_policy(
                topic,
                "undelivered",
                {f"module.topic.aws_sqs_queue.undelivered[{index}].arn": QUEUE_ARN, "module.topic.aws_sns_topic.this.arn": TOPIC_ARN},
                index,
            )
            # Who may send is the local topology's; the Deny of every other
            # sender is checked in test_undelivered_queues_deny_every_other_sender.
            self.assertEqual(allows(rendered), allows(normalise_policy(self.topology_py.queue_policy(QUEUE_ARN, TOPIC_ARN))), region["name"])
            self.assertEqual(
                outputs[region["name"]]["sub_dlq_arn"], Unknown(f"module.topic.aws_sqs_queue.undelivered[{index}].arn")
            )
            self.assertEqual(
                outputs[region["name"]]["sub_dlq_url"], Unknown(f"module.topic.aws_sqs_queue.undelivered[{index}].url")
            )
        self.assertEqual(self.root.provider_region("topic"), self.topology["topic"]["region"])

    def test_retention_rule(self):
        """topology.json obeys the rule the region module enforces, with the same values."""
        self.topology_py.check_retention(self.topology)
        for region, inst in self.regions():
            self.assertEqual(inst.var("tombstone_horizon_seconds"), self.topology["tombstone_horizon_seconds"])
            self.assertIs(precondition(inst, "aws_sqs_queue", "this", "tombstone_horizon_seconds"), True)
            self.assertIs(precondition(inst, "aws_sqs_queue", "dlq", "dlq_max_message_size"), True)
        shorter = copy.deepcopy(self.topology)
        shorter["tombstone_horizon_seconds"] = shorter["dlq_message_retention_seconds"] - 1
        with self.assertRaises(ValueError):
            self.topology_py.check_retention(shorter)

    def test_queue_policy_lets_only_the_topic_send(self):
        if self.topology_py is None or not hasattr(self.topology_py, "queue_policy"):
            self.skipTest("local/topology.py has no queue_policy")
        for region, inst in self.regions():
            inst = with_topic_arns(inst, [TOPIC_ARN])
            rendered = render_policy(
                inst,
                "queue",
                {
                    f"{inst.address}.aws_sqs_queue.this.arn": QUEUE_ARN,
                    "module.topic.aws_sns_topic.this.arn": TOPIC_ARN,
                },
            )
            local = normalise_policy(self.topology_py.queue_policy(QUEUE_ARN, TOPIC_ARN))
            # Who may send is the local topology's; the Deny of every other
            # sender (which names the operators' roles, a deployment's
            # choice) is checked in QueuesFailClosed.
            self.assertEqual(allows(rendered), allows(local), region["name"])
            self.assertTrue(denied_send(rendered, {"aws:PrincipalArn": ORDERS_ROLE}), region["name"])

    def test_tenants_agree(self):
        # The example reads the registry from topology.json itself: no copy to drift.
        plain = hcl_eval.load(LOCALSTACK)
        self.assertIsNone(plain.var("tenants"))
        self.assertEqual(plain.local("tenants"), self.topology["tenants"])
        self.assertEqual(self.root.output("publisher_tenants"), registry(self.topology["tenants"]))
        for region, inst in self.regions():
            self.assertEqual(inst.var("tenants"), registry(self.topology["tenants"]), region["name"])
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
        for tenant, entry in registry(self.topology.get("tenants", {})).items():
            attributes = {"tenant": tenant, "regions": entry["regions"]}
            reached = sorted(r for r, p in policies.items() if sns_delivers(p, attributes))
            self.assertEqual(reached, sorted(policies) if entry["regions"] == ["*"] else sorted(entry["regions"]), tenant)
        # A tenant without restriction is published with regions ["*"].
        unrestricted = sorted(r for r, p in policies.items() if sns_delivers(p, {"tenant": "any", "regions": ["*"]}))
        self.assertEqual(unrestricted, sorted(policies))


class MismatchesAreCaught(unittest.TestCase):
    """The comparisons above do fail when the two sides drift apart."""

    def setUp(self):
        self.topology = load_topology()
        self.topology_py = load_topology_py()

    def test_redrive_count_in_topology_differs(self):
        inst = load_localstack().child("region_eu_west_1")
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
            inst = load_localstack({variable: value}).child("region_ap_south_1")
            problems = queue_mismatches(inst, "this", topology_queue_expectations(self.topology))
            self.assertEqual([p.split(":")[0] for p in problems], [attribute], variable)

    def test_unmapped_attribute_is_reported(self):
        inst = load_localstack().child("region_eu_west_1")
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
        """Apply queue four days, DLQ (and undelivered queue) seven, horizon seven:
        the horizon covers both queues, and the defaults pass the rule."""
        module = region_module()
        self.assertEqual(module.attr("aws_sqs_queue", "this", "message_retention_seconds"), 345600)
        self.assertEqual(module.attr("aws_sqs_queue", "dlq", "message_retention_seconds"), 604800)
        self.assertEqual(module.var("tombstone_horizon_seconds"), 604800)
        self.assertIs(precondition(module, "aws_sqs_queue", "this", "tombstone_horizon_seconds"), True)
        self.assertIs(precondition(module, "aws_sqs_queue", "dlq", "message_retention_seconds"), True)
        for horizon, retention, dlq_retention in ((345600, 345600, 604800), (604800, 691200, 1209600)):
            changed = region_module(
                tombstone_horizon_seconds=horizon, message_retention_seconds=retention, dlq_message_retention_seconds=dlq_retention
            )
            self.assertIs(precondition(changed, "aws_sqs_queue", "this", "tombstone_horizon_seconds"), False, horizon)

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
                "tenants": lambda: REGISTRY,
                "signing_secret_arns": lambda: [SECRET_ARN],
                "allow_unsigned": lambda: True,
                "sentry_dsn": lambda: "https://key@sentry.example.org/1",
                "elasticache_auth_token": lambda: "abc/def?ghi#jkl-mn",
            },
            "module.region",
        )
        env = module.local("lambda_environment")
        self.assertEqual(set(env) - PENDING_DOCUMENTATION, lambda_variables - PENDING_DOCUMENTATION - NOT_FOR_THE_LAMBDA)
        self.assertTrue(PENDING_DOCUMENTATION <= set(env))
        self.assertFalse(NOT_FOR_THE_LAMBDA & set(env), "signing keys in plaintext in the Lambda's environment")
        self.assertEqual(env["REGIS_MAX_CLOCK_SKEW_SECONDS"], "300")
        self.assertEqual(env["REGIS_REGION"], "ap-south-1")
        self.assertEqual(env["REGIS_REDIS_CLUSTER"], "false")
        self.assertEqual(env["REGIS_TOMBSTONE_HORIZON_SECONDS"], "604800")
        self.assertEqual(env["REGIS_DLQ_URL"], Unknown("module.region.aws_sqs_queue.dlq.url"))
        # TLS to ElastiCache, AUTH token percent-encoded in the URL.
        self.assertTrue(env["REGIS_REDIS_URL"].startswith("rediss://:abc%2Fdef%3Fghi%23jkl-mn@"))
        env_var = module.block("aws_lambda_function", "this", "environment")[0]["variables"]
        self.assertEqual(env_var, "${local.lambda_environment}")

        # Optional settings that are not set are left out, not set empty.
        plain = hcl_eval.Instance(
            hcl_eval.Module(REGION_MODULE),
            {
                "region": lambda: "ap-south-1",
                "topic_arns": lambda: [TOPIC_ARN],
                "tenants": lambda: REGISTRY,
                "create_elasticache": lambda: False,
                "redis_url": lambda: "redis://r:6379",
            },
        )
        self.assertEqual(
            set(plain.local("lambda_environment")) - PENDING_DOCUMENTATION,
            # Without keys or Sentry those settings are left out (the plan
            # itself refuses no keys without allow_unsigned).
            lambda_variables
            - {"SENTRY_DSN", "REGIS_SIGNING_SECRET_IDS", "REGIS_ALLOW_UNSIGNED"}
            - PENDING_DOCUMENTATION
            - NOT_FOR_THE_LAMBDA,
        )
        self.assertIn("REGIS_TENANTS", plain.local("lambda_environment"), "the registry is always set")
        self.assertEqual(plain.local("lambda_environment")["REGIS_REDIS_URL"], "redis://r:6379")

    def test_tenant_reach_output(self):
        reach = self.root.output("tenant_reach")
        self.assertEqual(reach["hotel-sg"], {"ap-southeast-1": True, "ap-south-1": True, "eu-west-1": False})
        for region, name in REGION_MODULE_NAMES.items():
            policy = json.loads(subscription_of(self.root, self.root.child(name))["filter_policy"])
            self.assertEqual(policy, {"regions": [region, "*"]})
            for tenant, entry in self.root.output("publisher_tenants").items():
                self.assertEqual(sns_delivers(policy, {"tenant": tenant, "regions": entry["regions"]}), reach[tenant][region], tenant)
        self.assertEqual(reach["acme"], {r: True for r in REGION_MODULE_NAMES})


class RegionModuleChecksWhatTheSchemaCannot(unittest.TestCase):
    """Variable validations and preconditions for values the provider's
    schema accepts but AWS (or the applier) would refuse."""

    def validation_passes(self, module: str, variable: str, value) -> bool:
        inst = hcl_eval.Instance(hcl_eval.Module(module), {variable: lambda: value})
        results = [inst.eval(hcl_eval.to_ast(v["condition"])) for v in inst.module.variables[variable].get("validation", [])]
        self.assertTrue(results, f"{variable} has no validation")
        return all(r is True for r in results)

    def test_auth_token_characters(self):
        self.assertTrue(self.validation_passes(REGION_MODULE, "elasticache_auth_token", "Abc123!&#$^<>-xyz"))
        for bad in ("slash/in/the/token", "percent%in-the-token", "plus+in+the+token", "short-token"):
            self.assertFalse(self.validation_passes(REGION_MODULE, "elasticache_auth_token", bad), bad)
        # Rotation needs a strategy on provider 6; the default keeps the old token valid.
        module = region_module(subnet_ids=["subnet-0a"], vpc_id="vpc-0a", elasticache_auth_token="Abc123!&#$^<>-xyz")
        self.assertEqual(module.attr("aws_elasticache_replication_group", "this", "auth_token_update_strategy"), "ROTATE")

    def test_filter_policy_combinations(self):
        tenants = [f"t{i}" for i in range(75)]
        self.assertTrue(self.validation_passes(REGION_MODULE, "allowed_tenants", tenants))
        self.assertFalse(self.validation_passes(REGION_MODULE, "allowed_tenants", tenants + ["one-more"]))

    def test_message_sizes(self):
        self.assertTrue(self.validation_passes(REGION_MODULE, "max_message_size", 262144))
        self.assertFalse(self.validation_passes(REGION_MODULE, "max_message_size", 1048576))
        self.assertTrue(self.validation_passes(REGION_MODULE, "dlq_max_message_size", 1048576))
        self.assertFalse(self.validation_passes(REGION_MODULE, "dlq_max_message_size", 1048577))
        self.assertTrue(self.validation_passes(TOPIC_MODULE, "max_message_bytes", 262144))
        self.assertFalse(self.validation_passes(TOPIC_MODULE, "max_message_bytes", 262145))
        # The DLQ takes a batch at the apply queue's limit plus the parking attributes.
        self.assertIs(precondition(region_module(), "aws_sqs_queue", "dlq", "dlq_max_message_size"), True)
        same = region_module(max_message_size=262144, dlq_max_message_size=262144)
        self.assertIs(precondition(same, "aws_sqs_queue", "dlq", "dlq_max_message_size"), False)

    def test_clock_skew(self):
        self.assertTrue(self.validation_passes(REGION_MODULE, "max_clock_skew_seconds", 300))
        for bad in (0, 1.5, 86401):
            self.assertFalse(self.validation_passes(REGION_MODULE, "max_clock_skew_seconds", bad), bad)
        self.assertEqual(region_module(max_clock_skew_seconds=60).local("lambda_environment")["REGIS_MAX_CLOCK_SKEW_SECONDS"], "60")

    def test_kms_alias_is_refused_for_the_topic(self):
        self.assertTrue(self.validation_passes(TOPIC_MODULE, "kms_key_arn", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"))
        self.assertFalse(self.validation_passes(TOPIC_MODULE, "kms_key_arn", "arn:aws:kms:eu-west-1:123456789012:alias/regis"))

    def test_reserved_concurrency_is_not_reserved_by_default(self):
        self.assertEqual(region_module().attr("aws_lambda_function", "this", "reserved_concurrent_executions"), -1)

    def test_elasticache_without_subnets_stops_with_its_message(self):
        # The defaults (create_elasticache, no subnets): no resource indexes the
        # absent security group of the Lambda; the precondition says why.
        module = region_module()
        self.assertEqual(module.count("aws_security_group", "lambda"), 0)
        self.assertEqual(module.count("aws_vpc_security_group_ingress_rule", "elasticache_from_lambda"), 0)
        self.assertIs(precondition(module, "aws_security_group", "elasticache", "create_elasticache needs"), False)
        in_vpc = region_module(subnet_ids=["subnet-0a"], vpc_id="vpc-0a", elasticache_auth_token="Abc123!&#$^<>-xyz")
        self.assertEqual(in_vpc.count("aws_vpc_security_group_ingress_rule", "elasticache_from_lambda"), 1)
        self.assertIs(precondition(in_vpc, "aws_security_group", "elasticache", "create_elasticache needs"), True)

    def test_xray_permission_before_the_function(self):
        depends = region_module().resource("aws_lambda_function", "this")["depends_on"]
        self.assertIn("${aws_iam_role_policy_attachment.xray}", depends)

    def test_type_conflicts_alarm(self):
        module = region_module()
        alarm = {a: module.attr("aws_cloudwatch_metric_alarm", "type_conflicts", a) for a in ("namespace", "metric_name", "dimensions", "statistic", "threshold")}
        self.assertEqual(alarm, {"namespace": "Regis", "metric_name": "TypeConflicts", "dimensions": {"Region": "eu-west-1"}, "statistic": "Sum", "threshold": 0})
        self.assertEqual(module.attr("aws_cloudwatch_metric_alarm", "type_conflicts", "alarm_actions"), [Unknown("aws_sns_topic.alarms.arn")])

    def test_opt_in_regions_get_the_regional_sns_principal(self):
        def principals(queue_region, topic_region):
            module = region_module(region=queue_region, topic_arns=[f"arn:aws:sns:{topic_region}:000000000000:regis-replication"])
            statement = module.block("aws_iam_policy_document", "queue", "statement", kind="data")[0]
            return module.eval_in_resource(statement["principals"][0]["identifiers"])

        self.assertEqual(principals("eu-west-1", "ap-southeast-1"), ["sns.amazonaws.com"])
        self.assertEqual(principals("eu-west-1", "af-south-1"), ["sns.amazonaws.com", "sns.af-south-1.amazonaws.com"])
        self.assertEqual(principals("me-central-1", "eu-west-1"), ["sns.amazonaws.com", "sns.me-central-1.amazonaws.com"])

    def test_same_account_only(self):
        module = region_module(topic_arns=["arn:aws:sns:eu-west-1:111111111111:regis-replication"])
        condition = module.block("aws_sqs_queue_policy", "this", "lifecycle")[0]["precondition"][0]["condition"]
        self.assertIsInstance(module.eval(hcl_eval.to_ast(condition)), Unknown)  # the account is known at plan
        topic = hcl_eval.Instance(
            hcl_eval.Module(TOPIC_MODULE),
            {
                "publisher_role_arns": lambda: ["arn:aws:iam::123456789012:role/p"],
                "subscriptions": lambda: [
                    {"region": "eu-west-1", "queue_arn": "arn:aws:sqs:eu-west-1:111111111111:q", "filter_policy": "{}", "dlq_message_retention_seconds": 604800}
                ],
            },
        )
        check = topic.block("aws_sns_topic_subscription", "this", "lifecycle")[0]["precondition"][0]["condition"]
        self.assertEqual(check, "${split(\":\", var.subscriptions[count.index].queue_arn)[4] == local.account_id}")


class DashboardShowsEveryRegion(unittest.TestCase):
    def test_three_regions(self):
        root = hcl_eval.load(THREE_REGIONS, THREE_REGIONS_INPUTS)
        widgets = root.child("dashboard").output("widgets")
        self.assertEqual(root.child("dashboard").attr("aws_cloudwatch_dashboard", "this", "dashboard_body"), json.dumps({"widgets": widgets}, separators=(",", ":")))
        topic_region = root.output("topic_region")
        self.assertEqual(topic_region, "ap-southeast-1")
        for region, name in REGION_MODULE_NAMES.items():
            metric_widgets = [w for w in widgets if w["type"] == "metric" and w["properties"]["region"] == region]
            self.assertEqual(len(metric_widgets), 5, region)
            seen = set()
            for w in metric_widgets:
                defaults = {}
                for m in w["properties"]["metrics"]:
                    options = m[-1] if isinstance(m[-1], dict) else {}
                    names = m[:-1] if options else m
                    if names[0] == "...":
                        names = defaults["names"]
                    names = [d if n == "." else n for n, d in zip(names, defaults.get("names", names))]
                    defaults["names"] = names
                    stat = options.get("stat", w["properties"].get("stat"))
                    seen.add((names[0], names[1], names[3], stat, options.get("region", region)))
            queue, dlq = "regis-apply", "regis-apply-dlq"
            undelivered = f"regis-replication-{region}-undelivered"
            wanted = {
                ("Regis", "ReplicationLagMs", region, "p50", region),
                ("Regis", "ReplicationLagMs", region, "p99", region),
                ("Regis", "CommandsApplied", region, "Sum", region),
                ("Regis", "Batches", region, "Sum", region),
                ("Regis", "RetryableFailures", region, "Sum", region),
                ("Regis", "PermanentFailures", region, "Sum", region),
                ("Regis", "SkippedOlder", region, "Sum", region),
                ("Regis", "TypeConflicts", region, "Sum", region),
                ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq, "Maximum", region),
                ("AWS/SQS", "ApproximateNumberOfMessagesVisible", undelivered, "Maximum", topic_region),
                ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue, "Maximum", region),
            }
            self.assertEqual(seen, wanted, region)
        # Widgets do not overlap and fit the 24-column grid.
        cells = set()
        for w in widgets:
            self.assertLessEqual(w["x"] + w["width"], 24)
            for x in range(w["x"], w["x"] + w["width"]):
                for y in range(w["y"], w["y"] + w["height"]):
                    self.assertNotIn((x, y), cells)
                    cells.add((x, y))


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
        self.check(load_localstack())

    def test_three_regions(self):
        self.check(hcl_eval.load(THREE_REGIONS, THREE_REGIONS_INPUTS))

    def test_a_bad_value_fails_validation(self):
        inst = hcl_eval.Instance(hcl_eval.Module(REGION_MODULE), {"max_receive_count": lambda: 0})
        validation = inst.module.variables["max_receive_count"]["validation"][0]
        self.assertIs(inst.eval(hcl_eval.to_ast(validation["condition"])), False)


if __name__ == "__main__":
    unittest.main()
