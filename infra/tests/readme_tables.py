"""The Inputs and Outputs tables of the modules' and examples' READMEs.

    python infra/tests/readme_tables.py --write   # regenerate them

Each README ends with "## Inputs" and "## Outputs", generated from the
variables and outputs of its folder; test_readmes.py checks they are current.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hcl_eval  # noqa: E402

INFRA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ["modules/topic", "modules/region", "modules/signing-keys", "modules/dashboard", "modules/sns-principals", "examples/three-regions", "examples/localstack"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _description(block: dict) -> str:
    return _cell(hcl_eval.unquote(block.get("description", "")).replace('\\"', '"'))


def _type(block: dict) -> str:
    t = block.get("type", "any")
    if isinstance(t, str) and t.startswith("${") and t.endswith("}"):
        t = t[2:-1]
    return f"`{_cell(str(t))}`"


def tables(folder: str) -> str:
    module = hcl_eval.Module(os.path.join(INFRA, folder))
    inst = hcl_eval.Instance(module, {})
    lines = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
    for name in sorted(module.variables):
        var = module.variables[name]
        if "default" in var:
            value = inst.eval(hcl_eval.to_ast(var["default"]))
            default = "`" + _cell("null" if value is None else json.dumps(value)) + "`"
        else:
            default = "n/a"
        lines.append(f"| `{name}` | {_description(var)} | {_type(var)} | {default} | {'no' if 'default' in var else 'yes'} |")
    lines += ["", "## Outputs", "", "| Name | Description |", "|------|-------------|"]
    for name in sorted(module.outputs):
        lines.append(f"| `{name}` | {_description(module.outputs[name])} |")
    return "\n".join(lines) + "\n"


def split_readme(folder: str) -> tuple[str, str]:
    with open(os.path.join(INFRA, folder, "README.md"), encoding="utf-8") as f:
        text = f.read()
    head, sep, tail = text.partition("## Inputs")
    return head, sep + tail


def main() -> int:
    stale = []
    for folder in FOLDERS:
        head, current = split_readme(folder)
        wanted = tables(folder)
        if current != wanted:
            if "--write" in sys.argv:
                with open(os.path.join(INFRA, folder, "README.md"), "w", encoding="utf-8") as f:
                    f.write(head + wanted)
            stale.append(folder)
    for folder in stale:
        print(f"{folder}/README.md: tables {'rewritten' if '--write' in sys.argv else 'out of date'}")
    return 1 if stale and "--write" not in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
