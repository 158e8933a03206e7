#!/usr/bin/env python3
"""Writes the golden test vectors of the regis wire format (docs/WIRE.md).

An encoder written from the specification alone, independently of the Rust
crate: the Rust tests (wire/tests/vectors.rs) decode every message here and,
where `exact` is set, check that the Rust encoder writes the same text byte
for byte. Needs only Python 3 and the `zstd` command-line tool.

    python3 wire/tests/vectors/generate.py   # rewrites the *.json beside it
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = {"id": "k1", "secret_base64": base64.b64encode(b"vector-secret-0123456789").decode()}
OTHER_KEY = {"id": "k2", "secret_base64": base64.b64encode(b"another-secret-98765432").decode()}
T0 = 1_700_000_000_000


def jstr(text):
    """A JSON string as the reference encoder writes it (UTF-8, no ASCII escaping)."""
    return json.dumps(text, ensure_ascii=False)


def blob(data):
    """A blob: a JSON string when the bytes are UTF-8, else {"b64": ...}."""
    try:
        return jstr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return '{"b64":' + jstr(base64.b64encode(data).decode()) + "}"


def number(x):
    return json.dumps(x)


def command_json(c):
    """One command object, members in the reference encoder's order."""
    parts = ['"op":' + jstr(c["op"]), '"k":' + blob(bytes.fromhex(c["key"]))]
    op = c["op"]
    if op == "set":
        parts.append('"v":' + blob(bytes.fromhex(c["value"])))
    elif op in ("hset", "hreplace"):
        parts.append('"f":[' + ",".join(
            "[" + blob(bytes.fromhex(f)) + "," + blob(bytes.fromhex(v)) + "]" for f, v in c["fields"]) + "]")
    elif op == "hdel":
        parts.append('"f":[' + ",".join(blob(bytes.fromhex(f)) for f in c["fields"]) + "]")
    elif op in ("sadd", "srem", "zrem", "sreplace"):
        parts.append('"m":[' + ",".join(blob(bytes.fromhex(m)) for m in c["members"]) + "]")
    elif op in ("zadd", "zreplace"):
        parts.append('"m":[' + ",".join(
            "[" + number(s) + "," + blob(bytes.fromhex(m)) + "]" for s, m in c["members"]) + "]")
    at = c.get("at_ms") if op == "pexpireat" else c.get("expire_at_ms")
    if at is not None:
        parts.append('"at":' + str(at))
    parts.append('"ver":[' + ",".join(str(x) for x in c["version"]) + "]")
    return "{" + ",".join(parts) + "}"


def zstd(data, stream):
    """zstd level 3; from a file the frame states its size, from a pipe it does not."""
    if stream:
        return subprocess.run(["zstd", "-3", "-q", "-c"], input=data, check=True, capture_output=True).stdout
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return subprocess.run(["zstd", "-3", "-q", "-c", f.name], check=True, capture_output=True).stdout


def mac(key, parts):
    secret = base64.b64decode(key["secret_base64"])
    signed = b"".join(str(len(p)).encode() + b":" + p for p in parts)
    return base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def message(batch, enc="json", key=None, stream=False, order=None):
    cmds_json = "[" + ",".join(command_json(c) for c in batch["commands"]) + "]"
    if enc == "zstd":
        payload = '"' + base64.b64encode(zstd(cmds_json.encode(), stream)).decode() + '"'
    else:
        payload = cmds_json
    n = str(len(batch["commands"]))
    ts = str(batch["published_at_ms"])
    members = [
        ("regis", "1"),
        ("id", jstr(batch["id"])),
        ("origin", jstr(batch["origin"])),
        ("tenant", jstr(batch["tenant"])),
        ("ts", ts),
        ("mode", jstr(batch["mode"])),
        ("enc", jstr(enc)),
        ("n", n),
        ("cmds", payload),
    ]
    if key is not None:
        parts = [b"regis/1"] + [s.encode() for s in (batch["id"], batch["origin"], batch["tenant"], ts,
                                                      batch["mode"], enc, n, payload)]
        members.append(("sig", '{"kid":' + jstr(key["id"]) + ',"mac":"' + mac(key, parts) + '"}'))
    if order is not None:
        members = [members[i] for i in order if i < len(members)]
    return "{" + ",".join('"' + name + '":' + value for name, value in members) + "}"


def hx(data):
    return data.hex() if isinstance(data, bytes) else data.encode().hex()


def header(**kw):
    h = {"id": "0123456789abcdef0123456789abcdef", "origin": "ap-southeast-1", "tenant": "hotel-sg",
         "published_at_ms": T0 + 5, "mode": "lww"}
    h.update(kw)
    return h


def write(path, vector):
    with open(os.path.join(HERE, path), "w", encoding="utf-8") as f:
        json.dump(vector, f, ensure_ascii=False, indent=2)
        f.write("\n")


