"""The schemas of the hashicorp/aws and hashicorp/random providers, extracted offline from their cdktf bindings.

Terraform's providers cannot be downloaded where the checks run, so
`terraform validate` is out of reach. The PyPI package
`cdktf-cdktf-provider-aws` (and `cdktf-cdktf-provider-random` for
hashicorp/random) is generated from the provider's own schema: it
ships the jsii assembly (`.jsii`, the typed interface, with each argument's
optionality) and the JavaScript bindings (`lib/<resource>/index.js`, which
name every argument, nested block and readable attribute in Terraform's own
spelling, and say which arguments are blocks). This module downloads that
package with pip (by name and pinned version, without its dependencies),
extracts the schema of the provider block and of the resource and data
source types asked for, and caches it as JSON, one file per provider:

    python infra/tests/provider_schema.py [--cache DIR] [resource.aws_x data.aws_y resource.random_z ...]

A type belongs to the provider its name starts with (`aws_`, `random_`), as
in Terraform. The cache lives in DIR (default `.venv-infra/aws-provider-schema`
at the repository root, next to the check's other tools; it holds the
random provider's package and JSON too), with the downloaded packages: a run
whose cache holds every type it needs reads the JSON only (well under a
second), and a type added later is extracted from the kept package without
the network (about 5 s for hashicorp/aws). The extraction is deterministic:
the same package version and types give the same JSON. To start afresh,
delete DIR.

Extracted shape, for each block (a resource, a data source, the provider,
or a nested block):

    {"arguments":  {name: {"required": bool}},
     "blocks":     {name: {"required": bool, "schema": <block>}},
     "attributes": {name: null | {"attributes": {...}}}}

"arguments" are written `name = value`, "blocks" `name { ... }` (or
`dynamic "name"`); "attributes" (resources and data sources) are what an
expression may read (`aws_sqs_queue.x.arn`), arguments included, with the
readable fields of a nested object or block.
"""


from __future__ import annotations

import argparse
import glob
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from typing import Any, NamedTuple

class Provider(NamedTuple):
    """A provider whose schema is checked, and the cdktf package it is read from."""

    name: str  # the local name, and the prefix of its types: "aws", "random"
    package: str
    package_version: str
    # The provider version the package was generated from (its README and
    # every resource's docs link say so; checked at extraction).
    version: str
    # A jsii type whose documentation links name that version.
    probe: str
    # The binding class of the provider block.
    provider_class: str


PROVIDERS = {
    "aws": Provider("aws", "cdktf-cdktf-provider-aws", "21.22.1", "6.25.0", "@cdktf/provider-aws.sqsQueue.SqsQueueConfig", "AwsProvider"),
    # random_bytes, the signing keys' secret material (about 110 kB).
    "random": Provider("random", "cdktf-cdktf-provider-random", "12.0.1", "3.7.2", "@cdktf/provider-random.bytes.BytesConfig", "RandomProvider"),
}

# hashicorp/aws, as the checks name it most.
PACKAGE = PROVIDERS["aws"].package
PACKAGE_VERSION = PROVIDERS["aws"].package_version
PROVIDER_VERSION = PROVIDERS["aws"].version
# Bump when the JSON's shape changes, so stale caches are rebuilt.
FORMAT = 1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CACHE = os.path.join(ROOT, ".venv-infra", "aws-provider-schema")

# One argument or block in a binding's synthesizeHclAttributes() or
# <struct>ToHclTerraform(): `tf_name: { value: <how it is converted, naming
# the camelCase property and, for a nested struct, its function>, isBlock:
# true|false, type: ..., storageClassType: ... }`.
_HCL_ENTRY = re.compile(
    r"(\w+): \{\s*value: (.*?),\s*isBlock: (true|false),\s*type: \"(\w+)\",\s*storageClassType: \"([\w]+)\",?\s*\}",
    re.S,
)
# A readable attribute: a getter calling getStringAttribute('tf_name') & co.
_READ = re.compile(r"this\.(?:get\w*Attribute|interpolationForAttribute)\('([^']+)'\)")
# A complex attribute: an OutputReference or List object built on a name.
_COMPLEX = re.compile(r"new (\w+)\(this, \"([^\"]+)\"")
# The element class of a ComplexList.
_LIST_ELEMENT = re.compile(r"get\(index\) \{\s*return new (\w+)\(")


