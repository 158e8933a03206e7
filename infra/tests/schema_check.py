"""Check the Terraform of infra/ against the hashicorp/aws and hashicorp/random providers' schemas, offline.

    python infra/tests/schema_check.py [FOLDER ...]   # default: every module and example
    python infra/tests/schema_check.py --prepare      # only cache the schema of the types in use

What `terraform validate` would find without the provider binary, from the
schema that provider_schema.py extracts from the provider's cdktf bindings
(pinned version, see PROVIDER_VERSION there):

- every resource and data source type exists;
- every argument and nested block of a resource, data source or provider
  block exists, is written as what it is (`name = value` for an argument,
  `name { ... }` or `dynamic "name"` for a block), and every required one is
  present;
- every folder that uses a provider declares the checked version as its
  floor (`>= 6.25.0, ...` for hashicorp/aws, `>= 3.7.2, ...` for
  hashicorp/random), and so does every constraint a folder declares;
- every reference `aws_x.name.attr`, `data.aws_y.name.attr`, `random_z.name.attr` names a declared
  resource and an attribute the type has (nested ones too:
  `aws_x.name.block[0].field`);
- every `var.`, `local.` and `module.<name>.<output>` reference resolves, and
  every module call passes only variables the module declares and all that
  it requires.

Exit status 1 with one line per problem.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hcl_eval  # noqa: E402
import provider_schema  # noqa: E402

INFRA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Meta-arguments Terraform itself handles, on resources and data sources.
_RESOURCE_META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
_PROVIDER_META = {"alias", "version"}
_MODULE_META = {"source", "version", "providers", "depends_on", "count", "for_each"}

# Attributes the provider still has but deprecates: the bindings do not carry
# deprecation notices, so the ones this configuration could meet are listed.
DEPRECATED = {
    ("data", "aws_region", "name"): "deprecated since provider 6.0: read .region",
}


def folders() -> list[str]:
    """Every module and example of infra/."""
    out = []
    for group in ("modules", "examples"):
        base = os.path.join(INFRA, group)
        out += [os.path.join(base, d) for d in sorted(os.listdir(base)) if os.path.isdir(os.path.join(base, d))]
    return out


def used_types(modules: list[hcl_eval.Module]) -> set[str]:
    """"resource.<type>" and "data.<type>" of every block of the modules."""
    wanted = set()
    for m in modules:
        wanted |= {f"resource.{t}" for t, _ in m.resources} | {f"data.{t}" for t, _ in m.data}
    return wanted


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def _hint(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Checker:
    def __init__(self, schema: dict):
        self.schema = schema
        self.problems: list[str] = []
        self.counts = {"blocks": 0, "arguments": 0, "references": 0}

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}")

    # -- bodies -------------------------------------------------------------
    def body(self, body: dict, schema: dict, where: str, meta: set[str] = frozenset()) -> None:
        arguments, blocks = schema["arguments"], schema["blocks"]
        seen = set()
        for key, value in body.items():
            if key.startswith("__") or key in meta:
                continue
            if key == "dynamic":
                for item in value:
                    for label, dyn in item.items():
                        if label.startswith("__"):
                            continue
                        name = hcl_eval.unquote(label)
                        seen.add(name)
                        if name not in blocks:
                            what = "an argument, not a block" if name in arguments else "not a block of this type"
                            self.problem(where, f'dynamic "{name}": {what}{_hint(name, blocks)}')
                            continue
                        for content in dyn.get("content", []):
                            self.body(content, blocks[name]["schema"], f"{where}.{name}")
                continue
            seen.add(key)
            self.counts["arguments"] += 1
            if key in blocks:
                if not _is_block_list(value):
                    self.problem(where, f"{key} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                    continue
                for item in value:
                    self.body(item, blocks[key]["schema"], f"{where}.{key}")
            elif key in arguments:
                if _is_block_list(value):
                    self.problem(where, f"{key} is an argument: write `{key} = ...`, not a block")
            else:
                self.problem(where, f"unsupported argument or block {key!r}{_hint(key, list(arguments) + list(blocks))}")
        for name, spec in arguments.items():
            if spec["required"] and name not in seen:
                self.problem(where, f"required argument {name!r} is missing")
        for name, spec in blocks.items():
            if spec["required"] and name not in seen:
                self.problem(where, f"required block {name!r} is missing")

    # -- references -----------------------------------------------------------
    def references(self, module: hcl_eval.Module, label: str) -> None:
        children: dict[str, hcl_eval.Module | None] = {}

        def child(name: str) -> hcl_eval.Module | None:
            if name not in children:
                source = hcl_eval.unquote(module.modules[name]["source"])
                path = os.path.join(module.path, source)
                children[name] = hcl_eval.Module(path) if os.path.isdir(path) else None
            return children[name]

        for where, expr in _expressions(module):
            for chain in _chains(expr):
                self.counts["references"] += 1
                self.reference(module, child, f"{label}: {where}", chain)

    def reference(self, module: hcl_eval.Module, child, where: str, chain: list) -> None:
        root, steps = chain[0], chain[1:]
        names = [s[1] for s in steps if s[0] == "attr"]
        if root == "var":
            if names and names[0] not in module.variables:
                self.problem(where, f"var.{names[0]} is not declared{_hint(names[0], module.variables)}")
        elif root == "local":
            if names and names[0] not in module.locals:
                self.problem(where, f"local.{names[0]} is not declared{_hint(names[0], module.locals)}")
        elif root == "module":
            if not names:
                return
            if names[0] not in module.modules:
                self.problem(where, f"module.{names[0]} is not declared{_hint(names[0], module.modules)}")
                return
            sub = child(names[0])
            if sub is not None and len(names) > 1 and names[1] not in sub.outputs:
                self.problem(where, f"module.{names[0]} has no output {names[1]!r}{_hint(names[1], sub.outputs)}")
        elif root == "data":
            if len(steps) < 2 or steps[0][0] != "attr" or steps[1][0] != "attr":
                return
            rtype, rname = steps[0][1], steps[1][1]
            if (rtype, rname) not in module.data:
                self.problem(where, f"data.{rtype}.{rname} is not declared")
                return
            spec = self.schema["data"].get(rtype)
            self.deprecated(where, "data", rtype, steps[2:])
            if spec is not None:
                self.attribute_path(where, f"data.{rtype}.{rname}", spec["attributes"], steps[2:])
        elif provider_schema.provider_of(root) in self.schema["versions"] and "_" in root:
            if not steps or steps[0][0] != "attr":
                return
            rname = steps[0][1]
            if (root, rname) not in module.resources:
                self.problem(where, f"{root}.{rname} is not declared")
                return
            spec = self.schema["resource"].get(root)
            self.deprecated(where, "resource", root, steps[1:])
            if spec is not None:
                self.attribute_path(where, f"{root}.{rname}", spec["attributes"], steps[1:])

    def deprecated(self, where: str, kind: str, rtype: str, steps: list) -> None:
        first = next((s[1] for s in steps if s[0] == "attr"), None)
        note = DEPRECATED.get((kind, rtype, first))
        if note:
            self.problem(where, f"{'data.' if kind == 'data' else ''}{rtype}.*.{first} is {note}")

    def attribute_path(self, where: str, address: str, attributes: dict, steps: list) -> None:
        """Follow `.name`, `[index]` and `[*]` steps through the readable attributes."""
        for step in steps:
            if step[0] in ("index", "splat"):
                continue
            name = step[1]
            if attributes is None:
                return  # a map or scalar: any key may follow
            if name not in attributes:
                self.problem(where, f"{address} has no attribute {name!r}{_hint(name, attributes)}")
                return
            address = f"{address}.{name}"
            nested = attributes[name]
            attributes = nested["attributes"] if nested else None

    # -- folders --------------------------------------------------------------
    def floor(self, module: hcl_eval.Module, label: str) -> None:
        """A folder that uses a provider declares, as its floor, the version
        checked here, and so does every constraint a folder declares: a
        schema and a constraint that drift apart would check one provider and
        deploy another."""
        constraints: dict[str, list[str]] = {}
        for name in sorted(os.listdir(module.path)):
            if name.endswith(".tf"):
                with open(os.path.join(module.path, name), encoding="utf-8") as f:
                    doc = hcl_eval.parse_file_text(f.read())
                for block in doc.get("terraform", []):
                    for providers in block.get("required_providers", []):
                        for provider, spec in providers.items():
                            if provider.startswith("__"):
                                continue
                            constraints.setdefault(provider, []).append(hcl_eval.unquote(spec.get("version", '""')))
        types = [t for t, _ in module.resources] + [t for t, _ in module.data]
        used = {provider_schema.provider_of(t) for t in types}
        if module.resources or module.data or module.providers:
            # Every folder with resources or provider blocks uses hashicorp/aws.
            used.add("aws")
        for provider in sorted(used | set(constraints)):
            version = self.schema["versions"].get(provider)
            if version is None:
                if provider in provider_schema.PROVIDERS:
                    continue  # used by no type of the folders checked: its schema was not loaded
                self.problem(label, f"provider {provider!r} has no schema to check against")
                continue
            wanted = f">= {version}"
            if provider in used and not constraints.get(provider):
                self.problem(label, f"uses hashicorp/{provider} but declares no version constraint for it")
            for c in constraints.get(provider, []):
                if not c.replace(" ", "").startswith(wanted.replace(" ", "") + ","):
                    self.problem(label, f"hashicorp/{provider} constraint {c!r} must start with {wanted!r}, the version checked here")

    def module(self, module: hcl_eval.Module) -> None:
        label = os.path.relpath(module.path, os.path.dirname(INFRA))
        self.floor(module, label)
        for kind, blocks in (("resource", module.resources), ("data", module.data)):
            for (rtype, rname), body in sorted(blocks.items()):
                address = f"{label}: {'data.' if kind == 'data' else ''}{rtype}.{rname}"
                self.counts["blocks"] += 1
                spec = self.schema[kind].get(rtype)
                if spec is None:
                    known = self.schema[kind]
                    provider = provider_schema.provider_of(rtype)
                    version = self.schema["versions"].get(provider)
                    if version is None:
                        self.problem(address, f"no provider schema for the {kind} type {rtype!r} (known: {', '.join(sorted(self.schema['versions']))})")
                    else:
                        self.problem(address, f"hashicorp/{provider} {version} has no {kind} type {rtype!r}{_hint(rtype, known)}")
                    continue
                self.body(body, spec, address, _RESOURCE_META)
        for provider in module.providers:
            ptype = provider["__type__"]
            if ptype in self.schema["provider"]:
                self.counts["blocks"] += 1
                body = {k: v for k, v in provider.items() if k != "__type__"}
                self.body(body, self.schema["provider"][ptype], f"{label}: provider \"{ptype}\"", _PROVIDER_META)
        for name, call in sorted(module.modules.items()):
            source = os.path.join(module.path, hcl_eval.unquote(call["source"]))
            if not os.path.isdir(source):
                self.problem(f"{label}: module.{name}", f"source {call['source']} is not a folder")
                continue
            sub = hcl_eval.Module(source)
            given = {k for k in call if not k.startswith("__") and k not in _MODULE_META}
            for k in sorted(given - set(sub.variables)):
                self.problem(f"{label}: module.{name}", f"the module has no variable {k!r}{_hint(k, sub.variables)}")
            for k in sorted(v for v, spec in sub.variables.items() if "default" not in spec and v not in given):
                self.problem(f"{label}: module.{name}", f"required variable {k!r} is not set")
        self.references(module, label)


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("__"):
                continue
            if k.startswith("${"):
                yield where, k
            yield from _strings(v, f"{where}.{hcl_eval.unquote(k)}" if not isinstance(v, dict) or v.get("__is_block__") else where)


def _expressions(module: hcl_eval.Module) -> Iterator[tuple[str, tuple]]:
    sources: list[tuple[str, Any]] = []
    sources += [(f"{t}.{n}", body) for (t, n), body in module.resources.items()]
    sources += [(f"data.{t}.{n}", body) for (t, n), body in module.data.items()]
    sources += [(f"local.{n}", v) for n, v in module.locals.items()]
    sources += [(f"output.{n}", v) for n, v in module.outputs.items()]
    sources += [(f"module.{n}", v) for n, v in module.modules.items()]
    sources += [(f"variable.{n}", v) for n, v in module.variables.items()]
    sources += [("provider", v) for v in module.providers]
    for where, body in sources:
        for at, text in _strings(body, where):
            inner = text[2:-1] if text.startswith("${") and text.endswith("}") else text
            try:
                yield at, hcl_eval.parse_expression(inner)
            except hcl_eval.HclError as err:
                raise hcl_eval.HclError(f"{module.path}: {at}: cannot read {text!r}: {err}") from err


def _chains(e: tuple) -> Iterator[list]:
    """Each traversal `root.step[...]...` in an expression, as [root, (kind, value), ...]."""
    steps: list = []
    node = e
    while node[0] in ("attr", "index", "splat"):
        if node[0] == "attr":
            steps.append(("attr", node[2]))
        elif node[0] == "index":
            steps.append(("index", None))
            yield from _chains(node[2])
        else:
            steps.append(("splat", None))
        node = node[1]
    if node[0] == "ref" and steps:
        yield [node[1]] + steps[::-1]
        return
    if node[0] == "ref":
        return
    for part in node[1:]:
        if isinstance(part, tuple) and part and isinstance(part[0], str):
            yield from _chains(part)
        elif isinstance(part, list):
            for item in part:
                if isinstance(item, tuple) and item and isinstance(item[0], str):
                    yield from _chains(item)
                elif isinstance(item, tuple):
                    for sub in item:
                        if isinstance(sub, tuple) and sub and isinstance(sub[0], str):
                            yield from _chains(sub)


def check(paths: list[str], schema: dict | None = None) -> Checker:
    modules = [hcl_eval.Module(p) for p in paths]
    if schema is None:
        schema = provider_schema.load(used_types(modules))
    checker = Checker(schema)
    for m in modules:
        checker.module(m)
    return checker


def main(argv: list[str]) -> int:
    if argv[:1] == ["--prepare"]:
        # Only fill an empty cache (the check itself extracts a type the
        # cache lacks): run while other tools install.
        wanted = used_types([hcl_eval.Module(p) for p in folders()])
        if not provider_schema.cached(wanted):
            provider_schema.load(wanted)
        return 0
    paths = [os.path.abspath(p) for p in argv] or folders()
    checker = check(paths)
    for p in checker.problems:
        print(p, file=sys.stderr)
    c = checker.counts
    print(
        f"{len(paths)} folders: {c['blocks']} blocks, {c['arguments']} arguments and blocks, "
        f"{c['references']} references checked against "
        + ", ".join(f"hashicorp/{p} {v} ({checker.schema['packages'][p]})" for p, v in sorted(checker.schema["versions"].items()))
        + f": {len(checker.problems)} problems"
    )
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
