"""A small evaluator of the Terraform in infra/, for the agreement test.

Terraform cannot run where the tests run (its providers are not available),
so this reads the configuration with python-hcl2 and evaluates the
expressions the test needs: literals, templates, var./local./module.
references, operators, conditionals, for expressions and the few functions
the modules use. Anything only known after apply (a resource's or data
source's attribute) evaluates to an `Unknown` that remembers its address,
so a test can still check *what* an attribute refers to.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import urllib.parse
from typing import Any, Callable

import hcl2


class HclError(Exception):
    pass


class Unknown:
    """A value known only after apply, e.g. `module.x.aws_sqs_queue.dlq.arn`."""

    def __init__(self, address: str):
        self.address = address

    def attr(self, name: str) -> "Unknown":
        return Unknown(f"{self.address}.{name}")

    def index(self, key: Any) -> "Unknown":
        return Unknown(f"{self.address}[{json.dumps(key) if isinstance(key, str) else key}]")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unknown) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return "${" + self.address + "}"

    __str__ = __repr__


# ---------------------------------------------------------------------------
# Parsing expressions (as python-hcl2 serialises them)
# ---------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def fail(self, what: str) -> HclError:
        return HclError(f"{what} at {self.i} in {self.s!r}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, tok: str) -> bool:
        self.ws()
        return self.s.startswith(tok, self.i)

    def eat(self, tok: str) -> bool:
        if self.peek(tok):
            self.i += len(tok)
            return True
        return False

    def expect(self, tok: str) -> None:
        if not self.eat(tok):
            raise self.fail(f"expected {tok!r}")

    def keyword(self, word: str) -> bool:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if m and m.group(0) == word:
            self.i = m.end()
            return True
        return False

    def parse(self) -> tuple:
        e = self.expr()
        self.ws()
        if self.i != len(self.s):
            raise self.fail("trailing text")
        return e

    def expr(self) -> tuple:
        cond = self.binary(0)
        if self.eat("?"):
            t = self.expr()
            self.expect(":")
            f = self.expr()
            return ("cond", cond, t, f)
        return cond

    _LEVELS = [["||"], ["&&"], ["==", "!="], ["<=", ">=", "<", ">"], ["+", "-"], ["*", "/", "%"]]

    def binary(self, level: int) -> tuple:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            self.ws()
            op = next(
                (
                    o
                    for o in self._LEVELS[level]
                    if self.s.startswith(o, self.i)
                    and not (o == ">" and self.s.startswith("=>", self.i - 1))
                    and not (o in ("<", ">") and self.s.startswith(o + "=", self.i))
                ),
                None,
            )
            if op is None:
                return left
            self.i += len(op)
            left = ("op", op, left, self.binary(level + 1))

    def unary(self) -> tuple:
        if self.eat("!"):
            return ("not", self.unary())
        if self.peek("-") and not _NUMBER.match(self.s, self.i + 1):
            self.i += 1
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, e: tuple) -> tuple:
        while True:
            if self.peek("[*]"):
                self.i += 3
                e = ("splat", e)
            elif self.peek(".") and not self.peek("..."):
                self.i += 1
                m = _IDENT.match(self.s, self.i) or _NUMBER.match(self.s, self.i)
                if not m:
                    raise self.fail("expected attribute")
                self.i = m.end()
                e = ("attr", e, m.group(0))
            elif self.peek("["):
                self.i += 1
                idx = self.expr()
                self.expect("]")
                e = ("index", e, idx)
            else:
                return e

    def primary(self) -> tuple:
        self.ws()
        c = self.s[self.i : self.i + 1]
        if c == '"':
            return self.template()
        if c == "(":
            self.i += 1
            e = self.expr()
            self.expect(")")
            return e
        if c == "[":
            return self.list_or_for()
        if c == "{":
            return self.object_or_for()
        m = _NUMBER.match(self.s, self.i) or (
            c == "-" and _NUMBER.match(self.s, self.i + 1) and re.compile(r"-[0-9.eE+-]+").match(self.s, self.i)
        )
        if m:
            self.i = m.end()
            text = m.group(0)
            return ("lit", float(text) if any(ch in text for ch in ".eE") else int(text))
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.fail("expected an expression")
        self.i = m.end()
        name = m.group(0)
        if name in ("true", "false"):
            return ("lit", name == "true")
        if name == "null":
            return ("lit", None)
        if self.peek("("):
            self.i += 1
            args, expand = [], False
            while not self.eat(")"):
                args.append(self.expr())
                if self.eat("..."):
                    expand = True
                self.eat(",")
            return ("call", name, args, expand)
        return ("ref", name)

    def template(self) -> tuple:
        self.i += 1  # opening quote
        parts: list = []
        buf = []
        while True:
            if self.i >= len(self.s):
                raise self.fail("unterminated string")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                break
            if c == "\\":
                nxt = self.s[self.i + 1]
                buf.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
                self.i += 2
            elif self.s.startswith("$${", self.i):
                buf.append("${")
                self.i += 3
            elif self.s.startswith("${", self.i):
                if buf:
                    parts.append(("lit", "".join(buf)))
                    buf = []
                self.i += 2
                parts.append(self.expr())
                self.expect("}")
            else:
                buf.append(c)
                self.i += 1
        if buf or not parts:
            parts.append(("lit", "".join(buf)))
        return ("template", parts)

    def list_or_for(self) -> tuple:
        self.i += 1
        if self.keyword("for"):
            names, coll = self.for_head()
            value = self.expr()
            cond = self.expr() if self.keyword("if") else None
            self.expect("]")
            return ("forlist", names, coll, value, cond)
        items = []
        while not self.eat("]"):
            items.append(self.expr())
            self.eat(",")
        return ("list", items)

    def object_or_for(self) -> tuple:
        self.i += 1
        if self.keyword("for"):
            names, coll = self.for_head()
            key = self.expr()
            self.expect("=>")
            value = self.expr()
            cond = self.expr() if self.keyword("if") else None
            self.expect("}")
            return ("forobj", names, coll, key, value, cond)
        items = []
        while not self.eat("}"):
            self.ws()
            m = _IDENT.match(self.s, self.i)
            if m and self.s[m.end() :].lstrip()[:1] in ("=", ":") and not self.s[m.end() :].lstrip().startswith("=="):
                self.i = m.end()
                key: tuple = ("lit", m.group(0))
            else:
                key = self.expr()
            if not (self.eat("=") or self.eat(":")):
                raise self.fail("expected = in object")
            items.append((key, self.expr()))
            self.eat(",")
        return ("object", items)

    def for_head(self) -> tuple:
        names = []
        while True:
            self.ws()
            m = _IDENT.match(self.s, self.i)
            if not m:
                raise self.fail("expected for variable")
            self.i = m.end()
            names.append(m.group(0))
            if not self.eat(","):
                break
        if not self.keyword("in"):
            raise self.fail("expected in")
        coll = self.expr()
        self.expect(":")
        return names, coll


def parse_expression(text: str) -> tuple:
    return _Parser(text).parse()


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def to_ast(value: Any) -> tuple:
    """An attribute value of python-hcl2's output, as an expression tree."""
    if value is None or isinstance(value, (bool, int, float)):
        return ("lit", value)
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return parse_expression(value[2:-1])
        return parse_expression(value)
    if isinstance(value, list):
        return ("list", [to_ast(v) for v in value])
    if isinstance(value, dict):
        return (
            "object",
            [(("lit", unquote(k)), to_ast(v)) for k, v in value.items() if not k.startswith("__")],
        )
    raise HclError(f"unexpected value {value!r}")


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