def cache_path(cache_dir: str = DEFAULT_CACHE, provider: str = "aws") -> str:
    p = PROVIDERS[provider]
    return os.path.join(cache_dir, f"{p.name}-{p.version}-cdktf-{p.package_version}-f{FORMAT}.json")


def provider_of(type_name: str) -> str:
    """The provider a resource or data source type belongs to: its name's prefix."""
    return type_name.split("_", 1)[0]


# ---------------------------------------------------------------------------
# Fetching the package
# ---------------------------------------------------------------------------


def _wheel(cache_dir: str, p: Provider) -> str:
    pattern = os.path.join(cache_dir, f"{p.package.replace('-', '_')}-{p.package_version}-*.whl")
    found = glob.glob(pattern)
    if not found:
        os.makedirs(cache_dir, exist_ok=True)
        print(f"provider schema: downloading {p.package}=={p.package_version} (once)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary", ":all:", "-d", cache_dir, f"{p.package}=={p.package_version}"],
            check=True,
        )
        found = glob.glob(pattern)
    if not found:
        raise RuntimeError(f"pip did not leave {pattern}")
    return found[0]


def _assembly(wheel: str) -> tuple[dict, dict[str, str]]:
    """The jsii manifest and the JavaScript sources (path -> text) of the package."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
        tgz = z.read(name)
    manifest, sources = None, {}
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        for member in tar:
            if member.name == "package/.jsii":
                manifest = json.load(tar.extractfile(member))
            elif member.name.startswith("package/lib/") and member.name.endswith(".js"):
                sources[member.name[len("package/lib/"):]] = tar.extractfile(member).read().decode("utf-8")
    if manifest is None:
        raise RuntimeError(f"{wheel}: no .jsii manifest")
    return manifest, sources


# ---------------------------------------------------------------------------
# Reading the bindings
# ---------------------------------------------------------------------------


def _classes(js: str) -> dict[str, tuple[str, str]]:
    """class name -> (base class, body) of one compiled module."""
    out = {}
    for m in re.finditer(r"^class (\w+) extends ([\w.]+) \{\n(.*?)^\}\n", js, re.M | re.S):
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


def _functions(js: str) -> dict[str, str]:
    """`fooToHclTerraform` function name -> body."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^function (\w+ToHclTerraform)\(struct\) \{\n(.*?)^\}\n", js, re.M | re.S)
    }


