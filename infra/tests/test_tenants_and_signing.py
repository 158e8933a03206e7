"""Tenant isolation, signed batches and closed queues in the Terraform (issue 14).

- every applier gets the tenant registry (REGIS_TENANTS), validated, within
  Lambda's 4 KB environment;
- every signing key is a KMS-encrypted Secrets Manager secret of 32 random
  bytes, replicated to each region; every applier reads all of them in its
  region (REGIS_SIGNING_SECRET_IDS), each publisher only its tenants';
- an applier without keys is refused unless allow_unsigned says so;
- the apply and undelivered queues deny sqs:SendMessage to every principal
  but the topic and the operators' roles.

The configuration is evaluated by hcl_eval, as in test_agreement.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hcl_eval  # noqa: E402
from hcl_eval import Unknown  # noqa: E402
from test_agreement import (  # noqa: E402
    BILLING_ROLE,
    OPERATOR_ROLE,
    ORDERS_ROLE,
    QUEUE_ARN,
    REGION_MODULE,
    REGION_MODULE_NAMES,
    REGISTRY,
    SECRET_ARN,
    THREE_REGIONS,
    THREE_REGIONS_INPUTS,
    TOPIC_ARN,
    TOPIC_MODULE,
    denied_send,
    precondition,
    region_module,
    render_policy,
)

INFRA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNING_MODULE = os.path.join(INFRA, "modules", "signing-keys")
TOPIC_REGION = "ap-southeast-1"
KEY_ARN = "arn:aws:kms:ap-southeast-1:123456789012:key/1111"


def three_regions(**changes) -> hcl_eval.Instance:
    return hcl_eval.load(THREE_REGIONS, dict(THREE_REGIONS_INPUTS, **changes))


def secret(key_id: str) -> str:
    """The address of a key's secret's ARN in the topic's region."""
    return f'module.signing_keys.aws_secretsmanager_secret.this["{key_id}"].arn'


def in_region(key_id: str, region: str) -> str:
    """How the example names a key's secret in `region` (its replica there)."""
    return str(Unknown(f'replace({secret(key_id)}, ":{TOPIC_REGION}:", ":{region}:")'))


def signing_module(keys: dict, publishers: dict | None = None, **inputs) -> hcl_eval.Instance:
    values = {"keys": keys, "tenants": REGISTRY, "kms_key_arn": KEY_ARN, "publishers": publishers or {}, **inputs}
    return hcl_eval.Instance(hcl_eval.Module(SIGNING_MODULE), {k: (lambda v=v: v) for k, v in values.items()}, "", None, TOPIC_REGION)


def validation_passes(module: str, variable: str, value) -> bool:
    inst = hcl_eval.Instance(hcl_eval.Module(module), {variable: lambda: value})
    results = [inst.eval(hcl_eval.to_ast(v["condition"])) for v in inst.module.variables[variable].get("validation", [])]
    assert results, f"{variable} has no validation"
    return all(r is True for r in results)


def lambda_precondition(inst: hcl_eval.Instance, mentions: str):
    return precondition(inst, "aws_lambda_function", "this", mentions)


class TenantRegistry(unittest.TestCase):
    def test_every_applier_gets_the_registry_as_compact_json(self):
        root = three_regions()
        self.assertEqual(root.output("publisher_tenants"), REGISTRY)
        for name in REGION_MODULE_NAMES.values():
            env = root.child(name).local("lambda_environment")
            self.assertEqual(json.loads(env["REGIS_TENANTS"]), REGISTRY, name)
            self.assertNotIn(" ", env["REGIS_TENANTS"])

    def test_registry_validation(self):
        self.assertTrue(validation_passes(REGION_MODULE, "tenants", REGISTRY))
        for bad in (
            {},
            {"": {"regions": ["*"], "prefixes": [""]}},
            {"t": {"regions": [], "prefixes": [""]}},
            {"t": {"regions": ["*", "eu-west-1"], "prefixes": [""]}},
            {"t": {"regions": ["Europe"], "prefixes": [""]}},
            {"t": {"regions": ["eu-west-1"], "prefixes": []}},
        ):
            self.assertFalse(validation_passes(REGION_MODULE, "tenants", bad), bad)
        # The example refuses regions it does not deploy.
        self.assertTrue(validation_passes(THREE_REGIONS, "tenants", REGISTRY))
        self.assertFalse(validation_passes(THREE_REGIONS, "tenants", {"t": {"regions": ["us-east-1"], "prefixes": [""]}}))

    def test_registry_size_is_counted_in_bytes(self):
        def registry(prefix: str) -> dict:
            return {"t": {"regions": ["*"], "prefixes": [prefix]}}

        overhead = len('{"t":{"regions":["*"],"prefixes":[""]}}')
        self.assertTrue(validation_passes(REGION_MODULE, "tenants", registry("a" * (3072 - overhead))))
        self.assertFalse(validation_passes(REGION_MODULE, "tenants", registry("a" * (3073 - overhead))))
        # 1,600 characters but 3,200 bytes: too large.
        self.assertFalse(validation_passes(REGION_MODULE, "tenants", registry("é" * 1600)))

    def test_whole_environment_within_lambdas_4_kb(self):
        self.assertIs(lambda_precondition(region_module(allow_unsigned=True), "4 KB"), True)
        big = {"t": {"regions": ["*"], "prefixes": ["p" * 2900]}}
        module = region_module(tenants=big, allow_unsigned=True, sentry_dsn="https://key@sentry.example.org/" + "1" * 1200)
        self.assertTrue(validation_passes(REGION_MODULE, "tenants", big))
        self.assertGreater(module.local("lambda_environment_bytes"), 4096)
        self.assertIs(lambda_precondition(module, "4 KB"), False)