def accepted(name, description, batch, exact=True, keys=(), **kw):
    text = message(batch, **kw)
    vector = {"name": name, "description": description, "message": text}
    if exact:
        vector["encode"] = {"signing_key": kw.get("key")}
    if keys:
        vector["keys"] = list(keys)
    vector["batch"] = batch
    write(name + ".json", vector)
    return text


def refused(name, description, text, reason, keys=(), limits=None, checks=None):
    vector = {"name": name, "description": description, "message": text}
    if keys:
        vector["keys"] = list(keys)
    if limits:
        vector["limits"] = limits
    if checks:
        vector["checks"] = checks
    vector["reason"] = reason
    write(os.path.join("refused", name + ".json"), vector)


def main():
    simple = dict(header(), commands=[
        {"op": "set", "key": hx("user:1"), "value": hx('{"name":"Ann"}'), "expire_at_ms": T0 + 60_000,
         "version": [T0, 0, 1]},
        {"op": "del", "key": hx("user:2"), "version": [T0, 1, 1]},
    ])
    accepted("set-and-del", "The smallest useful batch: a SET with an absolute expiry and a DEL, uncompressed.",
             simple)

    every = dict(header(mode="lww"), commands=[
        {"op": "set", "key": hx(b"bin:\xff\x00"), "value": hx(b"\x00\x01\xfe"), "expire_at_ms": None,
         "version": [T0, 0, 1]},
        {"op": "set", "key": hx("quote\"back\\slash\nnewline\ttab\u0001ctl é✓"), "value": hx(""),
         "expire_at_ms": None, "version": [T0, 1, 1]},
        {"op": "del", "key": hx("k:del"), "version": [T0, 2, 1]},
        {"op": "hset", "key": hx("h"), "fields": [[hx("name"), hx("Ann")], [hx(b"\xff"), hx("")]],
         "version": [T0, 3, 1]},
        {"op": "hdel", "key": hx("h"), "fields": [hx("old"), hx("")], "version": [T0, 4, 1]},
        {"op": "sadd", "key": hx("s"), "members": [hx("a"), hx("b")], "version": [T0, 5, 1]},
        {"op": "srem", "key": hx("s"), "members": [hx("c")], "version": [T0, 6, 1]},
        {"op": "zadd", "key": hx("z"), "members": [[1.5, hx("a")], [-2.0, hx("b")], [0, hx(b"\x80")]],
         "version": [T0, 7, 1]},
        {"op": "zrem", "key": hx("z"), "members": [hx("c")], "version": [T0, 8, 1]},
        {"op": "pexpireat", "key": hx("s"), "at_ms": T0 + 3_600_000, "version": [T0, 9, 1]},
        {"op": "persist", "key": hx("h"), "version": [T0, 10, 1]},
        {"op": "hreplace", "key": hx("room:7"), "fields": [[hx("status"), hx("clean")]],
         "expire_at_ms": T0 + 86_400_000, "version": [T0 + 1, 0, 1]},
        {"op": "sreplace", "key": hx("tags"), "members": [], "expire_at_ms": None, "version": [T0 + 1, 1, 1]},
        {"op": "zreplace", "key": hx("rank"), "members": [[10, hx("x")]], "expire_at_ms": None,
         "version": [T0 + 1, 2, 1]},
    ])
    # Integral scores are written as floats by the reference encoder.
    for c in every["commands"]:
        if c["op"] in ("zadd", "zreplace"):
            c["members"] = [[float(s), m] for s, m in c["members"]]
    accepted("every-command", "Each of the 13 commands once, with binary blobs ({\"b64\"}), escapes, non-ASCII "
             "text, an empty replacement and integral scores.", every)

    signed = dict(header(tenant="hotel-eu", mode="plain"), commands=simple["commands"])
    accepted("signed", "A signed batch in plain mode: the MAC covers the header fields and the payload text.",
             signed, keys=[KEY], key=KEY)

    zsized = dict(header(), commands=[
        {"op": "hset", "key": hx(f"hotel:{i}"), "fields": [[hx("name"), hx("Grand " * 8)], [hx("stars"), hx("5")]],
         "version": [T0, i, 2]} for i in range(40)])
    accepted("zstd", "A zstd-compressed, signed batch whose frame states its decompressed size.", zsized,
             exact=False, keys=[KEY], enc="zstd", key=KEY)
    accepted("zstd-stream", "A zstd-compressed batch from a streaming compressor: the frame does not state its size.",
             zsized, exact=False, enc="zstd", stream=True)

    accepted("member-order", "The batch of set-and-del with its envelope members in another order (signature "
             "last but one, format version last): member order does not matter.", dict(simple, id="feed"),
             exact=False, keys=[KEY], key=KEY, order=[1, 9, 8, 7, 2, 3, 4, 5, 6, 0])

    extremes = dict(header(), commands=[
        {"op": "pexpireat", "key": hx("k"), "at_ms": 281474976710655, "version": [281474976710655, 4294967295, 65535]},
        {"op": "set", "key": hx("k"), "value": hx("v"), "expire_at_ms": 1, "version": [0, 0, 0]},
    ])
    accepted("extremes", "The largest version and expiry accepted (2^48 - 1 ms), and the smallest expiry (1 ms).",
             extremes)

    base = simple["commands"]

    def with_commands(cmds_json, n=None, enc="json", extra=""):
        n = len(json.loads(cmds_json)) if n is None else n
        return ('{"regis":1,"id":"b","origin":"o","tenant":"t","ts":1,"mode":"lww","enc":"' + enc + '","n":' +
                str(n) + ',"cmds":' + cmds_json + extra + "}")

    one = '[{"op":"del","k":"k","ver":[1,0,1]}]'
    refused("not-json", "Not JSON at all.", "regis", "malformed")
    refused("future-version", "A format version this decoder does not know, whatever follows.",
            '{"regis":2,"anything":[1,2,3]}', "unknown-version")
    refused("unknown-command", "An op the format does not have (INCR is not idempotent).",
            with_commands('[{"op":"incr","k":"c","ver":[1,0,1]}]'), "unknown-command")
    refused("unknown-encoding", "A compression the format does not have.",
            with_commands(one).replace('"enc":"json"', '"enc":"brotli"'), "unknown-encoding")
    refused("corrupt-zstd", "A base64 payload that is not zstd.",
            with_commands('"AAAAAAAAAAAAAAAA"', n=1, enc="zstd"), "corrupt-payload")
    refused("expiry-zero", "An expiry of 0: Redis refuses SET ... PXAT 0.",
            with_commands('[{"op":"set","k":"k","v":"v","at":0,"ver":[1,0,1]}]'), "malformed")
    refused("expiry-too-late", "An expiry past 2^48 - 1 ms.",
            with_commands('[{"op":"pexpireat","k":"k","at":281474976710656,"ver":[1,0,1]}]'), "malformed")
    refused("version-too-late", "A version past 2^48 - 1 ms cannot be ordered.",
            with_commands('[{"op":"del","k":"k","ver":[281474976710656,0,1]}]'), "malformed")
    refused("count-mismatch", "\"n\" must be the number of commands.", with_commands(one, n=2), "malformed")
    refused("unknown-member", "A command member the op does not take.",
            with_commands('[{"op":"del","k":"k","v":"x","ver":[1,0,1]}]'), "malformed")
    refused("duplicate-member", "A command member given twice.",
            with_commands('[{"op":"del","k":"k","k":"j","ver":[1,0,1]}]'), "malformed")
    refused("infinite-score", "A score JSON cannot carry as a finite number.",
            with_commands('[{"op":"zadd","k":"z","m":[[1e999,"a"]],"ver":[1,0,1]}]'), "malformed")
    refused("too-many-members", "10,001 members in one command: over the default per-command limit.",
            with_commands('[{"op":"sadd","k":"s","m":[' + ",".join(['""'] * 10_001) + '],"ver":[1,0,1]}]'),
            "over-limit")
    refused("value-too-long", "A value over the configured value limit (5 bytes, over a limit of 4).",
            with_commands('[{"op":"set","k":"k","v":"hello","ver":[1,0,1]}]'), "over-limit",
            limits={"max_value_bytes": 4})
    refused("unsigned", "An unsigned batch where keys are configured.", message(simple), "unsigned", keys=[KEY])
    refused("unknown-key", "Signed with a key the applier does not have.", message(simple, key=OTHER_KEY),
            "unknown-key", keys=[KEY])
    tampered = message(simple, key=KEY).replace('"tenant":"hotel-sg"', '"tenant":"hotel-xx"')
    refused("bad-signature", "A signed batch whose tenant was changed afterwards.", tampered, "bad-signature",
            keys=[KEY])
    refused("reserved-key", "Decodes, but writes the applier's bookkeeping: refused by the reserved-key check.",
            message(dict(header(), commands=[base[0], {"op": "del", "key": hx("regis:v:{ab}:user:1"),
                                                       "version": [T0, 1, 1]}])),
            "reserved-key", checks={"now_ms": T0, "max_clock_skew_ms": 300_000, "horizon_ms": 345_600_000})
    refused("clock-skew", "Decodes, but its second command is a day ahead of the applier's clock.",
            message(dict(header(), commands=[base[0], dict(base[1], version=[T0 + 86_400_000, 0, 1])])),
            "clock-skew", checks={"now_ms": T0, "max_clock_skew_ms": 300_000, "horizon_ms": 345_600_000})
    refused("beyond-horizon", "Decodes, but is five days old for an applier with a four-day horizon.",
            message(simple), "beyond-horizon",
            checks={"now_ms": T0 + 5 * 86_400_000, "max_clock_skew_ms": 300_000, "horizon_ms": 345_600_000})


if __name__ == "__main__":
    main()