class _Extractor:
    def __init__(self, manifest: dict, sources: dict[str, str], provider: Provider):
        self.provider_spec = provider
        self.types = manifest["types"]
        self.by_name: dict[str, list[dict]] = {}
        for t in self.types.values():
            self.by_name.setdefault(t["name"], []).append(t)
        self.sources = sources
        self.classes: dict[str, tuple[str, str]] = {}
        self.functions: dict[str, str] = {}
        self.parsed: set[str] = set()
        # tf type -> (class, folder of its binding); kind from the class's base.
        self.located: dict[str, tuple[str, str]] = {}
        for path, js in sources.items():
            for m in re.finditer(r"^(\w+)\.tfResourceType = \"(\w+)\";", js, re.M):
                data_prefix = "Data" + self.provider_spec.name.capitalize()
                kind = "data" if m.group(1).startswith(data_prefix) else "resource"
                self.located[f"{kind}.{m.group(2)}"] = (m.group(1), path.split("/", 1)[0])

    def parse_folder(self, folder: str) -> None:
        """Read the classes and struct functions of one binding folder."""
        if folder in self.parsed:
            return
        self.parsed.add(folder)
        for path, js in self.sources.items():
            if path.split("/", 1)[0] == folder:
                self.classes.update(_classes(js))
                self.functions.update(_functions(js))

    def _struct(self, name: str, like: str) -> dict | None:
        """The jsii interface `name`, preferring the one in `like`'s namespace."""
        candidates = [t for t in self.by_name.get(name, []) if t.get("kind") == "interface"]
        for t in candidates:
            if t["fqn"].rsplit(".", 1)[0] == like.rsplit(".", 1)[0]:
                return t
        return candidates[0] if candidates else None

    def _optional(self, struct: dict | None) -> dict[str, bool]:
        """camelCase property -> optional, for an interface and those it extends."""
        out: dict[str, bool] = {}
        if struct is None:
            return out
        for p in struct.get("properties", []):
            out[p["name"]] = bool(p.get("optional"))
        for parent in struct.get("interfaces", []):
            if parent in self.types:
                out.update({k: v for k, v in self._optional(self.types[parent]).items() if k not in out})
        return out

    def _entries(self, body: str):
        """(tf name, camel name, is block, nested struct function) of a synthesizeHcl body."""
        for m in _HCL_ENTRY.finditer(body):
            tf, value, is_block = m.group(1), m.group(2), m.group(3) == "true"
            camel = re.search(r"(?:this\._|struct\.|struct\[\")(\w+)", value)
            nested = [f for f in re.findall(r"(\w+ToHclTerraform)\b", value) if f in self.functions]
            yield tf, camel.group(1) if camel else None, is_block, nested[0] if nested else None

    def _block(self, body: str, struct: dict | None, depth: int = 0) -> dict:
        optional = self._optional(struct)
        out: dict[str, Any] = {"arguments": {}, "blocks": {}}
        for tf, camel, is_block, nested in self._entries(body):
            required = camel is not None and camel in optional and not optional[camel]
            if nested and is_block and depth < 12:
                struct_name = nested[0].upper() + nested[1:-len("ToHclTerraform")]
                sub = self._block(self.functions[nested], self._struct(struct_name, struct["fqn"] if struct else ""), depth + 1)
                out["blocks"][tf] = {"required": required, "schema": sub}
            else:
                out["arguments"][tf] = {"required": required}
        return out

    def _readable(self, class_name: str, depth: int = 0) -> dict:
        """Attributes an expression may read from an object of this binding class."""
        if class_name not in self.classes or depth > 12:
            return {}
        base, body = self.classes[class_name]
        if base == "cdktf.ComplexList":
            element = _LIST_ELEMENT.search(body)
            return self._readable(element.group(1), depth + 1) if element else {}
        attrs: dict[str, Any] = {name: None for name in _READ.findall(body)}
        for cls, name in _COMPLEX.findall(body):
            nested = self._readable(cls, depth + 1)
            attrs[name] = {"attributes": nested} if nested else None
        return attrs

    def resource(self, class_name: str) -> dict:
        _, body = self.classes[class_name]
        synth = body.split("synthesizeHclAttributes() {", 1)[1]
        struct = self._struct(f"{class_name}Config", self._class_fqn(class_name))
        block = self._block(synth, struct)
        attrs = self._readable(class_name)
        for name in list(block["arguments"]) + list(block["blocks"]):
            attrs.setdefault(name, None)
        attrs.setdefault("id", None)
        block["attributes"] = dict(sorted(attrs.items()))
        return block

    def _class_fqn(self, class_name: str) -> str:
        for t in self.by_name.get(class_name, []):
            if t.get("kind") == "class":
                return t["fqn"]
        return ""

    def provider(self) -> dict:
        self.parse_folder("provider")
        name = self.provider_spec.provider_class
        body = self.classes[name][1].split("synthesizeHclAttributes() {", 1)[1]
        return self._block(body, self._struct(f"{name}Config", self._class_fqn(name)))

    def typed(self, key: str) -> dict | None:
        """The schema of "resource.<type>" or "data.<type>"; None when the provider has no such type."""
        if key not in self.located:
            return None
        class_name, folder = self.located[key]
        self.parse_folder(folder)
        base = self.classes[class_name][0]
        if base != {"resource": "cdktf.TerraformResource", "data": "cdktf.TerraformDataSource"}[key.split(".")[0]]:
            raise RuntimeError(f"{key}: binding class {class_name} extends {base}")
        return self.resource(class_name)