@unittest.skipUnless(shutil.which("terraform"), "terraform is not installed")
class TerraformItselfValidates(unittest.TestCase):
    """The validations as Terraform evaluates them, which hcl_eval only
    approximates (Terraform's types: a list(string) is never equal to the
    tuple ["*"], for one). A folder holding only a module's variables needs
    no provider, so `terraform plan` runs offline."""

    def plan(self, module: str, values: dict) -> tuple[bool, str]:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(module, "variables.tf"), tmp)
            with open(os.path.join(tmp, "values.tfvars.json"), "w", encoding="utf-8") as f:
                json.dump(values, f)
            env = dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
            run = subprocess.run(
                ["terraform", "plan", "-input=false", "-no-color", "-lock=false", "-var-file=values.tfvars.json"],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
            )
            return run.returncode == 0, run.stdout + run.stderr

    def region(self, **values) -> tuple[bool, str]:
        return self.plan(REGION_MODULE, {"region": "eu-west-1", "topic_arns": ["arn:aws:sns:eu-west-1:123456789012:t"], **values})

    def test_the_registry(self):
        ok, out = self.region(tenants=REGISTRY)
        self.assertTrue(ok, out)
        for bad, says in (
            ({"t": {"regions": ["*", "eu-west-1"], "prefixes": [""]}}, "regions must be"),
            ({"t": {"regions": [], "prefixes": [""]}}, "regions must be"),
            ({"t": {"regions": ["eu-west-1"], "prefixes": []}}, "key prefixes"),
            ({"t": {"regions": ["*"], "prefixes": ["é" * 1600]}}, "3072 bytes"),
            ({"t": {"regions": ["*"]}}, "attribute \"prefixes\" is required"),
        ):
            ok, out = self.region(tenants=bad)
            self.assertFalse(ok, bad)
            self.assertIn(says, " ".join(out.split()), bad)
        ok, out = self.region(tenants={"t": {"regions": ["*"], "prefixes": ["a" * 3000]}})
        self.assertTrue(ok, out)

    def test_the_examples_registry(self):
        three = {k: THREE_REGIONS_INPUTS[k] for k in ("publishers", "networks", "elasticache_auth_tokens")}
        for folder, needs in ((THREE_REGIONS, three), (os.path.join(INFRA, "examples", "localstack"), {})):
            ok, out = self.plan(folder, {**needs, "tenants": REGISTRY})
            self.assertTrue(ok, out)
            ok, out = self.plan(folder, {**needs, "tenants": {"t": {"regions": ["*", "us-east-1"], "prefixes": [""]}}})
            self.assertFalse(ok, folder)
            self.assertIn("regions must be", " ".join(out.split()), folder)

    def test_the_keys(self):
        keys = {"keys": {"k1": {"tenants": ["acme"]}}, "tenants": REGISTRY, "kms_key_arn": KEY_ARN}
        ok, out = self.plan(SIGNING_MODULE, keys)
        self.assertTrue(ok, out)
        ok, out = self.plan(SIGNING_MODULE, dict(keys, keys={"k1": {"tenants": []}}))
        self.assertFalse(ok, out)
        ok, out = self.plan(SIGNING_MODULE, dict(keys, replicas={"eu-west-1": KEY_ARN}))
        self.assertFalse(ok, out)