def _has_unknown(v: Any) -> bool:
    if isinstance(v, Unknown):
        return True
    if isinstance(v, dict):
        return any(_has_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_unknown(x) for x in v)
    return False


def _tostring(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if v is None or isinstance(v, Unknown):
        return v
    return str(v)


def _regex(pattern: str, s: str) -> Any:
    m = re.search(pattern, s)
    if not m:
        raise HclError(f"regex {pattern!r} does not match {s!r}")
    return m.group(0)


def _coalesce(*args: Any) -> Any:
    for a in args:
        if a is not None and a != "":
            return a
    raise HclError("coalesce: no non-null argument")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "jsonencode": lambda v: _jsonencode(v),
    "jsondecode": json.loads,
    "merge": lambda *ms: {k: v for m in ms if m for k, v in m.items()},
    "length": len,
    "tostring": _tostring,
    "tonumber": lambda v: v if isinstance(v, (int, float)) else float(v),
    "tolist": list,
    "toset": lambda v: list(dict.fromkeys(v)),
    "tomap": dict,
    "concat": lambda *ls: [x for l in ls for x in l],
    "lookup": lambda m, k, *d: m[k] if k in m else (d[0] if d else (_ for _ in ()).throw(KeyError(k))),
    "contains": lambda coll, v: v in coll,
    "keys": lambda m: sorted(m.keys()),
    "values": lambda m: [m[k] for k in sorted(m.keys())],
    "distinct": lambda l: list(dict.fromkeys(l)),
    "split": lambda sep, s: s.split(sep),
    "lower": str.lower,
    "upper": str.upper,
    "coalesce": _coalesce,
    "urlencode": lambda s: urllib.parse.quote(s, safe="-_.~"),
    "regex": _regex,
    "alltrue": lambda l: all(l),
    "anytrue": lambda l: any(l),
    "floor": math.floor,
    "setsubtract": lambda a, b: [x for x in a if x not in b],
    "cidrhost": lambda c, n: _cidrhost(c, n),
    "endswith": lambda s, suffix: s.endswith(suffix),
    "startswith": lambda s, prefix: s.startswith(prefix),
    "one": lambda l: _one(l),
    "max": max,
    "min": min,
    "flatten": lambda l: _flatten(l),
    "replace": lambda s, old, new: _replace(s, old, new),
    "join": lambda sep, l: sep.join(str(_tostring(x)) for x in l),
    "sort": lambda l: sorted(l),
    "compact": lambda l: [x for x in l if x is not None and x != ""],
    "setintersection": lambda first, *rest: [x for x in dict.fromkeys(first) if all(x in r for r in rest)],
    "base64encode": lambda s: base64.b64encode(s.encode("utf-8")).decode("ascii"),
    "regexall": lambda pattern, s: _regexall(pattern, s),
}