def extract(wheel: str, wanted: set[str], provider: str = "aws") -> dict:
    """The provider block's schema and those of the `wanted` types ("resource.aws_x", "data.aws_y")."""
    p = PROVIDERS[provider]
    manifest, sources = _assembly(wheel)
    documented = json.dumps(manifest["types"][p.probe])
    generated_for = set(re.findall(rf"hashicorp/{p.name}/(\d+\.\d+\.\d+)/docs", documented))
    if generated_for != {p.version}:
        raise RuntimeError(f"{p.package} {p.package_version} documents provider {sorted(generated_for)}, expected {p.version}")
    ex = _Extractor(manifest, sources, p)
    schema: dict[str, Any] = {
        "format": FORMAT,
        "package": f"{p.package}=={p.package_version}",
        "provider_version": p.version,
        "provider": {p.name: ex.provider()},
        # Asked for and absent from the provider: remembered, so that a
        # misspelled type does not send every run back to the package.
        "missing": [],
        "resource": {},
        "data": {},
    }
    for key in sorted(wanted):
        block = ex.typed(key)
        if block is None:
            schema["missing"].append(key)
        else:
            kind, name = key.split(".", 1)
            schema[kind][name] = block
    return schema


def _cached(cache_dir: str, provider: str) -> dict | None:
    try:
        with open(cache_path(cache_dir, provider), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def known(schema: dict) -> set[str]:
    """The types a schema answers for, present or known to be missing."""
    return {f"{k}.{t}" for k in ("resource", "data") for t in schema[k]} | set(schema.get("missing", []))


def _load_one(provider: str, wanted: set[str], cache_dir: str) -> dict:
    """One provider's schema with the `wanted` types, from its cache when it
    has them all, else extracted from the package (and cached)."""
    p = PROVIDERS[provider]
    schema = _cached(cache_dir, provider)
    if schema is not None and schema.get("format") == FORMAT and wanted <= known(schema):
        return schema
    previous = known(schema) if schema is not None and schema.get("format") == FORMAT else set()
    print(f"provider schema: extracting {len(wanted | previous)} types from {p.package} {p.package_version}", file=sys.stderr)
    schema = extract(_wheel(cache_dir, p), wanted | previous, provider)
    path = cache_path(cache_dir, provider)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(schema, f, sort_keys=True, indent=1)
    os.replace(tmp, path)
    return schema


def needed(wanted: set[str]) -> list[str]:
    """The providers whose schema a check of the `wanted` types reads:
    hashicorp/aws always (its provider blocks), others when a type asks."""
    return sorted({"aws"} | {provider_of(k.split(".", 1)[1]) for k in wanted} & set(PROVIDERS))


def load(wanted: set[str], cache_dir: str = DEFAULT_CACHE) -> dict:
    """The schemas of the providers the `wanted` types ("resource.aws_x",
    "data.aws_y", "resource.random_z") belong to, merged: types keep their
    provider's prefix, so one table holds them all. "provider" has each
    provider block's schema, "versions" and "packages" each provider's
    version and package; "provider_version" and "package" are hashicorp/aws's.
    A type of no known provider is listed in "missing"."""
    merged: dict[str, Any] = {"format": FORMAT, "provider": {}, "versions": {}, "packages": {}, "missing": [], "resource": {}, "data": {}}
    for provider in needed(wanted):
        own = {k for k in wanted if provider_of(k.split(".", 1)[1]) == provider}
        schema = _load_one(provider, own, cache_dir)
        merged["provider"].update(schema["provider"])
        merged["versions"][provider] = schema["provider_version"]
        merged["packages"][provider] = schema["package"]
        merged["missing"] += schema.get("missing", [])
        for kind in ("resource", "data"):
            merged[kind].update(schema[kind])
    merged["missing"] += sorted(k for k in wanted if provider_of(k.split(".", 1)[1]) not in PROVIDERS)
    merged["provider_version"] = merged["versions"]["aws"]
    merged["package"] = merged["packages"]["aws"]
    return merged


def cached(wanted: set[str], cache_dir: str = DEFAULT_CACHE) -> bool:
    """Whether every provider the `wanted` types need has a cache file."""
    return all(os.path.exists(cache_path(cache_dir, p)) for p in needed(wanted))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="cache folder (default: %(default)s)")
    parser.add_argument("types", nargs="*", help='types to extract, as "resource.aws_x", "data.aws_y" or "resource.random_z"')
    args = parser.parse_args(argv)
    schema = load(set(args.types), args.cache)
    versions = ", ".join(f"hashicorp/{p} {v}" for p, v in sorted(schema["versions"].items()))
    print(f"{args.cache}: {versions}, "
          f"{len(schema['resource'])} resources, {len(schema['data'])} data sources, missing {schema['missing']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