class SignedByDefault(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = three_regions()
        cls.keys = sorted(THREE_REGIONS_INPUTS["signing_keys"])

    def test_each_key_is_a_kms_encrypted_secret_of_32_random_bytes(self):
        signing = self.root.child("signing_keys")
        self.assertEqual(sorted(signing.each_keys("aws_secretsmanager_secret", "this")), self.keys)
        for key in self.keys:
            self.assertEqual(signing.attr("random_bytes", "this", "length", key=key), 32)
            content = json.loads(signing.attr("aws_secretsmanager_secret_version", "this", "secret_string", key=key))
            self.assertEqual(
                content,
                {
                    "id": key,
                    "secret": str(Unknown(f'module.signing_keys.random_bytes.this["{key}"].base64')),
                    "tenants": THREE_REGIONS_INPUTS["signing_keys"][key]["tenants"],
                },
            )
            self.assertEqual(signing.attr("aws_secretsmanager_secret", "this", "name", key=key), f"regis/signing/{key}")
            # Encrypted with the customer managed key of each region it is in.
            self.assertEqual(
                signing.attr("aws_secretsmanager_secret", "this", "kms_key_id", key=key),
                Unknown("module.region_ap_southeast_1.aws_kms_key.this[0].arn"),
            )
            body = signing.resource("aws_secretsmanager_secret", "this")
            replicas = {
                signing.eval(hcl_eval.to_ast(r["region"]), scope): signing.eval(hcl_eval.to_ast(r["kms_key_id"]), scope)
                for r, scope in signing.nested(body, "replica", signing.scope("aws_secretsmanager_secret", "this", key=key))
            }
            self.assertEqual(
                replicas,
                {
                    "ap-south-1": Unknown("module.region_ap_south_1.aws_kms_key.this[0].arn"),
                    "eu-west-1": Unknown("module.region_eu_west_1.aws_kms_key.this[0].arn"),
                },
            )

    def test_every_applier_reads_every_key_in_its_region(self):
        for region, name in REGION_MODULE_NAMES.items():
            inst = self.root.child(name)
            arns = [in_region(k, region) for k in self.keys]
            self.assertEqual(inst.local("lambda_environment")["REGIS_SIGNING_SECRET_IDS"], ",".join(arns), region)
            self.assertNotIn("REGIS_ALLOW_UNSIGNED", inst.local("lambda_environment"))
            policy = render_policy(inst, "lambda", {})
            reads = [st for st in policy["Statement"] if st["Action"] == "secretsmanager:GetSecretValue"]
            self.assertEqual(reads, [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": sorted(arns)}], region)
            decrypts = [st for st in policy["Statement"] if st.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")]
            self.assertEqual(
                decrypts,
                [
                    {
                        "Effect": "Allow",
                        "Action": "kms:Decrypt",
                        "Resource": str(Unknown(f"{inst.address}.aws_kms_key.this[0].arn")),
                        "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
                    }
                ],
                region,
            )
            self.assertIs(lambda_precondition(inst, "no signing keys"), True)

    def test_publisher_of_one_tenant_cannot_read_another_tenants_keys(self):
        signing = self.root.child("signing_keys")

        def reads(publisher: str, module: hcl_eval.Instance = signing) -> tuple:
            policy = render_policy(module, "publisher", {}, key=publisher)
            get = [st["Resource"] for st in policy["Statement"] if st["Action"] == "secretsmanager:GetSecretValue"]
            kms = [st for st in policy["Statement"] if st["Action"] == "kms:Decrypt"]
            self.assertEqual(len(get), 1)
            self.assertEqual(len(kms), 1)
            by_context = kms[0]["Condition"]["StringEquals"]["kms:EncryptionContext:SecretARN"]
            self.assertEqual(kms[0]["Condition"]["StringEquals"]["kms:ViaService"], f"secretsmanager.{TOPIC_REGION}.amazonaws.com")
            as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
            self.assertEqual(sorted(as_list(get[0])), sorted(as_list(by_context)))
            return tuple(sorted(as_list(get[0])))

        # orders publishes for hotel-sg (both its keys, mid-rotation), billing for acme.
        self.assertEqual(reads("orders"), tuple(sorted(str(Unknown(secret(k))) for k in ("hotel-sg-1", "hotel-sg-2"))))
        self.assertEqual(reads("billing"), (str(Unknown(secret("acme-1"))),))
        # Each publisher's policy for its role: publish, and its keys.
        for name, role in (("orders", ORDERS_ROLE), ("billing", BILLING_ROLE)):
            self.assertEqual(
                self.root.attr("aws_iam_policy_document", "publisher", "source_policy_documents", kind="data", key=name),
                [Unknown("module.topic.data.aws_iam_policy_document.publisher.json"), Unknown(f'module.signing_keys.data.aws_iam_policy_document.publisher["{name}"].json')],
            )
            self.assertEqual(self.root.output("publisher_policies")[name]["role_arn"], role)
        # A publisher of both tenants reads both tenants' keys.
        both = signing_module(
            THREE_REGIONS_INPUTS["signing_keys"], {"p": {"role_arn": ORDERS_ROLE, "tenants": ["hotel-sg", "acme"]}}
        )
        self.assertEqual(len(reads("p", both)), 3)

    def test_no_keys_is_refused_unless_unsigned_is_allowed(self):
        module = region_module()
        self.assertIs(lambda_precondition(module, "no signing keys"), False)
        allowed = region_module(allow_unsigned=True)
        self.assertIs(lambda_precondition(allowed, "no signing keys"), True)
        self.assertEqual(allowed.local("lambda_environment")["REGIS_ALLOW_UNSIGNED"], "true")
        self.assertNotIn("REGIS_SIGNING_SECRET_IDS", allowed.local("lambda_environment"))
        self.assertFalse([st for st in render_policy(allowed, "lambda", {})["Statement"] if "secretsmanager" in str(st["Action"])])
        signed = region_module(signing_secret_arns=[SECRET_ARN.replace("ap-south-1", "eu-west-1")])
        self.assertIs(lambda_precondition(signed, "no signing keys"), True)
        self.assertNotIn("REGIS_ALLOW_UNSIGNED", signed.local("lambda_environment"))

        # The example without keys: every applier is refused, until allow_unsigned.
        unsigned = three_regions(signing_keys={})
        for name in REGION_MODULE_NAMES.values():
            self.assertIs(lambda_precondition(unsigned.child(name), "no signing keys"), False, name)
        unsigned = three_regions(signing_keys={}, allow_unsigned=True)
        for name in REGION_MODULE_NAMES.values():
            self.assertIs(lambda_precondition(unsigned.child(name), "no signing keys"), True, name)
        self.assertEqual(unsigned.child("signing_keys").output("publisher_policies_json"), {})
        self.assertEqual(
            unsigned.attr("aws_iam_policy_document", "publisher", "source_policy_documents", kind="data", key="orders"),
            [Unknown("module.topic.data.aws_iam_policy_document.publisher.json")],
        )

    def test_secrets_must_be_in_the_appliers_region(self):
        self.assertIs(lambda_precondition(region_module(signing_secret_arns=[SECRET_ARN]), "applier's region"), False)
        self.assertIs(
            lambda_precondition(region_module(signing_secret_arns=[SECRET_ARN.replace("ap-south-1", "eu-west-1")]), "applier's region"), True
        )
        self.assertFalse(validation_passes(REGION_MODULE, "signing_secret_arns", ["arn:aws:ssm:eu-west-1:000000000000:parameter/k1"]))

    def test_keys_and_publishers_are_bound_to_registered_tenants(self):
        self.assertTrue(validation_passes(SIGNING_MODULE, "keys", {"k1": {"tenants": ["acme"]}}))
        for bad in ({"k 1": {"tenants": ["acme"]}}, {"k1": {"tenants": []}}, {"k1": {"tenants": ["acme", "acme"]}}):
            self.assertFalse(validation_passes(SIGNING_MODULE, "keys", bad), bad)

        def secret_check(keys: dict) -> bool:
            m = signing_module(keys)
            body = m.resource("aws_secretsmanager_secret", "this")["lifecycle"][0]["precondition"][0]
            return m.eval(hcl_eval.to_ast(body["condition"]), m.scope("aws_secretsmanager_secret", "this", key="k1"))

        self.assertIs(secret_check({"k1": {"tenants": ["acme"]}}), True)
        self.assertIs(secret_check({"k1": {"tenants": ["unknown-tenant"]}}), False)

        def publisher_checks(keys: dict, tenants: list) -> list:
            m = signing_module(keys, {"p": {"role_arn": ORDERS_ROLE, "tenants": tenants}})
            checks = m.block("aws_iam_policy_document", "publisher", "lifecycle", kind="data")[0]["precondition"]
            scope = m.scope("aws_iam_policy_document", "publisher", "data", key="p")
            return [m.eval(hcl_eval.to_ast(c["condition"]), scope) for c in checks]

        self.assertEqual(publisher_checks({"k1": {"tenants": ["acme"]}}, ["acme"]), [True, True])
        self.assertEqual(publisher_checks({"k1": {"tenants": ["acme"]}}, ["hotel-sg"]), [True, False])  # no key for hotel-sg
        self.assertEqual(publisher_checks({"k1": {"tenants": ["acme"]}}, ["nobody"]), [False, False])

    def test_replicas_keys_are_of_their_region(self):
        self.assertTrue(validation_passes(SIGNING_MODULE, "replicas", {"eu-west-1": "arn:aws:kms:eu-west-1:123456789012:key/2222"}))
        self.assertFalse(validation_passes(SIGNING_MODULE, "replicas", {"eu-west-1": "arn:aws:kms:ap-south-1:123456789012:key/2222"}))
        self.assertFalse(validation_passes(SIGNING_MODULE, "replicas", {"eu-west-1": "arn:aws:kms:eu-west-1:123456789012:alias/regis"}))


class QueuesFailClosed(unittest.TestCase):
    def queue_policy(self, **inputs) -> dict:
        module = region_module(**inputs)
        return render_policy(module, "queue", {"aws_sqs_queue.this.arn": QUEUE_ARN})

    def test_only_the_topic_and_the_operators_send_to_the_apply_queue(self):
        policy = self.queue_policy(operator_role_arns=[OPERATOR_ROLE])
        self.assertFalse(denied_send(policy, {"aws:SourceArn": TOPIC_ARN}), "the topic's delivery")
        self.assertFalse(denied_send(policy, {"aws:PrincipalArn": OPERATOR_ROLE}), "an operator's redrive")
        for forger in (
            {"aws:PrincipalArn": ORDERS_ROLE},  # a publisher sending straight to the queue
            {"aws:PrincipalArn": "arn:aws:iam::000000000000:root"},
            {"aws:SourceArn": "arn:aws:sns:eu-west-1:000000000000:another-topic"},
            {},
        ):
            self.assertTrue(denied_send(policy, forger), forger)
        # Without operators, nobody but the topic.
        policy = self.queue_policy()
        self.assertTrue(denied_send(policy, {"aws:PrincipalArn": OPERATOR_ROLE}))
        self.assertFalse(denied_send(policy, {"aws:SourceArn": TOPIC_ARN}))
        deny = [st for st in policy["Statement"] if st["Effect"] == "Deny"]
        self.assertEqual(deny[0]["Principal"], {"AWS": "*"})
        self.assertEqual(deny[0]["Resource"], QUEUE_ARN)

    def test_the_example_names_its_operators(self):
        root = three_regions()
        for name in REGION_MODULE_NAMES.values():
            self.assertEqual(root.child(name).var("operator_role_arns"), [OPERATOR_ROLE])

    def test_undelivered_queues_deny_every_other_sender(self):
        topic = hcl_eval.Instance(
            hcl_eval.Module(TOPIC_MODULE),
            {
                "publisher_role_arns": lambda: [ORDERS_ROLE],
                "subscriptions": lambda: [
                    {"region": "eu-west-1", "queue_arn": "arn:aws:sqs:eu-west-1:000000000000:q", "filter_policy": "{}", "dlq_message_retention_seconds": 604800}
                ],
            },
        )
        policy = render_policy(topic, "undelivered", {"aws_sns_topic.this.arn": TOPIC_ARN, "aws_sqs_queue.undelivered[0].arn": QUEUE_ARN})
        self.assertFalse(denied_send(policy, {"aws:SourceArn": TOPIC_ARN}))
        self.assertTrue(denied_send(policy, {"aws:PrincipalArn": ORDERS_ROLE}))

    def test_the_simulation_sees_an_open_queue(self):
        # A policy with only the Allow (as before issue 14) denies nobody:
        # the checks above would fail on it.
        policy = self.queue_policy()
        open_policy = {"Statement": [st for st in policy["Statement"] if st["Effect"] == "Allow"]}
        self.assertFalse(denied_send(open_policy, {"aws:PrincipalArn": ORDERS_ROLE}))
        with self.assertRaises(AssertionError):
            denied_send({"Statement": [{"Effect": "Deny", "Action": "sqs:SendMessage", "Condition": {"IpAddress": {"aws:SourceIp": "1.2.3.4"}}}]}, {})


if __name__ == "__main__":
    unittest.main()