def _replace(s: str, old: str, new: str) -> str:
    if len(old) > 1 and old.startswith("/") and old.endswith("/"):
        raise HclError("replace with a regular expression is not supported by the test evaluator")
    return s.replace(old, new)


def _regexall(pattern: str, s: str) -> list:
    """Terraform's regexall: every match, as a string (no groups), a list
    (unnamed groups) or a map (named groups)."""
    compiled = re.compile(pattern)
    out = []
    for m in compiled.finditer(s):
        if compiled.groupindex:
            out.append(m.groupdict())
        elif compiled.groups:
            out.append(list(m.groups()))
        else:
            out.append(m.group(0))
    return out


def _describe(v: Any) -> str:
    """An argument in the address of an unknown result."""
    if isinstance(v, Unknown):
        return v.address
    return json.dumps(v, default=str)


def _jsonencode(v: Any) -> str:
    """Terraform's jsonencode, but for the order of keys (Terraform sorts
    them; the length is the same): compact, non-ASCII kept as is, and <, >,
    & escaped (as Go's encoder does), so a text's length is Terraform's."""
    text = json.dumps(v, separators=(",", ":"), default=str, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _one(items: list) -> Any:
    if len(items) > 1:
        raise HclError(f"one: {len(items)} elements")
    return items[0] if items else None


def _flatten(items: list) -> list:
    out = []
    for item in items:
        out += _flatten(item) if isinstance(item, list) else [item]
    return out


def _cidrhost(cidr: str, n: int) -> str:
    import ipaddress

    return str(ipaddress.ip_network(cidr, strict=False)[n])


# ---------------------------------------------------------------------------
# Modules and their evaluation
# ---------------------------------------------------------------------------


_PARSED: dict[str, dict] = {}


def parse_file_text(text: str) -> dict:
    """python-hcl2's reading of a .tf file, once per distinct text (parsing is
    slow, and the tests read the same modules many times). Callers must not
    modify the result."""
    if text not in _PARSED:
        _PARSED[text] = hcl2.loads(text)
    return _PARSED[text]


class Module:
    """The blocks of every .tf file of one folder."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.variables: dict[str, dict] = {}
        self.locals: dict[str, Any] = {}
        self.resources: dict[tuple[str, str], dict] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.modules: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.providers: list[dict] = []
        names = sorted(f for f in os.listdir(self.path) if f.endswith(".tf"))
        if not names:
            raise HclError(f"no .tf files in {self.path}")
        for name in names:
            with open(os.path.join(self.path, name), encoding="utf-8") as f:
                doc = parse_file_text(f.read())
            for block in doc.get("variable", []):
                for k, v in block.items():
                    self.variables[unquote(k)] = v
            for block in doc.get("locals", []):
                for k, v in block.items():
                    if not k.startswith("__"):
                        self.locals[k] = v
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in doc.get(kind, []):
                    for rtype, by_name in block.items():
                        for rname, body in by_name.items():
                            target[(unquote(rtype), unquote(rname))] = body
            for block in doc.get("module", []):
                for k, v in block.items():
                    self.modules[unquote(k)] = v
            for block in doc.get("output", []):
                for k, v in block.items():
                    self.outputs[unquote(k)] = v
            for block in doc.get("provider", []):
                for k, v in block.items():
                    self.providers.append(dict(v, __type__=unquote(k)))


_MISSING = object()
_META_ARGS = {"source", "version", "providers", "depends_on", "count", "for_each"}


class Instance:
    """A module with its inputs: evaluates its locals, resources and outputs."""

    def __init__(
        self,
        module: Module,
        inputs: dict[str, Callable[[], Any]],
        address: str = "",
        parent: "Instance | None" = None,
        region: str | None = None,
    ):
        self.module = module
        self.inputs = inputs
        self.address = address
        self.parent = parent
        # The region of the module's aws provider, when known: what
        # data.aws_region (without arguments) reads at plan time.
        self.region = region
        self._memo: dict[tuple, Any] = {}
        self._children: dict[str, Instance] = {}

    # -- namespaces -----------------------------------------------------
    def var(self, name: str) -> Any:
        key = ("var", name)
        if key not in self._memo:
            if name not in self.module.variables:
                raise HclError(f"{self.module.path}: no variable {name}")
            if name in self.inputs:
                self._memo[key] = self.inputs[name]()
            elif "default" in self.module.variables[name]:
                self._memo[key] = self.eval(to_ast(self.module.variables[name]["default"]))
            else:
                raise HclError(f"{self.module.path}: variable {name} has no default and no input")
        return self._memo[key]

    def local(self, name: str) -> Any:
        key = ("local", name)
        if key not in self._memo:
            if name not in self.module.locals:
                raise HclError(f"{self.module.path}: no local {name}")
            self._memo[key] = self.eval(to_ast(self.module.locals[name]))
        return self._memo[key]

    def child(self, name: str) -> "Instance":
        if name not in self._children:
            block = self.module.modules[name]
            source = self.eval(to_ast(block["source"]))
            inputs = {
                k: (lambda ast=to_ast(v): self.eval(ast))
                for k, v in block.items()
                if k not in _META_ARGS and not k.startswith("__")
            }
            prefix = f"{self.address}." if self.address else ""
            try:
                region = self.provider_region(name)
            except HclError:
                region = self.region if "providers" not in block else None
            self._children[name] = Instance(
                Module(os.path.join(self.module.path, source)), inputs, f"{prefix}module.{name}", self, region
            )
        return self._children[name]

    def output(self, name: str) -> Any:
        return self.eval(to_ast(self.module.outputs[name]["value"]))

    # -- resources --------------------------------------------------------
    def resource(self, rtype: str, rname: str) -> dict:
        return self.module.resources[(rtype, rname)]

    def count(self, rtype: str, rname: str, kind: str = "resource") -> int:
        body = (self.module.resources if kind == "resource" else self.module.data)[(rtype, rname)]
        if "count" not in body:
            return 1
        return int(self.eval(to_ast(body["count"])))

    def each_keys(self, rtype: str, rname: str, kind: str = "resource") -> list:
        """The instance keys of a resource or data source with for_each."""
        return list(self._for_each(rtype, rname, kind))

    def _for_each(self, rtype: str, rname: str, kind: str) -> dict:
        body = (self.module.resources if kind == "resource" else self.module.data)[(rtype, rname)]
        if "for_each" not in body:
            raise HclError(f"{rtype}.{rname} has no for_each")
        coll = self.eval(to_ast(body["for_each"]))
        if isinstance(coll, Unknown):
            raise HclError(f"for_each of {rtype}.{rname} is unknown")
        return dict(coll) if isinstance(coll, dict) else {k: k for k in coll}

    def scope(self, rtype: str, rname: str, kind: str = "resource", index: int = 0, key: Any = None) -> dict:
        """What count.index and each.key/each.value are for one instance."""
        scope: dict = {"count": {"index": index}}
        if key is not None:
            scope["each"] = {"key": key, "value": self._for_each(rtype, rname, kind)[key]}
        return scope

    def attr(self, rtype: str, rname: str, *path: str, kind: str = "resource", index: int = 0, key: Any = None) -> Any:
        """Evaluate an argument (or a nested block's argument) of a resource
        (of its instance `index` when it has a count, `key` with for_each)."""
        body: Any = (self.module.resources if kind == "resource" else self.module.data)[(rtype, rname)]
        for p in path:
            body = body[p]
            if isinstance(body, list) and body and isinstance(body[0], dict) and body[0].get("__is_block__"):
                body = body[0]
        return self.eval(to_ast(body), self.scope(rtype, rname, kind, index, key))

    def nested(self, body: dict, name: str, scope: dict) -> list[tuple[dict, dict]]:
        """The nested blocks `name` of a block body, written ones and those a
        `dynamic "name"` makes, each with the scope to evaluate it in (the
        dynamic block's iterator added)."""
        out = [(b, scope) for b in body.get(name, [])]
        for dyn in body.get("dynamic", []):
            for label, spec in dyn.items():
                if unquote(label) != name:
                    continue
                iterator = unquote(self.eval(to_ast(spec["iterator"]), scope)) if "iterator" in spec else name
                coll = self.eval(to_ast(spec["for_each"]), scope)
                items = list(coll.items()) if isinstance(coll, dict) else list(enumerate(coll))
                for k, v in items:
                    for content in spec["content"]:
                        out.append((content, dict(scope, **{iterator: {"key": k, "value": v}})))
        return out

    def block(self, rtype: str, rname: str, *path: str, kind: str = "resource") -> Any:
        body: Any = (self.module.resources if kind == "resource" else self.module.data)[(rtype, rname)]
        for p in path:
            body = body[p]
        return body

    def eval_in_resource(self, value: Any) -> Any:
        return self.eval(to_ast(value), {"count": {"index": 0}})

    # -- expressions --------------------------------------------------------
    def eval(self, e: tuple, scope: dict | None = None) -> Any:
        scope = scope or {}
        kind = e[0]
        if kind == "lit":
            return e[1]
        if kind == "template":
            parts = [self.eval(p, scope) for p in e[1]]
            if len(parts) == 1 and e[1][0][0] != "lit":
                return parts[0]
            return "".join("" if p is None else str(_tostring(p)) for p in parts)
        if kind == "list":
            return [self.eval(x, scope) for x in e[1]]
        if kind == "object":
            return {str(self.eval(k, scope)): self.eval(v, scope) for k, v in e[1]}
        if kind == "ref":
            return self.ref(e[1], scope)
        if kind == "attr":
            region = self._provider_region_read(e)
            if region is not None:
                return region
            return self.get_attr(self.eval(e[1], scope), e[2])
        if kind == "index":
            base, idx = self.eval(e[1], scope), self.eval(e[2], scope)
            if isinstance(base, Unknown):
                return base.index(idx)
            if isinstance(idx, Unknown):
                return Unknown(f"{base}[{idx}]")
            return base[int(idx) if isinstance(base, list) else idx]
        if kind == "splat":
            base = self.eval(e[1], scope)
            return base.attr("*") if isinstance(base, Unknown) else base
        if kind == "cond":
            c = self.eval(e[1], scope)
            if isinstance(c, Unknown):
                return Unknown(f"({c} ? ...)")
            return self.eval(e[2] if c else e[3], scope)
        if kind == "not":
            v = self.eval(e[1], scope)
            return v if isinstance(v, Unknown) else not v
        if kind == "neg":
            v = self.eval(e[1], scope)
            return v if isinstance(v, Unknown) else -v
        if kind == "op":
            return self.op(e[1], e[2], e[3], scope)
        if kind == "call":
            name, arg_asts, expand = e[1], e[2], e[3]
            if name == "can":
                try:
                    value = self.eval(arg_asts[0], scope)
                except (HclError, KeyError, IndexError, TypeError, ValueError, re.error):
                    return False
                return Unknown("can(...)") if _has_unknown(value) else True
            if name == "try":
                for a in arg_asts:
                    try:
                        return self._known(self.eval(a, scope))
                    except (HclError, KeyError, IndexError, TypeError, ValueError):
                        continue
                raise HclError("try: no argument evaluated")
            args = [self.eval(a, scope) for a in arg_asts]
            if expand:
                args = args[:-1] + list(args[-1])
            if name == "file":
                with open(os.path.join(self.module.path, args[0]), encoding="utf-8") as f:
                    return f.read()
            if name not in FUNCTIONS:
                raise HclError(f"function {name} is not supported by the test evaluator")
            if name in ("alltrue", "anytrue") and _has_unknown(args):
                return Unknown(f"{name}(...)")
            if name != "jsonencode" and any(isinstance(a, Unknown) for a in args):
                # The call, with its arguments, so a test can still see what it is of.
                return Unknown(f"{name}({', '.join(_describe(a) for a in args)})")
            return FUNCTIONS[name](*args)
        if kind in ("forlist", "forobj"):
            names, coll = e[1], self.eval(e[2], scope)
            if isinstance(coll, Unknown):
                return coll
            items = list(coll.items()) if isinstance(coll, dict) else list(enumerate(coll))
            out_list, out_obj = [], {}
            for k, v in items:
                inner = dict(scope)
                if len(names) == 2:
                    inner[names[0]], inner[names[1]] = k, v
                else:
                    inner[names[0]] = v
                cond = e[-1]
                if cond is not None and not self.eval(cond, inner):
                    continue
                if kind == "forlist":
                    out_list.append(self.eval(e[3], inner))
                else:
                    out_obj[str(self.eval(e[3], inner))] = self.eval(e[4], inner)
            return out_list if kind == "forlist" else out_obj
        raise HclError(f"cannot evaluate {e!r}")

    def _provider_region_read(self, e: tuple) -> str | None:
        """data.aws_region.<name>.region (or .name) of a data source without
        arguments is the provider's region, known at plan time."""
        if self.region is None or e[2] not in ("region", "name") or e[1][0] != "attr":
            return None
        source = e[1][1]
        if source[0] != "attr" or source[1] != ("ref", "data") or source[2] != "aws_region":
            return None
        body = self.module.data.get(("aws_region", e[1][2]))
        if body is None or any(not k.startswith("__") for k in body):
            return None
        return self.region

    @staticmethod
    def _known(v: Any) -> Any:
        if isinstance(v, Unknown):
            raise HclError(f"{v} is unknown")
        return v

    def op(self, op: str, a_ast: tuple, b_ast: tuple, scope: dict) -> Any:
        a = self.eval(a_ast, scope)
        if op == "||" and a is True:
            return True
        if op == "&&" and a is False:
            return False
        b = self.eval(b_ast, scope)
        if op in ("==", "!="):
            if isinstance(a, Unknown) or isinstance(b, Unknown):
                # null compares as known: a computed attribute is never null here.
                if a is None or b is None:
                    return op == "!="
                return Unknown(f"({a} {op} {b})")
            return (a == b) == (op == "==")
        if isinstance(a, Unknown) or isinstance(b, Unknown):
            return Unknown(f"({a} {op} {b})")
        if op == "||":
            return bool(b)
        if op == "&&":
            return bool(b)
        return {
            "<": lambda: a < b,
            ">": lambda: a > b,
            "<=": lambda: a <= b,
            ">=": lambda: a >= b,
            "+": lambda: a + b,
            "-": lambda: a - b,
            "*": lambda: a * b,
            "/": lambda: a / b,
            "%": lambda: a % b,
        }[op]()

    def ref(self, name: str, scope: dict) -> Any:
        if name in scope:
            return scope[name]
        if name in ("var", "local", "module"):
            return _Namespace(self, name)
        if name == "path":
            return {"module": self.module.path, "root": self.module.path, "cwd": self.module.path}
        prefix = f"{self.address}." if self.address else ""
        return Unknown(f"{prefix}{name}")

    def get_attr(self, base: Any, name: str) -> Any:
        if isinstance(base, _Namespace):
            return base.get(name)
        if isinstance(base, Unknown):
            return base.attr(name)
        if isinstance(base, dict):
            if name not in base:
                raise HclError(f"no attribute {name} in {sorted(base)}")
            return base[name]
        if isinstance(base, list) and name.isdigit():
            return base[int(name)]
        raise HclError(f"cannot read .{name} of {base!r}")

    # -- provider of a child module ------------------------------------------
    def provider_region(self, module_name: str) -> str:
        """Region of the aws provider passed to child module `module_name`."""
        block = self.module.modules[module_name]
        if "providers" not in block and self.region is not None:
            return self.region
        alias = None
        if "providers" in block:
            mapping = block["providers"]
            ref = mapping.get("aws") or mapping.get('"aws"')
            alias = to_ast(ref)
            alias = alias[2] if alias[0] == "attr" else None
        for p in self.module.providers:
            if p["__type__"] != "aws":
                continue
            p_alias = self.eval(to_ast(p["alias"])) if "alias" in p else None
            if p_alias == alias:
                return self.eval(to_ast(p["region"]))
        raise HclError(f"no aws provider {alias!r} in {self.module.path}")


class _Namespace:
    def __init__(self, inst: Instance, kind: str):
        self.inst, self.kind = inst, kind

    def get(self, name: str) -> Any:
        if self.kind == "var":
            return self.inst.var(name)
        if self.kind == "local":
            return self.inst.local(name)
        return _ChildOutputs(self.inst.child(name))


class _ChildOutputs(dict):
    def __init__(self, child: Instance):
        super().__init__()
        self.child = child

    def __contains__(self, name: object) -> bool:
        return name in self.child.module.outputs

    def __getitem__(self, name: str) -> Any:
        return self.child.output(name)


def load(path: str, inputs: dict[str, Any] | None = None) -> Instance:
    """The root module at `path`, with `inputs` as its variables' values."""
    return Instance(Module(path), {k: (lambda v=v: v) for k, v in (inputs or {}).items()})
